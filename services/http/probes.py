"""The operational endpoints: probes, metrics and the API documents.

``GET /healthz`` answers 200 while the process runs; ``GET /readyz`` 200 when the store's
Redis answers PING within a second, else 503. It names the state of this process's
projectors when it runs them, lists the parts that are degraded (restarting after an
unexpected error, with that error: :mod:`services.health`): its own, and those the other
processes of the deployment posted to the health board
(:mod:`services.runtime.health_board`), and, where the process reads views, every view's
lag, as the answers carry it. ``GET /metrics`` (reader or operator
token) renders the Prometheus metrics, refreshing the read side's gauges first.
``GET /openapi.json`` is the OpenAPI document, with the request body schema of
``POST /v1/events`` taken from the event Structs (the interactive docs at ``/schema`` show
the same API without that body schema);
``GET /asyncapi.json`` the AsyncAPI document of the Redis inbox, when it runs here.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import msgspec
import structlog
from litestar import Request, Response, get
from litestar.handlers import HTTPRouteHandler
from litestar.openapi import ResponseSpec

from services.health import PartHealth
from services.http.deps import deps_of, json_response
from services.http.errors import ErrorBody
from services.http.ingest import with_event_schemas
from services.http.side import ReadSide, refresh_quietly
from services.http.tables import with_csv_answers
from services.metrics import CONTENT_TYPE
from services.protection.auth import PermissionDeniedError
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


@get("/metrics", summary="Prometheus metrics", tags=["operations"], media_type=CONTENT_TYPE)
async def metrics_endpoint(request: Request[Any, Any, Any]) -> Response[bytes]:
    """The ingest metrics in the Prometheus text format (reader or operator token)."""
    deps = deps_of(request)
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
    return with_csv_answers(with_event_schemas(request.app.openapi_schema.to_schema()))


@get("/asyncapi.json", include_in_schema=False)
async def asyncapi_json(request: Request[Any, Any, Any]) -> Response[Any]:
    """The AsyncAPI document of the Redis inbox, when the inbox runs in this process."""
    deps = deps_of(request)
    if deps.asyncapi is None:
        return json_response(404, ErrorBody("not_found", "no inbox runs in this process"))
    return json_response(200, deps.asyncapi())


PROBE_ROUTES: Final[list[HTTPRouteHandler]] = [
    healthz,
    readyz,
    metrics_endpoint,
    openapi_json,
    asyncapi_json,
]
"""The operational routes."""
