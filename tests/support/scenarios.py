"""Whole scenarios more than one test module runs (the fault tests, and again on a cluster)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from events import Recorded
from projections import PROJECTIONS, Docs, fold
from services.resp import text
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.cache import ViewReader
from services.views.redis import RedisViewStore
from tests.support.builders import mixed
from tests.support.processes import Projector
from tests.support.waiting import until

__all__ = ["WAIT", "holders", "kill_one_of_two", "partition_logs"]

WAIT = 120.0
"""Seconds the projector processes may take to share, or to take over, the leases."""


async def partition_logs(store: RedisEventStore) -> list[list[Recorded]]:
    """Every partition's events, in order."""
    logs: list[list[Recorded]] = []
    for partition in range(store.partitions):
        log: list[Recorded] = []
        while page := await store.read(
            log[-1].position if log else "0-0",  # type: ignore[arg-type]
            5000,
            partition=partition,
        ):
            log += page
        logs.append(log)
    return logs


async def holders(client: aioredis.Redis, keys: Keys) -> list[str | None]:
    """Who holds each (projection, partition) lease now."""
    found: list[str | None] = []
    for projection in PROJECTIONS.values():
        for partition in range(keys.partitions):
            raw = await client.get(keys.lease(projection.name, projection.version, partition))
            found.append(None if raw is None else text(raw))
    return found


def waiting(projectors: Sequence[Projector]) -> dict[str, Any]:
    """How the test waits on ``projectors``: up to :data:`WAIT`, failing at once when every
    one of them died."""
    return {
        "within": WAIT,
        "every": 0.05,
        "gone": lambda: None if any(p.alive() for p in projectors) else "no projector is running",
        "context": projectors[-1].tail,
    }


async def kill_one_of_two(
    url: str, client: aioredis.Redis, keys: Keys, log_dir: Path, env: dict[str, str]
) -> None:
    """Two projector processes share ``keys``' leases; one is killed; the survivor takes all.

    Events arrive before and after the kill; at the end the merged views equal the merge of
    the folds of every partition.
    """
    store = RedisEventStore(
        client, prefix=keys.prefix, partitions=keys.partitions, cluster=keys.cluster
    )
    events = mixed(4000, random.Random(8))
    for start in range(0, 2000, 500):
        await store.append(events[start : start + 500])
    env = {"LEDGER_PARTITIONS": str(keys.partitions), **env}
    first = Projector(url, keys.prefix, log_dir / "a", env)
    second = Projector(url, keys.prefix, log_dir / "b", env)
    (log_dir / "a").mkdir()
    (log_dir / "b").mkdir()
    first.start()
    second.start()
    both = [first, second]
    reader = ViewReader(RedisViewStore(client, keys))
    try:

        async def shared() -> bool:
            held = await holders(client, keys)
            return None not in held and len(set(held)) == 2

        await until(shared, "the two processes to share the leases", **waiting(both))
        first.kill()
        for start in range(2000, 4000, 500):
            await store.append(events[start : start + 500])
        heads = await store.heads()

        async def taken_over_and_caught_up() -> bool:
            held = await holders(client, keys)
            if None in held or len(set(held)) != 1:
                return False
            for projection in PROJECTIONS.values():
                _, position = await reader.read(projection, ())
                if position != ",".join(str(h) for h in heads):
                    return False
            return True

        await until(taken_over_and_caught_up, "the survivor to take over", **waiting(both))
    finally:
        for projector in both:
            if projector.alive():
                projector.kill()
    logs = await partition_logs(store)
    assert sum(map(len, logs)) == 4000
    for projection in PROJECTIONS.values():
        expected = projection.merge([fold(projection, log) for log in logs])
        stored, _ = await reader.read(projection, list(projection.doc_types))
        assert Docs(stored) == expected, projection.name
