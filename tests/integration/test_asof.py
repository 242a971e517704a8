"""As-of reads over a real Redis: snapshots, retention, and answers equal to the pure fold.

Every as-of answer is compared with ``projections.fold`` over exactly the events recorded at
or before the asked time, before and after a revision, a retraction, a merge and a statement
retraction, with no snapshot, with snapshots, and after retention dropped the early ones.
Events are appended so that each gets its own millisecond (the test waits for the Redis
server's clock to move on, polling ``TIME``), so a time can fall between any two of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import AnyEvent, Place, Position, Recorded, Speaker, recorded_at_of
from projections import PROJECTIONS, alignment, country_stance, fold
from projections import community_victims as victims
from services.bootstrap import http_app
from services.cli.processes import write_snapshots
from services.projector.pool import ProjectorPool
from services.projector.snapshots import SnapshotsOffError, Snapshotter
from services.settings import Settings, Token, load_settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.asof import (
    ASOF_PROJECTIONS,
    AsOfReader,
    InvalidAsOfError,
    millis_of,
    parse_as_of,
)
from services.views.snapshots import (
    CorruptSnapshotError,
    SnapshotRef,
    SnapshotStore,
    decode_snapshot,
    encode_snapshot,
    to_drop,
)
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import as_of_fold
from tests.support.waiting import until

READER = "reader-token-0123456789abcdef01"
DEADLINE = 10.0


def history() -> list[AnyEvent]:
    """Reports, a revision, a merge, a retraction, statements and a statement retraction."""
    return [
        f.reported("i-1", best=10, occurred_start=dt.date(2024, 3, 1)),
        f.reported("i-2", best=4, place=Place(adm1="Aleppo")),
        f.statement("s-1", incident_ids=["i-1"]),
        f.revised("i-1", best=25),
        f.statement(
            "s-2",
            speakers=[Speaker(country="DEU", name="Auswärtiges Amt")],
            stance="support",
            cameo_code="051",
        ),
        f.merged("i-2", into="i-1"),
        f.reported("i-3", best=7),
        f.statement_retracted("s-1"),
        f.retracted("i-3"),
        f.statement(
            "s-3",
            speakers=[Speaker(country="TUR", name="MFA")],
            stance="neutral",
            cameo_code="020",
        ),
    ]


async def server_millis(client: aioredis.Redis) -> int:
    seconds, micros = await client.time()
    return int(seconds) * 1000 + int(micros) // 1000


async def append_apart(
    store: RedisEventStore, client: aioredis.Redis, events: list[AnyEvent]
) -> list[Recorded]:
    """Append events one by one, each in a millisecond of its own; their recorded form."""
    last = -1
    for event in events:

        async def clock_moved(after: int = last) -> bool:
            return await server_millis(client) > after

        await until(clock_moved, "the server clock to pass the last position", every=0.001)
        await store.append([event])
        last = millis_of(recorded_at_of((await store.head()) or "0-0"))
    recorded = await store.read(count=len(events) + 1)
    assert len(recorded) == len(events)
    return recorded


def times(recorded: list[Recorded]) -> list[dt.datetime]:
    """A time before everything, each event's recording time, and a time after everything."""
    first = recorded[0].recorded_at
    return [
        first - dt.timedelta(seconds=1),
        *(r.recorded_at for r in recorded),
        recorded[-1].recorded_at + dt.timedelta(days=1),
    ]


def known_at(recorded: list[Recorded], at: dt.datetime) -> list[Recorded]:
    return [r for r in recorded if millis_of(r.recorded_at) <= millis_of(at)]


@pytest.fixture
async def recorded(redis_store: RedisEventStore, redis_client: aioredis.Redis) -> list[Recorded]:
    """The history, appended with a millisecond of its own per event."""
    return await append_apart(redis_store, redis_client, history())


class TestParseAsOf:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2025-03-09T12:00:00Z", dt.datetime(2025, 3, 9, 12, tzinfo=dt.UTC)),
            ("2025-03-09T14:00:00+02:00", dt.datetime(2025, 3, 9, 12, tzinfo=dt.UTC)),
            ("2025-03-09T14:00:00 02:00", dt.datetime(2025, 3, 9, 12, tzinfo=dt.UTC)),
            ("2025-03-09T12:00:00.250Z", dt.datetime(2025, 3, 9, 12, 0, 0, 250_000, dt.UTC)),
        ],
    )
    def test_accepts_datetimes_with_a_zone(self, text: str, expected: dt.datetime) -> None:
        """ISO 8601 with Z or an offset (a ``+`` decoded to a space included) parses."""
        assert parse_as_of(text) == expected

    @pytest.mark.parametrize("text", ["2025-03-09T12:00:00", "2025-03-09", "yesterday", ""])
    def test_refuses_anything_without_a_zone(self, text: str) -> None:
        """A naive date-time, a bare date or a word is refused."""
        with pytest.raises(InvalidAsOfError):
            parse_as_of(text)


class TestRetention:
    def test_keeps_at_most_keep_and_always_the_newest(self) -> None:
        """Retention never drops the newest snapshot and leaves ``keep`` of them."""
        refs = [SnapshotRef(Position(f"{i}-0"), i * 10) for i in range(1, 21)]
        dropped = to_drop(refs, 5)
        kept = [r for r in refs if r not in dropped]
        assert len(kept) == 5
        assert kept[-1] == refs[-1]

    def test_kept_snapshots_stay_spread_over_the_history(self) -> None:
        """Thinning keeps the largest gap within about twice an even spacing."""
        refs: list[SnapshotRef] = []
        for i in range(1, 101):  # written one by one, thinned after each
            refs.append(SnapshotRef(Position(f"{i}-0"), i * 10))
            refs = [r for r in refs if r not in to_drop(refs, 8)]
        ordinals = [0, *(r.ordinal for r in refs)]
        gaps = [b - a for a, b in itertools.pairwise(ordinals)]
        assert len(refs) == 8
        assert max(gaps) <= 2 * 1000 / 8 + 10


class TestAsOfEqualsThePureFold:
    @pytest.mark.parametrize("name", ASOF_PROJECTIONS)
    async def test_without_snapshots(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded], name: str
    ) -> None:
        """With no snapshot, each as-of state is the fold of the events known by then."""
        projection = PROJECTIONS[name]
        reader = AsOfReader(redis_client, key_prefix)
        for at in times(recorded):
            state, position = await reader.state_at(projection, at)
            known = known_at(recorded, at)
            assert state == as_of_fold(projection, known), at
            assert position == (known[-1].position if known else None)

    async def test_a_position_folded_once_answers_again_without_a_fold(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """Every time asked twice in a row: one fold per position,
        the kept fold's answers equal to the pure fold's, and a change to an answer's state
        never reaches the kept one."""
        projection = PROJECTIONS[victims.NAME]
        reader = AsOfReader(redis_client, key_prefix)
        moments = times(recorded)
        for at in (at for moment in moments for at in (moment, moment)):
            state, _ = await reader.state_at(projection, at)
            assert state == as_of_fold(projection, known_at(recorded, at)), at
        positions = {
            known_at(recorded, at)[-1].position for at in moments if known_at(recorded, at)
        }
        assert reader.folds == len(positions)
        state, _ = await reader.state_at(projection, moments[-1])
        state.put("total", "tampered", next(iter(state.kinds()["total"].values())))
        again, _ = await reader.state_at(projection, moments[-1])
        assert "tampered" not in again.kinds()["total"]

    @pytest.mark.parametrize("name", ASOF_PROJECTIONS)
    async def test_with_snapshots_and_after_retention(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded], name: str
    ) -> None:
        """From snapshots every 3 entries (the earliest dropped), answers stay the fold's."""
        projection = PROJECTIONS[name]
        snapshotter = Snapshotter(
            redis_client, prefix=key_prefix, every=3, keep=2, projections=[projection]
        )
        assert await snapshotter.run_once() == 3
        refs = await SnapshotStore(redis_client, key_prefix).refs(projection)
        assert [r.ordinal for r in refs] == [6, 9]  # the one at 3 gave way (keep=2)
        assert [r.position for r in refs] == [recorded[5].position, recorded[8].position]
        reader = AsOfReader(redis_client, key_prefix)
        for at in times(recorded):
            state, _ = await reader.state_at(projection, at)
            assert state == as_of_fold(projection, known_at(recorded, at)), at

    async def test_answers_change_across_revision_merge_and_retraction(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """The victims total follows the log: 10, 14, 29 after the revision, 25, 32, 25."""
        projection = PROJECTIONS[victims.NAME]
        reader = AsOfReader(redis_client, key_prefix)
        totals = []
        for r in recorded:
            state, _ = await reader.state_at(projection, r.recorded_at)
            totals.append(victims.query(state).total.best)
        assert totals == [10, 14, 14, 29, 29, 25, 32, 32, 25, 25]


class TestSnapshots:
    async def test_snapshot_round_trips_a_state(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """A stored snapshot reads back, by position, as the state it was written from."""
        projection = PROJECTIONS["country-stance"]
        state = fold(projection, recorded[:5])
        store = SnapshotStore(redis_client, key_prefix)
        await store.save(projection, state, recorded[4].position, 5)
        assert await store.load(projection, recorded[4].position) == state
        assert await store.load(projection, recorded[3].position) is None

    def test_corrupt_blob_is_refused(self) -> None:
        """Bytes that are no snapshot raise :class:`CorruptSnapshotError`."""
        projection = PROJECTIONS["alignment"]
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(projection, b"not a snapshot")
        blob = encode_snapshot(fold(PROJECTIONS["incidents"], []), Position("1-0"), 1)
        assert decode_snapshot(projection, blob) == projection.initial()

    async def test_nothing_is_written_before_every_entries_exist(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """With fewer log entries than ``every`` no snapshot is due."""
        snapshotter = Snapshotter(redis_client, prefix=key_prefix, every=len(recorded) + 1)
        assert await snapshotter.run_once() == 0
        for name in ASOF_PROJECTIONS:
            assert await SnapshotStore(redis_client, key_prefix).refs(PROJECTIONS[name]) == []

    async def test_snapshotter_waits_while_another_holds_the_lease(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """While another process holds a projection's lease nothing is written; stop releases."""
        projection = PROJECTIONS["alignment"]
        lease = Keys(key_prefix).snapshot_lease(projection.name, projection.version)
        await redis_client.set(lease, "another-process", px=60_000)
        snapshotter = Snapshotter(
            redis_client, prefix=key_prefix, every=2, projections=[projection], owner="me"
        )
        assert await snapshotter.run_once() == 0
        await redis_client.delete(lease)
        assert await snapshotter.run_once() == 5
        assert await redis_client.get(lease) == b"me"
        await snapshotter.stop()
        assert await redis_client.exists(lease) == 0
        refs = await SnapshotStore(redis_client, key_prefix).refs(projection)
        assert [r.ordinal for r in refs] == [2, 4, 6, 8, 10]

    async def test_a_writer_folds_on_from_the_state_it_kept_and_reloads_after_another_wrote(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        recorded: list[Recorded],  # the ten events of the history, already in the log
    ) -> None:
        """Its next round loads nothing from the store; once another writer wrote since, it
        loads that writer's snapshot. Every snapshot written is the fold's state there."""
        projection = PROJECTIONS[victims.NAME]
        loaded: list[Position] = []

        class Counted(SnapshotStore):
            async def load(self, *args: Any, **options: Any) -> Any:
                loaded.append(args[1])
                return await super().load(*args, **options)

        def writer(owner: str) -> Snapshotter:
            one = Snapshotter(
                redis_client, prefix=key_prefix, every=2, projections=[projection], owner=owner
            )
            one.store = Counted(redis_client, Keys(key_prefix))
            return one

        first, second = writer("first"), writer("second")
        assert await first.run_once() == 5  # 10 entries
        assert loaded == []  # from the start of the log: nothing to load
        await redis_store.append([f.reported(f"j-{n}", best=n + 1) for n in range(4)])
        assert await first.run_once() == 2  # at 12 and 14
        assert loaded == []  # on from the state it kept
        lease = Keys(key_prefix).snapshot_lease(projection.name, projection.version)
        await redis_client.delete(lease)  # as if it expired: the other writer takes a round
        await redis_store.append([f.reported("k-1", best=3), f.reported("k-2", best=5)])
        assert await second.run_once() == 1  # at 16, from the first's snapshot at 14
        await redis_client.delete(lease)
        await redis_store.append([f.reported("m-1"), f.merged("k-1", into="i-1")])
        assert await first.run_once() == 1  # at 18: its kept state (at 14) is behind
        log = await redis_store.read(count=100)
        assert loaded == [log[13].position, log[15].position]
        store = SnapshotStore(redis_client, key_prefix)
        refs = await store.refs(projection)
        assert [r.ordinal for r in refs][-3:] == [14, 16, 18]
        for ref in refs:
            expected = as_of_fold(projection, log[: ref.ordinal])
            assert await store.load(projection, ref.position) == expected, ref.ordinal

    async def test_service_task_writes_snapshots_in_the_background(
        self, redis_client: aioredis.Redis, key_prefix: str, recorded: list[Recorded]
    ) -> None:
        """Started as a component, the snapshotter catches up without being asked."""
        snapshotter = Snapshotter(redis_client, prefix=key_prefix, every=4, interval=0.05)
        await snapshotter.start()
        store = SnapshotStore(redis_client, key_prefix)

        async def two_written() -> bool:
            refs = [await store.refs(PROJECTIONS[name]) for name in ASOF_PROJECTIONS]
            return all(len(r) >= 2 for r in refs)

        try:
            await until(two_written, "two snapshots of each projection", every=0.001)
        finally:
            await snapshotter.stop()
        assert [r.ordinal for r in await store.refs(PROJECTIONS["alignment"])] == [4, 8]


class TestAsOfOverHttp:
    @pytest.fixture
    async def client(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis
    ) -> AsyncIterator[httpx.AsyncClient]:
        """A reader's client of the API."""
        tokens = (Token(role="reader", secret=READER),)
        settings = Settings(tokens=tokens, key_prefix=redis_store.keys.prefix)
        app = http_app(settings, store=redis_store, client=redis_client)
        async with client_of(app, headers={"authorization": f"Bearer {READER}"}) as http:
            yield http

    async def test_answer_echoes_as_of_with_its_position_and_no_lag(
        self, client: httpx.AsyncClient, recorded: list[Recorded]
    ) -> None:
        """``position`` is the last one at or before the time, ``lag`` 0, ``as_of`` echoed."""
        at = recorded[3].recorded_at
        response = await client.get(
            "/v1/projections/community-victims", params={"as_of": at.isoformat()}
        )
        answer = response.json()
        assert answer["position"] == recorded[3].position
        assert answer["lag"] == 0
        assert parse_as_of(answer["as_of"]) == at
        assert answer["total"]["best"] == 29

    async def test_as_of_answers_the_log_even_while_the_view_lags(
        self,
        client: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        key_prefix: str,
        recorded: list[Recorded],
    ) -> None:
        """With half the log applied, as-of still answers from the whole log."""
        later = recorded[-1].recorded_at
        views: dict[str, Any] = {}
        for url, query in {
            "/v1/projections/country-stance": {"subject": "syria-civilians"},
            "/v1/projections/alignment": {},
        }.items():
            views[url] = (
                await client.get(url, params={**query, "as_of": later.isoformat()})
            ).json()
        stance = PROJECTIONS["country-stance"]
        expected = fold(stance, recorded)
        rows = country_stance.stances(expected, subject="syria-civilians")
        assert [r["country"] for r in views["/v1/projections/country-stance"]["countries"]] == [
            r.country for r in rows
        ]
        pairs = alignment.pairs(fold(PROJECTIONS["alignment"], recorded))
        assert [
            (p["a"], p["b"], p["score"]) for p in views["/v1/projections/alignment"]["pairs"]
        ] == [(p.a, p.b, p.score) for p in pairs]
        current = (await client.get("/v1/projections/alignment")).json()
        assert (current["position"], current["lag"]) == (None, len(recorded))
        async with asyncio.timeout(DEADLINE):
            await ProjectorPool(redis_client, prefix=key_prefix, block_ms=50).run_until_caught_up()
        caught_up = (await client.get("/v1/projections/alignment")).json()
        assert caught_up["pairs"] == views["/v1/projections/alignment"]["pairs"]

    async def test_time_before_the_log_answers_nothing(
        self, client: httpx.AsyncClient, recorded: list[Recorded]
    ) -> None:
        """Before the first event the answer is empty with no position."""
        early = recorded[0].recorded_at - dt.timedelta(days=1)
        answer = (
            await client.get(
                "/v1/projections/community-victims", params={"as_of": early.isoformat()}
            )
        ).json()
        assert (answer["position"], answer["total"]["best"], answer["communities"]) == (None, 0, [])


class TestTheSnapshotProcess:
    async def test_ledger_snapshots_writes_as_of_snapshots(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """The deployed shape (API and projectors without snapshots) keeps as-of answers
        fast: the snapshot process writes them, folding the history on its own."""
        settings = msgspec.structs.replace(
            load_settings({}), key_prefix=key_prefix, snapshot_every=5
        )
        await redis_store.append([f.reported(f"i-{n}") for n in range(12)])
        running = asyncio.create_task(write_snapshots(settings, redis_url=redis_url))
        store = SnapshotStore(redis_client, key_prefix)
        try:
            async with asyncio.timeout(20):
                while len(await store.refs(PROJECTIONS["country-stance"])) < 2:
                    assert not running.done(), running.exception()
                    await asyncio.sleep(0.05)
        finally:
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        assert [ref.ordinal for ref in await store.refs(PROJECTIONS["community-victims"])] == [
            5,
            10,
        ]

    async def test_snapshots_turned_off_are_refused(self, redis_url: str, key_prefix: str) -> None:
        settings = msgspec.structs.replace(
            load_settings({}), key_prefix=key_prefix, snapshot_every=0
        )
        with pytest.raises(SnapshotsOffError, match="LEDGER_SNAPSHOT_EVERY"):
            await write_snapshots(settings, redis_url=redis_url)
