"""A TCP proxy in front of a Redis that can swallow the server's replies.

:class:`SilentProxy` forwards both ways until :meth:`~SilentProxy.silence` is called; from
then on what the server sends to the connections open at that moment is dropped, as on a
half-open connection (a peer gone without a reset, a NAT entry expired): the client's
requests still arrive, their replies never do. Connections opened later are served normally,
so a client that drops its silent connection and reconnects is answered again.

:meth:`~SilentProxy.awaiting` tells which requests wait for their reply right now, so a test
can silence a connection while a given command is in flight on it (in the same step of the
event loop: no reply can slip through in between); :meth:`~SilentProxy.lost` tells when the
server has answered it into the silence.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

__all__ = ["SilentProxy"]


class _Link:
    """One proxied connection: whether its replies are dropped, and its request in flight."""

    def __init__(self) -> None:
        self.muted = asyncio.Event()
        self.asked = b""
        """The last request's bytes, while no reply has come since; empty otherwise."""
        self.lost = False
        """Whether a reply was dropped since the connection was silenced."""


class SilentProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port`` of a Redis; see the module docstring."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._links: list[_Link] = []
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's Redis URL."""
        assert self._server is not None, "the proxy is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    @property
    def opened(self) -> int:
        """How many connections clients have opened through the proxy so far."""
        return len(self._links)

    def awaiting(self, *parts: bytes) -> int:
        """How many connections have a request in flight (sent, unanswered) holding every one
        of ``parts`` (a command's name, a key), whether their replies are dropped or not."""
        return sum(1 for link in self._links if link.asked and all(p in link.asked for p in parts))

    def lost(self, *parts: bytes) -> int:
        """How many silenced connections have lost the reply to their request in flight holding
        every one of ``parts``: the server has answered it, the client will never know."""
        return sum(1 for link in self._links if link.lost and all(p in link.asked for p in parts))

    def silence(self) -> int:
        """Drop every reply on the connections open now; how many connections that is."""
        for link in self._links:
            link.muted.set()
        return len(self._links)

    async def __aenter__(self) -> SilentProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        for pipe in list(self._pipes):
            pipe.cancel()
        for pipe in list(self._pipes):
            with contextlib.suppress(asyncio.CancelledError):
                await pipe
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        link = _Link()
        self._links.append(link)
        for pipe in (
            self._pipe(reader, upstream_writer, link, replies=False),
            self._pipe(upstream_reader, writer, link, replies=True),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, link: _Link, *, replies: bool
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if not replies:
                    link.asked = chunk
                elif link.muted.is_set():
                    link.lost = True
                    continue  # the reply is lost: the connection stays open, silent
                else:
                    link.asked = b""
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
