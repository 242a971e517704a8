"""The event store on several log partitions: batches split by partition, merges checked
across partitions, and the same answers as the one-log reference store."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.store.redis import RedisEventStore
from tests.support.contracts import partitioned_store as contract
from tests.support.contracts.partitioned_store import PARTITIONS


@pytest.fixture
def store(redis_client: aioredis.Redis, key_prefix: str) -> RedisEventStore:
    """A Redis event store on three log partitions under this test's prefix."""
    return RedisEventStore(redis_client, prefix=key_prefix, partitions=PARTITIONS)


class TestSplitBatches(contract.SplitBatches):
    """A batch spanning partitions is split, each event going to its entity's partition."""


class TestCrossPartitionMerges(contract.CrossPartitionMerges):
    """A merge into an incident of another partition is checked against that incident."""


class TestAcrossPartitions(contract.AcrossPartitions):
    """Ownership and citations hold across partitions."""


class TestAgreesWithTheOneLogStore(contract.AgreesWithTheOneLogStore):
    """On any history the partitioned store answers as the one-log reference store does."""


class TestConcurrentChangeBetweenCheckAndWrite(contract.ConcurrentChangeBetweenCheckAndWrite):
    """A part refused at write time leaves the parts written before it, and says which."""
