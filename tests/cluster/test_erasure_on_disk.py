"""Erasure reaches the disk of every node of a Redis Cluster, replicas included.

With the Redis keyring on the session cluster (3 masters, 3 replicas, AOF on, RDB files
uncompressed for the test), an incident's key is in some node's files, its master's and its
replica's; after ``erase`` every node's AOF and RDB were rewritten and no file under any
node's directory holds the key, raw or stored.
"""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

from redis.asyncio.cluster import RedisCluster

from services.bootstrap import event_store
from services.protection.erasure import erase
from services.runtime.redis_cluster import RedisClusterProcesses
from services.settings import Settings
from services.store.connection import connect
from services.store.keyring import DataKey
from tests.support import builders as f
from tests.support.disk import holding
from tests.support.waiting import until


def copies(directory: Path, needles: list[bytes]) -> list[str]:
    """``node/file`` for every file under ``directory`` holding any of ``needles``."""
    return sorted({f"{path.parent.name}/{path.name}" for path, _ in holding(directory, needles)})


def needles_of(key: DataKey) -> list[bytes]:
    return [key.secret, base64.b64encode(key.secret), key.dump().encode()]


class TestClusterErasureOnDisk:
    async def test_no_node_keeps_the_key_after_an_erasure(
        self, redis_cluster: RedisClusterProcesses, cluster_client: RedisCluster
    ) -> None:
        """The key is found on disk first (the search can fail), then on no node."""
        for node in cluster_client.get_nodes():
            await node.execute_command("CONFIG", "SET", "rdbcompression", "no")
        prefix = f"t-{uuid.uuid4().hex[:12]}"
        settings = Settings(
            redis_url=redis_cluster.url, cluster=True, key_prefix=prefix, keyring="redis"
        )
        client = connect(redis_cluster.url, cluster=True)
        try:
            store = event_store(settings, client)
            await store.append([f.reported("i-1", notes="Victim Example, 12 Main St")])
            key = await store.keyring.get("incident:i-1")
            assert key is not None
            await until(
                lambda: bool(copies(redis_cluster.data_dir, needles_of(key))),
                "the key in some node's AOF",
                within=10,
                every=0.05,
            )
            await erase(store, "incident", "i-1", "a request under GDPR Art. 17")
            await until(
                lambda: not copies(redis_cluster.data_dir, needles_of(key)),
                "no node's file holding the key",
                within=20,
                every=0.1,
                context=lambda: "; ".join(copies(redis_cluster.data_dir, needles_of(key))),
            )
            assert await store.keyring.get("incident:i-1") is None
        finally:
            await client.aclose()
