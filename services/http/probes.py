"""The operational endpoints: probes, metrics and the API documents.

``GET /healthz`` answers 200 while the process runs; ``GET /readyz`` 200 when the store's
Redis answers PING within a second, else 503. It names the state of this process's
projectors when it runs them, lists the parts that are degraded (restarting after an
unexpected error, with that error: :mod:`services.health`): its own, and those the other
processes of the deployment posted to the health board
(:mod:`services.runtime.health_board`), and, where the process reads views, every view's
lag, as the answers carry it. ``GET /metrics`` (a ``metrics`` or ``operator`` token, as
Prometheus' ``authorization`` setting sends it) renders the Prometheus metrics as
``text/plain; version=0.0.4; charset=utf-8``, refreshing the read side's gauges first.
``GET /openapi.json`` is the OpenAPI document, with the request body schema of
``POST /v1/events`` taken from the event Structs (the interactive docs at ``/schema`` show
the same API without that body schema);
``GET /asyncapi.json`` the AsyncAPI document of the Redis inbox (any valid token: it tells how
to write to the inbox, but names no Redis host or port; 404 on a cluster, where the inbox is
off), and ``GET /asyncapi`` a page showing it (served from the package, asking for a token).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
import structlog
from litestar import MediaType, Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from services.health import PartHealth
from services.http.dashboard import SECURITY_HEADERS, STATIC_DIR
from services.http.deps import deps_of, json_response
from services.http.errors import ErrorBody
from services.http.ingest import with_event_schemas
from services.http.side import ReadSide, refresh_quietly
from services.http.tables import with_csv_answers
from services.metrics import MEDIA_TYPE
from services.protection.auth import METRICS_ROLES, PermissionDeniedError
from services.views.freshness import Lag

__all__ = ["PROBE_ROUTES", "Health"]

log = structlog.get_logger("services.http.app")


class Health(msgspec.Struct, frozen=True, omit_defaults=True):
    """The answer of the health and readiness probes.

    ``projectors`` (readiness only, when this process runs them): ``running``, ``degraded``
    (a worker restarts after an unexpected error), ``stopped`` or ``failed``. ``degraded``:
    the parts that failed and have made no progress since, each with its state and last
    error (another process's as ``<process>/<part>``). ``lag``: per view, its lag in entries
    and seconds.
    """

    status: str
    projectors: str | None = None
    degraded: dict[str, PartHealth] | None = None
    lag: dict[str, Lag] | None = None


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
    deps = deps_of(request)
    read: ReadSide | None = request.app.state.get("read")
    projectors = None if read is None or read.projector_state is None else read.projector_state()
    degraded = None if read is None else (read.degraded() or None)
    if deps.ping is None:
        return json_response(200, Health("ready", projectors, degraded))
    try:
        await asyncio.wait_for(deps.ping(), 1.0)
    except Exception as exc:  # any failure to answer means not ready
        log.warning("readyz.unavailable", error=type(exc).__name__)
        answer = Health("unavailable", projectors, degraded)
        return json_response(503, answer, headers={"Retry-After": "1"})
    if read is None:
        return json_response(200, Health("ready", projectors))
    everywhere = await read.degraded_everywhere() or None
    lag = await read.lags_quietly()
    return json_response(200, Health("ready", projectors, everywhere, lag))


@get(
    "/metrics",
    summary="Prometheus metrics",
    description=(
        "The metrics in Prometheus' text format (version 0.0.4), for a `metrics` or "
        "`operator` token, as Prometheus' `authorization: {credentials: <token>}` sends it: "
        "inbox entries by feed and result, events by type and result, answers by status, "
        "append latency, and per view its lag in entries and in seconds."
    ),
    tags=["operations"],
    media_type=MEDIA_TYPE,
    responses={
        401: ResponseSpec(ErrorBody, description="missing or unknown bearer token"),
        403: ResponseSpec(ErrorBody, description="not a metrics or operator token"),
    },
)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The metrics in Prometheus' text format, for a ``metrics`` or ``operator`` token."""
    deps = deps_of(request)
    token = deps.auth.authenticate(request.headers.get("authorization"))
    if token.role not in METRICS_ROLES:
        raise PermissionDeniedError(
            f"a {token.role} token may not read metrics; use a metrics token"
        )
    read: ReadSide | None = request.app.state.get("read")
    if read is not None:
        await refresh_quietly(read)
    return Response(deps.metrics.render(), media_type=MEDIA_TYPE)


PUBLIC_PATHS: Final = frozenset({"/healthz", "/readyz"})
"""The documented routes that need no token."""

BEARER: Final = "bearerAuth"
"""The name of the security scheme in the OpenAPI document."""


def with_bearer_auth(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` with the bearer scheme declared, and required by every operation but
    those of :data:`PUBLIC_PATHS` (which declare none), so generated clients send it."""
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER] = {
        "type": "http",
        "scheme": "bearer",
        "description": (
            "A token of LEDGER_TOKENS: feed tokens publish, reader/analyst/operator tokens "
            "read, operator tokens run /v1/admin, metrics or operator tokens read /metrics."
        ),
    }
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            if isinstance(operation, dict) and "responses" in operation:
                operation["security"] = [] if path in PUBLIC_PATHS else [{BEARER: []}]
    return document


@get("/openapi.json", include_in_schema=False)
async def openapi_json(request: Request[Any, Any, Any]) -> dict[str, Any]:
    """The OpenAPI document, with the event schemas as the ingest request body, the CSV
    answers and the bearer scheme on every route that needs a token."""
    document = request.app.openapi_schema.to_schema()
    return with_bearer_auth(with_csv_answers(with_event_schemas(document)))


@get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request[Any, Any, Any]) -> Response[Any]:
    """The AsyncAPI document of the Redis inbox, for any valid token."""
    deps = deps_of(request)
    deps.auth.authenticate(request.headers.get("authorization"))
    if deps.asyncapi is None:
        return json_response(404, ErrorBody("not_found", "the Redis inbox is off here"))
    return json_response(200, deps.asyncapi())


@get("/asyncapi", include_in_schema=False, media_type=MediaType.HTML)
async def asyncapi_page() -> Response[bytes]:
    """The page showing the AsyncAPI document (no token needed to load it)."""
    page = (STATIC_DIR / "asyncapi.html").read_bytes()
    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache"}
    return Response(page, media_type=MediaType.HTML, headers=headers)


PROBE_ROUTES: Final[list[HTTPRouteHandler]] = [
    healthz,
    readyz,
    metrics_endpoint,
    openapi_json,
    asyncapi_json,
    asyncapi_page,
]
"""The operational routes."""
