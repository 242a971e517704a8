"""As-of snapshots: what writing one costs, and what an as-of answer costs, old and new.

``python -m benchmarks.asof --events 200000`` starts its own redis-server, appends a log of
the benchmark workload (:mod:`benchmarks.workload`), and for each configuration writes the
snapshots of the three as-of projections from scratch (``every`` entries apart; ``chain``
0 writes whole states only, as before deltas) and times the community-victims as-of answer
at a few positions. It prints, per configuration: CPU time and compressed bytes per
snapshot write (bases and deltas apart), the snapshots' Redis memory, and per position the
protected victims as-of answer, from the folded state and a pass over its cells (as before)
and from the snapshot's kept sums moved by the tail (cold: a fresh reader; warm: the
snapshot already decoded; medians of 5; for warm answers also the process's CPU time, less
sensitive to a busy machine than the wall clock).
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from events import Position
from projections import PROJECTIONS
from projections.filters import VictimsFilter
from projections.suppression import protected_query
from services.projector.snapshots import Snapshotter
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.asof import ASOF_PROJECTIONS, AsOfReader
from services.views.snapshots import Written

from .workload import Workload

BATCH = 1_000
K = 5


def ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f}"


def timed(work: Callable[[], Any]) -> float:
    started = time.perf_counter()
    work()
    return time.perf_counter() - started


async def write_all(client: Any, every: int, chain: int) -> list[tuple[str, Written, float]]:
    """Write every snapshot due from scratch; (projection, what was written, CPU s) each."""
    keys = Keys("ledger")
    for name in ASOF_PROJECTIONS:
        p = PROJECTIONS[name]
        await client.delete(
            keys.snapshot_index(p.name, p.version),
            keys.snapshot_data(p.name, p.version),
            keys.snapshot_links(p.name, p.version),
            keys.snapshot_lease(p.name, p.version),
        )
    writer = Snapshotter(client, every=every, chain=chain)
    writes: list[tuple[str, Written, float]] = []
    write = writer.store.write

    async def measured(projection: Any, *args: Any, **kwargs: Any) -> Written:
        cpu = time.process_time()
        done = await write(projection, *args, **kwargs)
        writes.append((projection.name, done, time.process_time() - cpu))
        return done

    writer.store.write = measured  # type: ignore[method-assign]
    await writer.run_once()
    return writes


async def as_of(client: Any, position: Position) -> dict[str, float]:
    """The protected victims as-of answer at ``position``, in seconds, medians of 5: from
    the folded state and a pass over its cells (``query``, as before), and from the
    snapshot's kept sums moved by the tail's cells (``sums``); each cold (a fresh reader)
    and warm (the snapshot decoded and, for ``sums``, summed; the tail folded again)."""
    projection = PROJECTIONS["community-victims"]
    where = VictimsFilter()

    async def by_query(reader: AsOfReader) -> None:
        protected_query(await reader.state_until(projection, position), K)

    async def by_sums(reader: AsOfReader) -> None:
        (await reader.victims_sums(projection, position, K, where)).protected()

    found: dict[str, float] = {}
    for name, answer in (("query", by_query), ("sums", by_sums)):
        cold, warm, warm_cpu = [], [], []
        for _ in range(5):
            started = time.perf_counter()
            await answer(AsOfReader(client))
            cold.append(time.perf_counter() - started)
        reader = AsOfReader(client, folded_size=0)  # keeps the snapshot, folds the tail again
        await answer(reader)
        for _ in range(5):
            started, cpu = time.perf_counter(), time.process_time()
            await answer(reader)
            warm.append(time.perf_counter() - started)
            warm_cpu.append(time.process_time() - cpu)
        found[f"{name}_cold"] = statistics.median(cold)
        found[f"{name}_warm"] = statistics.median(warm)
        found[f"{name}_warm_cpu"] = statistics.median(warm_cpu)
    return found


def summary(writes: list[tuple[str, Written, float]]) -> list[str]:
    lines = []
    for name in ASOF_PROJECTIONS:
        for delta in (False, True):
            mine = [(w.size, cpu) for n, w, cpu in writes if n == name and w.delta == delta]
            if mine:
                lines.append(
                    f"  {name:18} {'delta' if delta else 'base ':5} x{len(mine):<3}"
                    f" CPU {ms(statistics.mean(c for _, c in mine)):>6} ms"
                    f" (max {ms(max(c for _, c in mine))})"
                    f"  {statistics.mean(s for s, _ in mine) / 1e6:7.2f} MB"
                    f" (max {max(s for s, _ in mine) / 1e6:.2f})"
                )
    return lines


async def run(args: argparse.Namespace) -> None:
    with (
        tempfile.TemporaryDirectory(prefix="ledger-asof-") as work,
        RedisProcess(data_dir=Path(work), fsync="everysec") as redis_proc,
    ):
        client = connect(redis_proc.url, socket_timeout=120, socket_connect_timeout=5)
        store = RedisEventStore(client)
        events = Workload(seed=args.seed).take(args.events)
        heads: list[Position] = []
        for start in range(0, len(events), BATCH):
            await store.append(events[start : start + BATCH])
            heads.append(Position(str(await store.head())))
        n = len(events)
        ordinals = [int(f * n) // BATCH * BATCH for f in (0.335, 0.565, 0.795, 0.995)]
        print(f"{n:,} events; as-of positions at entries {', '.join(f'{o:,}' for o in ordinals)}")
        for every, chain in args.configs:
            label = f"every={every:,} chain={chain}" + (
                " (whole states: before)" if not chain else ""
            )
            cpu, started = time.process_time(), time.perf_counter()
            writes = await write_all(client, every, chain)
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            memory = 0
            for name in ASOF_PROJECTIONS:
                p = PROJECTIONS[name]
                memory += int(
                    await client.memory_usage(
                        Keys("ledger").snapshot_data(p.name, p.version), samples=0
                    )
                    or 0
                )
            write_cpu = sum(c for _, _, c in writes)
            print(
                f"\n{label}: {len(writes)} snapshots, writing {ms(write_cpu)} ms CPU in all"
                f" (writer with its fold: {wall:.1f} s wall, {cpu:.1f} s CPU);"
                f" Redis {memory / 1e6:.1f} MB"
            )
            print("\n".join(summary(writes)))
            for ordinal in ordinals:
                got = await as_of(client, heads[ordinal // BATCH - 1])
                print(
                    f"  as_of at {ordinal:>9,}: state + query cold {ms(got['query_cold']):>5} ms,"
                    f" warm {ms(got['query_warm']):>5} ms (CPU {ms(got['query_warm_cpu'])});"
                    f" kept sums cold {ms(got['sums_cold']):>5} ms,"
                    f" warm {ms(got['sums_warm']):>5} ms (CPU {ms(got['sums_warm_cpu'])})"
                )
        await client.aclose()


def config(text: str) -> tuple[int, int]:
    every, _, chain = text.partition(":")
    return int(every), int(chain or 0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--configs",
        type=config,
        nargs="+",
        default=[(20_000, 0), (20_000, 8), (5_000, 8)],
        help="every:chain pairs (chain 0: whole states only, as before deltas)",
    )
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
