"""Property: as-of answers from base + deltas + tail equal the fold of the log, byte for byte.

Hypothesis draws a history (reports, revisions, retractions, merges, redactions, statements
and their retractions, from several feeds), appends it to a real Redis in a few parts, and
after each part runs the snapshot writer with a drawn interval, chain length and retention
(so chains are resumed, bases and deltas alternate, and retention leaves removed snapshots'
blobs that kept chains need). Then, for every as-of projection and at positions in a drawn
order (so the reader's kept states end chains at random places), the state as of each
position equals the pure fold up to it (documents in the same order), every answer the
query API computes from it encodes to the same bytes, and so do the victims answers from the
snapshot's kept sums moved by the tail's cells. Each example has its own key prefix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import uuid

import hypothesis.strategies as st
import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, assume, given, settings

from events import AnyEvent, Event, Recorded
from projections import PROJECTIONS, State, fold
from projections.alignment import pairs
from projections.community_victims import query
from projections.country_stance import stances, timeline
from projections.filters import VictimsFilter
from projections.suppression import protected_query
from projections.victims_sums import SUMS_FORMAT
from services.projector.snapshots import Snapshotter
from services.resp import text
from services.store.keys import Keys
from services.store.log import LogReader, RawEntry
from services.store.redis import RedisEventStore
from services.views.asof import ASOF_PROJECTIONS, AsOfReader, fold_log
from services.views.snapshots import SnapshotStore, encode_snapshot
from tests.support import builders as f
from tests.support.runner import as_of_fold
from tests.support.strategies import PARTITIONED, histories

EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "25"))
"""Examples per run: modest for CI; raise it locally to search harder."""


encode = msgspec.json.encode
VICTIMS = PROJECTIONS["community-victims"]
SUMS = (
    (5, VictimsFilter()),
    (2, VictimsFilter(status="civilian")),
    (3, VictimsFilter(by="party")),
    (5, VictimsFilter(adm1="Latakia", date_to=dt.date(2025, 3, 5))),
)
"""The (threshold, filter) pairs whose as-of victims sums are compared with the fold's."""


def answers(name: str, state: State) -> list[bytes]:
    """Every answer the query API computes from a state of ``name``, encoded."""
    if name == "community-victims":
        return [
            encode(query(state)),
            encode(protected_query(state, 5)),
            encode(protected_query(state, 2, VictimsFilter(status="civilian"))),
        ]
    if name == "country-stance":
        return [
            encode(stances(state)),
            *(encode(timeline(state, c)) for c in PARTITIONED.countries),
        ]
    return [encode(pairs(state))]


def ordered(state: State) -> dict[str, list[tuple[str, object]]]:
    """Every kind's documents as a list, in the state's order (empty kinds left out)."""
    return {kind: list(docs.items()) for kind, docs in state.kinds().items() if docs}


class Plan(msgspec.Struct, frozen=True):
    """Where the history is cut into appends, how the snapshots are written, and in what
    order the positions are asked (``order``: the rotation, and reversed when odd)."""

    cuts: list[int]
    every: int
    chain: int
    keep: int
    order: int


plans = st.builds(
    Plan,
    cuts=st.lists(st.integers(0, 60), max_size=3).map(sorted),
    every=st.integers(1, 5),
    chain=st.sampled_from([0, 1, 2, 3, 8]),
    keep=st.integers(1, 6),
    order=st.integers(0, 1000),
)


async def _scenario(url: str, events: list[Event], plan: Plan) -> None:
    client = aioredis.Redis.from_url(url)
    prefix = f"t-asof-{uuid.uuid4().hex[:12]}"
    store = RedisEventStore(client, prefix=prefix)
    try:
        writer = Snapshotter(
            client, prefix=prefix, every=plan.every, keep=plan.keep, chain=plan.chain
        )
        start = 0
        for cut in [*(min(c, len(events)) for c in plan.cuts), len(events)]:
            if events[start:cut]:
                await store.append(events[start:cut])  # type: ignore[arg-type]
                start = cut
            await writer.run_once()
        log: list[Recorded] = await store.read(count=10_000)
        snapshots = SnapshotStore(client, prefix)
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            assert len(await snapshots.refs(projection)) <= plan.keep
            reader = AsOfReader(client, prefix, cache_size=1 + plan.order % 3)
            positions = list(range(len(log)))
            positions = positions[plan.order % len(log) :] + positions[: plan.order % len(log)]
            if plan.order % 2:
                positions.reverse()
            for i in positions:
                state = await reader.state_until(projection, log[i].position)
                whole = fold(projection, log[: i + 1])
                assert ordered(state) == ordered(as_of_fold(projection, log[: i + 1])), (name, i)
                assert answers(name, state) == answers(name, whole), (name, i)
                if name == "community-victims":
                    for k, where in SUMS:
                        sums = await reader.victims_sums(projection, log[i].position, k, where)
                        assert encode(sums.protected()) == encode(
                            protected_query(whole, k, where)
                        ), (i, k, where)
                        assert encode(sums.answer()) == encode(query(whole, where)), (i, where)
                        sums.rebuild({}, log[i].position)  # the caller's copy, emptied
                        again = await reader.victims_sums(projection, log[i].position, k, where)
                        assert encode(again.answer()) == encode(query(whole, where)), (i, where)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()


class TestAsOfFromDeltasEqualsTheFold:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(events=histories(PARTITIONED), plan=plans)
    def test_as_of_answers_from_snapshots_equal_the_fold(
        self, redis_url: str, events: list[Event], plan: Plan
    ) -> None:
        """At every position, in any order, base + deltas + tail give the fold's answers;
        asked again (the kept sums), the same, whatever the caller did with the first."""
        assume(events)
        asyncio.run(_scenario(redis_url, events, plan))


class TestChainsInRedis:
    async def test_retention_keeps_exactly_the_blobs_of_kept_chains(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """With a snapshot per entry, chains of at most 3 deltas and 2 kept: the data holds
        the blobs the two kept snapshots' chains pass through (each back to a base), the sums
        kept beside those two, and nothing else."""
        await redis_store.append([f.reported(f"i-{n}", n + 1) for n in range(10)])
        projection = PROJECTIONS["community-victims"]
        writer = Snapshotter(
            redis_client, prefix=key_prefix, every=1, keep=2, chain=3, projections=[projection]
        )
        assert await writer.run_once() == 10
        refs = await SnapshotStore(redis_client, key_prefix).refs(projection)
        assert [r.ordinal for r in refs] == [2, 10]
        keys = Keys(key_prefix)
        stored = {
            text(k)
            for k in await redis_client.hkeys(
                keys.snapshot_data(projection.name, projection.version)
            )
        }
        links = {
            text(k): text(v)
            for k, v in (
                await redis_client.hgetall(keys.snapshot_links(projection.name, projection.version))
            ).items()
        }
        needed: set[str] = set()
        for ref in refs:
            chain: list[str] = [ref.position]
            while links[chain[-1]]:
                chain.append(links[chain[-1]])
            assert len(chain) <= 4, chain
            needed.update(chain)
        assert stored == needed | {f"sums:{ref.position}" for ref in refs}  # sums: kept ones'
        assert links.keys() == needed
        assert len(needed) < 10  # the removed snapshots no chain needs are gone

    async def test_retention_removes_the_sums_an_earlier_retention_left(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """An earlier version's retention dropped snapshots but left their sums: the next
        retention removes those, and keeps the sums of the kept snapshots."""
        await redis_store.append([f.reported(f"i-{n}", n + 1) for n in range(4)])
        projection = PROJECTIONS["community-victims"]
        writer = Snapshotter(
            redis_client, prefix=key_prefix, every=1, keep=2, chain=3, projections=[projection]
        )
        assert await writer.run_once() == 4
        data = Keys(key_prefix).snapshot_data(projection.name, projection.version)
        left = "sums:1-0"  # at no snapshot: a dropped one's, as an earlier retention left it
        await redis_client.hset(data, left, b"\x90")
        await redis_store.append([f.reported("i-4", 5)])
        assert await writer.run_once() == 1
        refs = await SnapshotStore(redis_client, key_prefix).refs(projection)
        stored = {text(k) for k in await redis_client.hkeys(data)}
        assert {k for k in stored if k.startswith("sums:")} == {
            f"sums:{ref.position}" for ref in refs
        }
        assert len(refs) == 2

    async def test_snapshots_written_before_deltas_read_and_continue(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A whole-state snapshot without a link (the stored format before deltas) reads as
        a base, and the writer continues it with deltas."""
        await redis_store.append([f.reported(f"i-{n}", n + 1) for n in range(6)])
        log = await redis_store.read(count=10)
        projection = PROJECTIONS["community-victims"]
        keys = Keys(key_prefix)
        old = encode_snapshot(fold(projection, log[:2]), log[1].position, 2)
        await redis_client.hset(
            keys.snapshot_data(projection.name, projection.version), log[1].position, old
        )
        await redis_client.zadd(
            keys.snapshot_index(projection.name, projection.version), {log[1].position: 2}
        )
        writer = Snapshotter(
            redis_client, prefix=key_prefix, every=2, chain=8, projections=[projection]
        )
        assert await writer.run_once() == 2
        links = await redis_client.hgetall(keys.snapshot_links(projection.name, projection.version))
        assert text(links[log[3].position.encode()]) == log[1].position
        reader = AsOfReader(redis_client, key_prefix)
        for i in range(6):
            state = await reader.state_until(projection, log[i].position)
            assert ordered(state) == ordered(as_of_fold(projection, log[: i + 1])), i

    async def test_a_chain_begun_before_contributions_were_left_out_reads_them_afresh(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A base written with contributions, continued by deltas written without them: the
        contributions the base holds are stale past it, so a delta of the new form drops them
        and the fold reads each from the log; every answer stays the fold's."""
        events: list[AnyEvent] = [f.reported(f"i-{n}", n + 1) for n in range(4)]
        events += [f.revised("i-1", 9), f.revised("i-2", 7), f.retracted("i-3")]
        events += [f.revised("i-1", 2), f.merged("i-2", into="i-0"), f.revised("i-1", 4)]
        await redis_store.append(events)
        log = await redis_store.read(count=20)
        projection = PROJECTIONS["community-victims"]
        keys = Keys(key_prefix)
        old = encode_snapshot(fold(projection, log[:4]), log[3].position, 4)  # with them
        await redis_client.hset(
            keys.snapshot_data(projection.name, projection.version), log[3].position, old
        )
        await redis_client.hset(
            keys.snapshot_links(projection.name, projection.version), log[3].position, ""
        )
        await redis_client.zadd(
            keys.snapshot_index(projection.name, projection.version), {log[3].position: 4}
        )
        writer = Snapshotter(
            redis_client, prefix=key_prefix, every=3, chain=8, projections=[projection]
        )
        assert await writer.run_once() == 2  # deltas at 7 and 10, on the old base
        reader = AsOfReader(redis_client, key_prefix)
        for i in range(len(log)):
            state = await reader.state_until(projection, log[i].position)
            assert ordered(state) == ordered(as_of_fold(projection, log[: i + 1])), i
            sums = await reader.victims_sums(projection, log[i].position, 1, VictimsFilter())
            whole = fold(projection, log[: i + 1])
            assert encode(sums.answer()) == encode(query(whole)), i

    async def test_a_chain_missing_a_blob_answers_from_the_log(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A delta whose previous blob is gone is no snapshot: the answer is folded from
        the start of the log and still equals the fold."""
        await redis_store.append([f.reported(f"i-{n}", n + 1) for n in range(4)])
        log = await redis_store.read(count=10)
        projection = PROJECTIONS["community-victims"]
        writer = Snapshotter(
            redis_client, prefix=key_prefix, every=2, chain=8, projections=[projection]
        )
        assert await writer.run_once() == 2
        store = SnapshotStore(redis_client, key_prefix)
        await redis_client.hdel(
            Keys(key_prefix).snapshot_data(projection.name, projection.version), log[1].position
        )
        assert await store.load(projection, log[3].position) is None
        state = await AsOfReader(redis_client, key_prefix).state_until(projection, log[3].position)
        assert ordered(state) == ordered(as_of_fold(projection, log))


class TestOwnDocuments:
    """Snapshots leave community-victims' contributions out; a fold from one reads each
    contribution its tail needs from the incident's own events."""

    async def test_a_snapshot_holds_no_contribution_and_weighs_less(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        await redis_store.append([f.reported(f"i-{n}", n + 1) for n in range(40)])
        log = await redis_store.read(count=100)
        projection = PROJECTIONS["community-victims"]
        state = fold(projection, log)
        store = SnapshotStore(redis_client, key_prefix)
        written = await store.write(projection, state, log[-1].position, len(log))
        loaded = await store.load(projection, log[-1].position)
        assert loaded is not None
        assert ordered(loaded) == ordered(as_of_fold(projection, log))
        assert "incident" not in ordered(loaded)
        assert written.size < len(encode_snapshot(state, log[-1].position, len(log)))

    async def test_a_fold_from_a_snapshot_puts_in_each_touched_contribution_as_the_fold_has_it(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Revised, retracted and merged incidents (of one and of many events before the
        snapshot), one merged into another, and incidents new in the tail: after the tail,
        every contribution the state holds is the fold's, and so is every cell."""
        before: list[AnyEvent] = [
            f.reported("a", 3),
            f.reported("b", 4),
            f.revised("b", 6),
            f.reported("c", 5),
            f.reported("d", 7),
            f.merged("d", into="a"),
            f.reported("e", 2),
        ]
        tail: list[AnyEvent] = [
            f.revised("a", 9),
            f.revised("b", 1),
            f.retracted("c"),
            f.reported("n", 8),
            f.merged("e", into="b"),
            f.revised("n", 4),
        ]
        await redis_store.append(before)
        snapshot_at = (await redis_store.read(count=100))[-1].position
        await redis_store.append(tail)
        log = await redis_store.read(count=100)
        projection = PROJECTIONS["community-victims"]
        store = SnapshotStore(redis_client, key_prefix)
        await store.write(projection, fold(projection, log[: len(before)]), snapshot_at, 7)
        state = await store.load(projection, snapshot_at)
        assert state is not None
        assert not state.kind("incident")

        folded, _, seen = await fold_log(
            LogReader(redis_client, key_prefix), projection, state, after=snapshot_at
        )

        assert seen == len(tail)
        whole = fold(projection, log)
        held = dict(folded.kind("incident"))
        assert sorted(held) == ["a", "b", "c", "e", "n"]  # what the tail touched
        assert held == {ident: whole.get("incident", ident) for ident in held}
        assert ordered(folded)["total"] == ordered(whole)["total"]


class TestSumsKeptBesideSnapshots:
    """The snapshot writer stores the unfiltered victims sums beside each community-victims
    snapshot; a cold answer to that question starts from them and decodes only the cells its
    tail changed."""

    REGIONS = ("Latakia", "Tartus", "Hama", "Homs", "Idlib")

    async def _written(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> list[Recorded]:
        """Ten reports over five regions (five cells), a snapshot after them, then a tail
        that revises one incident of Latakia and retracts one of Tartus."""
        await redis_store.append(
            [f.reported(f"i-{n}", n + 1, adm1=self.REGIONS[n % 5]) for n in range(10)]
        )
        writer = Snapshotter(redis_client, prefix=key_prefix, every=10, projections=[VICTIMS])
        assert await writer.run_once() == 1
        await redis_store.append([f.revised("i-0", 40), f.retracted("i-1")])
        return await redis_store.read(count=100)

    async def test_a_cold_answer_equals_the_fold_and_leaves_unchanged_cells_undecoded(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        log = await self._written(redis_client, redis_store, key_prefix)
        store = SnapshotStore(redis_client, key_prefix)
        [kept] = await store.kept_sums(VICTIMS, log[9].position)
        assert (kept.k, kept.where, kept.checkpoint) == (5, VictimsFilter(), log[9].position)
        for i in (9, 10, 11):
            reader = AsOfReader(redis_client, key_prefix)  # cold: nothing read before
            sums = await reader.victims_sums(VICTIMS, log[i].position, 5, VictimsFilter())
            whole = fold(VICTIMS, log[: i + 1])
            assert encode(sums.answer()) == encode(query(whole)), i
            assert encode(sums.protected()) == encode(protected_query(whole, 5)), i
            base = await reader._cached(VICTIMS, log[9].position)
            assert base is not None
            cells: dict[str, object] = dict(base._kinds["total"])
            undecoded = {ident for ident, doc in cells.items() if type(doc) is msgspec.Raw}
            assert len(cells) == 5
            assert len(undecoded) == 5 - (i - 9), i  # only the cells the tail changed

    async def test_other_questions_and_sums_of_another_format_are_summed_from_the_cells(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Another threshold or filter finds no stored sums; stored sums of another format,
        or that do not decode, are not read: each answer is summed over every cell, and
        equals the fold's."""
        log = await self._written(redis_client, redis_store, key_prefix)
        whole = fold(VICTIMS, log)
        reader = AsOfReader(redis_client, key_prefix)
        for k, where in ((2, VictimsFilter()), (5, VictimsFilter(adm1="Latakia"))):
            sums = await reader.victims_sums(VICTIMS, log[-1].position, k, where)
            assert encode(sums.protected()) == encode(protected_query(whole, k, where))
        data = Keys(key_prefix).snapshot_data(VICTIMS.name, VICTIMS.version)
        [kept] = await SnapshotStore(redis_client, key_prefix).kept_sums(VICTIMS, log[9].position)
        wrong = msgspec.structs.replace(kept, format=SUMS_FORMAT + 1, total=(0, 0, 0))
        for stored in (msgspec.msgpack.encode([wrong]), msgspec.msgpack.encode([[1, "k"]])):
            await redis_client.hset(data, f"sums:{log[9].position}", stored)
            cold = AsOfReader(redis_client, key_prefix)
            sums = await cold.victims_sums(VICTIMS, log[-1].position, 5, VictimsFilter())
            assert encode(sums.answer()) == encode(query(whole))


class TestEventsOfEntities:
    """``LogReader.upto``: every event of some entities up to a position, from the indexes."""

    async def test_first_and_later_events_up_to_the_position_each_once_in_log_order(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        await redis_store.append(
            [
                f.reported("a", 3),
                f.reported("b", 4),
                f.revised("a", 5),
                f.merged("b", into="a"),  # under both incidents
                f.reported("c", 1),
                f.revised("a", 6),
            ]
        )
        log = await redis_store.read(count=100)
        reader = LogReader(redis_client, key_prefix)

        def positions(entries: list[RawEntry]) -> list[str]:
            return [position for position, _ in entries]

        got = await reader.upto(["incident:a", "incident:b", "incident:zz"], log[4].position)
        assert positions(got) == [log[i].position for i in (0, 1, 2, 3)]
        got = await reader.upto(["incident:a"], log[5].position)
        assert positions(got) == [log[i].position for i in (0, 2, 3, 5)]
        assert positions(await reader.upto(["incident:c"], log[3].position)) == []
        assert await reader.upto([], log[5].position) == []
        (entry,) = await reader.upto(["incident:c"], log[5].position)
        assert entry[1][b"type"] == b"incident.reported"

    async def test_an_entity_recorded_before_its_first_position_was_kept_reads_the_same(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Its state in the hash of before buckets, without a fifth part, and every position
        in its history, as such entities were recorded."""
        await redis_store.append([f.reported("a", 3), f.revised("a", 5), f.revised("a", 6)])
        log = await redis_store.read(count=100)
        keys, entity = Keys(key_prefix), "incident:a"
        await redis_client.hdel(keys.entity_bucket_of(0, entity), entity)
        await redis_client.hset(keys.entities_of(0), entity, "3|live||bench")
        await redis_client.hset(keys.history_of(0), entity, " ".join(r.position for r in log))
        got = await LogReader(redis_client, key_prefix).upto([entity], log[1].position)
        assert [position for position, _ in got] == [log[0].position, log[1].position]
