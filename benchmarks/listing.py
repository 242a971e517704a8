"""The incident listing at scale: pages from the listing index, and against the rows read whole.

Usage: ``python -m benchmarks.listing [--rows N] [--whole M] [--reads R]``

It starts its own ``redis-server`` (the shipped configuration's listpack sizes) and writes
incident rows as the incidents projection stores them, through
:meth:`~services.views.redis.RedisViewStore.write` (the commit script that keeps the listing
index) in batches of 5,000: countries, adm1s and days as the benchmark workload draws them
(:mod:`benchmarks.workload`, 730 days from 2023-01-01), 90 % live, 5 % retracted, 5 % merged,
one in ten of month precision (a window of a whole month) and one in a hundred with an end
two weeks later. Then, for each query of :data:`QUERIES`:

1. after the first ``--whole`` rows, side by side: the page through the index
   (:func:`projections.incident_queries.index_query`, ``RedisViewStore.listing``) and through
   the rows read whole (``load`` and the pure :func:`projections.incident_queries.listing`,
   what the API did before for these filters), checked equal;
2. after all ``--rows``: the page through the index alone (reading 8 million rows whole does
   not fit a request).

Each figure is the median and the 99th percentile of ``--reads`` requests, one at a time,
in milliseconds; plus the write rate and Redis's memory per row (rows and index).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.bench import percentile
from benchmarks.workload import PLACES, START
from events import Fatalities, Place, Position
from projections import PROJECTIONS, VictimsFilter
from projections.incident_docs import INCIDENT, IncidentView, Status
from projections.incident_queries import index_query, listing, listing_rows
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.views.redis import RedisViewStore

INCIDENTS = PROJECTIONS["incidents"]
BATCH = 5000
QUERIES: dict[str, tuple[VictimsFilter, str]] = {
    "every country": (VictimsFilter(), "live"),
    "country=SYR": (VictimsFilter(country="SYR"), "live"),
    "adm1=Idlib": (VictimsFilter(adm1="Idlib"), "live"),
    "country=SYR adm1=Idlib": (VictimsFilter(country="SYR", adm1="Idlib"), "live"),
    "country=SYR week=2024-W10": (VictimsFilter(country="SYR", week="2024-W10"), "live"),
    "from=2024-06-01 to=2024-06-30": (
        VictimsFilter(date_from=dt.date(2024, 6, 1), date_to=dt.date(2024, 6, 30)),
        "live",
    ),
    "adm1=Idlib from=2023-06-01 status=all": (
        VictimsFilter(adm1="Idlib", date_from=dt.date(2023, 6, 1)),
        "all",
    ),
}
"""The listings asked: a page of 50 each (the API's default)."""
LIMIT = 50


def say(line: str) -> None:
    print(f"[listing] {line}", file=sys.stderr, flush=True)


def rows(start: int, count: int, rng: random.Random) -> dict[tuple[str, str], IncidentView]:
    """``count`` incident rows from number ``start``, drawn as the module docstring says."""
    found: dict[tuple[str, str], IncidentView] = {}
    countries = tuple(PLACES)
    for n in range(start, start + count):
        ident = f"i-{n}"
        country = rng.choice(countries)
        day = START + dt.timedelta(days=rng.randrange(730))
        draw = rng.random()
        status: Status = "live" if draw < 0.9 else "retracted" if draw < 0.95 else "merged"
        best = rng.randint(1, 40)
        found[INCIDENT, ident] = IncidentView(
            incident_id=ident,
            reported=True,
            version=1 + rng.randrange(3),
            status=status,
            merged_into=f"i-{rng.randrange(n + 1)}" if status == "merged" else None,
            feed="bench",
            occurred_start=day,
            occurred_end=day + dt.timedelta(days=14) if rng.random() < 0.01 else None,
            date_precision=4 if rng.random() < 0.1 else 1,
            country=country,
            place=Place(adm1=rng.choice(PLACES[country])),
            geo_precision=2,
            violence_type="state_based",
            event_type="Explosions/Remote violence",
            grading=rng.choice(("confirmed", "fair", "fair", "weak", "contested")),
            fatalities=Fatalities(low=best, best=best, high=best + rng.randrange(5)),
            source_count=1,
        )
    return found


def timed(samples: list[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(samples, 0.5) * 1000, 2),
        "p99_ms": round(percentile(samples, 0.99) * 1000, 2),
    }


async def by_index(views: RedisViewStore, where: VictimsFilter, status: str) -> Any:
    query = index_query(where, status)
    assert query is not None  # noqa: S101  # every query of QUERIES is the index's
    found = await views.listing(
        INCIDENTS, INCIDENT, query.groups, first=0, limit=LIMIT, days=(query.low, query.high)
    )
    shown = listing_rows([doc for doc in found.docs if isinstance(doc, IncidentView)])
    return shown, found.total


async def by_rows(views: RedisViewStore, where: VictimsFilter, status: str) -> Any:
    state, _ = await views.load(INCIDENTS)
    return listing(state, where, status=status, limit=LIMIT)


async def measure(
    views: RedisViewStore, reads: int, *, whole: bool
) -> dict[str, dict[str, dict[str, float]]]:
    """Each query's timings through the index (and, when ``whole``, through the rows)."""
    figures: dict[str, dict[str, dict[str, float]]] = {}
    for name, (where, status) in QUERIES.items():
        ways = {"index": by_index} | ({"rows read whole": by_rows} if whole else {})
        answers = []
        figures[name] = {}
        for way, read in ways.items():
            samples = []
            for _ in range(reads if way == "index" else max(3, reads // 10)):
                started = time.perf_counter()
                answer = await read(views, where, status)
                samples.append(time.perf_counter() - started)
            answers.append(answer)
            figures[name][way] = timed(samples) | {"total": answer[1]}
        if len(answers) == 2 and answers[0] != answers[1]:
            raise AssertionError(f"{name}: the index and the rows answer differently")
        say(f"{name}: {json.dumps(figures[name])}")
    return figures


async def write_rows(views: RedisViewStore, start: int, end: int, rng: random.Random) -> float:
    """Write rows ``start`` to ``end``; the rate, rows/s."""
    checkpoint = await views.checkpoint(INCIDENTS)
    began = time.perf_counter()
    for first in range(start, end, BATCH):
        count = min(BATCH, end - first)
        position = Position(f"{first + count}-0")
        await views.write(
            INCIDENTS, rows(first, count, rng), expected=checkpoint, checkpoint=position
        )
        checkpoint = position
        if first and first % 1_000_000 == 0:
            say(f"written {first:,} rows")
    return (end - start) / (time.perf_counter() - began)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    figures: dict[str, Any] = {"rows": args.rows, "whole": args.whole, "reads": args.reads}
    work = Path(tempfile.mkdtemp(prefix="listing-bench-"))
    with RedisProcess(data_dir=work) as redis_process:
        client = connect(redis_process.url, socket_timeout=300)
        views = RedisViewStore(client, "lb")
        rng = random.Random(7)
        try:
            empty = int((await client.info("memory"))["used_memory"])
            figures["write_rows_s"] = await write_rows(views, 0, args.whole, rng)
            say(f"{args.whole:,} rows written, {figures['write_rows_s']:,.0f} rows/s")
            figures[f"at {args.whole:,}"] = await measure(views, args.reads, whole=True)
            if args.rows > args.whole:
                await write_rows(views, args.whole, args.rows, rng)
                say(f"{args.rows:,} rows written")
                figures[f"at {args.rows:,}"] = await measure(views, args.reads, whole=False)
            used = int((await client.info("memory"))["used_memory"])
            figures["redis_bytes_per_row"] = round((used - empty) / args.rows, 1)
        finally:
            await client.aclose()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--whole", type=int, default=200_000)
    parser.add_argument("--reads", type=int, default=50)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    figures = asyncio.run(run(args))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
