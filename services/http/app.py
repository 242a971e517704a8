"""The HTTP API: event ingest, health, readiness, metrics and the OpenAPI document.

``POST /v1/events`` takes one event object or a JSON array of up to 5,000 events (at most
5 MiB) and answers:

===== =====================================================================================
202   ``{"results": [{"event_id", "position", "status": "appended"|"duplicate"}]}``
401   no, a malformed or an unknown bearer token (``WWW-Authenticate: Bearer``)
403   a reader/operator token (only feed tokens publish), or an event whose ``source`` is
      not the token's feed (``index`` names it); nothing is written
409   ``{"error": "conflict", "index", "entity", "current_version", "message"}``
413   a body over 5 MiB (announced by Content-Length or actually read)
415   a Content-Type other than ``application/json``
422   ``{"error": "invalid", "errors": [{"index", "field", "message"}]}``; nothing is written
503   the store cannot be reached within about a second (``Retry-After: 1``); retry with the
      same event ids, appends are idempotent
===== =====================================================================================

Checks run in that order: authentication, role, media type, size, validation, feed, append.
Every error answer is JSON with an ``error`` member; bad input never answers 500.

``GET /healthz`` answers 200 while the process runs; ``GET /readyz`` 200 when the store's
Redis answers PING within a second, else 503. ``GET /metrics`` (reader or operator token)
renders the Prometheus metrics. ``GET /openapi.json`` is the OpenAPI document, with the
request body schema of ``POST /v1/events`` taken from the event Structs (the interactive
docs at ``/schema`` show the same API without that body schema).

The read side's query API (``/v1/projections/…``, ``/v1/incidents``, ``/v1/live/…``) is in
:mod:`services.http.read`; ``/readyz`` also names the state of this process's projectors
when it runs them, and ``/metrics`` refreshes the read side's gauges before rendering.

``GET /`` is the analysts' dashboard page, its assets under ``/static/`` (see
:mod:`services.http.dashboard`); the page's data calls go to the read endpoints with a token.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec
import structlog
from litestar import Litestar, MediaType, Request, Response, get, post
from litestar.datastructures import MutableScopeHeaders, State
from litestar.enums import ScopeType
from litestar.exceptions import HTTPException, ValidationException
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

import events
from events import AnyEvent, InvalidBatchError
from services.errors import LedgerError
from services.http.admin import ADMIN_ROUTES, AdminDeps
from services.http.dashboard import dashboard_routes
from services.http.erase import ERASE_ROUTES
from services.http.read import ReadSide, read_router, refresh_quietly
from services.logging import bind_event_ids, bind_request
from services.metrics import CONTENT_TYPE, IngestMetrics, ReadMetrics
from services.protection.auth import (
    AuthenticationError,
    Authenticator,
    PermissionDeniedError,
    authorize_publish,
    live_query_token,
)
from services.store.base import (
    Appended,
    AppendRejectedError,
    ConflictError,
    EventStore,
    StoreUnavailableError,
)
from services.store.redis import RedisEventStore

log = structlog.get_logger(__name__)

MAX_BODY_BYTES: Final = 5 * 1024 * 1024
"""Largest ``POST /v1/events`` body (5 MiB)."""
APPEND_TIMEOUT: Final = 1.0
"""Seconds an append may take before the answer is 503 (the Redis client times out at 1 s)."""
_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")

Ping = Callable[[], Awaitable[object]]


class UnsupportedMediaTypeError(LedgerError):
    """Raised when a submission's Content-Type is not ``application/json`` (answered 415)."""


# --- answer bodies (also documented in the OpenAPI document) --------------------------------


class SubmitResult(msgspec.Struct, frozen=True):
    """The answer to an accepted submission: one result per event, in batch order."""

    results: list[Appended]


class ErrorItem(msgspec.Struct, frozen=True):
    """One field at fault: the event's index in the batch, the field path and what is wrong."""

    index: int
    field: str
    message: str


class InvalidBody(msgspec.Struct, frozen=True):
    """422: the submission (or a rule depending on the log) is invalid; nothing was written
    but the events listed in ``written`` (only ever on several log partitions)."""

    errors: list[ErrorItem]
    error: Literal["invalid"] = "invalid"
    written: list[Appended] | msgspec.UnsetType = msgspec.UNSET


class ConflictBody(msgspec.Struct, frozen=True):
    """409: an event conflicts with its entity's current version; nothing was written but the
    events listed in ``written`` (only ever on several log partitions)."""

    index: int
    entity: str
    current_version: int
    message: str
    error: Literal["conflict"] = "conflict"
    written: list[Appended] | msgspec.UnsetType = msgspec.UNSET


class ErrorBody(msgspec.Struct, frozen=True, omit_defaults=True):
    """Any other error: a short code, a message, and the event's index where one is at fault."""

    error: str
    message: str
    index: int | None = None


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer of the health and readiness probes.

    ``projectors`` (readiness only, when this process runs them): ``running``, ``stopped``
    or ``failed``.
    """

    status: str
    projectors: str | None = None


# --- what the handlers need ------------------------------------------------------------------


class HttpDeps:
    """Everything the handlers use, kept in ``app.state.ledger``."""

    def __init__(
        self,
        *,
        store: EventStore,
        auth: Authenticator,
        metrics: IngestMetrics,
        ping: Ping | None,
        append_timeout: float,
        asyncapi: Callable[[], Mapping[str, Any]] | None,
    ) -> None:
        self.store, self.auth, self.metrics = store, auth, metrics
        self.ping, self.append_timeout, self.asyncapi = ping, append_timeout, asyncapi


def _deps(request: Request[Any, Any, Any]) -> HttpDeps:
    deps: HttpDeps = request.app.state.ledger
    return deps


def _json(status: int, body: Any, headers: Mapping[str, str] | None = None) -> Response[Any]:
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)


# --- handlers --------------------------------------------------------------------------------


@post(
    "/v1/events",
    status_code=202,
    summary="Publish events",
    description=(
        "One event object or a JSON array of up to 5,000 events (at most 5 MiB), published "
        "with a feed token whose feed is every event's `source`. All or nothing: an invalid "
        "or conflicting event rejects the whole batch. Re-sending an event id is safe: it "
        "answers `duplicate` with the original position."
    ),
    responses={
        401: ResponseSpec(ErrorBody, description="missing or unknown bearer token"),
        403: ResponseSpec(ErrorBody, description="the token may not publish these events"),
        409: ResponseSpec(ConflictBody, description="version conflict; nothing written"),
        413: ResponseSpec(ErrorBody, description="body over 5 MiB"),
        415: ResponseSpec(ErrorBody, description="Content-Type is not application/json"),
        422: ResponseSpec(InvalidBody, description="invalid events; nothing written"),
        503: ResponseSpec(ErrorBody, description="store unavailable; retry (Retry-After)"),
    },
    tags=["ingest"],
)
async def submit_events(request: Request[Any, Any, Any]) -> Response[SubmitResult]:
    """Validate a batch, check it against the token's feed, and append it atomically."""
    deps = _deps(request)
    token = deps.auth.authenticate(request.headers.get("authorization"))
    if token.role != "feed":
        authorize_publish(token, ())  # raises: only feed tokens publish
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    body = await request.body()
    try:
        batch, _ = events.parse_batch(body)
    except InvalidBatchError as exc:
        deps.metrics.submissions.labels("422").inc()
        errors = [ErrorItem(p.index, p.field, p.message) for p in exc.batch_problems]
        log.info("submission.invalid", problems=len(errors), principal=token.name)
        return _json(422, InvalidBody(errors=errors))
    bind_event_ids(str(e.event_id) for e in batch)
    types = [e.type for e in batch]
    try:
        authorize_publish(token, (e.source for e in batch))
    except PermissionDeniedError:
        deps.metrics.count(types, "forbidden")
        raise
    return await _append(deps, batch, types, principal=token.name)


async def _append(
    deps: HttpDeps, batch: Sequence[AnyEvent], types: list[str], *, principal: str
) -> Response[Any]:
    started = time.perf_counter()
    try:
        results = await asyncio.wait_for(deps.store.append(batch), deps.append_timeout)
    except AppendRejectedError as exc:
        deps.metrics.count(types, "rejected")
        deps.metrics.submissions.labels("422").inc()
        log.info("submission.rejected", index=exc.index, field=exc.field, principal=principal)
        return _json(
            422,
            InvalidBody(
                errors=[ErrorItem(exc.index, exc.field, exc.message)],
                written=list(exc.written) if exc.written else msgspec.UNSET,
            ),
        )
    except ConflictError as exc:
        deps.metrics.count(types, "conflict")
        deps.metrics.submissions.labels("409").inc()
        log.info("submission.conflict", index=exc.index, entity=exc.entity, current=exc.current)
        return _json(
            409,
            ConflictBody(
                index=exc.index,
                entity=exc.entity,
                current_version=exc.current,
                message=exc.message,
                written=list(exc.written) if exc.written else msgspec.UNSET,
            ),
        )
    except (StoreUnavailableError, TimeoutError) as exc:
        deps.metrics.count(types, "unavailable")
        reason = str(exc) or f"no answer within {deps.append_timeout:g} s"
        raise StoreUnavailableError(f"the event store is unavailable: {reason}") from exc
    finally:
        deps.metrics.append_seconds.observe(time.perf_counter() - started)
    appended = deps.metrics.count_results(types, [r.status for r in results])
    deps.metrics.submissions.labels("202").inc()
    log.info("submission.accepted", appended=appended, duplicates=len(results) - appended)
    return _json(202, SubmitResult(results=results))


@get("/healthz", summary="Liveness", tags=["operations"])
async def healthz() -> Health:
    """200 while the process serves requests."""
    return Health("ok")


@get(
    "/readyz",
    summary="Readiness",
    tags=["operations"],
    responses={503: ResponseSpec(Health, description="Redis does not answer")},
)
async def readyz(request: Request[Any, Any, Any]) -> Response[Health]:
    """200 when the store's Redis answers PING within a second, else 503."""
    deps = _deps(request)
    read: ReadSide | None = request.app.state.get("read")
    projectors = None if read is None or read.projector_state is None else read.projector_state()
    if deps.ping is None:
        return _json(200, Health("ready", projectors))
    try:
        await asyncio.wait_for(deps.ping(), 1.0)
    except Exception as exc:  # any failure to answer means not ready
        log.warning("readyz.unavailable", error=type(exc).__name__)
        return _json(503, Health("unavailable", projectors), headers={"Retry-After": "1"})
    return _json(200, Health("ready", projectors))


@get("/metrics", summary="Prometheus metrics", tags=["operations"], media_type=CONTENT_TYPE)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The ingest metrics in the Prometheus text format (reader or operator token)."""
    deps = _deps(request)
    token = deps.auth.authenticate(request.headers.get("authorization"))
    if token.role == "feed":
        raise PermissionDeniedError("metrics need a reader or operator token")
    read: ReadSide | None = request.app.state.get("read")
    if read is not None:
        await refresh_quietly(read)
    return Response(deps.metrics.render(), media_type=CONTENT_TYPE)


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI document, with the event schemas as the ingest request body."""
    return with_event_schemas(request.app.openapi_schema.to_schema())


@get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request[Any, Any, Any]) -> Response[Any]:
    """The AsyncAPI document of the Redis inbox, when the inbox runs in this process."""
    deps = _deps(request)
    if deps.asyncapi is None:
        return _json(404, ErrorBody("not_found", "no inbox runs in this process"))
    return _json(200, deps.asyncapi())


def with_event_schemas(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the request body of ``POST /v1/events`` described by the events."""
    (body,), components = msgspec.json.schema_components(
        [AnyEvent | list[AnyEvent]], ref_template="#/components/schemas/{name}"
    )
    document.setdefault("components", {}).setdefault("schemas", {}).update(components)
    operation = document.get("paths", {}).get("/v1/events", {}).get("post")
    if operation is not None:
        operation["requestBody"] = {
            "required": True,
            "description": "one event, or an array of at most 5,000 events",
            "content": {"application/json": {"schema": body}},
        }
    return document


# --- per-request log context -----------------------------------------------------------------


def request_context(app: ASGIApp) -> ASGIApp:
    """Middleware: a fresh log context per request with its id, echoed in ``X-Request-ID``."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), b"").decode(
            "latin-1"
        )
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        bind_request(request_id, method=scope["method"], path=scope["path"])
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableScopeHeaders.from_message(message)["x-request-id"] = request_id
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        finally:
            duration_ms = round((time.perf_counter() - started) * 1000, 2)
            log.info("request", status=status, duration_ms=duration_ms)

    return middleware


# --- errors as JSON --------------------------------------------------------------------------


def _on_authentication(_: Request[Any, Any, Any], exc: AuthenticationError) -> Response[Any]:
    return _json(401, ErrorBody("unauthorized", str(exc)), headers={"WWW-Authenticate": "Bearer"})


def _on_permission(request: Request[Any, Any, Any], exc: PermissionDeniedError) -> Response[Any]:
    if request.url.path == "/v1/events":
        _deps(request).metrics.submissions.labels("403").inc()
    return _json(403, ErrorBody("forbidden", str(exc), exc.index))


def _on_media_type(
    request: Request[Any, Any, Any], exc: UnsupportedMediaTypeError
) -> Response[Any]:
    _deps(request).metrics.submissions.labels("415").inc()
    return _json(415, ErrorBody("unsupported_media_type", str(exc)))


def _on_unavailable(request: Request[Any, Any, Any], exc: StoreUnavailableError) -> Response[Any]:
    _deps(request).metrics.submissions.labels("503").inc()
    log.warning("store.unavailable", error=str(exc))
    return _json(503, ErrorBody("unavailable", str(exc)), headers={"Retry-After": "1"})


def _on_validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        {"field": str(e.get("key", "body")), "message": str(e.get("message", exc.detail))}
        for e in extra
        if isinstance(e, dict)
    ] or [{"field": "body", "message": exc.detail}]
    return _json(422, {"error": "invalid", "errors": errors})


_HTTP_CODES: Final = {
    400: "bad_request",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
}


def _on_http(request: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    if exc.status_code == 413 and request.url.path == "/v1/events":
        _deps(request).metrics.submissions.labels("413").inc()
    message = exc.detail
    if exc.status_code == 413:
        message = f"the body exceeds {MAX_BODY_BYTES} bytes"
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return _json(exc.status_code, ErrorBody(code, message), headers=exc.headers)


def _on_unexpected(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.error("request.failed", exc_info=exc)
    return _json(500, ErrorBody("internal", "internal error; see the service log"))


# --- the app ---------------------------------------------------------------------------------


def build_http_app(
    *,
    store: EventStore,
    auth: Authenticator,
    metrics: IngestMetrics | None = None,
    ping: Ping | None = None,
    append_timeout: float = APPEND_TIMEOUT,
    max_body_size: int = MAX_BODY_BYTES,
    asyncapi: Callable[[], Mapping[str, Any]] | None = None,
    read: ReadSide | None = None,
    admin: AdminDeps | None = None,
    debug: bool = False,
) -> Litestar:
    """The Litestar app of the API over ``store``, authenticating with ``auth``.

    ``ping`` is awaited by ``/readyz`` (e.g. the Redis client's ``ping``); without it the
    service is always ready. ``asyncapi`` renders the inbox's AsyncAPI document. ``read`` is
    the read side (:mod:`services.http.read`); without it, a Redis store's client and prefix
    serve the read endpoints. ``admin`` adds the operator routes (:mod:`services.http.admin`).
    """
    if read is None and isinstance(store, RedisEventStore):
        read = ReadSide(store.client, store.keys)
    deps = HttpDeps(
        store=store,
        auth=auth,
        metrics=metrics or IngestMetrics(),
        ping=ping,
        append_timeout=append_timeout,
        asyncapi=asyncapi,
    )
    if read is not None:
        read.attach_metrics(ReadMetrics(deps.metrics.registry))
    return Litestar(
        route_handlers=[
            submit_events,
            healthz,
            readyz,
            metrics_endpoint,
            openapi_json,
            asyncapi_json,
            *dashboard_routes(),
            read_router(),
            *(ADMIN_ROUTES if admin is not None else []),
            *(ERASE_ROUTES if admin is not None else []),
        ],
        state=State({"ledger": deps, "read": read, "ledger_admin": admin}),
        middleware=[request_context, live_query_token],
        exception_handlers={
            AuthenticationError: _on_authentication,
            PermissionDeniedError: _on_permission,
            UnsupportedMediaTypeError: _on_media_type,
            StoreUnavailableError: _on_unavailable,
            ValidationException: _on_validation,
            HTTPException: _on_http,
            Exception: _on_unexpected,
        },
        openapi_config=OpenAPIConfig(
            title="incident-ledger",
            version="1",
            description="Event-sourced ledger of conflict incidents and diplomatic statements.",
            path="/schema",
        ),
        request_max_body_size=max_body_size,
        debug=debug,
        logging_config=None,
    )
