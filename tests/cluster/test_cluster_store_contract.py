"""The event store contract suites, run against a real Redis Cluster (3 masters, 3 replicas).

The one-partition suites run on the cluster key layout; the partitioned suites on three
partitions, whose keys live on different masters.
"""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio.cluster import RedisCluster

from services.store.redis import RedisEventStore
from tests.support.contracts import entity_rules as rules
from tests.support.contracts import event_store as one_log
from tests.support.contracts import ownership
from tests.support.contracts import partitioned_store as partitioned
from tests.support.contracts.partitioned_store import PARTITIONS


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
    """The one-partition suites' store on the cluster layout; the partitioned suites' on three."""
    return RedisEventStore(
        cluster_client,  # type: ignore[arg-type]
        prefix=key_prefix,
        partitions=getattr(request.cls, "partitions", 1),
        cluster=True,
    )


class TestAppendAndRead(one_log.AppendAndRead):
    """Appended events come back from the log as they were stored, in order (cluster)."""


class TestIdempotency(one_log.Idempotency):
    """Event ids are idempotency keys (cluster)."""


class TestExpectedVersion(one_log.ExpectedVersion):
    """``expected_version`` guards an entity's version (cluster)."""


class TestIncidentRules(rules.IncidentRules):
    """The incident rules of the log (cluster)."""


class TestStatementRules(rules.StatementRules):
    """The statement rules of the log (cluster)."""


class TestOwnership(ownership.Ownership):
    """Only an incident's feed or an operator changes it (cluster)."""


class TestDisputes(ownership.Disputes):
    """Another feed disputes an incident without changing it (cluster)."""


class TestIdsPerFeed(ownership.IdsPerFeed):
    """Event ids keyed by (feed, event id), the body compared (cluster)."""


class TestCitations(ownership.Citations):
    """A statement names only reported incidents (cluster)."""


class TestBatchAtomicity(one_log.BatchAtomicity):
    """A batch is appended whole or not at all (cluster)."""


class TestEntities(one_log.Entities):
    """Entity states and histories (cluster)."""


class TestSplitBatches(partitioned.SplitBatches):
    """A batch spanning partitions is split by partition (cluster, three partitions)."""

    partitions = PARTITIONS


class TestCrossPartitionMerges(partitioned.CrossPartitionMerges):
    """Merges into incidents of other partitions are checked (cluster, three partitions)."""

    partitions = PARTITIONS


class TestAcrossPartitions(partitioned.AcrossPartitions):
    """Ownership and citations across partitions on different masters (cluster)."""

    partitions = PARTITIONS


class TestAgreesWithTheOneLogStore(partitioned.AgreesWithTheOneLogStore):
    """The partitioned store answers as the one-log store does (cluster, three partitions)."""

    partitions = PARTITIONS


class TestConcurrentChangeBetweenCheckAndWrite(partitioned.ConcurrentChangeBetweenCheckAndWrite):
    """A part refused at write time leaves the parts before it (cluster, three partitions)."""

    partitions = PARTITIONS
