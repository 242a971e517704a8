"""Event ingest over HTTP: ``POST /v1/events`` with a feed token.

``POST /v1/events`` takes one event object or a JSON array of up to 5,000 events (at most
5 MiB) and answers:

===== =====================================================================================
202   ``{"results": [{"event_id", "position", "status": "appended"|"duplicate"}]}``
401   no, a malformed or an unknown bearer token (``WWW-Authenticate: Bearer``)
403   a reader/analyst token, an event whose ``source`` is not the token's feed (an
      operator's: ``ledger-operator``) or an operator publishing anything but a correction
      (``{"error": "forbidden", "index", "message"}``); or a change of an incident or
      statement another feed owns (``{"error": "not_owner", "index", "entity", "owner",
      "message"}``); nothing is written
409   ``{"error": "conflict", "index", "entity", "current_version", "message"}``; or an
      event id the log holds with another body (``{"error": "id_reused", "index",
      "event_id", "position", "message"}``, ``position`` the original's, or ``earlier``
      the batch index using it first) or another feed's event (``"error": "id_taken"``)
413   a body over 5 MiB (announced by Content-Length or actually read)
415   a Content-Type other than ``application/json``
422   ``{"error": "invalid", "errors": [{"index", "field", "message"}]}``; nothing is written:
      a schema or domain rule (dates after the service's clock plus five minutes, a
      Goldstein score other than GDELT's for the CAMEO code, a stance the CAMEO root
      contradicts, each naming the field and the expected value), or a rule of the log (a
      statement naming incidents no event reported lists them)
503   the store cannot be reached within about a second (``Retry-After: 1``); retry with the
      same event ids, appends are idempotent
===== =====================================================================================

Checks run in that order: authentication, role, media type, size, validation, feed, append.
Every error answer is JSON with an ``error`` member; bad input never answers 500.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Sequence
from typing import Any, Final, Literal

import msgspec
import structlog
from litestar import Request, Response, post
from litestar.openapi import ResponseSpec

import events
from events import AnyEvent, InvalidBatchError
from services.http.deps import HttpDeps, deps_of, json_response
from services.http.errors import ErrorBody, UnsupportedMediaTypeError
from services.http.limits import LimitedBody
from services.logging import bind_event_ids
from services.protection.auth import PermissionDeniedError, authorize_publish
from services.store.base import (
    Appended,
    AppendRejectedError,
    BatchError,
    ConflictError,
    IdReusedError,
    NotOwnerError,
    StoreUnavailableError,
)

__all__ = [
    "APPEND_TIMEOUT",
    "ConflictBody",
    "ErrorItem",
    "IdReusedBody",
    "InvalidBody",
    "NotOwnerBody",
    "SubmitResult",
    "submit_events",
    "with_event_schemas",
]

log = structlog.get_logger("services.http.app")

APPEND_TIMEOUT: Final = 1.0
"""Seconds an append may take before the answer is 503 (the Redis client times out at 1 s)."""


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


class NotOwnerBody(msgspec.Struct, frozen=True):
    """403: an event changes an incident or statement another feed owns; nothing was written
    but the events listed in ``written`` (only ever on several log partitions)."""

    index: int
    entity: str
    owner: str
    message: str
    error: Literal["not_owner"] = "not_owner"
    written: list[Appended] | msgspec.UnsetType = msgspec.UNSET


class IdReusedBody(msgspec.Struct, frozen=True):
    """409: an event id the log holds comes with another body (``id_reused``: ``position``
    the original's, or ``earlier`` the index in this batch that used it first) or is held by
    another feed's event (``id_taken``); nothing was written but the events listed in
    ``written`` (only ever on several log partitions)."""

    error: Literal["id_reused", "id_taken"]
    index: int
    event_id: str
    position: str | None
    message: str
    earlier: int | None = None
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


_FORBIDDEN_BODY: Any = ErrorBody | NotOwnerBody
_CONFLICT_BODY: Any = ConflictBody | IdReusedBody
"""The answers of 403 and 409, unions the response spec documents as ``oneOf``."""


@post(
    "/v1/events",
    status_code=202,
    summary="Publish events",
    description=(
        "One event object or a JSON array of up to 5,000 events (at most 5 MiB), published "
        "with a feed token whose feed is every event's `source` (an operator token: "
        "`ledger-operator`, corrections only). All or nothing: an invalid or conflicting "
        "event rejects the whole batch. Only an incident's own feed or an operator revises, "
        "retracts or merges it; another feed files `incident.disputed`. Re-sending an event "
        "with the same id and body is safe: it answers `duplicate` with the original "
        "position; the same id with another body is 409 `id_reused`, another feed's id "
        "409 `id_taken`."
    ),
    responses={
        401: ResponseSpec(ErrorBody, description="missing or unknown bearer token"),
        403: ResponseSpec(
            _FORBIDDEN_BODY,
            description="the token may not publish these events (`forbidden`), or an event "
            "changes another feed's incident (`not_owner`, naming the owner); nothing written",
        ),
        409: ResponseSpec(
            _CONFLICT_BODY,
            description="version conflict (`conflict`), or an event id held by another "
            "body (`id_reused`) or another feed's event (`id_taken`); nothing written",
        ),
        413: ResponseSpec(ErrorBody, description="body over 5 MiB"),
        415: ResponseSpec(ErrorBody, description="Content-Type is not application/json"),
        422: ResponseSpec(InvalidBody, description="invalid events; nothing written"),
        429: ResponseSpec(
            LimitedBody,
            description="over the token's rate or the feed's hourly quota (Retry-After); "
            "nothing written",
        ),
        503: ResponseSpec(ErrorBody, description="store unavailable; retry (Retry-After)"),
        507: ResponseSpec(
            ErrorBody, description="Redis's memory is nearly full: nothing written; the reason"
        ),
    },
    tags=["ingest"],
)
async def submit_events(request: Request[Any, Any, Any]) -> Response[SubmitResult]:
    """Validate a batch, check it against the token's feed, and append it atomically."""
    deps = deps_of(request)
    token = deps.auth.authenticate(request.headers.get("authorization"))
    authorize_publish(token, ())  # raises for a token that may not publish at all
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise UnsupportedMediaTypeError("Content-Type must be application/json")
    body = await request.body()
    try:
        batch, _ = events.parse_batch(body, now=dt.datetime.now(dt.UTC))
    except InvalidBatchError as exc:
        deps.metrics.submissions.labels("422").inc()
        errors = [ErrorItem(p.index, p.field, p.message) for p in exc.batch_problems]
        log.info("submission.invalid", problems=len(errors), principal=token.name)
        return json_response(422, InvalidBody(errors=errors))
    bind_event_ids([e.event_id for e in batch])
    types = [e.type for e in batch]
    try:
        authorize_publish(token, ((e.source, e.type) for e in batch))
    except PermissionDeniedError:
        deps.metrics.count(types, "forbidden")
        raise
    if deps.headroom is not None:
        await deps.headroom.check()  # 507 before Redis itself refuses writes (no quota spent)
    if deps.limits is not None and token.feed is not None:
        await deps.limits.quota.take(token.feed, len(batch))  # 429 over the feed's hourly quota
    return await _append(deps, batch, types, principal=token.name)


async def _append(
    deps: HttpDeps, batch: Sequence[AnyEvent], types: list[str], *, principal: str
) -> Response[Any]:
    started = time.perf_counter()
    try:
        results = await asyncio.wait_for(deps.store.append(batch), deps.append_timeout)
    except BatchError as exc:
        status, result, body = _refusal(exc)
        deps.metrics.count(types, result)
        deps.metrics.submissions.labels(str(status)).inc()
        log.info("submission.refused", status=status, error=type(exc).__name__, principal=principal)
        return json_response(status, body)
    except (StoreUnavailableError, TimeoutError) as exc:
        deps.metrics.count(types, "unavailable")
        reason = str(exc) or f"no answer within {deps.append_timeout:g} s"
        raise StoreUnavailableError(f"the event store is unavailable: {reason}") from exc
    finally:
        deps.metrics.append_seconds.observe(time.perf_counter() - started)
    appended = deps.metrics.count_results(types, [r.status for r in results])
    deps.metrics.submissions.labels("202").inc()
    log.info("submission.accepted", appended=appended, duplicates=len(results) - appended)
    return json_response(202, SubmitResult(results=results))


def _refusal(exc: BatchError) -> tuple[int, str, msgspec.Struct]:
    """The status, the metrics result and the body answering a batch the store refused."""
    written = list(exc.written) if exc.written else msgspec.UNSET
    if isinstance(exc, ConflictError):
        body: msgspec.Struct = ConflictBody(
            index=exc.index,
            entity=exc.entity,
            current_version=exc.current,
            message=exc.message,
            written=written,
        )
        return 409, "conflict", body
    if isinstance(exc, NotOwnerError):
        body = NotOwnerBody(
            index=exc.index,
            entity=exc.entity,
            owner=exc.owner,
            message=exc.message,
            written=written,
        )
        return 403, "forbidden", body
    if isinstance(exc, IdReusedError):
        body = IdReusedBody(
            error=exc.reason,
            index=exc.index,
            event_id=exc.event_id,
            position=exc.position,
            earlier=exc.earlier,
            message=exc.message,
            written=written,
        )
        return 409, "conflict", body
    if isinstance(exc, AppendRejectedError):
        errors = [ErrorItem(exc.index, exc.field, exc.message)]
        return 422, "rejected", InvalidBody(errors=errors, written=written)
    raise exc


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
