"""Everything the service keeps in Redis per event, measured from outside.

``python -m benchmarks.footprint --events 200000`` starts a Redis of its own and the service in
its deployed shape over it (``ledger serve --no-projectors``, one ``ledger project``, ``ledger
snapshots``: :class:`benchmarks.bench.Server`), publishes ``--events`` events of the benchmark
workload over HTTP (4 clients, batches of 1,000), waits until every view includes the last one
and no as-of snapshot is due, and prints Redis's ``used_memory`` growth per event. It splits
that growth by key prefix (the log and its indexes, the views, the snapshots, the rest) with
``MEMORY USAGE``. ``used_memory`` counts what the keys' sum does not: the dictionaries'
tables, the expiry entries, allocator rounding. It also prints how much Redis appended to its
AOF per event (automatic rewrites held off for the run): what the disk takes, and what
brings the next rewrite closer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.bench import Server, head_of, publish_all, wait_caught_up, wait_snapshots
from benchmarks.workload import Workload
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys

PREFIX = "fp"
GROUPS = (("views", f"{PREFIX}:{{view:"), ("snapshots", f"{PREFIX}:snapshot:"))
"""Key prefixes of the views and the as-of snapshots; every other key of the prefix counts
as the log and its indexes (the log, ids, entities, history, keyslots, ...)."""


async def run(args: argparse.Namespace) -> dict[str, Any]:
    n, clients = args.events, args.clients
    found: dict[str, Any] = {"events": n}
    work = Path(tempfile.mkdtemp(prefix="ledger-footprint-"))
    (work / "redis").mkdir()
    with RedisProcess(data_dir=work / "redis", fsync="everysec") as redis_process:
        client = connect(redis_process.url, socket_timeout=120)
        try:
            async with Server(
                redis_process.url,
                prefix=PREFIX,
                projectors=True,
                workdir=work,
                projector_processes=1,
            ) as server:
                before = int((await client.info("memory"))["used_memory"])
                # no rewrite during the run, so the AOF's size grows by all that is written
                await client.config_set("auto-aof-rewrite-percentage", 0)
                aof_before = int((await client.info("persistence"))["aof_current_size"])
                per_client = n // clients
                workloads = [
                    Workload(seed=args.seed + c, namespace=f"f{c}-").take(per_client)
                    for c in range(clients)
                ]
                print(f"[footprint] publishing {n:,} events …", file=sys.stderr, flush=True)
                await publish_all(server, workloads)
                del workloads
                head = await head_of(client, Keys(PREFIX).log)
                await wait_caught_up(client, PREFIX, head, args.timeout, server.check)
                await wait_snapshots(client, PREFIX, args.timeout, server.check)
                after = int((await client.info("memory"))["used_memory"])
                found["used_memory_growth_bytes_per_event"] = round((after - before) / n, 1)
                aof_after = int((await client.info("persistence"))["aof_current_size"])
                found["aof_growth_bytes_per_event"] = round((aof_after - aof_before) / n, 1)
                by_group = dict.fromkeys(("log and indexes", "views", "snapshots"), 0)
                by_key: dict[str, int] = {}
                async for key in client.scan_iter(match=f"{PREFIX}:*", count=1000):
                    name = key.decode()
                    size = int(await client.memory_usage(key, samples=0) or 0)
                    group = next((g for g, p in GROUPS if name.startswith(p)), "log and indexes")
                    by_group[group] += size
                    if group == "log and indexes":
                        kind = re.sub(r":[0-9a-f]{1,4}$", ":<bucket>", name)  # ids, entities
                        kind = re.sub(r"\d+", "N", kind.removeprefix(f"{PREFIX}:"))
                        by_key[kind] = by_key.get(kind, 0) + size
                found["keys_bytes_per_event"] = {g: round(b / n, 1) for g, b in by_group.items()}
                largest = sorted(by_key.items(), key=lambda item: -item[1])[:8]
                found["log_and_indexes_by_key"] = {k: round(b / n, 1) for k, b in largest}
                found["peak_memory_mib"] = {
                    name: round(size / 2**20) for name, size in server.peak_memory().items()
                }
        finally:
            await client.aclose()
    return found


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run(args)), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
