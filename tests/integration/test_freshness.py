"""Lag from durable facts: a view's checkpoint and its ordinal, never a group's counters.

Every test reads the lag the way every answer does (:func:`services.views.freshness.lag_after`)
and checks it against the log itself; the consumer groups' own counters are then damaged on
purpose (as a crash, an AOF rewrite or a failover can) to show the lag does not depend on
them, and that the next projector term repairs them for ``XINFO GROUPS``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import Position
from projections import PROJECTIONS
from services.projector.group import ConsumerGroup, ensure_group
from services.projector.pool import ProjectorPool
from services.projector.replay import Replay
from services.resp import text
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.freshness import NO_LAG, lag_after
from services.views.generations import current_view_keys
from services.views.redis import load_checkpoint
from tests.support import builders as f
from tests.support.runner import FAST, assert_views_match_fold
from tests.support.waiting import until

VICTIMS = PROJECTIONS["community-victims"]


async def lag_now(client: aioredis.Redis, keys: Keys | str, name: str = VICTIMS.name) -> Any:
    """The lag an answer of ``name``'s view would carry now."""
    projection = PROJECTIONS[name]
    checkpoint = await load_checkpoint(client, keys, projection)
    return await lag_after(client, keys, projection, checkpoint)


async def catch_up(client: aioredis.Redis, keys: Keys | str, **options: Any) -> None:
    """One pool run until every view reaches the log's head (a term starts for each)."""
    await ProjectorPool(client, prefix=keys, **{**FAST, **options}).run_until_caught_up()


async def group_of(client: aioredis.Redis, keys: Keys, name: str = VICTIMS.name) -> Any:
    """``XINFO GROUPS`` of the projection's group on partition 0's log."""
    projection = PROJECTIONS[name]
    group = keys.group(projection.name, projection.version)
    return next(g for g in await client.xinfo_groups(keys.log) if text(g["name"]) == group)


async def ordinal_of(client: aioredis.Redis, keys: Keys, name: str = VICTIMS.name) -> int | None:
    """The ordinal stored beside the view's checkpoint."""
    view = await current_view_keys(client, keys, PROJECTIONS[name])
    raw = await client.hget(view.meta, "ordinal")
    return None if raw is None else int(raw)


@pytest.fixture
def keys(key_prefix: str) -> Keys:
    return Keys(key_prefix)


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> RedisEventStore:
    return RedisEventStore(redis_client, prefix=key_prefix)


class TestLag:
    """Lag in entries and seconds, 0 exactly when the checkpoint is the last entry."""

    async def test_lag_counts_the_entries_after_the_checkpoint_and_the_oldest_one_s_age(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """Caught up: nothing; three more events: 3 entries, as old as the first of them."""
        assert await lag_now(redis_client, keys) == NO_LAG  # empty log, no view
        await store.append([f.reported(f"i-{n}") for n in range(5)])
        assert (await lag_now(redis_client, keys)).entries == 5  # no view yet: the whole log
        await catch_up(redis_client, keys)
        assert await lag_now(redis_client, keys) == NO_LAG
        appended = await store.append([f.reported(f"j-{n}") for n in range(3)])
        lag = await lag_now(redis_client, keys)
        first = int(appended[0].position.split("-")[0]) / 1000
        assert lag.entries == 3
        assert 0 <= lag.seconds <= time.time() - first + 0.001
        assert lag.seconds >= time.time() - first - 5.0

    async def test_lag_is_summed_over_partitions_and_the_oldest_age_is_kept(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """On three partitions the lag is every partition's entries after its checkpoint."""
        keys = Keys(key_prefix, 3)
        store = RedisEventStore(redis_client, prefix=key_prefix, partitions=3)
        await store.append([f.reported(f"i-{n}") for n in range(12)])
        await catch_up(redis_client, keys)
        assert await lag_now(redis_client, keys) == NO_LAG
        await store.append([f.reported(f"j-{n}") for n in range(7)])
        assert (await lag_now(redis_client, keys)).entries == 7

    async def test_the_generation_an_answer_was_read_from_gives_its_lag_even_once_replaced(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """Given the generation read (as the read side passes it), the lag is the one read
        through the pointer; after a rebuild replaced that generation (its ordinal gone with
        it) the entries after the checkpoint are counted instead."""
        await store.append([f.reported(f"i-{n}") for n in range(8)])
        await catch_up(redis_client, keys)
        checkpoint = await load_checkpoint(redis_client, keys, VICTIMS)
        read_from = (await current_view_keys(redis_client, keys, VICTIMS)).generation
        await store.append([f.reported(f"j-{n}") for n in range(3)])
        given = await lag_after(redis_client, keys, VICTIMS, checkpoint, generations=[read_from])
        through_pointer = await lag_after(redis_client, keys, VICTIMS, checkpoint)
        assert given.entries == through_pointer.entries == 3
        await Replay(redis_client, VICTIMS, prefix=keys, batch_size=5).run()
        assert (await current_view_keys(redis_client, keys, VICTIMS)).generation != read_from
        replaced = await lag_after(redis_client, keys, VICTIMS, checkpoint, generations=[read_from])
        assert replaced.entries == 3


class TestOrdinals:
    """Every writer of a checkpoint stores its ordinal; a wrong or missing one is not trusted."""

    async def test_commits_and_catch_ups_store_the_ordinal_and_move_the_group_truthfully(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """A backlog caught up in big commits, then live batches: ordinal = log length, and
        the group's entries-read and lag agree."""
        for n in range(6):
            await store.append([f.reported(f"i-{n}-{k}") for k in range(500)])
        await catch_up(redis_client, keys, batch_size=100, catch_up_entries=700)
        await store.append([f.reported(f"j-{n}") for n in range(30)])
        await catch_up(redis_client, keys, batch_size=7)
        length = await store.length()
        for name in PROJECTIONS:
            assert await ordinal_of(redis_client, keys, name) == length, name
            group = await group_of(redis_client, keys, name)
            assert (group["entries-read"], group["lag"], group["pending"]) == (length, 0, 0)

    async def test_a_view_without_an_ordinal_is_counted_and_gets_one_at_its_next_term(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """A view written before ordinals existed still answers the right lag."""
        await store.append([f.reported(f"i-{n}") for n in range(10)])
        await catch_up(redis_client, keys)
        view = await current_view_keys(redis_client, keys, VICTIMS)
        await redis_client.hdel(view.meta, "ordinal")
        await store.append([f.reported(f"j-{n}") for n in range(4)])
        assert (await lag_now(redis_client, keys)).entries == 4
        await catch_up(redis_client, keys)
        assert await ordinal_of(redis_client, keys) == 14
        assert await lag_now(redis_client, keys) == NO_LAG

    async def test_an_ordinal_that_disagrees_with_the_log_is_counted_over_and_repaired(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """Too large: the entries are counted instead; too small while caught up: lag is
        still 0 (nothing follows the checkpoint), and the next term stores the right one."""
        await store.append([f.reported(f"i-{n}") for n in range(10)])
        await catch_up(redis_client, keys)
        view = await current_view_keys(redis_client, keys, VICTIMS)
        await redis_client.hset(view.meta, "ordinal", 50)
        await store.append([f.reported(f"j-{n}") for n in range(2)])
        assert (await lag_now(redis_client, keys)).entries == 2
        await catch_up(redis_client, keys)
        assert await ordinal_of(redis_client, keys) == 12
        await redis_client.hset(view.meta, "ordinal", 1)
        assert await lag_now(redis_client, keys) == NO_LAG
        await catch_up(redis_client, keys)  # a new term checks the stored one
        assert await ordinal_of(redis_client, keys) == 12

    async def test_a_rebuild_stores_the_ordinal_and_sets_the_group_to_it(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """``ledger replay``: the new generation's ordinal is the log's length, and so is the
        group's entries-read after the swap."""
        await store.append([f.reported(f"i-{n}") for n in range(25)])
        await catch_up(redis_client, keys)
        await Replay(redis_client, VICTIMS, prefix=keys, batch_size=10).run()
        assert (await current_view_keys(redis_client, keys, VICTIMS)).generation == 1
        assert await ordinal_of(redis_client, keys) == 25
        group = await group_of(redis_client, keys)
        assert (group["entries-read"], group["lag"]) == (25, 0)
        assert await lag_now(redis_client, keys) == NO_LAG


class TestGroupRepair:
    """When a term starts the group is set from the checkpoint, so XINFO tells the truth."""

    async def test_damaged_group_counters_change_no_lag_and_the_next_term_repairs_them(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """entries-read set far below the log (what the incident report showed): Redis's own
        lag is wrong, ours is 0; the next term sets entries-read to the log's length."""
        await store.append([f.reported(f"i-{n}") for n in range(40)])
        await catch_up(redis_client, keys)
        group = keys.group(VICTIMS.name, VICTIMS.version)
        head = await store.head()
        await redis_client.xgroup_setid(keys.log, group, str(head), entries_read=3)
        assert (await group_of(redis_client, keys))["lag"] == 37  # Redis's own lag: wrong
        assert await lag_now(redis_client, keys) == NO_LAG
        await catch_up(redis_client, keys)
        info = await group_of(redis_client, keys)
        assert (info["entries-read"], info["lag"], text(info["last-delivered-id"])) == (
            40,
            0,
            head,
        )

    async def test_entries_pending_above_the_checkpoint_stay_delivered(
        self, redis_client: aioredis.Redis, keys: Keys, store: RedisEventStore
    ) -> None:
        """A crashed holder left entries pending past the checkpoint: the group is set to the
        last of them, with their ordinal; without any pending, to the checkpoint."""
        appended = await store.append([f.reported(f"i-{n}") for n in range(10)])
        positions = [Position(a.position) for a in appended]
        group = keys.group(VICTIMS.name, VICTIMS.version)
        await ensure_group(redis_client, keys.log, group)
        await redis_client.xreadgroup(group, "crashed", {keys.log: ">"}, count=6)
        mine = ConsumerGroup(
            redis_client, keys.log, group, "me", batch_size=10, claim_idle_ms=1000, block_ms=10
        )
        await mine.repair(positions[2], 3)  # checkpoint: the third entry
        info = await group_of(redis_client, keys)
        assert (text(info["last-delivered-id"]), info["entries-read"], info["pending"]) == (
            positions[5],
            6,
            6,
        )
        await redis_client.xack(keys.log, group, *positions[:6])
        await mine.repair(positions[2], 3)
        info = await group_of(redis_client, keys)
        assert (text(info["last-delivered-id"]), info["entries-read"], info["lag"]) == (
            positions[2],
            3,
            7,
        )
        await catch_up(redis_client, keys)  # from that repaired group the views catch up right
        await assert_views_match_fold(redis_client, keys.prefix, list(PROJECTIONS.values()))


class TestAfterAnAofReload:
    """Redis restores a group's last-delivered id from its AOF, but not its entries-read."""

    async def test_a_restarted_redis_changes_no_lag_and_the_projector_repairs_its_groups(
        self, tmp_path: Path
    ) -> None:
        """Entries delivered through the group, Redis killed and restarted (AOF ``always``):
        every view's lag is 0 at once, and a running projector sets each group right."""
        server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
        server.start()
        client = connect(server.url)
        keys = Keys("reload")
        try:
            store = RedisEventStore(client, prefix=keys.prefix)
            for n in range(6):  # small batches: delivered through the groups, not caught up
                await store.append([f.reported(f"i-{n}-{k}") for k in range(5)])
                await catch_up(client, keys)
            server.kill()
            server.start()
            print(  # what this Redis restored (7.0: the count of the last SETID or CREATE)
                "\nafter the reload:", dict(await group_of(client, keys))
            )
            for name in PROJECTIONS:
                assert await lag_now(client, keys, name) == NO_LAG, name
            pool = ProjectorPool(client, prefix=keys, **FAST)
            await pool.start()
            try:

                async def truthful() -> bool:
                    for name in PROJECTIONS:
                        info = await group_of(client, keys, name)
                        if (info["entries-read"], info["lag"], info["pending"]) != (30, 0, 0):
                            return False
                    return True

                await until(truthful, "every group to say entries-read 30, lag 0")
                assert pool.failure() is None
            finally:
                await pool.stop()
        finally:
            await client.aclose()
            server.stop()
