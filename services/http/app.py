"""The HTTP API's app: its routes, middleware and error handlers, put together.

Ingest (``POST /v1/events``): :mod:`services.http.ingest`. Probes, metrics and the API
documents: :mod:`services.http.probes`. Errors as JSON: :mod:`services.http.errors`.
Middleware: :mod:`services.http.middleware`.

The read side's query API (``/v1/projections/…``, ``/v1/incidents``, ``/v1/live/…``) is in
:mod:`services.http.read`; ``/readyz`` also names the state of this process's projectors
when it runs them, and ``/metrics`` refreshes the read side's gauges before rendering.

``GET /`` is the analysts' dashboard page, its assets under ``/static/`` (see
:mod:`services.http.dashboard`); the page's data calls go to the read endpoints with a token.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from litestar import Litestar
from litestar.datastructures import State
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin, RedocRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from services.http.admin import ADMIN_ROUTES, AdminDeps
from services.http.dashboard import dashboard_routes
from services.http.deps import HttpDeps, Ping
from services.http.erase import ERASE_ROUTES
from services.http.errors import APP_ERRORS, MAX_BODY_BYTES
from services.http.ingest import APPEND_TIMEOUT, submit_events
from services.http.limits import on_limited, on_memory_full, rate_limited
from services.http.middleware import live_query_token, request_context
from services.http.probes import BEARER, PROBE_ROUTES
from services.http.read import read_router
from services.http.side import ReadSide
from services.metrics import IngestMetrics, ReadMetrics
from services.protection.auth import Authenticator
from services.protection.limits import LimitedError, Limits
from services.store.base import EventStore
from services.store.headroom import Headroom, MemoryFullError
from services.store.sealing import SealingStore

__all__ = ["MAX_BODY_BYTES", "REDOC_JS", "build_http_app"]

REDOC_JS: Final = "/static/vendor/redoc.standalone.js"
"""ReDoc's bundle, served by the dashboard's static route (``static/vendor/README.md``)."""


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
    sealing: SealingStore | None = None,
    limits: Limits | None = None,
    headroom: Headroom | None = None,
    debug: bool = False,
) -> Litestar:
    """The Litestar app of the API over ``store``, authenticating with ``auth``.

    ``ping`` is awaited by ``/readyz`` (e.g. the Redis client's ``ping``); without it the
    service is always ready. ``asyncapi`` renders the inbox's AsyncAPI document. ``read`` is
    the read side (:mod:`services.http.side`; without it the read endpoints answer 404).
    ``admin`` adds the operator routes (:mod:`services.http.admin`). ``sealing`` is ``store``
    again when it seals private text (erasure needs it). ``limits`` are the rates, quotas
    and stream counts it enforces (:mod:`services.http.limits`; none without), ``headroom``
    ingest's memory check (507 before Redis refuses writes). The parts
    are made by the wiring, :func:`services.bootstrap.http_app`.
    """
    deps = HttpDeps(
        store=store,
        auth=auth,
        metrics=metrics or IngestMetrics(),
        ping=ping,
        append_timeout=append_timeout,
        asyncapi=asyncapi,
        sealing=sealing,
        limits=limits,
        headroom=headroom,
    )
    if read is not None:
        read.attach_metrics(ReadMetrics(deps.metrics.registry))
    return Litestar(
        route_handlers=[
            submit_events,
            *PROBE_ROUTES,
            *dashboard_routes(),
            read_router(),
            *(ADMIN_ROUTES if admin is not None else []),
            *(ERASE_ROUTES if admin is not None else []),
        ],
        state=State({"ledger": deps, "read": read, "ledger_admin": admin}),
        middleware=[request_context, live_query_token, rate_limited],
        exception_handlers={
            **APP_ERRORS,
            LimitedError: on_limited,
            MemoryFullError: on_memory_full,
        },
        openapi_config=OpenAPIConfig(
            title="incident-ledger",
            version="1",
            description="Event-sourced ledger of conflict incidents and diplomatic statements.",
            path="/schema",
            # ReDoc from the package (static/vendor), no fonts from elsewhere: the page shares
            # the dashboard's origin, where a token lives in sessionStorage
            render_plugins=[
                RedocRenderPlugin(js_url=REDOC_JS, google_fonts=False, favicon="", path="/"),
                JsonRenderPlugin(path="/openapi.json"),
            ],
            # the docs page sends the token too (/openapi.json also sets it per route)
            components=Components(
                security_schemes={BEARER: SecurityScheme(type="http", scheme="bearer")}
            ),
            security=[{BEARER: []}],
        ),
        request_max_body_size=max_body_size,
        debug=debug,
        logging_config=None,
    )
