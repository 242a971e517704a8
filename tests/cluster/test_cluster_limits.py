"""The limits' counters on a real Redis Cluster: each bucket and count is one key, so each
script stays on one slot, whichever master serves it."""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio.cluster import RedisCluster

from services.protection.limits import FeedQuota, LimitedError, RateLimiter
from services.store.budgets import RedisBudgets
from services.store.keys import Keys


class TestLimitsOnACluster:
    async def test_buckets_and_quotas_of_many_feeds_count_on_their_masters(
        self, cluster_client: RedisCluster
    ) -> None:
        """Twelve feeds (keys spread over the masters): each passes its burst of 2 and its
        quota of 3, and is refused past them."""
        keys = Keys(f"t-{uuid.uuid4().hex[:16]}", cluster=True)
        budgets = RedisBudgets(cluster_client)
        rate = RateLimiter({"feed": (0.001, 2)}, budgets, keys)
        quota = FeedQuota(3, budgets, keys)
        feeds = [f"feed-{n}" for n in range(12)]
        for feed in feeds:
            await rate.take_feed(feed)
            await rate.take_feed(feed)
            with pytest.raises(LimitedError):
                await rate.take_feed(feed)
            await quota.take(feed, 3)
            with pytest.raises(LimitedError):
                await quota.take(feed, 1)
        slots = {cluster_client.keyslot(keys.rate_bucket(f"feed:{feed}")) for feed in feeds}
        nodes = [cluster_client.get_node_from_key(keys.rate_bucket(f"feed:{f}")) for f in feeds]
        masters = {node.name for node in nodes if node is not None}
        assert len(slots) > 1
        assert len(masters) > 1
