"""A very long log (``make bench-10m``: 10,000,000 events) on this machine, stage by stage.

Usage: ``python -m benchmarks.big [--events N] [--seconds S] [--reads R] [--out FILE]``

It starts its own ``redis-server`` (AOF ``everysec``, as ``benchmarks.bench`` does) and, each
stage printed as it ends:

1. **ingest**: appends ``--events`` events of the benchmark workload through the event store
   in batches of 1,000, generated as they go (the workload is never held whole);
2. **rebuild**: starts the service in its deployed shape (API, one ``ledger project``,
   ``ledger snapshots``) over that log; its projector builds every view as a rebuild does
   (fresh views over a long log), and the stage lasts until every view includes the head
   (polled every 0.5 s: it counts the service's start too);
3. **snapshots**: until the snapshot writer has written the as-of snapshots of the log;
4. **live**: 2,000 events/s offered for ``--seconds``, latency from a batch's due time until
   the query API includes it (``benchmarks.bench.live_latency``);
5. **reads**: ``--reads`` requests each of the victims' totals and of a page of incidents
   (filtered by country), one after the other: p50 and p99;
6. **as_of**: the middle of the log, as ``make bench`` asks it (median of 5 and the first);
7. **memory**: Redis's ``used_memory`` per event, the stream's and the views' share, and
   each service process's peak resident memory (``VmHWM``).

The growth of each cost with the log shows against a smaller run of the same script (say
``--events 1000000``): rebuild time should grow with the log, reads, live latency and
process memory not at all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench import (
    BATCH,
    QUERY_PATH,
    Results,
    Server,
    Visibility,
    all_caught_up,
    as_of,
    head_of,
    live_latency,
    percentile,
    publish_all,
    view_memory,
    wait_snapshots,
)
from benchmarks.workload import Workload
from services.logging import configure_logging
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore

PREFIX = "big"
READS = (f"{QUERY_PATH}?country=SYR", "/v1/incidents?country=SYR&limit=50")
"""What the reads stage asks: the victims' totals of one country, a page of its incidents."""


def say(line: str) -> None:
    print(f"[big] {line}", file=sys.stderr, flush=True)


async def ingest(client: Any, events: int) -> float:
    """Append ``events`` events in batches; the rate, events/s."""
    store = RedisEventStore(client, prefix=PREFIX)
    workload = Workload(seed=7)
    started = time.perf_counter()
    for start in range(0, events, BATCH):
        await store.append(workload.take(min(BATCH, events - start)))
        if start and start % 1_000_000 == 0:
            say(f"ingest: {start:,} events, {start / (time.perf_counter() - started):,.0f} ev/s")
    return events / (time.perf_counter() - started)


async def reads(http: httpx.AsyncClient, count: int) -> dict[str, dict[str, Any]]:
    """p50 and p99 (ms) of ``count`` requests of each of :data:`READS`, and the statuses of
    those that did not answer 200 (a read that fails is a figure too: the run goes on)."""
    found: dict[str, dict[str, Any]] = {}
    for path in READS:
        timings: list[float] = []
        failed: dict[int, int] = {}
        for _ in range(count):
            started = time.perf_counter()
            response = await http.get(path, timeout=60)
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                failed[response.status_code] = failed.get(response.status_code, 0) + 1
        found[path] = {
            "p50_ms": percentile(timings, 0.5) * 1000,
            "p99_ms": percentile(timings, 0.99) * 1000,
            "not_200": failed,
        }
    return found


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"events": args.events}
    work = Path(tempfile.mkdtemp(prefix="big-bench-"))
    (work / "redis").mkdir()
    with RedisProcess(data_dir=work / "redis", fsync="everysec") as redis_process:
        client = connect(redis_process.url, socket_timeout=120)
        keys = Keys(PREFIX)
        try:
            figures["ingest_ev_s"] = await ingest(client, args.events)
            say(f"ingest: {figures['ingest_ev_s']:,.0f} ev/s")
            head = await head_of(client, keys.log)
            started = time.perf_counter()
            async with Server(
                redis_process.url,
                prefix=PREFIX,
                projectors=True,
                workdir=work,
                projector_processes=1,
            ) as server:
                while not await all_caught_up(client, PREFIX, head):  # polled gently: the
                    server.check()  # stage is minutes long, and 2 cores are shared
                    if time.perf_counter() - started > args.timeout:
                        raise TimeoutError(f"the views did not reach {head} in time")
                    await asyncio.sleep(0.5)
                figures["rebuild_s"] = time.perf_counter() - started
                figures["rebuild_ev_s"] = args.events / figures["rebuild_s"]
                say(f"rebuild: {figures['rebuild_s']:,.0f} s, {figures['rebuild_ev_s']:,.0f} ev/s")
                written = await wait_snapshots(client, PREFIX, args.timeout, server.check)
                figures["snapshots_s"] = written - started
                say(f"snapshots: written {figures['snapshots_s']:,.0f} s after the start")
                visibility = Visibility(client, server, PREFIX)
                try:
                    await visibility.probe()
                    await publish_all(server, [Workload(seed=11, namespace="w-").take(1)])
                    latencies, lag, _ = await live_latency(
                        server,
                        visibility,
                        Workload(seed=12, namespace="live-"),
                        rate_per_s=2000,
                        seconds=args.seconds,
                    )
                    figures["live_p50_ms"] = percentile(latencies, 0.5) * 1000
                    figures["live_p99_ms"] = percentile(latencies, 0.99) * 1000
                    figures["live_lag_s"] = lag
                    say(
                        f"live: p50 {figures['live_p50_ms']:.1f} ms, "
                        f"p99 {figures['live_p99_ms']:.1f} ms"
                    )
                    figures["reads"] = await reads(visibility.http, args.reads)
                    say(f"reads: {json.dumps(figures['reads'])}")
                    results = Results()
                    await as_of(results, visibility, client, keys, limit_s=args.timeout)
                    figures["as_of_ms"] = (results.values.get("as_of_s") or 0) * 1000
                    figures["as_of_first_ms"] = (results.values.get("as_of_first_s") or 0) * 1000
                    say(
                        f"as_of: {figures['as_of_ms']:,.0f} ms "
                        f"(first {figures['as_of_first_ms']:,.0f} ms)"
                    )
                finally:
                    await visibility.aclose()
                    figures["peak_memory_mib"] = {
                        name: size / 2**20 for name, size in server.peak_memory().items()
                    }
            logged = int(await client.xlen(keys.log))
            info = await client.info("memory")
            figures["redis_bytes_per_event"] = int(info["used_memory"]) / logged
            figures["log_bytes_per_event"] = (
                int(await client.memory_usage(keys.log, samples=0) or 0) / logged
            )
            figures["views_bytes_per_event"] = sum(
                (await view_memory(client, PREFIX, logged)).values()
            )
            say(
                f"memory: Redis {figures['redis_bytes_per_event']:,.0f} B/event (the stream "
                f"{figures['log_bytes_per_event']:,.0f}, the views "
                f"{figures['views_bytes_per_event']:,.0f}); peak per process "
                + ", ".join(f"{n} {m:,.0f} MiB" for n, m in figures["peak_memory_mib"].items())
            )
        finally:
            await client.aclose()
    return figures


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.big", description=__doc__)
    parser.add_argument("--events", type=int, default=10_000_000)
    parser.add_argument("--seconds", type=float, default=20.0, help="the live stage's length")
    parser.add_argument("--reads", type=int, default=200, help="requests per read")
    parser.add_argument("--timeout", type=float, default=7200.0, help="per waiting stage, s")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    configure_logging(level="WARNING")
    figures = asyncio.run(run(args))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
