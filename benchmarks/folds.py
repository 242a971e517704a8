"""The pure folds of the projections, without Redis: events per second for each projection.

``python -m benchmarks.folds --events 200000`` generates a stream
(:class:`benchmarks.workload.Workload`, seed 7), wraps each event as the runner does (a
:class:`events.Recorded` with an increasing log position and its ``recorded_at``), then folds
the whole stream into a fresh state of each projection, ``--repeats`` times, and prints the
best time of each. The events are built before any timing; a full garbage collection runs
before each fold so one fold does not pay for another's garbage.
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable, Sequence

from events import Position, Recorded, recorded_at_of
from projections import PROJECTIONS, State

from .workload import Workload

BASE_MS = 1_740_000_000_000
"""The millisecond part of the first position (early 2025)."""
PER_MS = 8
"""Events per millisecond: positions ``<ms>-0`` … ``<ms>-7`` as a busy stream assigns them."""


def recorded(n: int, *, seed: int = 7) -> list[Recorded]:
    """``n`` events of the workload, each recorded at the next position of the log."""
    out: list[Recorded] = []
    for i, event in enumerate(Workload(seed=seed).take(n)):
        position = Position(f"{BASE_MS + i // PER_MS}-{i % PER_MS}")
        out.append(Recorded(position, recorded_at_of(position), event))
    return out


def best_time(
    initial: Callable[[], State],
    apply: Callable[[State, Recorded], State],
    records: Sequence[Recorded],
    repeats: int,
) -> float:
    """The best of ``repeats`` timed folds of ``records`` into a fresh state, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        state = initial()
        gc.collect()
        start = time.perf_counter()
        for one in records:
            state = apply(state, one)
        best = min(best, time.perf_counter() - start)
        del state
    return best


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.folds", description=__doc__)
    p.add_argument("--events", type=int, default=200_000, help="events to fold (200000)")
    p.add_argument("--repeats", type=int, default=3, help="folds per projection, best kept (3)")
    p.add_argument(
        "--projection",
        action="append",
        choices=sorted(PROJECTIONS),
        help="fold only this projection (repeatable; default: every one)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    records = recorded(args.events)
    print(f"{len(records)} events, best of {args.repeats}")
    print(f"{'projection':<20} {'seconds':>9} {'events/s':>11}")
    for name in args.projection or list(PROJECTIONS):
        projection = PROJECTIONS[name]
        seconds = best_time(projection.initial, projection.apply, records, args.repeats)
        print(f"{name:<20} {seconds:>9.3f} {len(records) / seconds:>11,.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
