"""Readers follow a view's changes stream: after a commit they fetch only the documents it
changed, and fall back to reading the kinds whole whenever the stream cannot tell them.

Everything runs on the shared Redis under the test's own key prefix; views are written by
the real runner (``ProjectorPool.run_until_caught_up``).
"""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from benchmarks.workload import Workload
from projections import PROJECTIONS
from services.store.redis import RedisEventStore
from services.views import redis as views_redis
from services.views.cache import ViewReader
from services.views.follow import read_kinds
from services.views.generations import view_keys
from services.views.redis import RedisViewStore
from services.views.scripts import CHANGES_FOLLOWED, CHANGES_LISTED
from services.views.store import KindsRead
from tests.support import builders as f
from tests.support.runner import catch_up

DEADLINE = 20.0
INCIDENTS = PROJECTIONS["incidents"]


async def whole(client: aioredis.Redis, prefix: str) -> KindsRead:
    read = await read_kinds(client, prefix, INCIDENTS, ["incident"])
    assert read.whole is not None
    return read


async def following(client: aioredis.Redis, prefix: str, first: KindsRead) -> KindsRead:
    """What a reader that holds ``first`` reads next."""
    assert first.checkpoint is not None
    held = (first.checkpoint, first.seen, first.generation)
    return await read_kinds(client, prefix, INCIDENTS, ["incident"], held=held)


async def one_incident_read(
    store: RedisEventStore, client: aioredis.Redis, prefix: str
) -> KindsRead:
    """A view of one reported incident, read whole."""
    await store.append([f.reported("i-1")])
    await catch_up(client, prefix, within=DEADLINE, catch_up_seconds=600)
    return await whole(client, prefix)


class TestFollowingTheChangesStream:
    async def test_a_commit_is_fetched_by_the_ids_it_changed(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        await redis_store.append([f.reported("i-1"), f.reported("i-2"), f.reported("i-3")])
        await catch_up(redis_client, key_prefix, within=DEADLINE, catch_up_seconds=600)
        first = await whole(redis_client, key_prefix)
        await redis_store.append([f.revised("i-2", best=40)])
        await catch_up(redis_client, key_prefix, within=DEADLINE, catch_up_seconds=600)

        then = await following(redis_client, key_prefix, first)

        assert then.whole is None
        assert then.changed is not None
        assert set(then.changed[0]) == {"i-2"}
        assert then.checkpoint != first.checkpoint
        fresh = await whole(redis_client, key_prefix)
        assert then.checkpoint == fresh.checkpoint
        assert then.seen == fresh.seen
        assert fresh.whole is not None
        stored = {k.decode() if isinstance(k, bytes) else k: v for k, v in fresh.whole[0].items()}
        assert then.changed[0]["i-2"] == stored["i-2"]

    async def test_a_view_that_did_not_move_answers_no_documents(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        first = await one_incident_read(redis_store, redis_client, key_prefix)

        again = await following(redis_client, key_prefix, first)

        assert again.changed == [{}]
        assert again.checkpoint == first.checkpoint

    async def test_a_commit_too_big_to_list_is_read_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        await redis_store.append([f.reported("i-0")])
        await catch_up(redis_client, key_prefix, within=DEADLINE, catch_up_seconds=600)
        first = await whole(redis_client, key_prefix)
        many = [f.reported(f"i-{n}") for n in range(1, CHANGES_LISTED + 2)]
        await redis_store.append(many)
        await catch_up(redis_client, key_prefix, within=DEADLINE, catch_up_seconds=600)

        then = await following(redis_client, key_prefix, first)

        assert then.changed is None
        assert then.whole is not None
        assert len(then.whole[0]) == CHANGES_LISTED + 2

    async def test_a_checkpoint_moved_without_a_record_is_read_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        first = await one_incident_read(redis_store, redis_client, key_prefix)
        later = await redis_store.append([f.reported("i-2")])
        keys = view_keys(key_prefix, INCIDENTS)
        await redis_client.hset(keys.meta, "position", later[0].position)  # no changes entry

        then = await following(redis_client, key_prefix, first)

        assert then.changed is None
        assert then.checkpoint == later[0].position

    async def test_a_reader_too_far_behind_reads_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        first = await one_incident_read(redis_store, redis_client, key_prefix)
        keys = view_keys(key_prefix, INCIDENTS)
        assert first.checkpoint is not None
        steps = {"from": first.checkpoint, "to": first.checkpoint}
        for _ in range(CHANGES_FOLLOWED):  # commits that changed nothing: still followable
            await redis_client.xadd(keys.changes, steps)  # type: ignore[arg-type]
        followed = await following(redis_client, key_prefix, first)
        assert followed.changed == [{}]
        await redis_client.xadd(keys.changes, steps)  # type: ignore[arg-type]

        then = await following(redis_client, key_prefix, first)

        assert then.changed is None
        assert then.whole is not None

    async def test_a_dead_letter_retry_record_makes_readers_read_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        first = await one_incident_read(redis_store, redis_client, key_prefix)
        keys = view_keys(key_prefix, INCIDENTS)
        assert first.checkpoint is not None
        await redis_client.xadd(
            keys.changes, {"from": first.checkpoint, "to": first.checkpoint, "many": "1"}
        )

        then = await following(redis_client, key_prefix, first)

        assert then.changed is None

    async def test_another_generation_is_read_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        first = await one_incident_read(redis_store, redis_client, key_prefix)
        keys = view_keys(key_prefix, INCIDENTS)
        await redis_client.set(keys.pointer, "7")

        then = await following(redis_client, key_prefix, first)

        assert then.changed is None
        assert then.generation == 7


class TestAReaderThatFollows:
    @pytest.mark.parametrize("seed", [3, 11])
    async def test_holds_what_a_fresh_reader_reads_after_every_commit(
        self,
        redis_store: RedisEventStore,
        redis_client: aioredis.Redis,
        key_prefix: str,
        seed: int,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        workload = Workload(seed=seed, namespace=f"follow{seed}-")
        reader = ViewReader(RedisViewStore(redis_client, key_prefix))
        reads: list[KindsRead] = []  # the reads of a reader that held the kinds

        async def counted(*args: Any, **kwargs: Any) -> KindsRead:
            found = await read_kinds(*args, **kwargs)
            if kwargs.get("held") is not None:
                reads.append(found)
            return found

        monkeypatch.setattr(views_redis, "read_kinds", counted)
        incident = (PROJECTIONS["incidents"].view, "incident")
        # a round is one or more commits (each chunk settled on its own), then a read; a
        # bulk commit lists too many ids, and the reader reads whole after it
        bulk = 2 * CHANGES_LISTED
        for chunks in ([300], [7], [40, 40], [1], [bulk], [25, 25, 25], [3], [90]):
            for size in chunks:
                await redis_store.append(workload.take(size))
                await catch_up(redis_client, key_prefix, within=DEADLINE, catch_up_seconds=600)
            for projection in PROJECTIONS.values():
                kinds = list(projection.doc_types)
                held_docs, checkpoint = await reader.read(projection, kinds)
                fresh = ViewReader(RedisViewStore(redis_client, key_prefix))
                fresh_docs, fresh_checkpoint = await fresh.read(projection, kinds)
                assert checkpoint == fresh_checkpoint
                assert {k: dict(v) for k, v in held_docs.items()} == {
                    k: dict(v) for k, v in fresh_docs.items()
                }
            if chunks == [bulk]:  # read whole after following: only what changed is new
                held = reader._cache[incident]
                assert held.changed is not None
                assert 0 < len(held.changed) < len(held.docs)
        assert any(found.changed is not None for found in reads)  # followed
        assert any(found.whole is not None for found in reads)  # and read whole after a bulk
