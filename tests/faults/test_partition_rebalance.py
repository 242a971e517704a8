"""Several projector processes share the partitions; one is killed, the survivor takes over.

The log has three partitions, so each of the four projections has three partition views,
twelve leases in all. Two projector processes (``ledger project``) split
them by
their fair share; one is killed with SIGKILL while events keep coming, the survivor takes
its leases once they expire, and at the end the merged views equal the merge of the folds
of every partition: no event lost, none applied twice.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from events import Recorded
from projections import PROJECTIONS, Docs, fold
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.cache import ViewReader
from services.views.redis import RedisViewStore
from tests.faults.test_projector_kill import Projector, feed

PARTITIONS = 3
WAIT = 120.0


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
            found.append(None if raw is None else raw.decode())
    return found


async def until(condition: object, what: str, projectors: Sequence[Projector]) -> None:
    """Poll ``condition()`` until true; fail after :data:`WAIT` s or if every projector died."""
    deadline = time.monotonic() + WAIT
    while not await condition():  # type: ignore[operator]
        if not any(p.alive() for p in projectors):
            pytest.fail(f"no projector is running:\n{projectors[-1].tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {WAIT} s:\n{projectors[-1].tail()}")
        await asyncio.sleep(0.05)


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
    events = feed(4000, random.Random(8))
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

        await until(shared, "the two processes did not share the leases", both)
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

        await until(taken_over_and_caught_up, "the survivor did not take over", both)
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


class TestRebalanceAcrossProcesses:
    """Leases per (projection, partition) move between processes without double-applying."""

    @pytest.mark.timeout(300)
    async def test_survivor_takes_the_killed_process_s_partitions_and_views_equal_the_fold(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
    ) -> None:
        """Two processes split the 12 leases; after one is killed the other holds all 12."""
        await kill_one_of_two(redis_url, redis_client, Keys(key_prefix, PARTITIONS), tmp_path, {})
