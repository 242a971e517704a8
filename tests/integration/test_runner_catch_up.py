"""The runner on big views and long backlogs: paged view loads and the shared catch-up reader.

A backlog of at least one batch is applied through the pool's shared reader (one ``XRANGE``
and one decode per entry for every projection), committed in large steps that also move
the projection's consumer group; views are loaded in ``HSCAN`` pages. These tests use tiny
pages and batches so that a few hundred events cross many of them.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import AnyEvent
from projections import PROJECTIONS, Projection
from services.projector.collector import COLLECTOR_THRESHOLDS, FOLLOWING_THRESHOLDS
from services.projector.worker import MAX_DELIVERIES
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views import freshness
from services.views.generations import active_generation, view_keys
from services.views.redis import load_view, load_view_paged
from tests.support import builders as f
from tests.support.runner import Pools, assert_views_match_fold, counting, crash, crash_at

DEADLINE = 30.0
SMALL = {
    "claim_idle_ms": 200,
    "lease_ms": 1000,
    "block_ms": 50,
    "batch_size": 10,
    "read_size": 25,
    "catch_up_entries": 60,
    "load_page": 7,
}
"""Pool settings that send a few hundred events through many reads, commits and pages."""


COUNTING = counting("test-catch-up-counting", count=False, poison=True)
"""Records how many times each position was applied; refuses ``poison`` events."""

EVERY = (*PROJECTIONS.values(), COUNTING)


def feed(count: int, poison_at: int | None = None) -> list[AnyEvent]:
    """``count`` events: reports, revisions of them and statements; one ``poison`` if asked."""
    events: list[AnyEvent] = [f.reported("i-0", 3)]
    last = "i-0"
    for n in range(1, count):
        if n == poison_at:
            events.append(f.disputed(last, feed="poison"))
        elif n % 7 == 3:
            events.append(f.revised(last, n % 40))
        elif n % 11 == 5:
            events.append(f.statement(f"s-{n}", subject=f"subject-{n % 4}"))
        else:
            last = f"i-{n}"
            events.append(f.reported(last, n % 30))
    return events


async def append(store: RedisEventStore, events: Sequence[AnyEvent]) -> None:
    """Append ``events`` in batches of 50."""
    for start in range(0, len(events), 50):
        await store.append(events[start : start + 50])


async def assert_applied_once(client: aioredis.Redis, prefix: str) -> None:
    """Every position the counting projection holds was applied exactly once."""
    docs, _ = await load_view(client, prefix, COUNTING)
    seen = docs.kind("seen")
    assert seen
    assert {doc.times for doc in seen.values()} == {1}  # type: ignore[attr-defined]


async def group_info(client: aioredis.Redis, prefix: str, projection: Projection) -> Any:
    """``XINFO GROUPS`` of the projection's consumer group (which must exist)."""
    group = view_keys(prefix, projection).group
    info = await freshness.group_info(client, Keys(prefix).log, group)
    assert info is not None, f"no group {group}"
    return info


@pytest.fixture
async def pools(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[Pools]:
    """Make pools on this test's prefix (small settings); every one is ended afterwards."""
    made = Pools(redis_client, key_prefix, projections=EVERY, **SMALL)
    yield made
    await made.abort()


class TestPagedLoad:
    """Views bigger than one page load whole, and the runner resumes on them."""

    async def test_a_view_of_many_pages_loads_as_the_atomic_snapshot_does(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """HSCAN pages of 7 give the same documents and checkpoint as the one-MULTI load."""
        await append(redis_store, feed(150))
        await pools().run_until_caught_up()
        incidents = PROJECTIONS["incidents"]
        paged, checkpoint = await load_view_paged(
            redis_client, key_prefix, incidents, generation=0, page=7
        )
        whole, whole_checkpoint = await load_view(redis_client, key_prefix, incidents)
        assert len(paged) > 10 * 7
        assert paged == whole
        assert checkpoint == whole_checkpoint == await redis_store.head()

    async def test_a_restarted_pool_goes_on_from_a_view_of_many_pages(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """A new term loads every page of the stored view and applies nothing twice."""
        events = feed(300)
        await append(redis_store, events[:150])
        await pools(consumer="first").run_until_caught_up()
        await append(redis_store, events[150:])
        await pools(consumer="second").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)


class SlowScans:
    """A client whose ``HSCAN`` answers ``delay`` seconds late, as a loaded server's would."""

    def __init__(self, client: aioredis.Redis, delay: float) -> None:
        self.client, self.delay, self.scans = client, delay, 0

    async def hscan(self, *args: Any, **kwargs: Any) -> Any:
        """The real HSCAN, late."""
        self.scans += 1
        await asyncio.sleep(self.delay)
        return await self.client.hscan(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)


class TestLoadLongerThanTheLease:
    """A view that takes longer to load than a lease lasts is loaded once, not for ever."""

    @pytest.mark.timeout(60)
    async def test_the_lease_is_renewed_between_pages_and_the_worker_goes_on(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Pages 100 ms apart, a 300 ms lease: the restarted pool catches up, nothing twice
        (the incidents' own documents are not loaded, so the views load in a few pages)."""
        events = feed(300)
        await append(redis_store, events[:200])
        await pools(consumer="first").run_until_caught_up()
        await append(redis_store, events[200:])
        slow = SlowScans(redis_client, 0.1)
        second = pools(consumer="second", lease_ms=300, load_page=5, load_client=slow)
        async with asyncio.timeout(45):
            await second.run_until_caught_up()
        assert slow.scans * slow.delay > 3 * 0.3  # each load outlasted the lease
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)


class TestSharedCatchUp:
    """A backlog goes through the shared reader and leaves the groups as acking would."""

    async def test_a_backlog_leaves_every_group_at_the_head_with_nothing_pending(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """After the catch-up each group has delivered up to the head, holds nothing, lags 0."""
        await append(redis_store, feed(400))
        pool = pools(consumer="catch-up")
        await pool.run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)
        head = await redis_store.head()
        for projection in EVERY:
            info = await group_info(redis_client, key_prefix, projection)
            assert info["last-delivered-id"].decode() == head, projection.name
            assert info["pending"] == 0, projection.name
            assert info["lag"] == 0, projection.name
        assert {(s.position, s.lag, s.pending) for s in await pool.status()} == {(head, 0, 0)}

    async def test_events_appended_after_the_catch_up_are_followed_live(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """A running pool switches from the backlog to following the log, then back, and
        the collector's pace with it (short young collections while following)."""
        events = feed(500)
        await append(redis_store, events[:200])
        pool = pools()
        before = gc.get_threshold()
        try:
            await pool.start()
            await pool.run_until_caught_up()
            assert gc.get_threshold() == COLLECTOR_THRESHOLDS
            await redis_store.append(events[200:203])  # a live trickle
            await pool.run_until_caught_up()
            assert gc.get_threshold() == FOLLOWING_THRESHOLDS
            await append(redis_store, events[203:])  # a new backlog
            await pool.run_until_caught_up()
            assert gc.get_threshold() == COLLECTOR_THRESHOLDS
            await pool.stop()
        finally:
            gc.set_threshold(*before)
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)

    async def test_a_crash_after_a_catch_up_commit_applies_nothing_twice(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Committed catch-up steps are not applied again by the next holder."""
        await append(redis_store, feed(300))
        await crash(
            pools(consumer="c-1", hook=crash_at("after_commit", COUNTING.name, 2)), within=DEADLINE
        )
        await pools(consumer="c-2", lease_ms=300).run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)

    async def test_a_crash_before_a_catch_up_commit_loses_nothing(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Entries applied in memory and never committed are applied after the restart."""
        await append(redis_store, feed(300))
        await crash(
            pools(consumer="c-1", hook=crash_at("before_commit", COUNTING.name, 3)), within=DEADLINE
        )
        await pools(consumer="c-1").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)


class TestPoisonInABacklog:
    """A poison entry inside a backlog still takes three deliveries to the dead-letter stream."""

    async def test_a_poison_entry_is_dead_lettered_once_and_the_rest_applied_once(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """The catch-up undoes its step, the classic path counts deliveries, the rest goes on."""
        await append(redis_store, feed(300, poison_at=137))
        await pools().run_until_caught_up()
        stored: Any = await redis_client.xrange(Keys(key_prefix).dlq)
        letters = [fields for _, fields in stored]
        assert [(x[b"projection"], x[b"deliveries"]) for x in letters] == [
            (COUNTING.name.encode(), str(MAX_DELIVERIES).encode())
        ]
        assert letters[0][b"error_type"] == b"PoisonedError"
        await assert_views_match_fold(redis_client, key_prefix, list(PROJECTIONS.values()))
        docs, checkpoint = await load_view(redis_client, key_prefix, COUNTING)
        poison = letters[0][b"position"].decode()
        assert docs.get("seen", poison) is None  # its half-applied write was undone
        assert {doc.times for doc in docs.kind("seen").values()} == {1}  # type: ignore[attr-defined]
        assert len(docs.kind("seen")) == 299
        assert checkpoint == await redis_store.head()
        info = await group_info(redis_client, key_prefix, COUNTING)
        assert info["pending"] == 0


class TestFreshViewsBuiltAsARebuild:
    """A pool starting on a long log builds its views that have no checkpoint as a rebuild."""

    async def test_fresh_views_are_built_swapped_in_and_then_followed(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Generation 1 of each view holds every entry once, the poison only dead-lettered,
        the groups at the head with nothing pending, and later events are followed live."""
        events = feed(400, poison_at=137)
        await append(redis_store, events[:300])
        pool = pools(rebuild_from=100)
        await pool.start()
        await pool.run_until_caught_up()
        head = await redis_store.head()
        for projection in EVERY:
            assert await active_generation(redis_client, key_prefix, projection) == 1
            info = await group_info(redis_client, key_prefix, projection)
            assert (info["last-delivered-id"].decode(), info["pending"], info["lag"]) == (
                head,
                0,
                0,
            ), projection.name
        stored: Any = await redis_client.xrange(Keys(key_prefix).dlq)
        assert [(x[b"projection"], x[b"error_type"]) for _, x in stored] == [
            (COUNTING.name.encode(), b"PoisonedError")
        ]
        await assert_applied_once(redis_client, key_prefix)
        docs, _ = await load_view(redis_client, key_prefix, COUNTING)
        assert docs.get("seen", stored[0][1][b"position"].decode()) is None  # undone

        await append(redis_store, events[300:])
        await pool.run_until_caught_up()
        await pool.stop()
        await assert_views_match_fold(redis_client, key_prefix, list(PROJECTIONS.values()))
        await assert_applied_once(redis_client, key_prefix)
        docs, checkpoint = await load_view(redis_client, key_prefix, COUNTING)
        assert len(docs.kind("seen")) == 399
        assert checkpoint == await redis_store.head()

    async def test_a_view_with_a_checkpoint_is_caught_up_not_rebuilt(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Once a view has a checkpoint, a long backlog is the workers' catch-up."""
        events = feed(400)
        await append(redis_store, events[:50])
        await pools(rebuild_from=0).run_until_caught_up()
        await append(redis_store, events[50:])
        await pools(rebuild_from=100).run_until_caught_up()
        for projection in EVERY:
            assert await active_generation(redis_client, key_prefix, projection) == 0
        await assert_views_match_fold(redis_client, key_prefix, EVERY)
        await assert_applied_once(redis_client, key_prefix)
