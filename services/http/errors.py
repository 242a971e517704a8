"""Every error the HTTP API answers, as JSON with an ``error`` member.

Bad input never answers 500: authentication 401 (with ``WWW-Authenticate: Bearer``), a role
that may not 403, a body too large 413, the wrong media type 415, an invalid body or query
parameter 422 naming the field, Redis unreachable 503 with ``Retry-After``; anything else is
logged and answers 500 without details. The query API's own errors (a parameter its
framework cannot check, an ``as_of`` that is no date-time, Redis not answering a read) are
handled on its router (:data:`READ_ERRORS`).
"""

from __future__ import annotations

import re
from typing import Any, Final, Literal

import msgspec
import redis.exceptions as rexc
import structlog
from litestar import MediaType, Request, Response
from litestar.exceptions import HTTPException, ValidationException
from litestar.types import ExceptionHandlersMap

from projections import InvalidQueryError
from services.errors import LedgerError
from services.http.deps import deps_of, json_response
from services.protection.auth import AuthenticationError, PermissionDeniedError
from services.store.base import StoreUnavailableError
from services.views.asof import InvalidAsOfError

__all__ = [
    "APP_ERRORS",
    "MAX_BODY_BYTES",
    "QUERY_NAMES",
    "READ_ERRORS",
    "ErrorBody",
    "FieldError",
    "InvalidParameterError",
    "InvalidQuery",
    "NotFound",
    "UnsupportedMediaTypeError",
]

log = structlog.get_logger("services.http.app")
read_log = structlog.get_logger("services.http.read")

MAX_BODY_BYTES: Final = 5 * 1024 * 1024
"""Largest ``POST /v1/events`` body (5 MiB)."""


class UnsupportedMediaTypeError(LedgerError):
    """Raised when a submission's Content-Type is not ``application/json`` (answered 415)."""


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Any other error: a short code, a message, and the event's index where one is at fault."""

    error: str
    message: str
    index: int | None = None


class FieldError(msgspec.Struct, frozen=True):
    """One query parameter at fault and what is wrong with it."""

    field: str
    message: str


class InvalidQuery(msgspec.Struct, frozen=True):
    """422: a query parameter is invalid."""

    errors: list[FieldError]
    error: Literal["invalid"] = "invalid"


class NotFound(msgspec.Struct, frozen=True):
    """404: no such incident, projection or route."""

    error: str
    message: str


def _on_authentication(_: Request[Any, Any, Any], exc: AuthenticationError) -> Response[Any]:
    return json_response(
        401, ErrorBody("unauthorized", str(exc)), headers={"WWW-Authenticate": "Bearer"}
    )


def _on_permission(request: Request[Any, Any, Any], exc: PermissionDeniedError) -> Response[Any]:
    if request.url.path == "/v1/events":
        deps_of(request).metrics.submissions.labels("403").inc()
    return json_response(403, ErrorBody("forbidden", str(exc), exc.index))


def _on_media_type(
    request: Request[Any, Any, Any], exc: UnsupportedMediaTypeError
) -> Response[Any]:
    deps_of(request).metrics.submissions.labels("415").inc()
    return json_response(415, ErrorBody("unsupported_media_type", str(exc)))


def _on_unavailable(request: Request[Any, Any, Any], exc: StoreUnavailableError) -> Response[Any]:
    deps_of(request).metrics.submissions.labels("503").inc()
    log.warning("store.unavailable", error=str(exc))
    return json_response(503, ErrorBody("unavailable", str(exc)), headers={"Retry-After": "1"})


def _on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"field": str(e.get("key", "body")), "message": str(e.get("message", exc.detail))}
        for e in extra
        if isinstance(e, dict)
    ] or [{"field": "body", "message": exc.detail}]
    return json_response(422, {"error": "invalid", "errors": errors})


_HTTP_CODES: Final = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 413 and request.url.path == "/v1/events":
        deps_of(request).metrics.submissions.labels("413").inc()
    message = exc.detail
    if exc.status_code == 413:
        message = f"the body exceeds {MAX_BODY_BYTES} bytes"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return json_response(exc.status_code, ErrorBody(code, message), headers=exc.headers)


def _on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request.failed", exc_info=exc)
    return json_response(500, ErrorBody("internal", "internal error; see the service log"))


APP_ERRORS: Final[ExceptionHandlersMap] = {
    AuthenticationError: _on_authentication,
    PermissionDeniedError: _on_permission,
    UnsupportedMediaTypeError: _on_media_type,
    StoreUnavailableError: _on_unavailable,
    ValidationException: _on_validation,
    HTTPException: _on_http,
    Exception: _on_unexpected,
}
"""The app's exception handlers."""


# --- the query API's errors ---------------------------------------------------------------------


class InvalidParameterError(InvalidQueryError):
    """Raised by a handler for a parameter the framework cannot check (named explicitly)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field} {message}")


_FIELD: Final = re.compile(r"^(?P<field>[a-z_]+)\b")
_FIELDS: Final = frozenset({"week", "status", "min_grading", "page", "limit", "country", "as_of"})


def _invalid(field: str, message: str) -> Response[Any]:
    body = InvalidQuery(errors=[FieldError(field, message)])
    return Response(body, status_code=422, media_type=MediaType.JSON)


def _on_invalid_query(_: Request[Any, Any, Any], exc: InvalidQueryError) -> Response[Any]:
    field = getattr(exc, "field", None) or exc.parameter
    if field is None:
        match = _FIELD.match(str(exc))
        field = match["field"] if match and match["field"] in _FIELDS else "query"
    return _invalid(field, str(exc))


def _on_invalid_as_of(_: Request[Any, Any, Any], exc: InvalidAsOfError) -> Response[Any]:
    return _invalid("as_of", str(exc))


QUERY_NAMES: Final = {"date_from": "from", "date_to": "to"}
"""Handler argument → the query parameter's name, where the two differ."""


def _on_bad_parameter(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        FieldError(
            QUERY_NAMES.get(str(e.get("key")), str(e.get("key", "query"))),
            str(e.get("message", exc.detail)),
        )
        for e in extra
        if isinstance(e, dict)
    ] or [FieldError("query", exc.detail)]
    return Response(InvalidQuery(errors=errors), status_code=422, media_type=MediaType.JSON)


def _on_redis_down(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    read_log.warning("read.unavailable", error=str(exc))
    body = NotFound("unavailable", "the ledger's Redis does not answer; retry")
    return Response(body, status_code=503, media_type=MediaType.JSON, headers={"Retry-After": "1"})


READ_ERRORS: Final[ExceptionHandlersMap] = {
    InvalidQueryError: _on_invalid_query,
    InvalidAsOfError: _on_invalid_as_of,
    ValidationException: _on_bad_parameter,
    rexc.ConnectionError: _on_redis_down,
    rexc.TimeoutError: _on_redis_down,
    TimeoutError: _on_redis_down,
}
"""The exception handlers of the query API's router."""
