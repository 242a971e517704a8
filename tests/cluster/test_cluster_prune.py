"""Removing keys on a Redis Cluster: ``ledger prune`` takes an earlier version's keys (on
every master, in the partitioned layout) and its consumer group, and nothing else; a rebuild
takes the generation it replaced."""

from __future__ import annotations

import random
import uuid
from typing import Any

from redis.asyncio.cluster import RedisCluster

from services.ops.prune import prune
from services.projector.replay import Replay
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import view_keys
from tests.support import builders as f
from tests.support.upgrades import (
    CURRENT,
    EARLIER,
    everything,
    groups,
    of_earlier,
    project,
    upgraded,
)


async def test_an_earlier_version_s_keys_go_from_every_master_and_nothing_else(
    cluster_client: RedisCluster,
) -> None:
    keys = Keys(f"t-{uuid.uuid4().hex[:16]}", cluster=True)
    client: Any = cluster_client  # the helpers' redis.asyncio.Redis, here a cluster
    await upgraded(client, RedisEventStore(client, prefix=keys.prefix, cluster=True), keys)
    before = await everything(client, keys)
    earlier = sorted(key.decode() for key in before if of_earlier(key))
    assert earlier

    (found,) = await prune(client, keys)

    assert (found.version, found.kept, found.keys) == (EARLIER.version, None, earlier)
    after = await everything(client, keys)
    assert after == {key: value for key, value in before.items() if not of_earlier(key)}
    assert await groups(client, keys) == {f"projector:{CURRENT.view}"}


async def test_a_rebuild_leaves_no_key_of_the_generation_it_replaced(
    cluster_client: RedisCluster,
) -> None:
    """The old generation's documents, meta and changes stream are unlinked on a cluster too
    (a cluster pipeline's own ``unlink`` takes one key and must be awaited)."""
    keys = Keys(f"t-{uuid.uuid4().hex[:16]}", cluster=True)
    client: Any = cluster_client
    await RedisEventStore(client, prefix=keys.prefix, cluster=True).append(
        f.mixed(60, random.Random(5))
    )
    await project(client, keys, CURRENT)
    old = view_keys(keys, CURRENT, 0)
    assert await client.exists(old.meta, old.changes)

    record = await Replay(client, CURRENT, prefix=keys, batch_size=20).run()

    assert record.state == "done"
    assert not [key async for key in client.scan_iter(match=f"{old.meta[:-5]}:*")]
