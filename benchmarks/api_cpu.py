"""The API process's CPU per request, for two source trees side by side.

Usage: ``python -m benchmarks.api_cpu [--base DIR] [--events N] [--rounds R]``

A log of ``--events`` events is written and projected first. Then ``ledger serve`` (the API
alone, no projectors) runs from this checkout and, with ``--base``, a second one from
``DIR`` (an export of another commit, run with this checkout's virtualenv), both on that log.
Requests go to each in turn, the order swapped every round, so both meet the same machine:
publishes of 1, 20 and 500 events (a feed's live trickle, the live stage's batch, a bulk
batch) and ``GET /v1/projections/community-victims`` (a dashboard's poll). What is printed
per API and request kind is the CPU the API process spent per request (user + system, from
``/proc``), median and least over the rounds: on a noisy machine a ratio read side by side
means more than either figure alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import redis.asyncio as aioredis

from benchmarks.bench import (
    ROOT,
    Server,
    Visibility,
    cpu_seconds,
    head_of,
    percentile,
    publish_all,
    wait_caught_up,
)
from benchmarks.workload import Workload
from services.client import LedgerClient
from services.store.keys import Keys

KINDS: tuple[tuple[str, int], ...] = (
    ("publish 1", 100),
    ("publish 20", 100),
    ("publish 500", 8),
    ("GET community-victims", 200),
)
"""Each request kind and how many of it a round sends to each API."""


async def run(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    url = os.environ.get("LEDGER_REDIS_URL", "redis://127.0.0.1:6379/0")
    work = Path(tempfile.mkdtemp(prefix="api-cpu-"))
    prefix = f"apicpu{time.time_ns()}"
    client = aioredis.from_url(url)
    try:
        async with Server(url, prefix=prefix, projectors=True, workdir=work) as writer:
            await publish_all(writer, [Workload(seed=1, namespace="pre-").take(args.events)])
            await wait_caught_up(client, prefix, await head_of(client, Keys(prefix).log), 600)
        roots = {"this checkout": ROOT} | ({"base": args.base} if args.base else {})
        servers = {
            name: Server(url, prefix=prefix, projectors=False, workdir=work / name, root=root)
            for name, root in roots.items()
        }
        first = next(iter(servers.values()))
        for server in servers.values():  # one set of tokens: the log's feed owns its events
            server.feed_token, server.reader_token = first.feed_token, first.reader_token
            server.env["LEDGER_TOKENS"] = first.env["LEDGER_TOKENS"]
            server.workdir.mkdir(exist_ok=True)
        return await _measure(client, prefix, servers, args.rounds)
    finally:
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            await client.unlink(key)
        await client.aclose()


async def _measure(
    client: aioredis.Redis, prefix: str, servers: dict[str, Server], rounds: int
) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {name: {} for name in servers}
    async with contextlib.AsyncExitStack() as stack:
        requests: dict[str, dict[str, Callable[[], Awaitable[object]]]] = {}
        for number, (name, server) in enumerate(servers.items()):
            await stack.enter_async_context(server)
            ledger = await stack.enter_async_context(server.client())
            reader = Visibility(client, server, prefix)
            stack.push_async_callback(reader.aclose)
            await reader.probe()
            requests[name] = _requests(
                ledger, reader, Workload(seed=100 + number, namespace=f"a{number}-")
            )
        names = list(servers)
        for round_ in range(rounds):
            for name in names if round_ % 2 == 0 else names[::-1]:
                process = servers[name].process
                assert process is not None  # noqa: S101  # started above
                for kind, count in KINDS:
                    before = cpu_seconds(process.pid)
                    for _ in range(count):
                        await requests[name][kind]()
                    spent = (cpu_seconds(process.pid) - before) / count
                    figures[name].setdefault(kind, []).append(spent)
    return figures


def _requests(
    ledger: LedgerClient, reader: Visibility, workload: Workload
) -> dict[str, Callable[[], Awaitable[object]]]:
    """One request of each kind of :data:`KINDS`, as a call."""

    def publish(n: int) -> Callable[[], Awaitable[object]]:
        return lambda: ledger.publish(workload.take(n), batch_size=500)

    return {
        "publish 1": publish(1),
        "publish 20": publish(20),
        "publish 500": publish(500),
        "GET community-victims": reader.position,
    }


def median(values: Sequence[float]) -> float:
    return percentile(values, 0.5)


def report(figures: dict[str, dict[str, list[float]]]) -> str:
    lines = ["| API | " + " | ".join(kind for kind, _ in KINDS) + " |"]
    lines.append("|---" * (len(KINDS) + 1) + "|")
    for name, kinds in figures.items():
        cells = []
        for kind, _ in KINDS:
            values = kinds[kind]
            cells.append(f"{median(values) * 1000:.2f} ms (least {min(values) * 1000:.2f})")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    if len(figures) == 2:
        new, base = figures.values()
        ratios = []
        for kind, _ in KINDS:
            ratio = (
                sorted(new[kind])[len(new[kind]) // 2] / sorted(base[kind])[len(base[kind]) // 2]
            )
            ratios.append(f"{ratio:.2f}x")
        lines.append("| this checkout / base | " + " | ".join(ratios) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.api_cpu", description=__doc__)
    p.add_argument("--base", type=Path, help="a source tree to compare with (an export)")
    p.add_argument("--events", type=int, default=20_000, help="events of the log read")
    p.add_argument("--rounds", type=int, default=6)
    args = p.parse_args(argv)
    if args.base is not None and not (args.base / "services" / "cli").is_dir():
        p.error(f"--base {args.base}: no services/cli there")
    print(report(asyncio.run(run(args))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
