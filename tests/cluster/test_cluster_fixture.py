"""The cluster fixture gives a working Redis Cluster: sharding, hash tags, replication, failover.

The session cluster (``redis_cluster``) is only read from and written to under fresh hash
tags; the failover tests kill nodes of clusters of their own.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from services.runtime.redis_cluster import RedisClusterProcesses
from services.runtime.redis_server import RedisProcess
from tests.support.cluster import running_cluster

_APPEND_IN_ORDER = """
local n = redis.call('INCR', KEYS[1])
redis.call('RPUSH', KEYS[2], n)
redis.call('SET', KEYS[3], ARGV[1] .. ':' .. n)
return n
"""


def _tag() -> str:
    """A hash tag no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def node_client() -> AsyncIterator[list[aioredis.Redis]]:
    """A list to put single-connection clients of single nodes in; all closed after the test."""
    clients: list[aioredis.Redis] = []
    yield clients
    for client in clients:
        await client.aclose()


def _connect(node: RedisProcess, opened: list[aioredis.Redis]) -> aioredis.Redis:
    """A client of one node over one connection (so WAIT follows the write it waits for)."""
    client = aioredis.Redis.from_url(node.url, single_connection_client=True)
    opened.append(client)
    return client


async def _write_and_wait(
    node: RedisProcess, opened: list[aioredis.Redis], pairs: dict[str, str]
) -> int:
    """MSET ``pairs`` on ``node`` (one slot) and WAIT for one replica; WAIT's answer."""
    client = _connect(node, opened)
    await client.mset(pairs)
    replicas: int = await client.execute_command("WAIT", 1, 5000)
    return replicas


class TestClusterShape:
    """The session cluster is 3 masters, each with one replica, all running and agreeing."""

    def test_three_masters_each_with_one_replica(
        self, redis_cluster: RedisClusterProcesses
    ) -> None:
        """Six running nodes: three masters serving slots, each with exactly one replica."""
        masters = redis_cluster.masters()
        assert len(masters) == 3
        assert len(set(masters)) == 3
        assert all(node.running for node in redis_cluster.nodes)
        assert len(redis_cluster.nodes) == 6
        replicas = [redis_cluster.replicas_of(master) for master in masters]
        assert all(len(of_one) == 1 for of_one in replicas)
        assert {r[0] for r in replicas} | set(masters) == set(redis_cluster.nodes)

    async def test_client_from_the_url_sees_a_healthy_cluster(
        self, cluster_client: RedisCluster, cluster_url: str
    ) -> None:
        """A RedisCluster made from the one-node URL finds all six nodes and state ok."""
        assert cluster_url.startswith("redis://127.0.0.1:")
        info = await cluster_client.cluster_info()
        assert info["cluster_state"] == "ok"
        assert int(info["cluster_slots_assigned"]) == 16384
        assert len(await cluster_client.cluster_nodes()) == 6
        assert len(cluster_client.get_primaries()) == 3


class TestSharding:
    """Keys are spread over the masters by slot, and each lives on the master of its slot."""

    async def test_keys_land_on_several_masters(
        self,
        redis_cluster: RedisClusterProcesses,
        cluster_client: RedisCluster,
        node_client: list[aioredis.Redis],
    ) -> None:
        """60 untagged keys end up on all three masters, each on the master of its slot."""
        prefix = _tag()
        keys = [f"{prefix}:{n}" for n in range(60)]
        for key in keys:
            await cluster_client.set(key, key)
        owners: dict[RedisProcess, list[str]] = {}
        for key in keys:
            owners.setdefault(redis_cluster.master_for_key(key), []).append(key)
        assert len(owners) == 3
        for master, owned in owners.items():
            direct = _connect(master, node_client)
            assert [await direct.get(key) for key in owned] == [key.encode() for key in owned]
        await cluster_client.delete(*keys)


class TestHashTags:
    """Keys sharing a hash tag are one slot: scripts over them are atomic, others refused."""

    async def test_lua_script_over_one_hash_tag_runs_atomically(
        self, cluster_client: RedisCluster
    ) -> None:
        """100 concurrent runs of a three-key script leave a gapless, ordered trace."""
        tag = _tag()
        keys = [f"{{{tag}}}:counter", f"{{{tag}}}:list", f"{{{tag}}}:last"]
        assert len({key_slot(key.encode()) for key in keys}) == 1
        script = cluster_client.register_script(_APPEND_IN_ORDER)
        results = await asyncio.gather(*(script(keys=keys, args=[tag]) for _ in range(100)))
        assert sorted(results) == list(range(1, 101))
        assert await cluster_client.lrange(keys[1], 0, -1) == [
            str(n).encode() for n in range(1, 101)
        ]
        assert await cluster_client.get(keys[2]) == f"{tag}:100".encode()
        await cluster_client.delete(*keys)

    async def test_cross_slot_multi_key_command_is_refused(
        self, redis_cluster: RedisClusterProcesses, node_client: list[aioredis.Redis]
    ) -> None:
        """MSET over two slots is answered CROSSSLOT by the server and writes nothing."""
        first, second = f"{{{_tag()}}}:a", f"{{{_tag()}}}:b"
        assert key_slot(first.encode()) != key_slot(second.encode())
        direct = _connect(redis_cluster.master_for_key(first), node_client)
        with pytest.raises(rexc.ClusterCrossSlotError, match="same slot"):  # CROSSSLOT
            await direct.execute_command("MSET", first, "1", second, "2")
        assert await direct.exists(first) == 0


class TestReplication:
    """A write is on the replica once WAIT says so."""

    async def test_wait_after_a_write_counts_a_replica_that_has_it(
        self, redis_cluster: RedisClusterProcesses, node_client: list[aioredis.Redis]
    ) -> None:
        """WAIT 1 returns at least 1, and the replica then serves the value (READONLY)."""
        key = f"{{{_tag()}}}:waited"
        master = redis_cluster.master_for_key(key)
        assert await _write_and_wait(master, node_client, {key: "on-both"}) >= 1
        replica = _connect(redis_cluster.replica_of(master), node_client)
        await replica.execute_command("READONLY")
        assert await replica.get(key) == b"on-both"
        await _connect(master, node_client).delete(key)


@pytest.fixture
def own_cluster(tmp_path: Path) -> Iterator[RedisClusterProcesses]:
    """A cluster of this test alone (3 masters, 3 replicas, 1 s node timeout) to damage."""
    with running_cluster(tmp_path / "cluster") as cluster:
        yield cluster


class TestFailover:
    """A master killed with -9 is replaced by its replica, and nothing WAITed for is lost."""

    async def test_replica_takes_over_with_the_waited_writes(
        self, own_cluster: RedisClusterProcesses, node_client: list[aioredis.Redis]
    ) -> None:
        """After kill -9 of a master its replica serves the slot with every waited write."""
        tag = _tag()
        pairs = {f"{{{tag}}}:{n}": str(n) for n in range(200)}
        master = own_cluster.master_for_key(f"{{{tag}}}")
        replica = own_cluster.replica_of(master)
        assert await _write_and_wait(master, node_client, pairs) >= 1
        own_cluster.kill(master)
        assert not master.running
        promoted = own_cluster.wait_for_failover(master, timeout=30)
        assert promoted is replica
        assert own_cluster.master_for_key(f"{{{tag}}}") is replica
        assert master not in own_cluster.masters()
        client = await RedisCluster.from_url(own_cluster.url).initialize()
        try:
            assert await client.mget_nonatomic(list(pairs)) == [v.encode() for v in pairs.values()]
            await client.set(f"{{{tag}}}:after", "accepted")
            assert await client.get(f"{{{tag}}}:after") == b"accepted"
            assert (await client.cluster_info())["cluster_state"] == "ok"
        finally:
            await client.aclose()

    async def test_restarted_old_master_rejoins_as_replica_of_the_new_one(
        self, own_cluster: RedisClusterProcesses, node_client: list[aioredis.Redis]
    ) -> None:
        """The killed master comes back as the promoted node's replica and catches up."""
        tag = _tag()
        master = own_cluster.master_for_key(f"{{{tag}}}")
        own_cluster.kill(master)
        promoted = own_cluster.wait_for_failover(master, timeout=30)
        await _connect(promoted, node_client).set(f"{{{tag}}}:while-down", "x")
        own_cluster.restart(master, timeout=30)
        assert master.running
        assert own_cluster.replicas_of(promoted) == [master]
        assert len(own_cluster.masters()) == 3
        assert await _write_and_wait(promoted, node_client, {f"{{{tag}}}:after": "y"}) >= 1
        rejoined = _connect(master, node_client)
        await rejoined.execute_command("READONLY")
        assert await rejoined.mget(f"{{{tag}}}:while-down", f"{{{tag}}}:after") == [b"x", b"y"]
