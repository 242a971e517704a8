"""Middleware of the HTTP API: a log context per request, and the live streams' query token."""

from __future__ import annotations

import re
import time
import uuid
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode

import structlog
from litestar.datastructures import MutableScopeHeaders
from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from services.logging import bind_request

__all__ = ["LIVE_PATH_PREFIX", "LIVE_QUERY_PARAMETER", "live_query_token", "request_context"]

log = structlog.get_logger("services.http.app")

_REQUEST_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


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


LIVE_PATH_PREFIX: Final = "/v1/live/"
"""The only paths whose bearer token may come as a query parameter (Server-Sent Events)."""
LIVE_QUERY_PARAMETER: Final = "access_token"


def live_query_token(app: ASGIApp) -> ASGIApp:
    """Middleware: ``GET /v1/live/…?access_token=<token>`` counts as ``Authorization: Bearer``.

    A browser's ``EventSource`` cannot send headers, so the live streams also take the token
    as ``access_token``. Only a ``GET`` under :data:`LIVE_PATH_PREFIX` is touched, and only
    when it has no ``Authorization`` header; the parameter is taken out of the query string
    so nothing downstream sees or logs it. Every other request keeps its query string as is:
    elsewhere a token in the URL authenticates nothing.
    """

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] == ScopeType.HTTP
            and scope.get("method") == "GET"
            and scope["path"].startswith(LIVE_PATH_PREFIX)
        ):
            scope = _token_from_query(scope)
        await app(scope, receive, send)

    return middleware


def _token_from_query(scope: Scope) -> Scope:
    raw: bytes = scope.get("query_string", b"")
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True)
    given = [value for key, value in pairs if key == LIVE_QUERY_PARAMETER]
    if not given:
        return scope
    rest = [(key, value) for key, value in pairs if key != LIVE_QUERY_PARAMETER]
    headers = list(scope["headers"])
    if not any(name == b"authorization" for name, _ in headers):
        bearer = f"Bearer {given[0]}".encode("latin-1", errors="replace")
        headers.append((b"authorization", bearer))
    changed: dict[str, Any] = {
        **scope,
        "headers": headers,
        "query_string": urlencode(rest).encode(),
    }
    return changed  # type: ignore[return-value]
