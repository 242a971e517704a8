"""Blue/green rebuilds of views against a real Redis: live swap, resume, ``--until`` views.

Each test works under its own key prefix. Waiting is polling for a condition with a deadline;
a rebuild is "killed" by its batch hook raising, a dead rebuild's lock is simulated by a key
with a short expiry.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import msgspec
import pytest
import redis.asyncio as aioredis

from events import AnyEvent, Position, position_key
from projections import PROJECTIONS, fold
from projections.docs import Docs
from services.projector.pool import ProjectorPool
from services.projector.replay import Replay
from services.projector.replay_records import ReplayRunningError, replay_status
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import active_generation, view_keys
from services.views.redis import load_checkpoint, load_kind, load_view
from tests.support import builders as f
from tests.support.runner import FAST, Count, Seen, counting, read_log
from tests.support.waiting import until

DEADLINE = 30.0
COUNTING = counting("test-replay-counting")
"""Counts every applied event and how often each position was applied."""
INCIDENTS = PROJECTIONS["incidents"]


async def seed(store: RedisEventStore, n: int, tag: str = "i") -> None:
    """``n`` incidents reported, every third one revised, in batches of ten."""
    events: list[AnyEvent] = []
    for i in range(n):
        events.append(f.reported(f"{tag}-{i}", 1 + i % 7))
        if i % 3 == 0:
            events.append(f.revised(f"{tag}-{i}", 20 + i % 5))
    for start in range(0, len(events), 10):
        await store.append(events[start : start + 10])


async def assert_exactly_once(client: aioredis.Redis, prefix: str) -> None:
    """The counting view applied every log entry exactly once, and nothing else."""
    log = await read_log(client, prefix)
    count = await load_kind(client, prefix, COUNTING, "count")
    seen = await load_kind(client, prefix, COUNTING, "seen")
    assert count == {"all": Count(len(log))}
    assert seen == {r.position: Seen(1) for r in log}


class TestBlueGreenSwap:
    """A rebuild swaps in beside a running projector without losing or doubling an event."""

    async def test_replay_during_ingest_equals_the_fold_and_readers_never_see_a_partial_view(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Ingest, projector, readers and a rebuild run at once; every read equals the fold."""
        await seed(redis_store, 150)
        pool = ProjectorPool(
            redis_client,
            prefix=key_prefix,
            projections=[COUNTING, INCIDENTS],
            batch_size=40,
            **FAST,
        )
        await pool.start()
        stop = asyncio.Event()
        snapshots: list[tuple[Docs[msgspec.Struct], Position | None]] = []

        async def ingest() -> None:
            i = 0
            while not stop.is_set():
                await redis_store.append([f.reported(f"live-{i}", 1 + i % 4)])
                i += 1
                await asyncio.sleep(0)

        async def read() -> None:
            while not stop.is_set():
                snapshots.append(await load_view(redis_client, key_prefix, COUNTING))
                await asyncio.sleep(0)

        tasks = [asyncio.create_task(ingest()), asyncio.create_task(read())]
        try:
            first = await Replay(redis_client, COUNTING, prefix=key_prefix, batch_size=40).run()
            second = await Replay(redis_client, INCIDENTS, prefix=key_prefix, batch_size=40).run()
            assert first.state == second.state == "done"
            swapped_at = first.checkpoint

            async def moved_on() -> bool:
                now = await load_checkpoint(redis_client, key_prefix, COUNTING)
                return now is not None and position_key(now) > position_key(swapped_at)

            await until(moved_on, "the projector to go on after the swap", within=DEADLINE)
        finally:
            stop.set()
            await asyncio.gather(*tasks)
        async with asyncio.timeout(DEADLINE):
            await pool.run_until_caught_up()
        await pool.stop()

        assert await active_generation(redis_client, key_prefix, COUNTING) == 1
        assert await active_generation(redis_client, key_prefix, INCIDENTS) == 1
        await assert_exactly_once(redis_client, key_prefix)
        log = await read_log(redis_client, key_prefix)
        docs, checkpoint = await load_view(redis_client, key_prefix, INCIDENTS)
        assert docs == fold(INCIDENTS, log)
        assert checkpoint == log[-1].position
        # the old generation's keys are gone, its changes stream too
        old = view_keys(key_prefix, COUNTING, 0)
        assert not await redis_client.exists(old.meta, old.changes, *old.kinds.values())
        assert not [key async for key in redis_client.scan_iter(match=f"{old.meta[:-5]}:*")]

        # every reader saw a whole view: the fold of the log up to the checkpoint it read
        assert snapshots
        by_position = sorted(
            (s for s in snapshots if s[1] is not None), key=lambda s: position_key(s[1] or "0-0")
        )
        state, i = COUNTING.initial(), 0
        for docs_seen, at in by_position:
            assert at is not None
            while i < len(log) and position_key(log[i].position) <= position_key(at):
                state = COUNTING.apply(state, log[i])
                i += 1
            assert docs_seen == state, at

    async def test_replay_of_an_empty_log_swaps_in_an_empty_generation(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Rebuilding a view of an empty log flips the pointer to an empty generation."""
        record = await Replay(redis_client, COUNTING, prefix=key_prefix).run()
        assert record.state == "done"
        assert record.generation == 1
        assert await load_view(redis_client, key_prefix, COUNTING) == (Docs(), None)

    async def test_second_replay_builds_the_next_generation(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Each rebuild takes the next generation number and the view stays the fold."""
        await seed(redis_store, 12)
        await Replay(redis_client, COUNTING, prefix=key_prefix).run()
        record = await Replay(redis_client, COUNTING, prefix=key_prefix).run()
        assert record.generation == 2
        assert await active_generation(redis_client, key_prefix, COUNTING) == 2
        await assert_exactly_once(redis_client, key_prefix)


class KilledError(Exception):
    """Raised by the batch hook to kill a rebuild half-way."""


class TestResume:
    """A rebuild killed half-way resumes from its new generation's own checkpoint."""

    async def test_killed_replay_resumes_from_its_checkpoint(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """After a kill at batch 3 the same rebuild goes on from there, not from the start."""
        await seed(redis_store, 60)
        total = await redis_client.xlen(Keys(key_prefix).log)

        async def kill_at_third(batch: int) -> None:
            if batch == 3:
                raise KilledError

        with pytest.raises(KilledError):
            await Replay(
                redis_client, COUNTING, prefix=key_prefix, batch_size=20, hook=kill_at_third
            ).run()
        record = await replay_status(redis_client, key_prefix, COUNTING)
        assert record is not None
        assert (record.state, record.generation, record.done) == ("building", 1, 60)
        assert "KilledError" in record.error
        assert await active_generation(redis_client, key_prefix, COUNTING) == 0

        resumed = Replay(redis_client, COUNTING, prefix=key_prefix, batch_size=20)
        done = await resumed.run()
        assert done.state == "done"
        assert done.generation == 1
        assert resumed.batches == -(-(total - 60) // 20)  # only what was left
        await assert_exactly_once(redis_client, key_prefix)

    async def test_a_rebuild_killed_while_writing_a_batch_in_chunks_starts_again(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Documents written ahead of the checkpoint (the record says ``flushing``) are not
        trusted: the resumed rebuild drops them and folds the log from the start."""
        await seed(redis_store, 60)
        total = await redis_client.xlen(Keys(key_prefix).log)

        async def kill_at_third(batch: int) -> None:
            if batch == 3:
                raise KilledError

        with pytest.raises(KilledError):
            await Replay(
                redis_client, COUNTING, prefix=key_prefix, batch_size=20, hook=kill_at_third
            ).run()
        # what a kill between two chunks of the next batch leaves: a document ahead of the
        # checkpoint, and the mark
        new = view_keys(key_prefix, COUNTING, 1)
        await redis_client.hset(new.kinds["count"], "all", msgspec.json.encode(Count(10_000)))
        await redis_client.hset(
            Keys(key_prefix).replay(COUNTING.name, COUNTING.version), "flushing", "1"
        )

        resumed = Replay(redis_client, COUNTING, prefix=key_prefix, batch_size=20)
        done = await resumed.run()
        assert (done.state, done.generation, done.done) == ("done", 1, total)
        assert resumed.batches == -(-total // 20)  # all of it again
        await assert_exactly_once(redis_client, key_prefix)

    async def test_a_dead_rebuilds_lock_blocks_until_it_expires(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A lock left by a dead process refuses a second rebuild, then expires and lets it run."""
        await seed(redis_store, 5)
        lock = Keys(key_prefix).replay_lock(COUNTING.name, COUNTING.version)
        await redis_client.set(lock, "replay:dead", px=300)
        with pytest.raises(ReplayRunningError):
            await Replay(redis_client, COUNTING, prefix=key_prefix).run()

        async def expired() -> bool:
            return not await redis_client.exists(lock)

        await until(expired, "the dead rebuild's lock to expire", within=DEADLINE)
        assert (await Replay(redis_client, COUNTING, prefix=key_prefix).run()).state == "done"


class TestUntil:
    """``--until`` builds the view as it stood at a point, beside the live one."""

    async def test_until_a_position_equals_the_fold_up_to_it(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """The until-view is the pure fold of the events up to the position; nothing else moves."""
        await seed(redis_store, 20)
        log = await read_log(redis_client, key_prefix)
        bound = log[11].position
        name, checkpoint = await Replay(
            redis_client, INCIDENTS, prefix=key_prefix, batch_size=5
        ).build_until(bound)
        assert (name, checkpoint) == (f"until-{bound}", bound)
        docs, stored_at = await load_view(redis_client, key_prefix, INCIDENTS, generation=name)
        assert stored_at == bound
        assert docs == fold(INCIDENTS, log[:12])
        assert await active_generation(redis_client, key_prefix, INCIDENTS) == 0
        assert await load_checkpoint(redis_client, key_prefix, INCIDENTS) is None

    async def test_until_a_datetime_includes_every_event_recorded_by_then(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A datetime bound takes the last position recorded at or before it."""
        await seed(redis_store, 20)
        log = await read_log(redis_client, key_prefix)
        moment = log[7].recorded_at
        name, checkpoint = await Replay(redis_client, INCIDENTS, prefix=key_prefix).build_until(
            moment
        )
        included = [r for r in log if r.recorded_at <= moment]
        assert checkpoint == included[-1].position
        docs, _ = await load_view(redis_client, key_prefix, INCIDENTS, generation=name)
        assert docs == fold(INCIDENTS, included)

    async def test_until_before_the_log_is_empty(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A bound before the first event builds nothing and names the empty generation."""
        await seed(redis_store, 3)
        name, checkpoint = await Replay(redis_client, INCIDENTS, prefix=key_prefix).build_until(
            dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
        )
        assert (name, checkpoint) == ("until-0-0", None)
