"""The Redis Cluster fixtures (defined in :mod:`tests.support.cluster`) for these tests."""

from __future__ import annotations

from tests.support.cluster import cluster_client, cluster_url, redis_cluster

__all__ = ["cluster_client", "cluster_url", "redis_cluster"]
