"""The HTTP app in tests: a client of it in process, or the app served on a local port."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any, Literal, cast

import httpx
import pytest
import uvicorn
from litestar import Litestar

from services.http.server import Server, bind
from tests.support.waiting import DEADLINE

__all__ = ["BASE_URL", "client_of", "served"]

BASE_URL = "http://ledger"
"""The base URL of an in-process client."""


def client_of(
    app: Litestar, *, base_url: str = BASE_URL, headers: Mapping[str, str] | None = None
) -> httpx.AsyncClient:
    """An HTTP client of ``app`` in this event loop (through its ASGI interface)."""
    transport = httpx.ASGITransport(app=cast("Any", app))
    return httpx.AsyncClient(transport=transport, base_url=base_url, headers=headers)


@contextlib.asynccontextmanager
async def served(
    app: Litestar,
    *,
    lifespan: Literal["auto", "on", "off"] = "on",
    on_stop: Callable[[], None] | None = None,
    **config: Any,
) -> AsyncIterator[str]:
    """``app`` served by uvicorn (the service's :class:`~services.http.server.Server`) on a
    free port of 127.0.0.1 in this event loop; yields its
    base URL, and stops the server (in-flight requests first, after ``on_stop()``: what ends
    open streams) when the block ends."""
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    server = Server(
        uvicorn.Config(app, log_config=None, access_log=False, lifespan=lifespan, **config)
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait(
            {listening, serving}, timeout=DEADLINE, return_when=asyncio.FIRST_COMPLETED
        )
        listening.cancel()
        if not server.started:
            if serving.done():
                serving.result()  # raises what stopped it
            pytest.fail(f"uvicorn did not start listening within {DEADLINE:g} s")
        yield f"http://{host}:{port}"
    finally:
        if on_stop is not None:
            on_stop()
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await serving
        sock.close()
