"""The projection runner against a real Redis: catch-up, live updates, exactly-once, poison, leases.

Each test works under its own key prefix. Waiting is always polling for a condition with a
deadline; crashes are simulated with the pool's step hook (an exception at a chosen point of
a batch) or by aborting the pool, never by sleeping.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from events import (
    AnyEvent,
    Position,
    Recorded,
    Speaker,
    from_fields,
)
from projections import PROJECTIONS, Projection, State, fold
from projections.docs import Docs
from services.cli.processes import project
from services.projector.commit import Batch, Commits, Committer
from services.projector.errors import CheckpointMovedError, LeaseLostError
from services.projector.healing import FAILURES_BEFORE_DEAD_LETTER
from services.projector.pool import ProjectorPool
from services.projector.worker import MAX_DELIVERIES
from services.runtime.redis_server import RedisProcess
from services.settings import Settings
from services.store import StoreUnavailableError
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import view_keys
from services.views.redis import load_checkpoint, load_kind, load_view
from tests.support import builders as f
from tests.support.runner import (
    COUNTING,
    EVERY,
    FAST,
    Count,
    Pools,
    assert_views_match_fold,
    crash,
    crash_at,
    read_log,
)
from tests.support.streams import added
from tests.support.streams import entries as stream_entries
from tests.support.waiting import until

DEADLINE = 20.0
"""Seconds a test waits for a condition before failing."""

"""Pool settings that keep the tests quick: short blocks, short leases."""


# --- a projection that half-applies an event and then raises -------------------------------


class Note(msgspec.Struct, frozen=True):
    """The last event an incident saw."""

    event_type: str
    events: int


class PoisonedError(Exception):
    """Raised by the half-applying projection for events from the feed ``poison``."""


def _half_apply(state: State, recorded: Recorded) -> State:
    event = recorded.event
    ident = event.entity
    before = state.get("note", ident)
    assert before is None or isinstance(before, Note)
    state.put("note", ident, Note(event.type, 1 if before is None else before.events + 1))
    state.put("note", "scratch", Note("scratch", 0))
    if event.source == "poison":
        raise PoisonedError(f"cannot apply {event.event_id}")
    state.delete("note", "scratch")
    return state


HALF = Projection(
    name="test-half",
    version=1,
    doc_types={"note": Note},
    initial=Docs,
    apply=_half_apply,
)
"""Writes a note per entity; for a ``poison`` event it writes first and raises after."""


# --- helpers -----------------------------------------------------------------------------------


def history() -> list[list[AnyEvent]]:
    """Batches of events touching every projection: reports, revisions, merges, statements."""
    return [
        f.opening(),
        [
            f.revised("i-1", 14, victims=[f.ALAWITE_VICTIMS]),
            f.merged("i-2", "i-1"),
            f.statement(
                "s-3",
                speakers=[Speaker(country="DEU", name="Federal Foreign Office")],
                stance="welcome",
                cameo_code="051",
            ),
            f.retracted("i-3"),
            f.statement_retracted("s-2"),
        ],
        [f.reported("i-4", 2), f.revised("i-4", 5)],
    ]


async def pending_count(client: aioredis.Redis, prefix: str, projection: Projection) -> int:
    """Entries of the projection's group delivered and not acked."""
    summary = await client.xpending(Keys(prefix).log, view_keys(prefix, projection).group)
    return int(summary["pending"])


@pytest.fixture
async def pools(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[Pools]:
    """Make pools on this test's prefix (fast settings); every one is stopped afterwards."""
    made = Pools(redis_client, key_prefix, projections=EVERY, **FAST)
    yield made
    await made.abort()


# --- tests ---------------------------------------------------------------------------------------


class TestCatchUp:
    """Events already in the log and events appended later both reach the views."""

    async def test_history_appended_before_the_start_is_applied(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """A group created by the runner starts at 0, so the whole existing log is folded."""
        for batch in history():
            await redis_store.append(batch)
        await pools().run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)
        groups = await redis_client.xinfo_groups(Keys(key_prefix).log)
        assert {g["name"].decode() for g in groups} == {
            f"projector:{p.name}:v{p.version}" for p in EVERY
        }

    async def test_events_appended_while_running_show_up(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """A running pool applies each newly appended batch without being restarted."""
        pool = pools()
        await pool.start()
        for batch in history():
            appended = await redis_store.append(batch)
            head = appended[-1].position

            async def reached(head: str = head) -> bool:
                return await load_checkpoint(redis_client, key_prefix, COUNTING) == head

            await until(reached, f"the counting view to reach {head}", within=DEADLINE)
        await pool.run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)

    async def test_an_empty_log_is_caught_up_at_once(
        self, redis_client: aioredis.Redis, key_prefix: str, pools: Pools
    ) -> None:
        """With nothing logged there is nothing to wait for and no checkpoint is written."""
        await pools().run_until_caught_up()
        assert await load_checkpoint(redis_client, key_prefix, COUNTING) is None


class TestStoredView:
    """What load_view and load_kind read back is the fold of the log."""

    async def test_every_view_equals_the_fold_of_the_store_log(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """For every registered projection the stored view equals fold(store.read())."""
        for batch in history():
            await redis_store.append(batch)
        await pools(batch_size=3).run_until_caught_up()
        log = await redis_store.read(count=10_000)
        for projection in PROJECTIONS.values():
            docs, checkpoint = await load_view(redis_client, key_prefix, projection)
            assert docs == fold(projection, log), projection.name
            assert checkpoint == log[-1].position

    async def test_load_kind_reads_one_kind_of_documents(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """load_kind answers exactly the documents of that kind in the fold."""
        for batch in history():
            await redis_store.append(batch)
        await pools().run_until_caught_up()
        projection = PROJECTIONS["incidents"]
        folded = fold(projection, await redis_store.read(count=10_000))
        stored = await load_kind(redis_client, key_prefix, projection, "incident")
        assert stored == dict(folded.kind("incident"))
        assert set(stored) == {"i-1", "i-2", "i-3", "i-4"}

    async def test_a_restarted_pool_goes_on_from_the_checkpoint(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """After a clean stop a new pool applies only what came later (counted once each)."""
        first, *rest = history()
        await redis_store.append(first)
        await pools().run_until_caught_up()
        for batch in rest:
            await redis_store.append(batch)
        await pools().run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)
        count = await load_kind(redis_client, key_prefix, COUNTING, "count")
        assert count == {"all": Count(sum(map(len, history())))}


class TestRedelivery:
    """A redelivered entry changes nothing; an uncommitted one is not lost."""

    async def test_a_crash_between_commit_and_ack_changes_nothing_on_redelivery(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Entries committed but not acked (the consumer group's path) come back to the same
        consumer and are only acked."""
        for batch in history():
            await redis_store.append(batch)
        await crash(
            pools(consumer="c-1", hook=crash_at("after_commit"), follow=False), within=DEADLINE
        )
        committed = await load_checkpoint(redis_client, key_prefix, COUNTING)
        assert committed is not None
        assert await pending_count(redis_client, key_prefix, COUNTING) > 0

        await pools(consumer="c-1").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)
        seen = await load_kind(redis_client, key_prefix, COUNTING, "seen")
        assert {s.times for s in seen.values()} == {1}  # type: ignore[attr-defined]
        assert await pending_count(redis_client, key_prefix, COUNTING) == 0

    async def test_a_crash_after_a_followed_commit_leaves_nothing_to_redeliver(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Following the log, the commit moves the group with the checkpoint: a crash right
        after it leaves nothing pending, the group at the checkpoint, and the successor
        applies each entry once."""
        for batch in history():
            await redis_store.append(batch)
        await crash(
            pools(consumer="c-dead", hook=crash_at("after_commit"), lease_ms=300), within=DEADLINE
        )
        committed = await load_checkpoint(redis_client, key_prefix, COUNTING)
        assert committed is not None
        assert await pending_count(redis_client, key_prefix, COUNTING) == 0
        keys = view_keys(key_prefix, COUNTING)
        groups = await redis_client.xinfo_groups(keys.log)
        (group,) = [g for g in groups if g["name"] in (keys.group, keys.group.encode())]
        assert group["last-delivered-id"] in (committed, committed.encode())

        await pools(consumer="c-next").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)
        seen = await load_kind(redis_client, key_prefix, COUNTING, "seen")
        assert {s.times for s in seen.values()} == {1}  # type: ignore[attr-defined]
        assert await pending_count(redis_client, key_prefix, COUNTING) == 0

    async def test_entries_committed_by_a_dead_consumer_are_acked_by_its_successor(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Another consumer takes over the dead one's pending entries and applies none twice."""
        for batch in history():
            await redis_store.append(batch)
        await crash(
            pools(consumer="c-dead", hook=crash_at("after_commit"), lease_ms=300, follow=False),
            within=DEADLINE,
        )
        assert await pending_count(redis_client, key_prefix, COUNTING) > 0

        await pools(consumer="c-next").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)
        seen = await load_kind(redis_client, key_prefix, COUNTING, "seen")
        assert {s.times for s in seen.values()} == {1}  # type: ignore[attr-defined]
        assert await pending_count(redis_client, key_prefix, COUNTING) == 0

    async def test_a_crash_before_the_commit_loses_nothing(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """A batch applied in memory but never committed is applied again after the restart."""
        for batch in history():
            await redis_store.append(batch)
        await crash(pools(consumer="c-1", hook=crash_at("before_commit")), within=DEADLINE)
        assert await load_checkpoint(redis_client, key_prefix, COUNTING) is None

        await pools(consumer="c-1").run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)


class TestPoisonEntries:
    """Entries that cannot be applied go to the dead-letter stream after three deliveries."""

    async def test_undecodable_entries_end_in_the_dlq_while_later_events_apply(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Garbage data and an unknown type go to the DLQ per projection; the rest is applied."""
        keys = Keys(key_prefix)
        first, second, third = history()
        await redis_store.append(first)
        garbage = await added(
            redis_client,
            keys.log,
            {"type": "incident.reported", "event_id": "x", "v": "2", "data": b"\xff{no"},
        )
        unknown = await added(
            redis_client,
            keys.log,
            {"type": "incident.exploded", "event_id": "y", "v": "1", "data": b"{}"},
        )
        await redis_store.append(second)
        await pools(batch_size=4).run_until_caught_up()
        await redis_store.append(third)
        await pools().run_until_caught_up()

        await assert_views_match_fold(redis_client, key_prefix)
        letters = [fields for _, fields in await stream_entries(redis_client, keys.dlq)]
        assert len(letters) == 2 * len(EVERY)
        by_position: dict[bytes, list[dict[bytes, bytes]]] = {}
        for letter in letters:
            by_position.setdefault(letter[b"position"], []).append(letter)
        assert set(by_position) == {garbage, unknown}
        for letter in letters:
            assert letter[b"deliveries"] == str(MAX_DELIVERIES).encode()
            assert letter[b"error_type"] == b"CodecError"
        assert {letter[b"projection"] for letter in by_position[garbage]} == {
            p.name.encode() for p in EVERY
        }
        assert by_position[garbage][0][b"entry.data"] == b"\xff{no"
        assert by_position[unknown][0][b"entry.type"] == b"incident.exploded"
        assert b"incident.exploded" in by_position[unknown][0][b"error"]
        for projection in EVERY:
            assert await pending_count(redis_client, key_prefix, projection) == 0

    async def test_a_half_applied_event_is_undone_before_it_is_dead_lettered(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """What apply wrote before raising is rolled back, including keys the batch had changed."""
        poison = f.disputed("i-1", feed="poison")  # another feed, so the store accepts it
        await redis_store.append([f.reported("i-1", 10), f.revised("i-1", 12)])
        await redis_store.append([f.reported("i-2", 1), poison, f.revised("i-1", 13)])
        await pools(projections=[HALF], batch_size=10).run_until_caught_up()

        log = [
            r
            for r in await read_log(redis_client, key_prefix, decodable=True)
            if r.event.source != "poison"
        ]
        docs, checkpoint = await load_view(redis_client, key_prefix, HALF)
        assert docs == fold(HALF, log)
        assert docs.get("note", "incident:i-1") == Note("incident.casualties_revised", 3)
        assert docs.get("note", "scratch") is None
        letters = await stream_entries(redis_client, Keys(key_prefix).dlq)
        assert len(letters) == 1
        letter = letters[0][1]
        assert letter[b"error_type"] == b"PoisonedError"
        assert letter[b"projection"] == HALF.name.encode()
        entry = {k[len(b"entry.") :]: v for k, v in letter.items() if k.startswith(b"entry.")}
        assert from_fields(entry) == poison  # the log entry's own fields, whole
        assert checkpoint == (await redis_store.head())

    async def test_a_poison_entry_keeps_its_delivery_count_across_a_restart(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Deliveries are counted by Redis, so a restart does not grant an entry three more."""
        keys = Keys(key_prefix)
        bad = await added(redis_client, keys.log, {"type": "incident.reported", "data": b"nope"})
        group = view_keys(key_prefix, COUNTING).group
        await redis_client.xgroup_create(keys.log, group, id="0", mkstream=True)
        await redis_client.xreadgroup(group, "c-1", {keys.log: ">"})
        await redis_client.xreadgroup(group, "c-1", {keys.log: "0"})  # delivered twice now
        await redis_store.append([f.reported("i-1", 4)])

        await pools(projections=[COUNTING], consumer="c-1").run_until_caught_up()
        letters = await stream_entries(redis_client, keys.dlq)
        assert [(fields[b"position"], fields[b"deliveries"]) for _, fields in letters] == [
            (bad, b"3")
        ]
        await assert_views_match_fold(redis_client, key_prefix, [COUNTING])


class TestLeases:
    """Only the lease holder applies; several pools never apply an event twice."""

    async def test_two_pools_at_once_apply_every_event_exactly_once(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Two running pools share the work and the views equal the fold, each event once."""
        one, two = pools(consumer="p-1", batch_size=2), pools(consumer="p-2", batch_size=2)
        await asyncio.gather(one.start(), two.start())
        for batch in history():
            await redis_store.append(batch)
        await asyncio.gather(one.run_until_caught_up(), two.run_until_caught_up())
        await assert_views_match_fold(redis_client, key_prefix)
        seen = await load_kind(redis_client, key_prefix, COUNTING, "seen")
        assert len(seen) == sum(map(len, history()))
        assert {s.times for s in seen.values()} == {1}  # type: ignore[attr-defined]
        holders = {s.holder for s in await one.status()}
        assert holders <= {"p-1", "p-2"}

    async def test_a_waiting_pool_takes_over_when_the_holder_stops(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Stopping releases the lease; the standby then applies what comes next."""
        holder, standby = pools(consumer="holder"), pools(consumer="standby")
        await holder.start()
        await until(
            lambda: _holds(redis_client, key_prefix, "holder"), "the first lease", within=DEADLINE
        )
        await standby.start()
        await redis_store.append(history()[0])
        await holder.run_until_caught_up()
        await holder.stop()
        await until(
            lambda: _holds(redis_client, key_prefix, "standby"), "the hand-over", within=DEADLINE
        )
        for batch in history()[1:]:
            await redis_store.append(batch)
        await standby.run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix)

    async def test_a_holder_whose_lease_was_taken_cannot_commit(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """The commit checks the lease: while another owns it, nothing is written."""
        pool = pools(consumer="paused", projections=[COUNTING])
        await redis_store.append(history()[0])
        await pool.run_until_caught_up()
        before = await load_checkpoint(redis_client, key_prefix, COUNTING)
        lease = view_keys(key_prefix, COUNTING).lease
        await pool.start()
        await until(
            lambda: _holds(redis_client, key_prefix, "paused", [COUNTING]),
            "the lease",
            within=DEADLINE,
        )
        await redis_client.set(lease, "someone-else", px=60_000)  # as if it expired and was taken
        await redis_store.append(history()[1])
        await until(
            lambda: _state(pool, "waiting"), "the pool to notice it lost the lease", within=DEADLINE
        )
        assert await load_checkpoint(redis_client, key_prefix, COUNTING) == before

        await redis_client.delete(lease)
        await pool.run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, [COUNTING])

    async def test_entries_pending_on_a_fenced_consumer_are_taken_over_in_order(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Entries a former holder read but never applied are applied before later ones."""
        keys = Keys(key_prefix)
        group = view_keys(key_prefix, COUNTING).group
        await redis_store.append(history()[0])
        await redis_client.xgroup_create(keys.log, group, id="0", mkstream=True)
        await redis_client.xreadgroup(group, "ghost", {keys.log: ">"}, count=3)
        await redis_store.append(history()[1])

        pool = pools(projections=[COUNTING], consumer="live", claim_idle_ms=600_000)
        await pool.run_until_caught_up()
        await assert_views_match_fold(redis_client, key_prefix, [COUNTING])
        assert await pending_count(redis_client, key_prefix, COUNTING) == 0


async def _holds(
    client: aioredis.Redis, prefix: str, owner: str, projections: Sequence[Projection] = EVERY
) -> bool:
    values = [await client.get(view_keys(prefix, p).lease) for p in projections]
    return all(v == owner.encode() for v in values)


async def _state(pool: ProjectorPool, state: str) -> bool:
    return all(s.state == state for s in await pool.status())


class TestStatus:
    """The status view reports checkpoint, lag and holder."""

    async def test_lag_counts_entries_after_the_checkpoint(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        pools: Pools,
    ) -> None:
        """Before the first run the lag is the whole log; caught up it is zero."""
        first, second, _ = history()
        await redis_store.append(first)
        pool = pools(consumer="status")
        before = await pool.status()
        assert {(s.position, s.lag, s.holder) for s in before} == {(None, len(first), None)}
        await pool.run_until_caught_up()
        await redis_store.append(second)
        middle = await pool.status()
        assert {s.lag for s in middle} == {len(second)}
        await pool.run_until_caught_up()
        after = await pool.status()
        head = await redis_store.head()
        assert {(s.position, s.lag, s.pending, s.state) for s in after} == {(head, 0, 0, "stopped")}


class TestRedisOutage:
    """A projector survives Redis going away and coming back, without a restart."""

    async def test_the_loop_resumes_after_redis_restarts(self, tmp_path: Path) -> None:
        """Killed and restarted on the same port, Redis is reconnected to and the work goes on."""
        server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
        server.start()
        client = connect(server.url)
        try:
            prefix = "outage"
            store = RedisEventStore(client, prefix=prefix)
            first, second, third = history()
            await store.append(first)
            pool = ProjectorPool(client, prefix=prefix, projections=EVERY, **FAST)
            await pool.start()
            await asyncio.wait_for(pool.run_until_caught_up(), DEADLINE)
            server.kill()
            with pytest.raises(StoreUnavailableError):
                await store.append(second)
            server.start()
            await store.append(second)
            await store.append(third)
            await asyncio.wait_for(pool.run_until_caught_up(), DEADLINE)
            assert pool.running
            await pool.stop()
            await assert_views_match_fold(client, prefix)
        finally:
            await client.aclose()
            server.stop()


class TestTheProjectorProcess:
    """``ledger project`` stays up when a worker fails: the worker restarts by itself."""

    async def test_a_failing_worker_restarts_until_its_view_is_repaired_and_the_process_stays_up(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A view that does not decode fails every term; the process keeps running and the
        worker catches up once the view is repaired; SIGTERM then ends it without an error."""
        incidents = view_keys(key_prefix, PROJECTIONS["incidents"])
        store = RedisEventStore(redis_client, prefix=key_prefix)
        await store.append([f.reported("i-1"), f.revised("i-1")])
        # i-1's row corrupt: the revision reads it back (:mod:`services.views.own`)
        await redis_client.hset(incidents.kinds["incident"], "i-1", "not a document")
        await redis_client.hset(incidents.meta, "position", "1-0")
        settings = Settings(key_prefix=key_prefix, claim_idle_ms=1000)
        with capture_logs() as seen:
            running = asyncio.create_task(
                project(
                    settings, redis_url=redis_url, consumer="failing", lease_ms=1000, batch_size=10
                )
            )

            def restarts() -> int:
                return sum(e["event"] == "projector.restarting" for e in seen)

            await until(
                lambda: restarts() > FAILURES_BEFORE_DEAD_LETTER,
                "the worker to restart more times than an entry is tried",
                within=DEADLINE,
            )
            assert not running.done()
            assert all(
                e["error_type"] == "CorruptViewError"
                for e in seen
                if e["event"] == "projector.restarting"
            )
            # the view's fault, not the revision's: nothing is dead-lettered for it
            assert await redis_client.xlen(Keys(key_prefix).dlq) == 0
            await redis_client.delete(incidents.kinds["incident"], incidents.meta)  # repaired

            async def caught_up() -> bool:
                checkpoint = await load_checkpoint(
                    redis_client, key_prefix, PROJECTIONS["incidents"]
                )
                return checkpoint == await store.head()

            await until(caught_up, "the repaired view to catch up", within=DEADLINE)
            assert not running.done()
            os.kill(os.getpid(), signal.SIGTERM)
            async with asyncio.timeout(DEADLINE):
                await running


class TestCommitsTogether:
    """Commits of several views sent in one script call are each checked on their own."""

    async def test_a_refused_commit_leaves_the_others_sent_with_it_committed(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Of three commits sent together, the one whose lease is another's is refused, the
        one built on a stale checkpoint is refused, and the third is written."""
        ours, lost, stale = (
            view_keys(key_prefix, projection)
            for projection in (COUNTING, PROJECTIONS["alignment"], PROJECTIONS["incidents"])
        )
        await redis_client.set(ours.lease, "me")
        await redis_client.set(lost.lease, "another")
        await redis_client.set(stale.lease, "me")
        await redis_client.hset(stale.meta, "position", "5-0")
        committer, together = Committer(redis_client, "me"), Commits(redis_client)
        answers = await asyncio.gather(
            *(
                committer.commit(
                    keys, Batch({}, None), None, Position("7-0"), ordinal=7, together=together
                )
                for keys in (ours, lost, stale)
            ),
            return_exceptions=True,
        )
        assert answers[0] == 1
        assert isinstance(answers[1], LeaseLostError)
        assert isinstance(answers[2], CheckpointMovedError)
        assert await load_checkpoint(redis_client, key_prefix, COUNTING) == "7-0"
        assert await redis_client.hget(ours.meta, "ordinal") in (b"7", "7")
        alignment = PROJECTIONS["alignment"]
        assert await load_checkpoint(redis_client, key_prefix, alignment) is None
        assert await load_checkpoint(redis_client, key_prefix, PROJECTIONS["incidents"]) == "5-0"
