"""What this machine's Redis and Python clients can do at all with the ledger's log, whatever the
service does: the ceilings the speed targets of ``make bench`` sit under (or above).

``python -m benchmarks.ceilings --events 1000000`` starts a Redis of its own (AOF
``everysec``, as the bench), appends the benchmark workload's entries (:mod:`benchmarks.workload`,
``events.to_fields``: what a log entry holds) and times, one after the other:

- **XADD**, pipelines of 1,000: through redis-py (the bench's limit line), and as pre-packed
  bytes over a bare socket (``hiredis.pack_command``, packed before the clock starts: Redis's
  own cost, with next to none on the client);
- **XRANGE**, 1,000 entries a call: through redis-py with and without the typed decode
  (``events.from_fields``), over a bare socket parsed by ``hiredis.Reader`` (the least a Python
  reader can do: the reply as Python lists of bytes), and the same bare read in 2 processes
  at once, each over half of the log;
- the naive FastStream peer of ``make bench`` on ``--peer-events``, so that a target set as a
  multiple of it can be set against the ceilings of the same run.

Each line gives the wall rate and Redis's CPU per entry (``INFO cpu``). Nothing here is the
service: these are upper bounds for any service on this machine that keeps its log in one
Redis Stream and reads it from Python.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hiredis
import redis.asyncio as aioredis

from events import to_fields
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect

from .bench import limit_read, limit_write, naive_peer, redis_cpu
from .workload import Workload

BATCH = 1000
KEY = "ceiling:log"


def _packed(command: tuple[Any, ...]) -> bytes:
    """One command in Redis's protocol (hiredis's packer: what redis-py sends, packed in C)."""
    packed: bytes = hiredis.pack_command(command)
    return packed


async def timed(
    client: aioredis.Redis, entries: int, body: Any, found: dict[str, Any], name: str
) -> None:
    """Run ``body()`` and record its wall rate and Redis's CPU per entry under ``name``."""
    cpu = await redis_cpu(client)
    started = time.perf_counter()
    await body()
    seconds = time.perf_counter() - started
    redis_us = (await redis_cpu(client) - cpu) / entries * 1e6
    found[name] = {"ev_s": round(entries / seconds), "redis_us_per_entry": round(redis_us, 2)}
    print(f"[ceilings] {name}: {found[name]}", file=sys.stderr, flush=True)


async def bare_xadd(port: int, buffers: Sequence[bytes]) -> None:
    """Send pre-packed pipelines of XADD over one socket, reading each pipeline's replies."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    parser = hiredis.Reader()
    try:
        for buffer in buffers:
            writer.write(buffer)
            replies = 0
            while replies < BATCH:
                parser.feed(await reader.read(1 << 16))
                while parser.gets() is not False:
                    replies += 1
    finally:
        writer.close()


def _read_range(port: int, first: bytes, last: bytes) -> int:
    """XRANGE ``first``..``last`` over a bare socket, every reply parsed; entries read."""
    import socket  # in the child process

    sock = socket.create_connection(("127.0.0.1", port))
    parser = hiredis.Reader()
    count, start = 0, first
    try:
        while True:
            sock.sendall(_packed(("XRANGE", KEY, start, last, "COUNT", BATCH)))
            reply: Any = False
            while reply is False:
                parser.feed(sock.recv(1 << 20))
                reply = parser.gets()
            count += len(reply)
            if len(reply) < BATCH:
                return count
            start = b"(" + reply[-1][0]
    finally:
        sock.close()


async def bare_read(port: int, ranges: Sequence[tuple[bytes, bytes]]) -> int:
    """The bare read of each range, in a process of its own when there are several."""
    if len(ranges) == 1:
        return await asyncio.to_thread(_read_range, port, *ranges[0])
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(ranges)) as pool:
        counts = await asyncio.to_thread(pool.starmap, _read_range, [(port, *r) for r in ranges])
    return sum(counts)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    found: dict[str, Any] = {"events": n}
    print(f"[ceilings] generating {n:,} events …", file=sys.stderr, flush=True)
    entries = [to_fields(event) for event in Workload(seed=args.seed).take(n)]
    found["mean_entry_bytes"] = round(
        sum(sum(map(len, e.values())) for e in entries[:10_000]) / min(n, 10_000)
    )
    with (
        tempfile.TemporaryDirectory(prefix="ledger-ceilings-") as work,
        RedisProcess(data_dir=Path(work), fsync="everysec") as server,
    ):
        client = connect(server.url, socket_timeout=300, socket_connect_timeout=5)
        try:
            await timed(
                client, n, lambda: limit_write(client, entries, KEY), found, "xadd_redis_py"
            )
            await client.delete(KEY)
            buffers = [
                b"".join(
                    _packed(("XADD", KEY, "*", *(x for kv in e.items() for x in kv)))
                    for e in entries[start : start + BATCH]
                )
                for start in range(0, n, BATCH)
            ]
            await timed(client, n, lambda: bare_xadd(server.port, buffers), found, "xadd_bare")
            buffers.clear()
            length = await client.xlen(KEY)
            if length != n:
                raise RuntimeError(f"the log holds {length} entries, not {n}")

            async def redis_py_read() -> None:
                after, read = "-", 0
                while True:
                    page: Any = await client.xrange(KEY, after, "+", count=BATCH)
                    read += len(page)
                    if len(page) < BATCH:
                        break
                    after = "(" + page[-1][0].decode()

            async def decoded() -> None:
                read, _ = await limit_read(client, KEY)
                if read != n:
                    raise RuntimeError(f"read {read} of {n}")

            await timed(client, n, redis_py_read, found, "xrange_redis_py")
            await timed(client, n, decoded, found, "xrange_redis_py_decoded")
            middle: Any = await client.xrange(KEY, "-", "+", count=n // 2)
            half = middle[-1][0]
            whole = [(b"-", b"+")]
            halves = [(b"-", half), (b"(" + half, b"+")]
            del middle

            async def bare_one() -> None:
                if await bare_read(server.port, whole) != n:
                    raise RuntimeError("the bare read missed entries")

            async def bare_two() -> None:
                if await bare_read(server.port, halves) != n:
                    raise RuntimeError("the parallel read missed entries")

            await timed(client, n, bare_one, found, "xrange_bare")
            await timed(client, n, bare_two, found, "xrange_bare_2_processes")
            peer_events = Workload(seed=args.seed + 1, namespace="peer-").take(args.peer_events)
            seconds = await naive_peer(server.url, peer_events, "ceiling:peer")
            found["naive_peer_ev_s"] = round(args.peer_events / seconds)
            print(f"[ceilings] naive peer: {found['naive_peer_ev_s']} ev/s", file=sys.stderr)
        finally:
            await client.aclose()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--peer-events", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
