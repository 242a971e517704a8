"""The Redis Cluster fixtures (defined in :mod:`tests.cluster.fixtures`) for these tests."""

from __future__ import annotations

from tests.cluster.fixtures import cluster_client, cluster_url, redis_cluster

__all__ = ["cluster_client", "cluster_url", "redis_cluster"]
