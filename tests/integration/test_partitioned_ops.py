"""Operator tools on a log split into three partitions, against a real Redis.

Each test writes events of several incidents and statements (they spread over the
partitions), runs the projectors of every partition until they are caught up, and checks
verify, status, dead letters, export/import, as-of and blue/green rebuilds per partition.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import time
from collections.abc import AsyncIterator

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from typer.testing import Result

from events import (
    AnyEvent,
    Position,
    Recorded,
    from_fields,
    position_key,
    recorded_at_of,
)
from projections import PROJECTIONS, Projection, fold
from projections.docs import Docs
from services.bootstrap import http_app
from services.ops.dead_letters import (
    DeadLetterNotFoundError,
    dlq_drop,
    dlq_list,
    dlq_retry,
    dlq_show,
    parse_letter_id,
)
from services.ops.status import ledger_status
from services.ops.transfer import export_events, import_lines
from services.ops.verify import verify_all
from services.projector.pool import ProjectorPool
from services.projector.replay import Replay
from services.projector.replay_records import ReplayPartitionedError, ReplayRecord, replay_status
from services.projector.snapshots import Snapshotter
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.asof import ASOF_PROJECTIONS, AsOfReader
from services.views.generations import active_generation, current_view_keys, view_keys
from services.views.redis import load_view_paged
from services.views.snapshots import own_kinds
from tests.support import builders as f
from tests.support.cli import ledger
from tests.support.http import client_of
from tests.support.runner import FAST, skipped_letter
from tests.support.streams import entries as stream_entries

PARTITIONS = 3
DEADLINE = 30.0
INCIDENTS = PROJECTIONS["incidents"]
OPERATOR = "operator-token-0123456789"


def first_batch() -> list[AnyEvent]:
    """Reports of eight incidents and two statements."""
    events: list[AnyEvent] = [f.reported(f"i-{n}", 10 + n) for n in range(8)]
    events += [f.statement("s-1"), f.statement("s-2")]
    return events


def second_batch() -> list[AnyEvent]:
    """Revisions, a retraction, a merge across incidents and a retracted statement."""
    return [
        f.revised("i-0", 20),
        f.revised("i-5", 30),
        f.retracted("i-3"),
        f.merged("i-7", "i-1"),
        f.statement_retracted("s-2"),
    ]


def keys_of(prefix: str) -> Keys:
    """The three-partition keys of ``prefix``."""
    return Keys(prefix, PARTITIONS)


async def partition_log(client: aioredis.Redis, keys: Keys, partition: int) -> list[Recorded]:
    """Every event of one partition, in order."""
    found = []
    for ident, fields in await stream_entries(client, keys.log_of(partition)):
        position = Position(ident.decode())
        found.append(Recorded(position, recorded_at_of(position), from_fields(fields)))
    return found


async def caught_up(
    client: aioredis.Redis, keys: Keys, projections: list[Projection] | None = None
) -> None:
    """Run the projectors of every partition until each view reaches its partition's head."""
    chosen = list(PROJECTIONS.values()) if projections is None else projections
    pool = ProjectorPool(client, prefix=keys, projections=chosen, **FAST)
    async with asyncio.timeout(DEADLINE):
        await pool.run_until_caught_up()


async def past(millis: int) -> None:
    """Return once the clock's millisecond is past ``millis`` (polled, with a deadline)."""
    deadline = time.monotonic() + 5
    while time.time() * 1000 <= millis + 1:
        assert time.monotonic() < deadline, "the clock did not advance"
        await asyncio.sleep(0.001)


@pytest.fixture
async def store(redis_client: aioredis.Redis, key_prefix: str) -> RedisEventStore:
    """A three-partition store under the test's prefix."""
    return RedisEventStore(redis_client, prefix=key_prefix, partitions=PARTITIONS)


@pytest.fixture
async def projected(redis_client: aioredis.Redis, store: RedisEventStore, key_prefix: str) -> Keys:
    """Both batches appended and every projection caught up on every partition."""
    await store.append(first_batch())
    await store.append(second_batch())
    keys = keys_of(key_prefix)
    await caught_up(redis_client, keys)
    return keys


class TestSpread:
    """The scenario exercises several partitions (else the tests below prove little)."""

    async def test_events_land_in_more_than_one_partition(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """At least two partitions hold events."""
        sizes = [int(await redis_client.xlen(log)) for log in projected.logs]
        assert sum(1 for n in sizes if n) >= 2
        assert sum(sizes) == len(first_batch()) + len(second_batch())


class TestVerify:
    """``verify_all`` compares each partition view with the fold of its partition."""

    async def test_every_partition_view_verifies(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """After a catch-up every (projection, partition) view equals its fold."""
        for projection in PROJECTIONS.values():
            results = await verify_all(redis_client, projected, projection)
            assert [r.partition for r in results] == list(range(PARTITIONS))
            assert all(r.ok for r in results), [r.differences for r in results if not r.ok]
            assert sum(r.events for r in results) == len(first_batch()) + len(second_batch())

    async def test_a_tampered_partition_view_is_detected_there(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """A document changed by hand in one partition view fails that partition alone."""
        partition = projected.partition_of("incident:i-0")
        view = await current_view_keys(redis_client, projected, INCIDENTS, partition=partition)
        kind = next(iter(view.kinds))
        ident: bytes = next(iter(await redis_client.hkeys(view.kinds[kind])))  # type: ignore[assignment]
        await redis_client.hset(view.kinds[kind], ident, b'{"tampered": true}')
        results = await verify_all(redis_client, projected, INCIDENTS)
        bad = [r.partition for r in results if not r.ok]
        assert bad == [partition]
        (difference,) = results[partition].differences
        assert difference.id == ident.decode()
        assert difference.stored == '{"tampered": true}'


class TestStatus:
    """``ledger_status`` has one row per (projection, partition)."""

    async def test_rows_per_projection_and_partition(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """Every partition of every projection is shown, caught up; the log counts them all."""
        status = await ledger_status(redis_client, projected, [INCIDENTS])
        assert [(r.name, r.partition) for r in status.projections] == [
            (INCIDENTS.name, p) for p in range(PARTITIONS)
        ]
        assert status.max_lag() == 0
        assert status.log.length == len(first_batch()) + len(second_batch())
        assert status.log.partitions == PARTITIONS
        assert status.log.last is not None
        assert len(status.log.last.split(",")) == PARTITIONS

    async def test_max_lag_sums_the_partitions(
        self, redis_client: aioredis.Redis, store: RedisEventStore, projected: Keys
    ) -> None:
        """Events appended after the catch-up count as the projection's summed lag."""
        await store.append([f.reported(f"late-{n}") for n in range(6)])
        status = await ledger_status(redis_client, projected, [INCIDENTS])
        assert status.max_lag() == 6
        assert sum(r.lag for r in status.projections) == 6


class TestDeadLetters:
    """Dead letters of every partition, with ids that name their partition."""

    async def test_ids_name_the_partition_and_round_trip(
        self, redis_client: aioredis.Redis, store: RedisEventStore, projected: Keys
    ) -> None:
        """``dlq list`` shows ``p<N>:<id>``; show finds the letter by it; a bare id is refused."""
        partition, entry_id = await skipped_letter(redis_client, store, projected, "dead-1")
        (letter,) = await dlq_list(redis_client, projected)
        assert letter.id == f"p{partition}:{entry_id}"
        assert parse_letter_id(projected, letter.id) == (partition, entry_id)
        shown = await dlq_show(redis_client, projected, letter.id)
        assert (shown.partition, shown.entry_id, shown.entry) == (
            partition,
            entry_id,
            letter.entry,
        )
        with pytest.raises(DeadLetterNotFoundError):
            await dlq_show(redis_client, projected, entry_id)
        other = (partition + 1) % PARTITIONS
        with pytest.raises(DeadLetterNotFoundError):
            await dlq_show(redis_client, projected, f"p{other}:{entry_id}")

    async def test_retry_writes_the_view_of_the_letters_partition(
        self, redis_client: aioredis.Redis, store: RedisEventStore, projected: Keys
    ) -> None:
        """The retried report appears in its partition view, which still verifies; the
        retry is recorded in the dead-letter log."""
        partition, entry_id = await skipped_letter(redis_client, store, projected, "dead-2")
        ident = f"p{partition}:{entry_id}"
        view = await current_view_keys(redis_client, projected, INCIDENTS, partition=partition)
        before, _ = await load_view_paged(
            redis_client, projected, INCIDENTS, generation=view.generation, partition=partition
        )
        await dlq_retry(redis_client, projected, ident, by="test")
        after, _ = await load_view_paged(
            redis_client, projected, INCIDENTS, generation=view.generation, partition=partition
        )
        assert after.kinds() != before.kinds()
        assert await dlq_list(redis_client, projected) == []
        results = await verify_all(redis_client, projected, INCIDENTS)
        assert all(r.ok for r in results)
        ((_, record),) = await stream_entries(redis_client, projected.dlq_log)
        assert (record[b"action"], record[b"dlq_id"]) == (b"retry", ident.encode())

    async def test_drop_removes_the_letter_and_records_it(
        self, redis_client: aioredis.Redis, store: RedisEventStore, projected: Keys
    ) -> None:
        """A dropped letter leaves its partition's stream and is logged with the reason."""
        partition, entry_id = await skipped_letter(redis_client, store, projected, "dead-3")
        ident = f"p{partition}:{entry_id}"
        await dlq_drop(redis_client, projected, ident, reason="bad feed data")
        assert await redis_client.xlen(projected.dlq_of(partition)) == 0
        ((_, record),) = await stream_entries(redis_client, projected.dlq_log)
        assert (record[b"action"], record[b"reason"]) == (b"drop", b"bad feed data")


class TestTransfer:
    """Export reads every partition; import routes the events back by partition."""

    async def test_export_then_import_reproduces_every_partition(
        self, redis_client: aioredis.Redis, projected: Keys, key_prefix: str
    ) -> None:
        """An import into another prefix holds the same events in each partition, in order."""
        out = io.BytesIO()
        written = await export_events(redis_client, projected, out)
        assert written == len(first_batch()) + len(second_batch())
        lines = [msgspec.json.decode(line) for line in out.getvalue().splitlines()]
        order = [position_key(line["position"]) for line in lines]
        assert order == sorted(order)
        copy = keys_of(f"{key_prefix}:copy")
        target = RedisEventStore(redis_client, prefix=copy.prefix, partitions=PARTITIONS)
        out.seek(0)
        report = await import_lines(target, out)
        assert (report.appended, report.problems) == (written, [])
        for partition in range(PARTITIONS):
            original = await partition_log(redis_client, projected, partition)
            imported = await partition_log(redis_client, copy, partition)
            assert [r.event for r in imported] == [r.event for r in original]

    async def test_bounds_per_partition_are_joined(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """``end`` joined per partition stops each partition at its own position."""
        heads = []
        for partition in range(PARTITIONS):
            log = await partition_log(redis_client, projected, partition)
            heads.append(log[0].position if log else "0-0")
        out = io.BytesIO()
        written = await export_events(redis_client, projected, out, end=",".join(heads))
        assert written == sum(1 for head in heads if head != "0-0")


class TestAsOf:
    """As-of merges the partitions' folds of the events recorded by then."""

    async def test_as_of_between_batches_is_the_merge_of_partition_folds(
        self, redis_client: aioredis.Redis, store: RedisEventStore, key_prefix: str
    ) -> None:
        """At a time between two batches the answer is the merge of each partition's fold of
        the first batch, and the position names each partition's last event by then."""
        keys = keys_of(key_prefix)
        first = await store.append(first_batch())
        last_ms = max(position_key(a.position)[0] for a in first)
        await past(last_ms)
        at = dt.datetime.fromtimestamp((last_ms + 1) / 1000, dt.UTC)
        await past(last_ms + 1)
        await store.append(second_batch())
        reader = AsOfReader(redis_client, keys)
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            state, position = await reader.state_at(projection, at)
            parts = []
            lasts = []
            for partition in range(PARTITIONS):
                early = [
                    r
                    for r in await partition_log(redis_client, keys, partition)
                    if position_key(r.position)[0] <= last_ms + 1
                ]
                parts.append(fold(projection, early))
                lasts.append(early[-1].position if early else "0-0")
            merged = projection.merge(parts).kinds()
            omit = own_kinds(projection)  # as every as-of state: without what snapshots omit
            assert state.kinds() == {k: docs for k, docs in merged.items() if k not in omit}
            assert position == ",".join(lasts)

    async def test_the_snapshotter_does_nothing_on_partitions(
        self, redis_client: aioredis.Redis, store: RedisEventStore, key_prefix: str
    ) -> None:
        """On several partitions no snapshot is due, whatever the log's length."""
        await store.append(first_batch())
        snapshots = Snapshotter(redis_client, prefix=keys_of(key_prefix), every=1)
        assert await snapshots.run_once() == 0


def cli(redis_url: str, prefix: str, *args: str) -> Result:
    """Run ``ledger <args>`` against the test's Redis and prefix on three partitions."""
    return ledger(redis_url, prefix, *args, LEDGER_PARTITIONS=str(PARTITIONS))


class TestCli:
    """The CLI works on the deployment's partitions."""

    async def test_verify_and_status_over_the_cli(
        self, redis_url: str, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """``verify`` exits 0 with a line per partition; ``status --json`` has their rows."""
        done = await asyncio.to_thread(cli, redis_url, projected.prefix, "verify", "incidents")
        assert done.exit_code == 0, done.output
        assert done.output.count("partition") == PARTITIONS
        shown = await asyncio.to_thread(cli, redis_url, projected.prefix, "status", "--json")
        assert shown.exit_code == 0, shown.output
        rows = msgspec.json.decode(shown.stdout)["projections"]
        assert len(rows) == PARTITIONS * len(PROJECTIONS)

    async def test_replay_exits_0_and_moves_every_partition(
        self, redis_url: str, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """``ledger replay`` on a partitioned log exits 0 with every partition on generation 1."""
        done = await asyncio.to_thread(cli, redis_url, projected.prefix, "replay", "incidents")
        assert done.exit_code == 0, done.output
        assert await generations(redis_client, projected, INCIDENTS) == [1] * PARTITIONS
        await assert_partition_folds(redis_client, projected, INCIDENTS, 1)

    async def test_replay_until_is_refused_with_exit_2(
        self, redis_url: str, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """``ledger replay --until`` on several partitions exits 2, says why, moves nothing."""
        done = await asyncio.to_thread(
            cli, redis_url, projected.prefix, "replay", "incidents", "--until", "2030-01-01"
        )
        assert done.exit_code == 2
        assert "partitions" in done.output
        assert await generations(redis_client, projected, INCIDENTS) == [0] * PARTITIONS


async def generations(client: aioredis.Redis, keys: Keys, projection: Projection) -> list[int]:
    """The active generation of every partition view of ``projection``."""
    return [
        await active_generation(client, keys, projection, partition=p)
        for p in range(keys.partitions)
    ]


async def assert_partition_folds(
    client: aioredis.Redis, keys: Keys, projection: Projection, generation: int
) -> None:
    """Each partition view of ``generation`` is the fold of its partition's log, and their
    merge is the merge of those folds."""
    stored, folds = [], []
    for partition in range(keys.partitions):
        docs, checkpoint = await load_view_paged(
            client, keys, projection, generation=generation, partition=partition
        )
        log = await partition_log(client, keys, partition)
        assert checkpoint == (log[-1].position if log else None)
        assert filled(docs) == filled(fold(projection, log))
        stored.append(docs)
        folds.append(fold(projection, log))
    assert filled(projection.merge(stored)) == filled(projection.merge(folds))


def filled(docs: Docs[msgspec.Struct]) -> dict[str, dict[str, msgspec.Struct]]:
    """The documents by kind, without the kinds that hold none (a stored view lists them)."""
    return {kind: dict(by_id) for kind, by_id in docs.kinds().items() if by_id}


class TestReplay:
    """A blue/green rebuild on three partitions rebuilds and swaps every partition view."""

    async def test_replay_beside_a_running_pool_swaps_every_partition(
        self, redis_client: aioredis.Redis, store: RedisEventStore, projected: Keys
    ) -> None:
        """Every partition view is rebuilt to generation 1 and the old generation dropped;
        progress counts every partition's events; the running pool then folds new events
        into the new generations."""
        total = sum([int(await redis_client.xlen(log)) for log in projected.logs])
        seen: list[tuple[int, int]] = []
        pool = ProjectorPool(redis_client, prefix=projected, projections=[INCIDENTS], **FAST)
        await pool.start()
        try:
            async with asyncio.timeout(DEADLINE):
                await pool.run_until_caught_up()
            record = await Replay(
                redis_client,
                INCIDENTS,
                prefix=projected,
                batch_size=2,
                progress=lambda done, of: seen.append((done, of)),
            ).run()
            assert (record.state, record.generation, record.done) == ("done", 1, total)
            assert [part.generation for part in record.partitions] == [1] * PARTITIONS
            assert seen[-1] == (total, total)
            assert await generations(redis_client, projected, INCIDENTS) == [1] * PARTITIONS
            await assert_partition_folds(redis_client, projected, INCIDENTS, 1)
            for partition in range(PARTITIONS):
                old = view_keys(projected, INCIDENTS, 0, partition=partition)
                assert not await redis_client.exists(old.meta, *old.kinds.values())

            await store.append([f.reported(f"after-{n}", 3 + n) for n in range(6)])
            await store.append([f.revised("i-2", 40), f.retracted("after-1")])
            async with asyncio.timeout(DEADLINE):
                await pool.run_until_caught_up()
        finally:
            await pool.stop()
        assert await generations(redis_client, projected, INCIDENTS) == [1] * PARTITIONS
        await assert_partition_folds(redis_client, projected, INCIDENTS, 1)
        results = await verify_all(redis_client, projected, INCIDENTS)
        assert all(r.ok for r in results), [r.differences for r in results if not r.ok]

    async def test_a_rebuild_killed_after_partition_0_resumes_the_others(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """Killed at the first batch after partition 0 swapped, the rebuild shows partition 0
        done and the rest building; run again, it folds only what was left and swaps them."""
        lengths = [int(await redis_client.xlen(log)) for log in projected.logs]
        assert sum(lengths[1:]) > 0
        first = lengths[0]

        async def kill_after_partition_0(batch: int) -> None:
            if batch == first + 1:
                raise KilledError

        with pytest.raises(KilledError):
            await Replay(
                redis_client, INCIDENTS, prefix=projected, batch_size=1, hook=kill_after_partition_0
            ).run()
        status = await replay_status(redis_client, projected, INCIDENTS)
        assert status is not None
        assert (status.state, status.generation, status.running) == ("building", 1, False)
        assert "KilledError" in status.error
        assert [part.state for part in status.partitions] == ["done"] + ["building"] * (
            PARTITIONS - 1
        )
        assert await generations(redis_client, projected, INCIDENTS) == [1] + [0] * (PARTITIONS - 1)

        resumed = Replay(redis_client, INCIDENTS, prefix=projected, batch_size=1)
        record: ReplayRecord = await resumed.run()
        assert (record.state, record.generation) == ("done", 1)
        assert resumed.batches == sum(lengths) - first - 1  # only what was left
        assert await generations(redis_client, projected, INCIDENTS) == [1] * PARTITIONS
        await assert_partition_folds(redis_client, projected, INCIDENTS, 1)

    async def test_a_second_replay_takes_generation_2_everywhere(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """A finished rebuild is not resumed: the next one builds generation 2 of each."""
        await Replay(redis_client, INCIDENTS, prefix=projected).run()
        record = await Replay(redis_client, INCIDENTS, prefix=projected).run()
        assert record.generation == 2
        assert await generations(redis_client, projected, INCIDENTS) == [2] * PARTITIONS
        await assert_partition_folds(redis_client, projected, INCIDENTS, 2)

    async def test_until_is_refused_on_partitions(
        self, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """``build_until`` on three partitions raises :class:`ReplayPartitionedError`."""
        with pytest.raises(ReplayPartitionedError):
            await Replay(redis_client, INCIDENTS, prefix=projected).build_until(
                dt.datetime.now(dt.UTC)
            )


class KilledError(Exception):
    """Raised by the batch hook to kill a rebuild half-way."""


@pytest.fixture
async def admin_http(
    redis_client: aioredis.Redis, store: RedisEventStore, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of an app with the operator routes on three partitions."""
    tokens = (Token(role="operator", secret=OPERATOR),)
    settings = Settings(tokens=tokens, key_prefix=key_prefix, partitions=PARTITIONS)
    app = http_app(settings, store=store, client=redis_client)
    async with client_of(app) as client:
        yield client


class TestAdminHttp:
    """The operator routes on a partitioned log."""

    async def test_replay_runs_in_the_background_on_every_partition(
        self, admin_http: httpx.AsyncClient, redis_client: aioredis.Redis, projected: Keys
    ) -> None:
        """POST replay answers 202; the status ends done, with a record per partition."""
        auth = {"authorization": f"Bearer {OPERATOR}"}
        started = await admin_http.post("/v1/admin/replay/incidents", headers=auth)
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + DEADLINE
        while True:
            answer = await admin_http.get("/v1/admin/replay/incidents", headers=auth)
            (row,) = answer.json()["replays"]
            if row["status"] == "done":
                break
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.01)
        assert row["record"]["generation"] == 1
        assert len(row["record"]["partitions"]) == PARTITIONS
        assert await generations(redis_client, projected, INCIDENTS) == [1] * PARTITIONS

    async def test_dlq_route_lists_partition_ids(
        self,
        admin_http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        store: RedisEventStore,
        projected: Keys,
    ) -> None:
        """GET dlq shows the letter under its ``p<N>:`` id, and retry by that id works."""
        partition, entry_id = await skipped_letter(redis_client, store, projected, "dead-4")
        auth = {"authorization": f"Bearer {OPERATOR}"}
        listed = await admin_http.get("/v1/admin/dlq", headers=auth)
        ids = [one["id"] for one in listed.json()["dead_letters"]]
        assert ids == [f"p{partition}:{entry_id}"]
        retried = await admin_http.post(
            f"/v1/admin/dlq/p{partition}:{entry_id}/retry", headers=auth
        )
        assert retried.status_code == 200, retried.text
