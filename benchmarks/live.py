"""The live stage alone, over a big log, for one or two source trees in turn.

Usage: ``python -m benchmarks.live [--events N] [--base DIR] [--rounds R] [--seconds S]
[--stop-snapshots]``

It starts its own ``redis-server`` (as ``benchmarks.bench`` does), appends ``--events``
events and projects them once (every view and its first as-of snapshots), then runs, per
round and per source tree (this checkout and, with ``--base``, ``DIR``: an export of another
commit run with this checkout's virtualenv; the order swapped every round), the service in
its deployed shape (API, one ``ledger project``, ``ledger snapshots``) over that log and the
bench's live stage: 2,000 events/s offered open loop for ``--seconds``, latency from a
batch's due time until the query API's ``position`` includes it. Printed per run: the
latency percentiles (visible, publish answered, stored checkpoint), each process's CPU
share over the stage (of one core) and the AOF rewrites Redis started during it (each forks
a child that serializes the whole dataset: one in the stage weighs on its tail).
``--stop-snapshots`` stops the snapshot process (``SIGSTOP``) for the stage, to see what it
costs the others. Each round adds the stage's events to the log, so rounds are alternated
rather than compared one to one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.bench import (
    BATCH,
    ROOT,
    Server,
    Visibility,
    cpu_seconds,
    head_of,
    live_latency,
    percentile,
    publish_all,
    redis_forks,
    wait_caught_up,
    wait_snapshots,
)
from benchmarks.workload import Workload
from services.logging import configure_logging
from services.projector.collector import tune_collector
from services.projector.pool import ProjectorPool
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore

PREFIX = "live"


async def build(url: str, events: int) -> None:
    """The big log, and every view projected over it."""
    client = connect(url, socket_timeout=120)
    try:
        store = RedisEventStore(client, prefix=PREFIX)
        workload = Workload(seed=7)
        for start in range(0, events, BATCH):
            await store.append(workload.take(min(BATCH, events - start)))
        pool = ProjectorPool(client, prefix=PREFIX, consumer="live-bench")
        await pool.run_until_caught_up()
    finally:
        await client.aclose()


async def one_run(
    redis: RedisProcess, root: Path, work: Path, args: argparse.Namespace, run: int
) -> str:
    """The live stage once, with the service of ``root``; its line of the report."""
    url, redis_pid = redis.url, redis.pid
    assert redis_pid is not None  # noqa: S101  # running
    client = connect(url, socket_timeout=120)
    fresh = time.time_ns() % 2**31  # event ids the log does not hold yet
    try:
        async with Server(
            url, prefix=PREFIX, projectors=True, workdir=work, projector_processes=1, root=root
        ) as server:
            await publish_all(server, [Workload(seed=fresh, namespace=f"w{fresh}-").take(1)])
            head = await head_of(client, Keys(PREFIX).log)
            await wait_caught_up(client, PREFIX, head, args.timeout, server.check)
            await wait_snapshots(client, PREFIX, args.timeout, server.check)
            assert server.process is not None  # noqa: S101  # started
            pids = {"serve": server.process.pid, "redis": redis_pid, "bench": os.getpid()}
            for process, path in server.projectors:  # named as the bench's peak memory is
                pids[path.stem.replace(f"-{PREFIX}", "")] = process.pid
            snapshots = pids.get("snapshots")
            if args.stop_snapshots and snapshots is not None:
                os.kill(snapshots, signal.SIGSTOP)
            visibility = Visibility(client, server, PREFIX)
            await visibility.probe()
            before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            forks = await redis_forks(client)
            started = time.perf_counter()
            breakdown: dict[str, list[float]] = {}
            try:
                latencies, _, _ = await live_latency(
                    server,
                    visibility,
                    Workload(seed=fresh + 1, namespace=f"l{fresh}-"),
                    rate_per_s=2000,
                    seconds=args.seconds,
                    breakdown=breakdown,
                )
            finally:
                if args.stop_snapshots and snapshots is not None:
                    os.kill(snapshots, signal.SIGCONT)
                await visibility.aclose()
            spent = time.perf_counter() - started
            shares = {n: (cpu_seconds(p) - before[n]) / spent for n, p in pids.items()}
            rewrites = await redis_forks(client) - forks
    finally:
        await client.aclose()
    figures = {"visible": latencies, **breakdown}
    parts = [
        f"p50 {percentile(v, 0.5) * 1000:.1f} / p99 {percentile(v, 0.99) * 1000:.1f} ms"
        for what, v in figures.items()
    ]
    cpu = ", ".join(f"{name} {share:.2f}" for name, share in shares.items())
    return f"| {run} | {root} | " + " | ".join(parts) + f" | {cpu} | {rewrites} |"


async def main_async(args: argparse.Namespace) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="live-bench-"))
    (work / "redis").mkdir()
    with RedisProcess(data_dir=work / "redis", fsync="everysec") as redis_process:
        url = redis_process.url
        print(f"[live] building {args.events:,} events …", file=sys.stderr, flush=True)
        await build(url, args.events)
        roots = [ROOT] + ([args.base] if args.base else [])
        lines = []
        for run in range(args.rounds):
            for root in roots if run % 2 == 0 else roots[::-1]:
                line = await one_run(redis_process, root, work, args, run)
                print(line, file=sys.stderr, flush=True)
                lines.append(line)
        return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.live", description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000, help="events of the big log")
    p.add_argument("--base", type=Path, help="a source tree to compare with (an export)")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=20.0, help="length of each live stage")
    p.add_argument("--timeout", type=float, default=900.0, help="limit of each wait, seconds")
    p.add_argument("--stop-snapshots", action="store_true", help="SIGSTOP ledger snapshots")
    args = p.parse_args(argv)
    if args.base is not None and not (args.base / "services" / "cli").is_dir():
        p.error(f"--base {args.base}: no services/cli there")
    configure_logging(level="WARNING")
    tune_collector()
    lines = asyncio.run(main_async(args))
    print(
        "| run | source | visible | publish answered | stored | CPU share per process "
        "| AOF rewrites |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
