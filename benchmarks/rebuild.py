"""Rebuild speed on one log: a pool catching fresh views up, ``ledger replay`` of each view
alone and of all of them together.

``python -m benchmarks.rebuild --events 100000`` starts a Redis of its own, appends the
benchmark workload (:mod:`benchmarks.workload`), then times, in this order: a
:class:`~services.projector.pool.ProjectorPool` catching every fresh view up
(``run_until_caught_up``), the rebuild of each view alone, and the rebuild of all of them
(``ledger replay all``'s path). Run from another checkout's directory (``PYTHONPATH=.``) it
measures that checkout's code: it only calls what every version has, and runs the views'
rebuilds one after the other where ``replay_together`` does not exist.
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
from services.projector.pool import ProjectorPool, tune_collector
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.redis import RedisEventStore

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

        def timed(name: str, started: float) -> None:
            seconds = time.perf_counter() - started
            found[name] = {"seconds": round(seconds, 2), "events_per_s": round(n / seconds)}
            print(f"[rebuild] {name}: {seconds:.2f} s, {n / seconds:,.0f} ev/s", file=sys.stderr)

        started = time.perf_counter()
        await ProjectorPool(client, prefix=prefix, consumer="bench").run_until_caught_up()
        timed("pool catch-up of fresh views", started)
        for projection in PROJECTIONS.values():
            started = time.perf_counter()
            await replay_module.Replay(client, projection, prefix=prefix).run()
            timed(f"replay {projection.name}", started)
        started = time.perf_counter()
        await _replay_all(client, prefix)
        timed("replay all", started)
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
