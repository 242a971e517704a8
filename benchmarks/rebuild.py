"""Rebuild speed on one log: a pool catching fresh views up, ``ledger replay`` of each view
alone and of all of them together.

``python -m benchmarks.rebuild --events 100000`` starts a Redis of its own, appends the
benchmark workload (:mod:`benchmarks.workload`), then times, in this order: a
:class:`~services.projector.pool.ProjectorPool` catching every fresh view up
(``run_until_caught_up``), the rebuild of each view alone, and the rebuild of all of them
(``ledger replay all``'s path), each with the CPU time it took here and in Redis (on a
shared machine the CPU times vary less than the wall times); after the catch-up, the Redis
memory of the views per log event, by kind. Run from another checkout's
directory (``PYTHONPATH=.``) it measures that checkout's code: it only calls what every
version has, and runs the views' rebuilds one after the other where ``replay_together``
does not exist.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from projections import PROJECTIONS
from services.logging import configure_logging
from services.projector import replay as replay_module
from services.projector.collector import tune_collector
from services.projector.pool import ProjectorPool
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.redis import RedisEventStore

from .bench import redis_cpu, view_memory
from .workload import Workload

APPEND_BATCH = 1000


async def _replay_all(client: Any, prefix: str) -> None:
    together = getattr(replay_module, "replay_together", None)
    views = list(PROJECTIONS.values())
    if together is not None:
        for result in await together(client, views, prefix=prefix):
            if isinstance(result, Exception):
                raise result
        return
    for projection in views:  # one after the other, as `ledger replay all` did
        await replay_module.Replay(client, projection, prefix=prefix).run()


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n = args.events
    found: dict[str, Any] = {"events": n}
    with (
        tempfile.TemporaryDirectory(prefix="ledger-rebuild-") as work,
        RedisProcess(data_dir=Path(work), fsync="everysec") as redis_proc,
    ):
        client = connect(redis_proc.url, socket_timeout=120, socket_connect_timeout=5)
        prefix = "ledger"
        events = Workload(seed=args.seed).take(n)
        store = RedisEventStore(client, prefix=prefix)
        for start in range(0, n, APPEND_BATCH):
            await store.append(events[start : start + APPEND_BATCH])

        marks: dict[str, float] = {}

        async def mark() -> None:
            marks["wall"], marks["cpu"] = time.perf_counter(), time.process_time()
            marks["redis"] = await redis_cpu(client)

        async def timed(name: str) -> None:
            seconds = time.perf_counter() - marks["wall"]
            cpu = time.process_time() - marks["cpu"]
            server = await redis_cpu(client) - marks["redis"]
            found[name] = {
                "seconds": round(seconds, 2),
                "events_per_s": round(n / seconds),
                "cpu_s": round(cpu, 2),
                "redis_cpu_s": round(server, 2),
            }
            print(
                f"[rebuild] {name}: {seconds:.2f} s, {n / seconds:,.0f} ev/s; CPU {cpu:.2f} s "
                f"here, {server:.2f} s in Redis",
                file=sys.stderr,
            )

        await mark()
        await ProjectorPool(client, prefix=prefix, consumer="bench").run_until_caught_up()
        await timed("pool catch-up of fresh views")
        per_kind = await view_memory(client, prefix, n)
        found["view_bytes_per_event"] = round(sum(per_kind.values()), 1)
        found["view_bytes_by_kind"] = {kind: round(size, 1) for kind, size in per_kind.items()}
        print(f"[rebuild] views: {sum(per_kind.values()):,.1f} B per event", file=sys.stderr)
        for projection in PROJECTIONS.values():
            await mark()
            await replay_module.Replay(client, projection, prefix=prefix).run()
            await timed(f"replay {projection.name}")
        await mark()
        await _replay_all(client, prefix)
        await timed("replay all")
        await client.aclose()
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    configure_logging(level="WARNING")
    tune_collector()
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
