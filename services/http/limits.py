"""The API's limits at its edge: 429 with ``Retry-After`` (:mod:`services.protection.limits`).

:func:`rate_limited` is ASGI middleware: it resolves the bearer token of each HTTP request
once (after :func:`~services.http.middleware.live_query_token`, so a live stream's
``access_token`` counts too) and answers ``429 {"error": "rate_limited", "limit": "rate",
"retry_after", "message"}`` when the token is over its rate, before any handler runs. A
request without a valid token passes on, to be refused 401 by its handler. The hourly quota
of feeds (``POST /v1/events``) and the open live streams raise
:class:`~services.protection.limits.LimitedError` in their handlers, answered the same way
by :func:`on_limited`. Ingest past its share of Redis's memory answers 507
(:func:`on_memory_full`, :mod:`services.store.headroom`).
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
from litestar import MediaType, Request, Response
from litestar.enums import ScopeType
from litestar.types import (
    ASGIApp,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Receive,
    Scope,
    Send,
)

from services.http.deps import HttpDeps
from services.protection.limits import LimitedError
from services.store.headroom import MemoryFullError

__all__ = ["LimitedBody", "on_limited", "on_memory_full", "rate_limited"]


class LimitedBody(msgspec.Struct, frozen=True):
    """429: over a limit (``limit``: ``rate``, ``quota`` or ``streams``); retry after
    ``retry_after`` seconds (``Retry-After`` has them rounded up)."""

    error: str
    limit: str
    retry_after: float
    message: str


_encode: Final = msgspec.json.Encoder().encode


def _body(exc: LimitedError) -> bytes:
    return _encode(LimitedBody("rate_limited", exc.limit, round(exc.retry_after, 3), str(exc)))


def on_limited(_: Request[Any, Any, Any], exc: LimitedError) -> Response[Any]:
    """The exception handler: 429 with ``Retry-After``."""
    return Response(
        _body(exc),
        status_code=429,
        media_type=MediaType.JSON,
        headers={"Retry-After": exc.retry_after_header},
    )


def on_memory_full(_: Request[Any, Any, Any], exc: MemoryFullError) -> Response[Any]:
    """The exception handler of ingest's memory check: 507, with the reason."""
    body = {"error": "insufficient_storage", "message": str(exc)}
    return Response(_encode(body), status_code=507, media_type=MediaType.JSON)


def _bearer(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, presented = value.decode("latin-1").strip().partition(" ")
            return presented.strip() if scheme.lower() == "bearer" else None
    return None


def rate_limited(app: ASGIApp) -> ASGIApp:
    """Middleware: 429 for a request whose token is over its rate (see the module)."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == ScopeType.HTTP:
            deps: HttpDeps = scope["app"].state.ledger
            token = None if deps.limits is None else deps.auth.resolve(_bearer(scope))
            if token is not None and deps.limits is not None:
                try:
                    await deps.limits.rate.take(token)
                except LimitedError as exc:
                    start: HTTPResponseStartEvent = {
                        "type": "http.response.start",
                        "status": 429,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"retry-after", exc.retry_after_header.encode()),
                        ],
                    }
                    body: HTTPResponseBodyEvent = {
                        "type": "http.response.body",
                        "body": _body(exc),
                        "more_body": False,
                    }
                    await send(start)
                    await send(body)
                    return
        await app(scope, receive, send)

    return middleware
