"""Operator routes of the HTTP API (``operator`` role only; others get 403).

===================================  ===========================================================
``GET /v1/admin/status``             what ``ledger status --json`` shows
``POST /v1/admin/replay/{name}``     start rebuilding a view (or ``all``) in the background: 202
                                     (on a partitioned log every partition view); 409 when a
                                     rebuild of it runs already; 404 unknown name
``GET /v1/admin/replay/{name}``      the latest rebuild: state, generation, progress, running
                                     (on a partitioned log combined, with each partition's)
``GET /v1/admin/dlq``                the dead letters (``?limit=``, default 100); on a
                                     partitioned log an id names its partition, ``p<N>:<id>``
``POST /v1/admin/dlq/{id}/retry``    apply a dead letter to the live view and remove it; 409
                                     when the projection still cannot apply it
``POST /v1/admin/dlq/{id}/drop``     body ``{"reason": "..."}``: record and remove it
===================================  ===========================================================
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Final

import msgspec
import redis.asyncio as aioredis
import structlog
from litestar import MediaType, Request, Response, get, post
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter

from services.http.deps import deps_of
from services.ops.dead_letters import (
    DeadLetterError,
    DeadLetterNotFoundError,
    DeadLetterStillFailsError,
    dlq_drop,
    dlq_list,
    dlq_retry,
)
from services.ops.status import ledger_status
from services.projector.replay import replay_together
from services.projector.replay_records import (
    ReplayError,
    UnknownProjectionError,
    projections_named,
    replay_status,
)
from services.protection.audit import record_read
from services.protection.auth import PermissionDeniedError
from services.store.keys import Keys

log = structlog.get_logger(__name__)

__all__ = ["ADMIN_ROUTES", "AdminDeps"]


class AdminDeps:
    """What the operator routes use: the Redis client, the key prefix, background rebuilds."""

    def __init__(self, client: aioredis.Redis, prefix: Keys | str) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.tasks: dict[str, asyncio.Task[None]] = {}


class DropBody(msgspec.Struct, frozen=True):
    """Why a dead letter is dropped."""

    reason: str


class AdminError(msgspec.Struct, frozen=True):
    """An error answer of the operator routes: a short code and a message."""

    error: str
    message: str


class AdminFieldError(msgspec.Struct, frozen=True):
    """One invalid parameter: where and what."""

    field: str
    message: str


class AdminInvalid(msgspec.Struct, frozen=True):
    """422: a parameter (``errors``, one per field) or the body (``message``) is invalid."""

    error: str
    message: str | None = None
    errors: list[AdminFieldError] | None = None


_ERROR_TEXTS: Final = {
    401: "missing or unknown bearer token",
    403: "not an operator token",
    404: "no such projection or dead letter",
    409: "a rebuild runs already, or the dead letter still fails",
    422: "an invalid parameter or body",
}


def _responses(*codes: int) -> dict[int, ResponseSpec]:
    """The documented error answers ``codes`` of an operator route (401, 403 and 422 always)."""
    chosen = sorted({401, 403, 422, *codes})
    return {
        code: ResponseSpec(AdminInvalid if code == 422 else AdminError, description=text)
        for code in chosen
        for text in (_ERROR_TEXTS[code],)
    }


_encoder: Final = msgspec.json.Encoder()

Name = Annotated[str, PathParameter(description="a projection's name, or all")]
LetterId = Annotated[str, PathParameter(description="a dead letter's id")]
Limit = Annotated[
    str | None, QueryParameter(description="how many, oldest first (1 to 10,000; default 100)")
]
"""Read as text and checked after the token, so a refused caller learns nothing from it."""


def _json(status: int, body: Any) -> Response[Any]:
    return Response(_encoder.encode(body), status_code=status, media_type=MediaType.JSON)


def _error(status: int, code: str, message: str) -> Response[Any]:
    return _json(status, {"error": code, "message": message})


def _admin(request: Request[Any, Any, Any]) -> AdminDeps:
    """The operator's deps, after checking the bearer token is an operator's."""
    token = deps_of(request).auth.authenticate(request.headers.get("authorization"))
    if token.role != "operator":
        raise PermissionDeniedError(f"a {token.role} token may not use the operator routes")
    admin: AdminDeps = request.app.state.ledger_admin
    return admin


@get(
    "/v1/admin/status",
    summary="Status of views, log and Redis",
    tags=["operations"],
    responses=_responses(),
)
async def admin_status(request: Request[Any, Any, Any]) -> Response[Any]:
    """Per projection: version, generation, checkpoint, lag, pending, consumers, dead letters."""
    admin = _admin(request)
    return _json(200, await ledger_status(admin.client, admin.keys))


async def _rebuild(admin: AdminDeps, name: str) -> None:
    chosen = projections_named(name)
    results = await replay_together(admin.client, chosen, prefix=admin.keys)
    for projection, result in zip(chosen, results, strict=True):
        if isinstance(result, ReplayError):
            log.warning("replay.failed", projection=projection.name, error=str(result))
        elif isinstance(result, Exception):
            log.error("replay.failed", projection=projection.name, exc_info=result)


@post(
    "/v1/admin/replay/{name:str}",
    status_code=202,
    summary="Rebuild a view",
    tags=["operations"],
    responses=_responses(404, 409),
)
async def admin_replay_start(request: Request[Any, Any, Any], name: Name) -> Response[Any]:
    """Start a blue/green rebuild of ``name`` (or ``all``) in the background."""
    admin = _admin(request)
    try:
        chosen = projections_named(name)
    except UnknownProjectionError as exc:
        return _error(404, "not_found", str(exc))
    task = admin.tasks.get(name)
    running = task is not None and not task.done()
    for projection in chosen:
        record = await replay_status(admin.client, admin.keys, projection)
        running = running or (record is not None and record.running)
    if running:
        return _error(409, "conflict", f"a rebuild of {name} is running")
    admin.tasks[name] = asyncio.create_task(_rebuild(admin, name), name=f"replay:{name}")
    return _json(202, {"status": "started", "projections": [p.name for p in chosen]})


@get(
    "/v1/admin/replay/{name:str}",
    summary="Rebuild status",
    tags=["operations"],
    responses=_responses(404),
)
async def admin_replay_status(request: Request[Any, Any, Any], name: Name) -> Response[Any]:
    """The latest rebuild of each view: running or done, generation, events done of total."""
    admin = _admin(request)
    try:
        chosen = projections_named(name)
    except UnknownProjectionError as exc:
        return _error(404, "not_found", str(exc))
    task = admin.tasks.get(name)
    here = task is not None and not task.done()
    rows: list[dict[str, Any]] = []
    for projection in chosen:
        record = await replay_status(admin.client, admin.keys, projection)
        if record is None:
            rows.append({"projection": projection.name, "status": "never"})
            continue
        running = record.running or here
        rows.append(
            {
                "projection": projection.name,
                "status": "running" if running else record.state,
                "record": record,
            }
        )
    return _json(200, {"replays": rows})


@get("/v1/admin/dlq", summary="Dead letters", tags=["operations"], responses=_responses())
async def admin_dlq_list(request: Request[Any, Any, Any], limit: Limit = None) -> Response[Any]:
    """The oldest ``limit`` dead letters."""
    admin = _admin(request)
    try:
        count = 100 if limit is None else int(limit)
    except ValueError:
        count = 0
    if not 1 <= count <= 10_000:
        return _error(422, "invalid", "limit must be a whole number from 1 to 10000")
    token = deps_of(request).auth.authenticate(request.headers.get("authorization"))
    await record_read(  # dead letters hold what feeds sent: the read is audited first
        admin.client,
        admin.keys.prefix,
        token=token,
        endpoint="GET /v1/admin/dlq",
        filters={"limit": count},
        position=None,
        lines=0,
    )
    letters = await dlq_list(admin.client, admin.keys, count=count)
    return _json(200, {"dead_letters": letters})


@post(
    "/v1/admin/dlq/{ident:str}/retry",
    status_code=200,
    summary="Retry a dead letter",
    tags=["operations"],
    responses=_responses(404, 409),
)
async def admin_dlq_retry(request: Request[Any, Any, Any], ident: LetterId) -> Response[Any]:
    """Apply the letter's entry to the live view and remove it from the dead letters."""
    admin = _admin(request)
    try:
        letter = await dlq_retry(admin.client, admin.keys, ident, by="http:operator")
    except DeadLetterNotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except DeadLetterStillFailsError as exc:
        return _error(409, "still_fails", str(exc))
    except DeadLetterError as exc:
        return _error(409, "conflict", str(exc))
    return _json(200, {"status": "retried", "dead_letter": letter})


@post(
    "/v1/admin/dlq/{ident:str}/drop",
    status_code=200,
    summary="Drop a dead letter",
    tags=["operations"],
    responses=_responses(404),
)
async def admin_dlq_drop(request: Request[Any, Any, Any], ident: LetterId) -> Response[Any]:
    """Record the letter with the reason in the dead-letter log and remove it."""
    admin = _admin(request)
    try:
        body = msgspec.json.decode(await request.body(), type=DropBody)
    except msgspec.DecodeError as exc:
        return _error(422, "invalid", f'the body must be {{"reason": "..."}}: {exc}')
    try:
        letter = await dlq_drop(
            admin.client, admin.keys, ident, reason=body.reason, by="http:operator"
        )
    except DeadLetterNotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except DeadLetterError as exc:
        return _error(422, "invalid", str(exc))
    return _json(200, {"status": "dropped", "dead_letter": letter})


ADMIN_ROUTES: Final[list[HTTPRouteHandler]] = [
    admin_status,
    admin_replay_start,
    admin_replay_status,
    admin_dlq_list,
    admin_dlq_retry,
    admin_dlq_drop,
]
"""The operator routes, registered by :func:`services.http.app.build_http_app`."""
