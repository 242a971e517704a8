"""The event store contract suites, run against a real Redis Cluster (3 masters, 3 replicas).

The one-partition suite runs on the cluster key layout; the partitioned suite on three
partitions, whose keys live on different masters.
"""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio.cluster import RedisCluster

from services.store.redis import RedisEventStore
from tests.contract.test_event_store import (
    TestAppendAndRead,
    TestBatchAtomicity,
    TestEntities,
    TestExpectedVersion,
    TestIdempotency,
    TestIncidentRules,
    TestStatementRules,
)
from tests.contract.test_partitioned_store import (
    PARTITIONS,
    TestAgreesWithTheOneLogStore,
    TestConcurrentChangeBetweenCheckAndWrite,
    TestCrossPartitionMerges,
    TestSplitBatches,
)

__all__ = [
    "TestAgreesWithTheOneLogStore",
    "TestAppendAndRead",
    "TestBatchAtomicity",
    "TestConcurrentChangeBetweenCheckAndWrite",
    "TestCrossPartitionMerges",
    "TestEntities",
    "TestExpectedVersion",
    "TestIdempotency",
    "TestIncidentRules",
    "TestSplitBatches",
    "TestStatementRules",
]


@pytest.fixture
def key_prefix() -> str:
    """A key prefix of this test alone (the cluster is the session's own, dropped after)."""
    return f"t-{uuid.uuid4().hex[:16]}"


@pytest.fixture
def redis_client(cluster_client: RedisCluster) -> RedisCluster:
    """The suites' Redis client is the cluster client here."""
    return cluster_client


@pytest.fixture
def store(
    request: pytest.FixtureRequest, cluster_client: RedisCluster, key_prefix: str
) -> RedisEventStore:
    """The one-partition suite's store on the cluster layout; the partitioned suite's on three."""
    partitioned = request.cls.__module__.endswith("test_partitioned_store")
    return RedisEventStore(
        cluster_client,  # type: ignore[arg-type]
        prefix=key_prefix,
        partitions=PARTITIONS if partitioned else 1,
        cluster=True,
    )
