"""View kinds kept in buckets: country-stance's incident dates and community-victims' short
contributions live in small hashes that Redis keeps as listpacks, and scripts find a
document's bucket as the client does.

Everything runs on the shared Redis under the test's own key prefix; the view is written by
the real runner (``ProjectorPool.run_until_caught_up``).
"""

from __future__ import annotations

import random
from typing import Any

import redis.asyncio as aioredis

from benchmarks.workload import Workload
from projections import PROJECTIONS, fold
from services.store.keys import bucket_of
from services.store.redis import RedisEventStore
from services.views.generations import LISTPACK_VALUE, view_keys
from services.views.redis import RedisViewStore, load_view
from services.views.scripts import LUA_BUCKET_OF
from tests.support.runner import catch_up, read_log

STANCE = PROJECTIONS["country-stance"]
VICTIMS = PROJECTIONS["community-victims"]


class TestBucketOfADocument:
    async def test_a_script_computes_the_bucket_the_client_wrote_to(
        self, redis_client: aioredis.Redis
    ) -> None:
        """The Lua CRC-32 of a follower agrees with ``bucket_of`` on every id: ASCII,
        UTF-8 of several bytes, empty, long."""
        rng = random.Random(3)
        alphabet = "abcxyz-|019éΣ中😀"
        ids = ["", "i-1", "incident:i-12345", "x" * 300]
        ids += ["".join(rng.choices(alphabet, k=rng.randint(1, 40))) for _ in range(500)]
        script = redis_client.register_script(
            LUA_BUCKET_OF
            + "local out = {} for x = 1, #ARGV do out[x] = bucket_of(ARGV[x]) end return out"
        )
        found = await script(keys=[], args=ids)
        assert [b.decode() for b in found] == [bucket_of(ident) for ident in ids]


class TestIncidentDatesInBuckets:
    async def test_the_runner_keeps_them_in_listpacks_and_reads_them_back(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """After a catch-up the kind has no big hash, its buckets are listpacks, and the
        stored view is the fold of the log."""
        await redis_store.append(list(Workload(seed=11, namespace="bk-").take(3000)))
        await catch_up(redis_client, key_prefix, catch_up_seconds=600)
        keys = view_keys(key_prefix, STANCE)
        assert not await redis_client.exists(keys.kinds["incident"])
        buckets = [name async for name in redis_client.scan_iter(f"{keys.kinds['incident']}:*")]
        assert len(buckets) > 1000
        for name in buckets[:50]:
            assert await redis_client.object("encoding", name) == b"listpack"
        docs, _ = await load_view(redis_client, key_prefix, STANCE)
        expected = fold(STANCE, await read_log(redis_client, key_prefix))
        assert dict(docs.kinds()["incident"]) == dict(expected.kinds()["incident"])
        assert len(docs.kinds()["incident"]) > 2000

    async def test_contributions_split_between_buckets_and_the_kind_hash(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """community-victims keeps its short contributions in listpack buckets and the long
        ones in the kind's hash, none in both; the view is the fold of the log."""
        await redis_store.append(list(Workload(seed=13, namespace="bv-").take(3000)))
        await catch_up(redis_client, key_prefix, catch_up_seconds=600)
        keys = view_keys(key_prefix, VICTIMS)
        long = await redis_client.hgetall(keys.kinds["incident"])
        short: dict[Any, Any] = {}
        async for name in redis_client.scan_iter(f"{keys.kinds['incident']}:*"):
            assert await redis_client.object("encoding", name) == b"listpack"
            short.update(await redis_client.hgetall(name))
        assert long
        assert len(short) > len(long)
        assert not set(long) & set(short)
        assert all(len(doc) <= LISTPACK_VALUE for doc in short.values())
        assert all(len(doc) > LISTPACK_VALUE for doc in long.values())
        docs, _ = await load_view(redis_client, key_prefix, VICTIMS)
        expected = fold(VICTIMS, await read_log(redis_client, key_prefix))
        assert {k: dict(v) for k, v in docs.kinds().items() if v} == {
            k: dict(v) for k, v in expected.kinds().items() if v
        }

    async def test_dropping_a_generation_leaves_no_bucket(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """``drop`` unlinks every bucket with the view's other keys."""
        await redis_store.append(list(Workload(seed=12, namespace="bd-").take(500)))
        await catch_up(redis_client, key_prefix, catch_up_seconds=600)
        keys = view_keys(key_prefix, STANCE)
        assert [name async for name in redis_client.scan_iter(f"{keys.kinds['incident']}:*")]
        await RedisViewStore(redis_client, key_prefix).drop(STANCE, 0)
        assert not [name async for name in redis_client.scan_iter(f"{keys.kinds['incident']}:*")]
        assert not await redis_client.exists(keys.meta)
