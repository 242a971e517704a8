"""Fixtures for a real Redis Cluster: 3 masters with 1 replica each, as child processes.

``redis_cluster`` is one cluster for the whole session; tests must leave it whole (no kills,
no FLUSHALL) and keep to keys of their own (a fresh hash tag each). A test that kills nodes
starts a cluster of its own with :func:`running_cluster`. These live in a plain module so a
conftest anywhere can re-export them (``from tests.support.cluster import redis_cluster``).
The only reason to skip is that no redis-server 6.2 or newer can be found (under CI the test
fails instead: :mod:`tests.support.tools`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio.cluster import RedisCluster

from services.runtime.redis_cluster import ClusterUsers, RedisClusterProcesses
from services.runtime.redis_server import RedisBinaryNotFoundError, find_redis_server
from tests.support.tools import missing

SESSION_NODE_TIMEOUT_MS = 2000
"""The session cluster's ``cluster-node-timeout``: short, so a lost node is noticed quickly."""

FAILOVER_NODE_TIMEOUT_MS = 1000
"""The ``cluster-node-timeout`` of the clusters that fault tests kill nodes of."""


def redis_server_or_skip() -> str:
    """The redis-server binary; without one recent enough the test skips (fails under CI)."""
    try:
        return find_redis_server()
    except RedisBinaryNotFoundError as exc:
        missing(f"a Redis Cluster needs redis-server >= 6.2: {exc}")


@contextlib.contextmanager
def running_cluster(
    data_dir: Path,
    *,
    masters: int = 3,
    replicas: int = 1,
    cluster_node_timeout_ms: int = FAILOVER_NODE_TIMEOUT_MS,
    password: str | None = None,
    users: ClusterUsers | None = None,
) -> Iterator[RedisClusterProcesses]:
    """A started cluster in ``data_dir``, stopped (every node) when the block ends; with
    ``users``, its nodes hold the deployment's users (``service_url`` is the service's)."""
    cluster = RedisClusterProcesses(
        data_dir=data_dir,
        masters=masters,
        replicas=replicas,
        cluster_node_timeout_ms=cluster_node_timeout_ms,
        password=password,
        binary=redis_server_or_skip(),
        users=users,
    )
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterProcesses]:
    """A Redis Cluster of 3 masters and 3 replicas shared by the session; never damage it."""
    data_dir = tmp_path_factory.mktemp("redis-cluster")
    with running_cluster(data_dir, cluster_node_timeout_ms=SESSION_NODE_TIMEOUT_MS) as cluster:
        yield cluster


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterProcesses) -> str:
    """The ``redis://`` URL of one node of the session cluster (what LEDGER_REDIS_URL holds)."""
    return redis_cluster.url


@pytest.fixture
async def cluster_client(cluster_url: str) -> AsyncIterator[RedisCluster]:
    """A ``redis.asyncio.cluster.RedisCluster`` on the session cluster, closed after the test."""
    client = RedisCluster.from_url(cluster_url)
    # Learn the slot map first: commands sent before it is known go to one node, and the
    # burst of MOVED replies that follows under concurrency makes redis-py retry commands it
    # already sent (a script can run twice).
    await client.initialize()
    try:
        yield client
    finally:
        await client.aclose()
