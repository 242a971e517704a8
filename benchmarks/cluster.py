"""One Redis node against a 3-master Redis Cluster: append and catch-up throughput, side by side.

Starts its own servers (a single ``redis-server`` and a cluster of 3 masters with 1 replica
each, AOF ``everysec``, fresh data dirs, free ports), generates the benchmark workload
(:mod:`benchmarks.workload`) and, for each deployment, measures:

- **append**: the store's batch append (batches of 1,000) from ``--publishers`` concurrent
  publishers, each with its own incidents and statements;
- **append, strict**: the same with ``WAIT 1`` after every batch (cluster only: the single
  node has no replica);
- **catch-up**: one in-process projector pool folding every partition into its views.

Deployments: one node with one partition (the default), one node with the cluster's number
of partitions (the cost of splitting alone), and the cluster.

Run by hand (``python -m benchmarks.cluster``); the figures go to ``BENCHMARKS.md``. On one
2-core machine the cluster's six servers share the cores the single node has to itself, so
this measures the cost of the cluster path more than its gain.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from events import AnyEvent
from services.logging import configure_logging
from services.projector.pool import ProjectorPool
from services.runtime.redis_cluster import RedisClusterProcesses
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect, learn_slots
from services.store.keys import Keys
from services.store.redis import RedisEventStore

from .workload import Workload

BATCH = 1000


def workloads(events: int, publishers: int, seed: int) -> list[list[AnyEvent]]:
    """One event list per publisher, disjoint entities, ``events`` in all."""
    share = events // publishers
    return [Workload(seed=seed + n, namespace=f"w{n}-").take(share) for n in range(publishers)]


async def append_all(store: RedisEventStore, work: Sequence[Sequence[AnyEvent]]) -> float:
    """Seconds to append every publisher's events in batches, publishers concurrently."""

    async def one(events: Sequence[AnyEvent]) -> None:
        for start in range(0, len(events), BATCH):
            await store.append(events[start : start + BATCH])

    started = time.perf_counter()
    await asyncio.gather(*(one(events) for events in work))
    return time.perf_counter() - started


async def measure(
    name: str,
    url: str,
    *,
    cluster: bool,
    partitions: int,
    args: argparse.Namespace,
    strict: bool,
) -> list[tuple[str, float]]:
    """The figures of one deployment: events/s of append (and strict append) and catch-up."""
    client = connect(url, cluster=cluster, socket_timeout=120, socket_connect_timeout=5)
    await learn_slots(client)
    figures: list[tuple[str, float]] = []
    try:
        keys = Keys("bench", partitions, cluster)
        store = RedisEventStore(client, prefix="bench", partitions=partitions, cluster=cluster)
        work = workloads(args.events, args.publishers, args.seed)
        total = sum(map(len, work))
        seconds = await append_all(store, work)
        figures.append((f"{name}: append", total / seconds))
        if strict:
            strict_store = RedisEventStore(
                client, prefix="strict", partitions=partitions, cluster=cluster, wait_replicas=1
            )
            work = workloads(args.events, args.publishers, args.seed + 100)
            seconds = await append_all(strict_store, work)
            figures.append((f"{name}: append, strict (WAIT 1)", total / seconds))
        pool = ProjectorPool(client, prefix=keys, block_ms=50)
        started = time.perf_counter()
        async with asyncio.timeout(args.timeout):
            await pool.run_until_caught_up()
        figures.append(
            (f"{name}: catch-up, 4 projections", total / (time.perf_counter() - started))
        )
    finally:
        await client.aclose()
    return figures


async def run(args: argparse.Namespace) -> list[tuple[str, float]]:
    """Every deployment in turn, on servers of its own."""
    work = Path(tempfile.mkdtemp(prefix="ledger-cluster-bench-"))
    figures: list[tuple[str, float]] = []
    (work / "node").mkdir()
    with RedisProcess(data_dir=work / "node", fsync="everysec") as node:
        print("[cluster-bench] one node …", file=sys.stderr, flush=True)
        figures += await measure(
            "1 node, 1 partition", node.url, cluster=False, partitions=1, args=args, strict=False
        )
        await (client := connect(node.url)).flushall()  # our own server: a clean second run
        await client.aclose()
        figures += await measure(
            f"1 node, {args.partitions} partitions",
            node.url,
            cluster=False,
            partitions=args.partitions,
            args=args,
            strict=False,
        )
    with RedisClusterProcesses(data_dir=work / "cluster", masters=3, replicas=1) as cluster:
        print("[cluster-bench] 3-master cluster …", file=sys.stderr, flush=True)
        figures += await measure(
            f"3-master cluster, {args.partitions} partitions",
            cluster.url,
            cluster=True,
            partitions=args.partitions,
            args=args,
            strict=True,
        )
    return figures


def parser() -> argparse.ArgumentParser:
    """The benchmark's flags (sizes, so a smoke run takes seconds)."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.cluster", description=__doc__)
    p.add_argument("--events", type=int, default=100_000)
    p.add_argument("--publishers", type=int, default=4)
    p.add_argument("--partitions", type=int, default=16)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--timeout", type=float, default=900.0)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run and print one table: deployment and stage, events per second."""
    args = parser().parse_args(argv)
    configure_logging(level="WARNING")
    figures = asyncio.run(run(args))
    print(
        f"| deployment: stage | events/s |  ({args.events:,} events, {args.publishers} publishers)"
    )
    print("|---|---:|")
    for name, value in figures:
        print(f"| {name} | {value:,.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
