"""``ledger prune`` against a real Redis: what an earlier projection version left goes, and
nothing else; an earlier version is kept while the current one is not ready or one of its
processes still runs.

The earlier version is the real thing (:mod:`tests.support.upgrades`): country-stance under
the version before the current one, projected by a projector pool, rebuilt once (a second
generation and a rebuild record), and given an as-of snapshot, as a deployment of the
earlier release would have left it.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from projections import fold
from services.ops.prune import prune
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.snapshots import SnapshotStore
from tests.support import builders as f
from tests.support.cli import ledger
from tests.support.runner import read_log
from tests.support.streams import entries
from tests.support.upgrades import (
    CURRENT,
    EARLIER,
    earlier_release,
    everything,
    groups,
    of_earlier,
    upgraded,
)


class TestPrune:
    """An earlier version's keys and group go once the current version is ready."""

    async def test_removes_every_key_and_group_of_the_earlier_version_and_nothing_else(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        await upgraded(redis_client, redis_store, key_prefix)
        log = await read_log(redis_client, key_prefix)
        await SnapshotStore(redis_client, key_prefix).save(
            CURRENT, fold(CURRENT, log), log[-1].position, len(log)
        )
        # under the prefix, but not a key of a view version: never touched
        lookalike = f"{key_prefix}:other:{{view:country-stance:v{EARLIER.version}}}:meta"
        await redis_client.hset(lookalike, "position", "1-0")
        before = await everything(redis_client, key_prefix)
        earlier = sorted(key.decode() for key in before if of_earlier(key))
        assert len(earlier) >= 5  # view kinds, meta, changes, pointer, record, snapshots
        assert f"projector:country-stance:v{EARLIER.version}" in await groups(
            redis_client, key_prefix
        )

        (found,) = await prune(redis_client, key_prefix)

        assert (found.name, found.version, found.current, found.kept) == (
            "country-stance",
            EARLIER.version,
            CURRENT.version,
            None,
        )
        assert found.keys == [key for key in earlier if key != lookalike]
        after = await everything(redis_client, key_prefix)
        gone = {key.encode() for key in found.keys}
        assert after == {key: value for key, value in before.items() if key not in gone}
        assert lookalike.encode() in after
        assert await groups(redis_client, key_prefix) == {f"projector:{CURRENT.view}"}
        assert await prune(redis_client, key_prefix) == []  # nothing is left to prune

    async def test_a_dry_run_lists_what_would_go_and_removes_nothing(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        await upgraded(redis_client, redis_store, key_prefix)
        before = await everything(redis_client, key_prefix)

        result = await asyncio.to_thread(ledger, redis_url, key_prefix, "prune", "--dry-run")

        assert result.exit_code == 0, result.output
        assert f"country-stance:v{EARLIER.version} (current v{CURRENT.version})" in result.output
        assert "would be removed" in result.output
        for key in before:
            if of_earlier(key):
                assert key.decode() in result.output
        assert await everything(redis_client, key_prefix) == before
        assert not await redis_client.exists(Keys(key_prefix).audit)  # a dry run is no change

    async def test_the_command_removes_and_records_who_pruned_what(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        await upgraded(redis_client, redis_store, key_prefix)

        result = await asyncio.to_thread(ledger, redis_url, key_prefix, "prune")

        assert result.exit_code == 0, result.output
        assert "removed" in result.output
        assert not [key for key in await everything(redis_client, key_prefix) if of_earlier(key)]
        ((_, fields),) = await entries(redis_client, Keys(key_prefix).audit)
        assert fields[b"endpoint"] == b"ledger prune"
        assert f"country-stance:v{EARLIER.version}".encode() in fields[b"filters"]


class TestKept:
    """An earlier version stays while the current one could not yet take its place."""

    async def test_while_the_current_version_has_no_view_it_is_kept_and_the_cli_exits_1(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        await earlier_release(redis_client, redis_store, key_prefix)
        before = await everything(redis_client, key_prefix)

        result = await asyncio.to_thread(ledger, redis_url, key_prefix, "prune")

        assert result.exit_code == 1, result.output
        assert f"kept: {CURRENT.view} has no view yet" in result.output
        assert await everything(redis_client, key_prefix) == before

    async def test_while_the_current_version_lags_more_than_max_lag_it_is_kept(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        await upgraded(redis_client, redis_store, key_prefix)
        await redis_store.append([f.reported(f"late-{n}") for n in range(20)])  # not projected

        (found,) = await prune(redis_client, key_prefix, max_lag=5)

        assert found.kept == f"{CURRENT.view} lags 20 entries, more than 5"
        assert [key for key in await everything(redis_client, key_prefix) if of_earlier(key)]
        (found,) = await prune(redis_client, key_prefix, max_lag=20)
        assert found.kept is None

    @pytest.mark.parametrize("lock", ["lease", "snapshot_lease", "replay_lock"])
    async def test_while_a_process_of_the_earlier_version_runs_it_is_kept(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        lock: str,
    ) -> None:
        await upgraded(redis_client, redis_store, key_prefix)
        held = getattr(Keys(key_prefix), lock)(EARLIER.name, EARLIER.version)
        await redis_client.set(held, "an earlier process", px=60_000)
        before = await everything(redis_client, key_prefix)

        (found,) = await prune(redis_client, key_prefix)

        assert found.kept == (
            f"a process of country-stance:v{EARLIER.version} still runs (it holds a lease or lock)"
        )
        assert await everything(redis_client, key_prefix) == before
