"""The batched append and key creation against a real Redis.

The append script gets the whole batch as one MessagePack argument and reads and writes the
index hashes a chunk of fields at a time; the keyring creates a batch's keys in one script
call. These tests hold the wire format and the indexes to what one event at a time gives.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from events import AnyEvent, Place, to_fields
from services.store.base import ConflictError, EntityState
from services.store.keyring import DataKey, FileKeyring, RedisKeyring
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.store.rules import stored_form
from tests.support.builders import merged, reported, revised, statement


def _text(fields: dict[bytes, bytes]) -> dict[str, bytes]:
    return {k.decode(): v for k, v in fields.items()}


def _wire(fields: dict[str, str | bytes]) -> dict[str, bytes]:
    return {k: v.encode() if isinstance(v, str) else v for k, v in fields.items()}


async def _indexed_ids(client: aioredis.Redis, keys: Keys) -> int:
    """How many ids the buckets of partition 0's idempotency index hold."""
    total = 0
    async for bucket in client.scan_iter(match=f"{keys.ids}:*", count=1000):
        total += await client.hlen(bucket)
    return total


class TestWireFormatOfBatches:
    """Every entry of a batch holds exactly the fields ``events.to_fields`` gives."""

    async def test_entries_equal_the_codec_fields_byte_for_byte(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Non-ASCII text, a precondition, a statement and a merge come back byte-identical."""
        batch: list[AnyEvent] = [
            reported("i-1", place=Place(adm1="Ḥalab", name="Dayr Ḥāfir — شرق")),
            revised("i-1", expected_version=1),
            statement("s-1"),
            reported("i-2"),
            merged("i-2", "i-1"),
        ]
        await redis_store.append(batch)
        entries: Any = await redis_client.xrange(Keys(key_prefix).log)
        assert [_text(fields) for _, fields in entries] == [
            _wire(to_fields(stored_form(event))) for event in batch
        ]

    async def test_a_sealed_blob_is_a_fifth_field_only_where_given(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """sealed=[blob, None] writes the field on the first entry and not on the second."""
        await redis_store.append([reported("i-1"), reported("i-2")], sealed=['{"k":"é"}', None])
        entries: Any = await redis_client.xrange(Keys(key_prefix).log)
        (_, first), (_, second) = entries
        assert first[b"sealed"].decode() == '{"k":"é"}'
        assert b"sealed" not in second


class TestIndexesBeyondOneChunk:
    """Batches larger than the script's 1,000-field chunks keep every index right."""

    async def test_revisions_of_1500_existing_incidents_in_one_batch(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Versions, histories and ids of 1,500 entities are read and written in chunks."""
        n = 1500
        reports = [reported(f"i-{i}") for i in range(n)]
        first = await redis_store.append(reports)
        again = msgspec.structs.replace(reports[7], expected_version=1)  # a retry of it
        revisions = [revised(f"i-{i}") for i in range(n)]
        second = await redis_store.append([*revisions, again, revisions[3]])
        assert [a.status for a in second[:n]] == ["appended"] * n
        assert (second[n].status, second[n].position) == ("duplicate", first[7].position)
        assert (second[n + 1].status, second[n + 1].position) == ("duplicate", second[3].position)
        keys = Keys(key_prefix)
        assert await _indexed_ids(redis_client, keys) == 2 * n
        assert await redis_store.length() == 2 * n
        for i in (0, 999, 1000, n - 1):
            assert await redis_store.entity(f"incident:i-{i}") == EntityState(
                2, "live", owner="sohr"
            )
            history: Any = await redis_client.hget(keys.history, f"incident:i-{i}")
            assert history is not None  # the first position is in the entity's state
            assert history.decode().split() == [second[i].position]
            read = await redis_store.read_entity(f"incident:i-{i}")
            assert [r.position for r in read] == [first[i].position, second[i].position]

    async def test_a_conflict_past_the_first_chunk_writes_nothing(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Event 1,100 of 1,200 conflicts: the error names it and the log stays empty."""
        batch = [reported(f"i-{i}") for i in range(1200)]
        batch[1100] = reported("i-1100", expected_version=4)
        with pytest.raises(ConflictError) as info:
            await redis_store.append(batch)
        assert (info.value.index, info.value.current) == (1100, 0)
        assert await redis_store.length() == 0
        keys = Keys(key_prefix)
        assert await redis_client.exists(keys.ids, keys.entities, keys.history) == 0
        for index in (keys.ids, keys.entities):  # nor any of their buckets
            assert not [key async for key in redis_client.scan_iter(f"{index}:*")]
        assert await _indexed_ids(redis_client, keys) == 0


Placed = Callable[[], Awaitable[int]]
"""How many entities a keyring holds a key (or a key's place) for, read in Redis."""


@pytest.fixture(params=["redis", "file"])
def ring_and_placed(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
) -> tuple[RedisKeyring | FileKeyring, Placed]:
    """The Redis keyring and the size of its hash of keys, then the file keyring and the
    number of places in its buckets."""
    keys = Keys(key_prefix)
    if request.param == "redis":
        return RedisKeyring(redis_client, key_prefix), lambda: redis_client.hlen(keys.keyring)

    async def places() -> int:
        buckets = [k async for k in redis_client.scan_iter(match=f"{keys.key_slot_buckets}*")]
        return sum([await redis_client.hlen(bucket) for bucket in buckets])

    return FileKeyring(tmp_path / "keys", redis_client, key_prefix), places


class TestKeyringBatches:
    """The keyrings create a batch's keys in one script call, beyond one chunk too."""

    async def test_2500_entities_keep_existing_keys_and_get_the_rest(
        self, ring_and_placed: tuple[RedisKeyring | FileKeyring, Placed]
    ) -> None:
        """250 of them have keys already, which are kept; the other 2,250 are created."""
        ring, placed = ring_and_placed
        old = await ring.get_or_create_many([f"incident:i-{i}" for i in range(0, 3000, 10)])
        wanted = [f"incident:i-{i}" for i in range(2500)]
        made = await ring.get_or_create_many(wanted)
        assert list(made) == wanted
        assert all(made[e] == key for e, key in old.items() if e in made)
        assert await placed() == 2500 + 50
        stored = await ring.get_many(wanted)
        assert stored == made
        assert len({key.key_id for key in made.values()}) == 2500

    async def test_concurrent_batches_agree_on_shared_entities(
        self, ring_and_placed: tuple[RedisKeyring | FileKeyring, Placed]
    ) -> None:
        """Overlapping batches created at once answer the same key for each shared entity."""
        ring, _ = ring_and_placed
        batches = [[f"incident:i-{i}" for i in range(s, s + 600)] for s in range(0, 2000, 200)]
        answers = await asyncio.gather(*(ring.get_or_create_many(b) for b in batches))
        stored = await ring.get_many([e for b in batches for e in b])
        for answer in answers:
            assert all(stored[e] == key for e, key in answer.items())

    async def test_new_keys_are_distinct_and_full_size(self) -> None:
        """Keys drawn together are each 32 bytes with a 16-hex-digit id, all different."""
        keys = DataKey.new_many([f"incident:i-{i}" for i in range(100)])
        assert len({k.secret for k in keys.values()}) == 100
        assert {len(k.secret) for k in keys.values()} == {32}
        assert {len(k.key_id) for k in keys.values()} == {16}
        assert all(DataKey.load(k.dump()) == k for k in keys.values())
