"""Erasure reaches the disk: no file of Redis's or of the keyring keeps the key or the text.

Each test starts a redis-server of its own with AOF and RDB on (``rdbcompression no``, so a
copy in the RDB file is a literal copy a byte search finds), publishes an incident with
distinctive notes (and, as a feed on the Redis inbox would, leaves the plain submission in
a stream and deletes it, as the inbox does once it is appended), checks that the search
finds the key material beforehand (the search can fail), erases, and then searches every
file under the data directory and the keyring directory: no copy of the key (raw or in its
stored form), no copy of the text, and the text reads ``"[erased]"``.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from events import ERASED
from services.bootstrap import event_store
from services.protection.erasure import erase
from services.runtime.redis_server import RedisProcess
from services.settings import Settings
from services.store.keyring import DataKey
from services.store.sealing import SealingStore
from tests.support import builders as f
from tests.support.disk import holding
from tests.support.waiting import until

NOTES = "Victim Philomena Dunstable-Example, 12 Main St"
PREFIX = "disk"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone, AOF on, in ``tmp_path/redis``."""
    with RedisProcess(data_dir=tmp_path / "redis", appendonly=True) as process:
        yield process


@pytest.fixture
async def client(server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    """A client of the test's server, with RDB snapshots on and uncompressed."""
    connection = aioredis.Redis.from_url(server.url)
    await connection.config_set("rdbcompression", "no")
    await connection.config_set("save", "3600 1")
    try:
        yield connection
    finally:
        await connection.aclose()


def copies(directory: Path, needles: list[bytes]) -> list[str]:
    """``file: needle`` for every needle found in any file under ``directory``."""
    return [f"{path.name}: {needle[:24]!r}" for path, needle in holding(directory, needles)]


def needles_of(key: DataKey) -> list[bytes]:
    """What a copy of the key or the text would contain."""
    return [
        key.secret,
        base64.b64encode(key.secret),
        key.dump().encode(),
        NOTES.encode(),
        b"Dunstable",
    ]


def nothing_of(key: DataKey, where: Path) -> Callable[[], bool]:
    """A condition: no file under ``where`` holds the key or the text."""
    return lambda: not copies(where, needles_of(key))


async def publish(store: SealingStore, client: aioredis.Redis) -> DataKey:
    """The incident with its notes appended, a plain inbox-style submission written and
    deleted, both persisted in the AOF and an RDB file; its data key."""
    await store.append([f.reported("i-1", notes=NOTES)])
    entry = await client.xadd(f"{PREFIX}:inbox", {"feed": "sohr", "event": NOTES})
    await client.xdel(f"{PREFIX}:inbox", entry)
    await client.bgsave()
    await until(lambda: _saved(client), "the RDB snapshot holding the key", within=30, every=0.05)
    key = await store.keyring.get("incident:i-1")
    assert key is not None
    return key


async def _saved(client: aioredis.Redis) -> bool:
    info = await client.info("persistence")
    return int(info["rdb_saves"]) > 0 and not int(info["rdb_bgsave_in_progress"])


async def erased(store: SealingStore) -> bool:
    """Whether the incident's notes read ``"[erased]"``."""
    report, _redaction = await store.read_entity("incident:i-1")
    return getattr(report.event, "notes", None) == ERASED


class TestErasureOnDisk:
    """After ``erase``, neither Redis's files nor the keyring's hold the key or the text."""

    async def test_with_the_redis_keyring_the_aof_and_rdb_are_rewritten(
        self, server: RedisProcess, client: aioredis.Redis, tmp_path: Path
    ) -> None:
        """The key HDEL'd from the hash and the deleted submission leave the AOF and RDB."""
        settings = Settings(redis_url=server.url, key_prefix=PREFIX, keyring="redis")
        store = event_store(settings, client)
        key = await publish(store, client)
        before = copies(server.data_dir, needles_of(key))
        assert any("aof" in c for c in before), before  # the search can fail
        assert any("rdb" in c for c in before), before

        await erase(store, "incident", "i-1", "a request under GDPR Art. 17")

        await until(
            lambda: not copies(server.data_dir, needles_of(key)),
            "no copy of the key or the text under Redis's data directory",
            within=10,
            every=0.05,
            context=lambda: "; ".join(copies(server.data_dir, needles_of(key))),
        )
        assert await store.keyring.get("incident:i-1") is None
        assert await erased(store)

    async def test_with_the_file_keyring_the_key_record_is_zeroed_and_redis_never_had_it(
        self, server: RedisProcess, client: aioredis.Redis, tmp_path: Path
    ) -> None:
        """The default keyring (a directory of key pages): no file under it holds the key
        after the erasure; no file of Redis's ever held it; the deleted submission leaves
        Redis's files too."""
        ring = tmp_path / "keyring"
        settings = Settings(redis_url=server.url, key_prefix=PREFIX, keyring=f"file:{ring}")
        store = event_store(settings, client)
        key = await publish(store, client)
        assert copies(ring, needles_of(key))  # the search can fail
        key_only = needles_of(key)[:3]
        assert not copies(server.data_dir, key_only)

        await erase(store, "incident", "i-1", "a request under GDPR Art. 17")

        assert not copies(ring, needles_of(key))
        assert await store.keyring.get("incident:i-1") is None
        assert len(list(ring.iterdir())) == 1  # one page; the redaction's reason has a key
        await until(
            lambda: not copies(server.data_dir, needles_of(key)),
            "no copy of the text under Redis's data directory",
            within=10,
            every=0.05,
            context=lambda: "; ".join(copies(server.data_dir, needles_of(key))),
        )
        assert await erased(store)

    async def test_a_replica_s_files_are_rewritten_too(
        self, server: RedisProcess, client: aioredis.Redis, tmp_path: Path
    ) -> None:
        """A replica of the server (its own AOF, a copy of the key after the sync): after
        the erasure neither the server's files nor the replica's hold the key."""
        with RedisProcess(data_dir=tmp_path / "replica", appendonly=True) as replica:
            follower = aioredis.Redis.from_url(replica.url)
            try:
                await follower.config_set("rdbcompression", "no")
                await follower.replicaof("127.0.0.1", server.port)
                settings = Settings(redis_url=server.url, key_prefix=PREFIX, keyring="redis")
                store = event_store(settings, client)
                key = await publish(store, client)
                await until(
                    lambda: bool(copies(replica.data_dir, needles_of(key)[:3])),
                    "the key in the replica's files",
                    within=20,
                    every=0.05,
                )
                await erase(store, "incident", "i-1", "a request under GDPR Art. 17")
                for where in (server.data_dir, replica.data_dir):
                    await until(
                        nothing_of(key, where),
                        f"no copy of the key under {where.name}",
                        within=20,
                        every=0.05,
                    )
            finally:
                await follower.aclose()
