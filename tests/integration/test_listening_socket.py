"""The socket ``ledger serve`` listens on: answers leave at once, not after a delayed ACK."""

from __future__ import annotations

import asyncio
import socket

from services.http.server import bind


async def test_connections_accepted_on_it_send_without_delay() -> None:
    """asyncio turns Nagle's algorithm off (``TCP_NODELAY``) on what it accepts only when the
    listening socket names its protocol; with it on, each answer written in two parts (head,
    then body) waited about 40 ms for the client's delayed ACK."""
    sock = bind("127.0.0.1", 0)
    nodelay: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    async def accepted(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted_socket = writer.get_extra_info("socket")
        nodelay.set_result(accepted_socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        writer.close()

    server = await asyncio.start_server(accepted, sock=sock)
    async with server:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            assert await asyncio.wait_for(nodelay, 10) != 0
        finally:
            writer.close()
