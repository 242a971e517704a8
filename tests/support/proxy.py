"""A TCP proxy in front of a Redis that can swallow the server's replies.

:class:`SilentProxy` forwards both ways until :meth:`~SilentProxy.silence` is called; from
then on what the server sends to the connections open at that moment is dropped, as on a
half-open connection (a peer gone without a reset, a NAT entry expired): the client's
requests still arrive, their replies never do. Connections opened later are served normally,
so a client that drops its silent connection and reconnects is answered again.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

__all__ = ["SilentProxy"]


class SilentProxy:
    """Forwards ``127.0.0.1:<port>`` to ``host:port`` of a Redis; see the module docstring."""

    def __init__(self, host: str, port: int) -> None:
        self._target = (host, port)
        self._server: asyncio.Server | None = None
        self._open: list[asyncio.Event] = []
        """Per open connection: set once its replies are to be dropped."""
        self._pipes: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        """The proxy's Redis URL."""
        assert self._server is not None, "the proxy is not started"
        port = self._server.sockets[0].getsockname()[1]
        return f"redis://127.0.0.1:{port}/0"

    def silence(self) -> int:
        """Drop every reply on the connections open now; how many connections that is."""
        for muted in self._open:
            muted.set()
        return len(self._open)

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
        muted = asyncio.Event()
        self._open.append(muted)
        for pipe in (
            self._pipe(reader, upstream_writer, None),
            self._pipe(upstream_reader, writer, muted),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pipe(
        source: asyncio.StreamReader, sink: asyncio.StreamWriter, muted: asyncio.Event | None
    ) -> None:
        try:
            while chunk := await source.read(65536):
                if muted is not None and muted.is_set():
                    continue  # the reply is lost: the connection stays open, silent
                sink.write(chunk)
                await sink.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            sink.close()
