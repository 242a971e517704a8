"""One contract for every keyring: in memory, on Redis (a real server), in key files."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.store.keyring import (
    DataKey,
    FileKeyring,
    Keyring,
    KeyringError,
    MemoryKeyring,
    RedisKeyring,
    keyring_for,
)
from services.store.keys import Keys


@pytest.fixture(params=["memory", "redis", "file"])
def keyring(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_client: aioredis.Redis,
    key_prefix: str,
) -> Keyring:
    """Each keyring in turn; the Redis one under this test's key prefix."""
    if request.param == "memory":
        return MemoryKeyring()
    if request.param == "redis":
        return RedisKeyring(redis_client, key_prefix)
    return FileKeyring(tmp_path / "keys")


class TestKeyringContract:
    """What every keyring does: one key per entity, stable until destroyed, then gone."""

    async def test_an_unknown_entity_has_no_key(self, keyring: Keyring) -> None:
        """get answers None before any key was made."""
        assert await keyring.get("incident:none") is None

    async def test_get_or_create_makes_one_key_and_keeps_it(self, keyring: Keyring) -> None:
        """The second call and get answer the key the first call made."""
        first = await keyring.get_or_create("incident:i-1")
        assert len(first.secret) == 32
        assert await keyring.get_or_create("incident:i-1") == first
        assert await keyring.get("incident:i-1") == first

    async def test_entities_get_different_keys(self, keyring: Keyring) -> None:
        """Keys are per entity."""
        one = await keyring.get_or_create("incident:i-1")
        other = await keyring.get_or_create("statement:i-1")
        assert one.secret != other.secret
        assert one.key_id != other.key_id

    async def test_destroy_removes_the_key_for_good(self, keyring: Keyring) -> None:
        """After destroy, get answers None and a new key is a different key."""
        old = await keyring.get_or_create("incident:i-1")
        assert await keyring.destroy("incident:i-1") is True
        assert await keyring.get("incident:i-1") is None
        assert await keyring.destroy("incident:i-1") is False
        new = await keyring.get_or_create("incident:i-1")
        assert new.key_id != old.key_id

    async def test_concurrent_creators_agree_on_one_key(self, keyring: Keyring) -> None:
        """Racing get_or_create calls all answer the same key."""
        keys = await asyncio.gather(*(keyring.get_or_create("incident:race") for _ in range(20)))
        assert len(set(keys)) == 1

    async def test_batch_calls_agree_with_single_calls(self, keyring: Keyring) -> None:
        """get_or_create_many keeps existing keys and makes the rest; get_many skips none."""
        old = await keyring.get_or_create("incident:a")
        made = await keyring.get_or_create_many(["incident:a", "incident:b", "incident:b"])
        assert set(made) == {"incident:a", "incident:b"}
        assert made["incident:a"] == old
        assert made["incident:b"] == await keyring.get("incident:b")
        found = await keyring.get_many(["incident:a", "incident:b", "incident:none"])
        assert found == made
        assert await keyring.get_many([]) == {}


class TestRedisKeyring:
    """Where the Redis keyring keeps its keys."""

    async def test_keys_live_in_one_hash_apart_from_the_log(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """The hash <prefix>:keys holds entity → key; nothing else is written."""
        ring = RedisKeyring(redis_client, key_prefix)
        key = await ring.get_or_create("incident:i-1")
        stored = await redis_client.hget(Keys(key_prefix).keyring, "incident:i-1")
        assert stored is not None
        assert DataKey.load(stored) == key
        assert [k async for k in redis_client.scan_iter(match=f"{key_prefix}:*")] == [
            Keys(key_prefix).keyring.encode()
        ]


class TestFileKeyring:
    """Key files: private modes, one file per key, nothing left behind."""

    async def test_key_files_are_private(self, tmp_path: Path) -> None:
        """The directory is 0700 and each key file 0600; no temporary file stays."""
        ring = FileKeyring(tmp_path / "keys")
        await ring.get_or_create("incident:i-1")
        files = list((tmp_path / "keys").iterdir())
        assert len(files) == 1
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        assert stat.S_IMODE((tmp_path / "keys").stat().st_mode) == 0o700

    async def test_a_batch_creates_one_file_per_key_and_leaves_no_temporary_file(
        self, tmp_path: Path
    ) -> None:
        """Keys created together each get their own file, readable one by one."""
        ring = FileKeyring(tmp_path / "keys")
        made = await ring.get_or_create_many([f"incident:i-{n}" for n in range(50)])
        assert len({key.secret for key in made.values()}) == 50
        assert len(list((tmp_path / "keys").iterdir())) == 50
        assert await ring.get("incident:i-7") == made["incident:i-7"]

    async def test_destroy_also_removes_a_temporary_file_a_crash_left(self, tmp_path: Path) -> None:
        """A key written to its temporary name before a crash is destroyed with the key."""
        ring = FileKeyring(tmp_path / "keys")
        await ring.get_or_create("incident:i-1")
        (file,) = (tmp_path / "keys").iterdir()
        stray = file.with_name(f"{file.name}.0123456789abcdef.tmp")
        stray.write_bytes(file.read_bytes())
        assert await ring.destroy("incident:i-1")
        assert list((tmp_path / "keys").iterdir()) == []

    async def test_a_damaged_key_file_is_a_keyring_error(self, tmp_path: Path) -> None:
        """A file that is not a key is reported, not used."""
        ring = FileKeyring(tmp_path / "keys")
        await ring.get_or_create("incident:i-1")
        (file,) = (tmp_path / "keys").iterdir()
        file.write_text("garbage")
        with pytest.raises(KeyringError):
            await ring.get("incident:i-1")


class TestKeyringSetting:
    """LEDGER_KEYRING chooses the keyring."""

    async def test_redis_and_file_specs_choose_their_keyrings(
        self, redis_client: aioredis.Redis, tmp_path: Path
    ) -> None:
        """redis → RedisKeyring; file:<dir> → FileKeyring on that directory."""
        assert isinstance(keyring_for("redis", redis_client, "p"), RedisKeyring)
        chosen = keyring_for(f"file:{tmp_path}", redis_client, "p")
        assert isinstance(chosen, FileKeyring)
        assert chosen.directory == tmp_path

    @pytest.mark.parametrize("spec", ["", "file:", "kms", "vault:x"])
    async def test_other_specs_are_refused(self, redis_client: aioredis.Redis, spec: str) -> None:
        """Anything else is a KeyringError naming the variable."""
        with pytest.raises(KeyringError, match="LEDGER_KEYRING"):
            keyring_for(spec, redis_client, "p")
