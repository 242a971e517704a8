"""The HTTP server: uvicorn on a socket of our own, stopped by the process's signals.

:func:`bind` makes the listening socket, naming the protocol (``IPPROTO_TCP``) so asyncio
turns Nagle off on accepted connections; :class:`Server` is uvicorn without its own signal
handling, :class:`Stopper` turns SIGINT/SIGTERM into a graceful stop of the whole process.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator

import structlog
import uvicorn

from services.errors import SettingsError

__all__ = ["Server", "Stopper", "bind", "serve_until_stopped"]

log = structlog.get_logger("services.bootstrap")


class Server(uvicorn.Server):
    """uvicorn, leaving signals to the process (which stops the rest of the service too)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class Stopper:
    """Turns SIGINT/SIGTERM into a graceful stop; a second SIGINT forces uvicorn to exit."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.server: Server | None = None
        self.on_stop: list[Callable[[], None]] = []
        """Called at the first signal (e.g. to end open live streams at once)."""

    def __call__(self, sig: signal.Signals) -> None:
        log.info("service.stopping", signal=sig.name)
        if self.server is not None:
            if self.server.should_exit and sig == signal.SIGINT:
                self.server.force_exit = True
            self.server.should_exit = True
        for hook in self.on_stop:
            hook()
        self.requested.set()

    @contextlib.contextmanager
    def installed(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one) for uvicorn to listen on.

    The protocol is named (``IPPROTO_TCP``, not the default 0): asyncio sets ``TCP_NODELAY``
    on the connections it accepts only then. Without it every answer whose head and body go
    out in two writes waited for the client's delayed ACK: about 40 ms per request.

    Raises :class:`SettingsError` naming the variables when the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(
            f"LEDGER_HTTP_HOST/LEDGER_HTTP_PORT: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    return sock


async def serve_until_stopped(
    server: Server,
    sock: socket.socket,
    ready: Callable[[], Awaitable[None]] | None,
) -> None:
    """Serve on ``sock`` until uvicorn stops; ``ready`` is awaited once it listens."""
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    if ready is not None:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait((listening, serving), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            await ready()
    try:
        await serving
    finally:
        sock.close()
