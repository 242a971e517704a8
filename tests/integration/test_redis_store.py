"""The Redis event store against a real Redis: wire format, key layout, failures, races."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import msgspec
import pytest
import redis.asyncio as aioredis
import zstandard

import events
from events import ENTRY_JSON, MAX_BATCH, CodecError, Position, to_fields
from services.runtime.redis_server import free_port
from services.store.base import (
    Appended,
    ConflictError,
    EntityState,
    IdReusedError,
    NotOwnerError,
    StoreUnavailableError,
)
from services.store.connection import SOCKET_TIMEOUT, connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.store.rules import DIGEST_CHARS
from tests.support.builders import merged, reported, revised
from tests.support.streams import added
from tests.support.streams import entries as stream_entries


class TestIndexesWrittenBeforeOwnersAndDigests:
    """Index entries written before the store kept owners and digests read on as before."""

    async def test_an_entity_without_an_owner_is_changed_by_any_feed(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given an incident whose state was written as ``1|live``, when another feed
        revises it, then the revision is appended (there is no owner to check)."""
        await redis_store.append([reported("i-1")])
        keys = Keys(key_prefix)  # as an entity recorded before owners and buckets:
        await redis_client.hdel(keys.entity_bucket_of(0, "incident:i-1"), "incident:i-1")
        await redis_client.hset(keys.entities, "incident:i-1", "1|live")
        (answer,) = await redis_store.append([revised("i-1", source="acled")])
        assert answer.status == "appended"
        assert await redis_store.entity("incident:i-1") == EntityState(2, "live")

    async def test_an_id_indexed_without_a_digest_is_a_duplicate_whatever_the_body(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given an id indexed as a bare position, when it comes with another body, then it
        answers duplicate as it did then (there is no digest to compare)."""
        event = reported("i-1", best=5)
        (first,) = await redis_store.append([event])
        keys = Keys(key_prefix)  # as an id indexed before digests and buckets:
        await redis_client.hdel(keys.id_bucket_of(0, event.event_id), event.event_id.bytes)
        await redis_client.hset(keys.ids, str(event.event_id), first.position)
        (again,) = await redis_store.append([reported("i-1", best=50, event_id=event.event_id)])
        assert (again.status, again.position) == ("duplicate", first.position)


DICTIONARY = Path(events.__file__).parent / "data" / "entries-2.zdict"


class TestEntriesWrittenBeforeCodecs:
    """A log whose older entries are codec 0 (``data`` JSON, no ``c``) reads and checks on."""

    async def test_a_log_of_old_and_new_entries_reads_in_order(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given an entry written as before codecs, when new ones follow, then the store reads
        all of them, each as its event, in log order."""
        old = reported("i-1", best=3)
        await added(redis_client, Keys(key_prefix).log, to_fields(old, ENTRY_JSON))
        new = [reported("i-2"), reported("i-3")]
        await redis_store.append(new)
        assert [r.event for r in await redis_store.read()] == [old, *new]

    @pytest.mark.parametrize("codec", [ENTRY_JSON, events.ENTRY_ZSTD])
    async def test_an_id_held_by_another_feeds_entry_is_taken_in_either_codec(
        self,
        redis_store: RedisEventStore,
        redis_client: aioredis.Redis,
        key_prefix: str,
        codec: int,
    ) -> None:
        """The script reads the feed of the entry holding an id from ``source`` (codec 2)
        or from the JSON ``data`` (codec 0): another feed gets id_taken, the same feed
        with another body id_reused."""
        keys = Keys(key_prefix)
        squat = reported("i-9", source="acled")
        position = (await added(redis_client, keys.log, to_fields(squat, codec))).decode()
        await redis_client.hset(keys.ids, str(squat.event_id), f"{position} xxxxxxxx")
        with pytest.raises(IdReusedError) as taken:
            await redis_store.append([reported("i-1", event_id=squat.event_id)])
        assert taken.value.reason == "id_taken"
        with pytest.raises(IdReusedError) as reused:
            await redis_store.append([reported("i-1", source="acled", event_id=squat.event_id)])
        assert (reused.value.reason, reused.value.position) == ("id_reused", position)


class TestWireFormat:
    """What the store writes is plain Redis data any client can read."""

    async def test_log_entries_are_plain_fields(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A raw XRANGE shows c, type, v, source and d, the rest of the event, which plain
        zstandard (with the shipped dictionary) and MessagePack decode."""
        event = reported("i-1", best=7)
        (appended,) = await redis_store.append([event])
        entries = await stream_entries(redis_client, Keys(key_prefix).log)
        assert len(entries) == 1
        entry_id, fields = entries[0]
        assert entry_id.decode() == appended.position
        assert set(fields) == {b"c", b"type", b"v", b"source", b"d"}
        assert fields[b"c"] == b"2"
        assert fields[b"type"] == b"incident.reported"
        assert fields[b"v"] == b"4"
        assert fields[b"source"] == event.source.encode()
        dictionary = zstandard.ZstdCompressionDict(DICTIONARY.read_bytes())
        data = msgspec.msgpack.decode(
            zstandard.ZstdDecompressor(dict_data=dictionary).decompress(fields[b"d"])
        )
        assert uuid.UUID(bytes=data["event_id"]) == event.event_id
        assert data["incident_id"] == "i-1"
        assert data["fatalities"]["best"] == 7
        assert "expected_version" not in data

    async def test_index_hashes_follow_the_documented_layout(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """ids (in buckets, under the id's 16 bytes), entities and history hold
        ``position digest``,
        ``version|status|into|owner|created`` and the positions after the first: an entity
        of one event has no history entry."""
        one, two, merge = reported("i-1"), reported("i-2"), merged("i-2", "i-1")
        answers = await redis_store.append([one, two, merge])
        keys = Keys(key_prefix)
        assert keys.log == f"{key_prefix}:{{p0}}:log"
        assert await redis_client.exists(keys.ids) == 0  # only buckets are written
        ids: dict[bytes, bytes] = {}
        for answer in answers:
            event_id = uuid.UUID(answer.event_id)
            bucket: dict[bytes, bytes] = await redis_client.hgetall(keys.id_bucket_of(0, event_id))  # type: ignore[assignment]
            assert await redis_client.object("encoding", keys.id_bucket_of(0, event_id)) in {
                b"listpack",
                "listpack",
            }
            ids[str(event_id).encode()] = bucket[event_id.bytes]
        held = {k.decode(): v.decode().split(" ") for k, v in ids.items()}
        assert {k: v[0] for k, v in held.items()} == {a.event_id: a.position for a in answers}
        assert {len(v[1]) for v in held.values()} == {DIGEST_CHARS}  # no private text
        assert await redis_client.exists(keys.entities) == 0  # only buckets are written
        entities = {}
        for entity in ("incident:i-1", "incident:i-2"):
            holder = keys.entity_bucket_of(0, entity)
            assert await redis_client.object("encoding", holder) in {b"listpack", "listpack"}
            entities[entity.encode()] = await redis_client.hget(holder, entity)
        first, second, third = (a.position.encode() for a in answers)
        assert entities == {
            b"incident:i-1": b"1|live||sohr|" + first,
            b"incident:i-2": b"2|merged|i-1|sohr|" + second,
        }
        history = await redis_client.hgetall(keys.history)
        assert history == {b"incident:i-1": third, b"incident:i-2": third}
        assert [r.position for r in await redis_store.read_entity("incident:i-1")] == [
            answers[0].position,
            answers[2].position,
        ]

    async def test_entities_recorded_before_created_positions_read_their_whole_history(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given an entity whose state has no created part and whose history holds every
        position (as written before), its events read the same, and a later event is added
        to that history."""
        keys = Keys(key_prefix)
        (first,) = await redis_store.append([reported("i-1")])
        await redis_client.hdel(keys.entity_bucket_of(0, "incident:i-1"), "incident:i-1")
        await redis_client.hset(keys.entities, "incident:i-1", "1|live||sohr")
        await redis_client.hset(keys.history, "incident:i-1", first.position)
        (second,) = await redis_store.append([revised("i-1")])
        held = await redis_client.hget(keys.history, "incident:i-1")
        assert held == f"{first.position} {second.position}".encode()
        bucket = keys.entity_bucket_of(0, "incident:i-1")
        assert await redis_client.hget(bucket, "incident:i-1") == b"2|live||sohr"
        read = await redis_store.read_entity("incident:i-1")
        assert [r.position for r in read] == [first.position, second.position]

    async def test_entities_recorded_before_buckets_read_on_and_move_when_they_change(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given entity states in the one hash written before buckets, versions, owners and
        statuses read from there (a stale version is refused, another feed's change too);
        a change writes the state to its bucket and removes it from the old hash."""
        keys = Keys(key_prefix)
        await redis_store.append([reported("i-1"), reported("i-2")])
        for entity in ("incident:i-1", "incident:i-2"):
            bucket = keys.entity_bucket_of(0, entity)
            state = await redis_client.hget(bucket, entity)
            await redis_client.hdel(bucket, entity)
            await redis_client.hset(keys.entities, entity, state)
        assert (await redis_store.entity("incident:i-1")) == EntityState(1, "live", owner="sohr")
        with pytest.raises(ConflictError):
            await redis_store.append([revised("i-1", expected_version=5)])
        with pytest.raises(NotOwnerError):
            await redis_store.append([revised("i-1", source="acled")])
        await redis_store.append([revised("i-1", expected_version=1)])
        bucket = keys.entity_bucket_of(0, "incident:i-1")
        moved = await redis_client.hget(bucket, "incident:i-1")
        assert isinstance(moved, bytes)
        assert moved.startswith(b"2|live||sohr|")
        assert await redis_client.hkeys(keys.entities) == [b"incident:i-2"]
        assert (await redis_store.entity("incident:i-2")) == EntityState(1, "live", owner="sohr")

    async def test_store_works_on_a_client_that_decodes_responses(
        self, redis_url: str, key_prefix: str
    ) -> None:
        """A client made with decode_responses=True reads and appends the same."""
        client = aioredis.Redis.from_url(redis_url, decode_responses=True)
        try:
            store = RedisEventStore(client, prefix=key_prefix)
            event = reported("i-1")
            answers = await store.append([event, revised("i-1")])
            log = await store.read()
            assert [r.position for r in log] == [a.position for a in answers]
            assert await store.read_entity("incident:i-1") == log
            assert await store.entity("incident:i-1") == EntityState(2, "live", owner="sohr")
            assert await store.head() == answers[-1].position
            (again,) = await store.append([event])
            assert (again.status, again.position) == ("duplicate", answers[0].position)
        finally:
            await client.aclose()

    async def test_undecodable_entry_raises_codec_error_naming_its_position(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A foreign entry in the log is reported as a CodecError with its position."""
        raw = await added(
            redis_client,
            Keys(key_prefix).log,
            {"type": "incident.reported", "v": "2", "data": "{not json"},
        )
        with pytest.raises(CodecError, match=raw.decode()):
            await redis_store.read()

    async def test_a_full_batch_is_one_call_within_the_service_timeouts(
        self, redis_url: str, key_prefix: str
    ) -> None:
        """MAX_BATCH events append in one script call on a client with 1 s timeouts."""
        client = connect(redis_url)
        try:
            store = RedisEventStore(client, prefix=key_prefix)
            batch = [reported(f"i-{n}") for n in range(MAX_BATCH)]
            answers = await store.append(batch)
            assert len(answers) == MAX_BATCH
            assert await store.length() == MAX_BATCH
            last = await store.read(answers[-2].position)
            assert [r.event.event_id for r in last] == [batch[-1].event_id]
        finally:
            await client.aclose()


FAILING_FAST = 10 * SOCKET_TIMEOUT
"""How long the failing calls of a test may take: each gives up within the socket timeout."""


class TestUnavailable:
    """An unreachable Redis is a StoreUnavailableError, promptly."""

    @pytest.mark.timeout(FAILING_FAST)
    async def test_every_operation_fails_fast_on_a_closed_port(self) -> None:
        """Each store call against a port nobody listens on raises StoreUnavailableError."""
        client = connect(f"redis://127.0.0.1:{free_port()}/0")
        store = RedisEventStore(client, prefix=f"t-{uuid.uuid4().hex[:16]}")
        try:
            with pytest.raises(StoreUnavailableError):
                await store.append([reported("i-1")])
            with pytest.raises(StoreUnavailableError):
                await store.read()
            with pytest.raises(StoreUnavailableError):
                await store.read_entity("incident:i-1")
            with pytest.raises(StoreUnavailableError):
                await store.entity("incident:i-1")
            with pytest.raises(StoreUnavailableError):
                await store.head()
            with pytest.raises(StoreUnavailableError):
                await store.length()
        finally:
            await client.aclose()

    @pytest.mark.timeout(FAILING_FAST)
    async def test_unavailable_error_keeps_the_redis_cause(self) -> None:
        """The StoreUnavailableError chains the redis error that caused it."""
        client = connect(f"redis://127.0.0.1:{free_port()}/0")
        try:
            with pytest.raises(StoreUnavailableError) as caught:
                await RedisEventStore(client, prefix="t-unused").length()
            assert caught.value.__cause__ is not None
        finally:
            await client.aclose()


class TestConcurrency:
    """Concurrent appends are serialised by the script: preconditions hold under races."""

    async def test_one_of_eight_racing_appends_with_the_same_version_wins(
        self, redis_store: RedisEventStore
    ) -> None:
        """Eight revisions expecting version 1 at once: one appends, seven conflict."""
        await redis_store.append([reported("i-1")])
        results = await asyncio.gather(
            *(redis_store.append([revised("i-1", best=n, expected_version=1)]) for n in range(8)),
            return_exceptions=True,
        )
        winners = [r for r in results if isinstance(r, list)]
        losers = [r for r in results if isinstance(r, ConflictError)]
        assert len(winners) == 1
        assert len(losers) == 7
        assert all(isinstance(a, Appended) for a in winners[0])
        assert {e.current for e in losers} == {2}
        assert await redis_store.length() == 2

    async def test_racing_copies_of_one_event_append_it_once(
        self, redis_store: RedisEventStore
    ) -> None:
        """Eight concurrent sends of one event write it once; all answer the same position."""
        event = reported("i-1")
        results = await asyncio.gather(*(redis_store.append([event]) for _ in range(8)))
        statuses = sorted(r[0].status for r in results)
        assert statuses == ["appended"] + ["duplicate"] * 7
        assert len({r[0].position for r in results}) == 1
        assert await redis_store.length() == 1

    async def test_two_stores_on_one_prefix_share_one_log(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A second store object on the same prefix sees the first one's events."""
        other = RedisEventStore(redis_client, prefix=key_prefix)
        await redis_store.append([reported("i-1")])
        await other.append([revised("i-1", expected_version=1)])
        assert await redis_store.length() == 2
        assert await redis_store.head() == await other.head()
        assert await other.read(Position("0-0"), 1) == await redis_store.read(Position("0-0"), 1)
