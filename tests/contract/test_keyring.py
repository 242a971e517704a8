"""One contract for every keyring: in memory, on Redis (a real server), in key files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import stat
import sys
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.store.keyring import (
    KEY_SLOT_BYTES,
    DataKey,
    FileKeyring,
    Keyring,
    KeyringError,
    MemoryKeyring,
    RedisKeyring,
    keyring_for,
)
from services.store.keys import Keys

ROOT = Path(__file__).resolve().parents[2]


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
    return FileKeyring(tmp_path / "keys", redis_client, key_prefix)


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


def _copies(directory: Path, secret: bytes) -> list[str]:
    """The files under ``directory`` whose raw bytes hold ``secret`` (raw or as dumped)."""
    needles = (secret, DataKey("0" * 16, secret).dump().partition(":")[2].encode())
    return [
        str(path)
        for path in directory.rglob("*")
        if path.is_file() and any(needle in path.read_bytes() for needle in needles)
    ]


def _files(directory: Path) -> list[Path]:
    return sorted(directory.iterdir())


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _bytes(path: Path) -> bytes:
    return path.read_bytes()


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _legacy_file(directory: Path, entity: str, key: DataKey) -> Path:
    """Write ``entity``'s key as the earlier layout did: one ``<sha256>.key`` file."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{hashlib.sha256(entity.encode()).hexdigest()}.key"
    path.write_text(key.dump())
    path.chmod(0o600)
    return path


class TestFileKeyring:
    """Key pages: private modes, a few files for many keys, erasure that leaves no copy."""

    @pytest.fixture
    def directory(self, tmp_path: Path) -> Path:
        """The keyring directory (not created yet)."""
        return tmp_path / "keys"

    @pytest.fixture
    def ring(self, directory: Path, redis_client: aioredis.Redis, key_prefix: str) -> FileKeyring:
        """A file keyring on ``directory``, its places under this test's prefix."""
        return FileKeyring(directory, redis_client, key_prefix)

    async def test_key_pages_are_private(self, ring: FileKeyring, directory: Path) -> None:
        """The directory is 0700 and the page 0600."""
        await ring.get_or_create("incident:i-1")
        (page,) = _files(directory)
        assert _mode(page) == 0o600
        assert _mode(directory) == 0o700

    async def test_a_batch_goes_to_one_page_of_fixed_size_records(
        self, ring: FileKeyring, directory: Path
    ) -> None:
        """Keys created together share one page, one record each, readable one by one."""
        made = await ring.get_or_create_many([f"incident:i-{n}" for n in range(50)])
        assert len({key.secret for key in made.values()}) == 50
        (page,) = _files(directory)
        assert page.suffix == ".page"
        assert len(_bytes(page)) == 50 * KEY_SLOT_BYTES
        assert await ring.get("incident:i-7") == made["incident:i-7"]

    async def test_redis_holds_places_but_never_key_material(
        self, ring: FileKeyring, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """The only keys written under the prefix are the buckets of places, and no value
        of them holds a key's secret or id."""
        keys = Keys(key_prefix)
        made = await ring.get_or_create_many(["incident:a", "statement:b"])
        buckets = {keys.key_slot_bucket("incident:a"), keys.key_slot_bucket("statement:b")}
        written = {k.decode() async for k in redis_client.scan_iter(match=f"{key_prefix}:*")}
        assert written == buckets
        stored: dict[bytes | str, bytes | str] = {}
        for bucket in buckets:
            stored |= await redis_client.hgetall(bucket)
        assert set(stored) == {b"incident:a", b"statement:b"}
        for key in made.values():
            for value in stored.values():
                assert key.secret not in value
                assert key.key_id.encode() not in value
                assert base64.b64encode(key.secret) not in value

    async def test_after_destroy_no_file_of_the_directory_holds_the_secret(
        self, ring: FileKeyring, directory: Path
    ) -> None:
        """Destroy zeroes the record in place: the raw bytes of every file under the
        directory lack the destroyed secret, while a neighbour's key stays readable."""
        made = await ring.get_or_create_many(["incident:gone", "incident:kept"])
        gone, kept = made["incident:gone"], made["incident:kept"]
        assert _copies(directory, gone.secret)  # the search can fail
        assert await ring.destroy("incident:gone") is True
        assert _copies(directory, gone.secret) == []
        assert await ring.get("incident:gone") is None
        assert await ring.get("incident:kept") == kept
        assert _copies(directory, kept.secret)

    async def test_two_processes_creating_at_once_agree_on_one_key_per_entity(
        self, directory: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Two keyrings on one directory (as two API processes, each with its own page)
        racing on overlapping batches answer the same keys; the losing records are zeroed."""
        one = FileKeyring(directory, redis_client, key_prefix)
        two = FileKeyring(directory, redis_client, key_prefix)
        entities = [f"incident:r-{n}" for n in range(40)]
        results = await asyncio.gather(
            *(
                ring.get_or_create_many(entities[start:] + entities[:start])
                for ring in (one, two, one, two)
                for start in (0, 13)
            )
        )
        for result in results[1:]:
            assert result == results[0]
        assert len(_files(directory)) == 2
        for key in results[0].values():
            assert len(_copies(directory, key.secret)) == 1

    async def test_two_os_processes_agree_on_one_key_per_entity(
        self, directory: Path, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Two Python processes creating the same 300 keys at once, each with its own page,
        print the same key ids; the directory holds one live copy of each key."""
        script = (
            "import asyncio, sys, redis.asyncio as r\n"
            "from services.store.keyring import FileKeyring\n"
            "async def main():\n"
            "    client = r.Redis.from_url(sys.argv[1])\n"
            "    ring = FileKeyring(sys.argv[2], client, sys.argv[3])\n"
            "    made = await ring.get_or_create_many([f'incident:p-{n}' for n in range(300)])\n"
            "    print(' '.join(made[f'incident:p-{n}'].key_id for n in range(300)))\n"
            "    await client.aclose()\n"
            "asyncio.run(main())\n"
        )
        args = ("-c", script, redis_url, str(directory), key_prefix)
        runs = [
            await asyncio.create_subprocess_exec(
                sys.executable, *args, stdout=asyncio.subprocess.PIPE, cwd=ROOT
            )
            for _ in range(2)
        ]
        outputs = [(await run.communicate())[0].decode().split() for run in runs]
        assert [run.returncode for run in runs] == [0, 0]
        assert len(outputs[0]) == 300
        assert outputs[0] == outputs[1]
        ring = FileKeyring(directory, redis_client, key_prefix)
        found = await ring.get_many([f"incident:p-{n}" for n in range(300)])
        assert [found[f"incident:p-{n}"].key_id for n in range(300)] == outputs[0]
        for key in found.values():
            assert len(_copies(directory, key.secret)) == 1

    async def test_a_crash_before_the_place_is_stored_leaves_nothing_in_the_way(
        self, ring: FileKeyring, directory: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Records written but never given a place (a crash mid-create), and a torn record
        after them, are not keys: reads answer none, a later create and erasure work."""
        ring._write(["incident:i-1"])
        (page,) = _files(directory)
        _write(page, _bytes(page) + b"LKS1" + b"\x07" * 20)
        later = FileKeyring(directory, redis_client, key_prefix)
        assert await later.get("incident:i-1") is None
        key = await later.get_or_create("incident:i-1")
        assert await later.get("incident:i-1") == key
        assert await later.destroy("incident:i-1") is True
        assert _copies(directory, key.secret) == []

    async def test_a_crash_mid_destroy_reads_as_destroyed_and_is_finished_later(
        self, ring: FileKeyring, directory: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A record zeroed whose place was not removed yet reads as no key; the next
        create replaces the place, and a repeated destroy reports the key it removes."""
        old = await ring.get_or_create("incident:i-1")
        bucket = Keys(key_prefix).key_slot_bucket("incident:i-1")
        place = await redis_client.hget(bucket, "incident:i-1")
        assert isinstance(place, bytes)
        ring._zero(place, "incident:i-1", sync=True)
        assert await ring.get("incident:i-1") is None
        assert await ring.destroy("incident:i-1") is True
        assert await ring.destroy("incident:i-1") is False
        ring._zero(place, sync=True)
        new = await ring.get_or_create("incident:i-1")
        assert new.key_id != old.key_id
        assert _copies(directory, old.secret) == []

    async def test_a_lost_directory_reads_as_no_keys_and_new_keys_replace_them(
        self, ring: FileKeyring, directory: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Places left in Redis after the keyring volume was lost point at no key: reads
        answer none (text reads erased) and the next create makes a new key."""
        old = await ring.get_or_create("incident:i-1")
        for page in _files(directory):
            page.unlink()
        later = FileKeyring(directory, redis_client, key_prefix)
        assert await later.get("incident:i-1") is None
        new = await later.get_or_create("incident:i-1")
        assert new != old
        assert await later.get("incident:i-1") == new

    async def test_a_damaged_record_is_a_keyring_error(
        self, ring: FileKeyring, directory: Path
    ) -> None:
        """A record that fails its checksum is reported, not used."""
        await ring.get_or_create("incident:i-1")
        (page,) = _files(directory)
        data = bytearray(_bytes(page))
        data[50] ^= 0xFF
        _write(page, bytes(data))
        with pytest.raises(KeyringError, match="damaged"):
            await ring.get("incident:i-1")

    async def test_a_place_naming_another_entity_s_record_is_refused(
        self, ring: FileKeyring, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A place pointing at another entity's record is an error, and destroy leaves that
        record alone."""
        keys = Keys(key_prefix)
        other = await ring.get_or_create("incident:other")
        place = await redis_client.hget(keys.key_slot_bucket("incident:other"), "incident:other")
        assert place is not None
        await redis_client.hset(keys.key_slot_bucket("incident:i-1"), "incident:i-1", place)
        with pytest.raises(KeyringError, match="another entity"):
            await ring.get("incident:i-1")
        with pytest.raises(KeyringError, match="another entity"):
            await ring.destroy("incident:i-1")
        assert await ring.get("incident:other") == other


class TestEarlierKeyFiles:
    """A directory written with one ``<sha256>.key`` file per key keeps working."""

    async def test_an_old_key_file_is_read_and_kept(
        self, tmp_path: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """get and get_or_create answer the key of the old file; no new key is made."""
        old = DataKey.new()
        _legacy_file(tmp_path / "keys", "incident:i-1", old)
        ring = FileKeyring(tmp_path / "keys", redis_client, key_prefix)
        assert await ring.get("incident:i-1") == old
        made = await ring.get_or_create_many(["incident:i-1", "incident:i-2"])
        assert made["incident:i-1"] == old
        assert await ring.get("incident:i-2") == made["incident:i-2"]

    async def test_destroying_an_old_key_file_leaves_no_copy(
        self, tmp_path: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """destroy unlinks the old file and a temporary one a crash left; it reports the key."""
        old = DataKey.new()
        file = _legacy_file(tmp_path / "keys", "incident:i-1", old)
        stray = file.with_name(f"{file.name}.0123456789abcdef.tmp")
        stray.write_bytes(file.read_bytes())
        ring = FileKeyring(tmp_path / "keys", redis_client, key_prefix)
        assert await ring.destroy("incident:i-1") is True
        assert list((tmp_path / "keys").iterdir()) == []
        assert await ring.get("incident:i-1") is None
        assert await ring.destroy("incident:i-1") is False

    async def test_a_damaged_key_file_is_a_keyring_error(
        self, tmp_path: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """An old file that is not a key is reported, not used."""
        file = _legacy_file(tmp_path / "keys", "incident:i-1", DataKey.new())
        file.write_text("garbage")
        ring = FileKeyring(tmp_path / "keys", redis_client, key_prefix)
        with pytest.raises(KeyringError):
            await ring.get("incident:i-1")


class TestPlacesWrittenBeforeTheBuckets:
    """A key placed in the one hash ``<prefix>:keyslots`` (before the buckets) reads on,
    is destroyed there, and is never placed a second time."""

    @pytest.fixture
    async def earlier(
        self, tmp_path: Path, redis_client: aioredis.Redis, key_prefix: str
    ) -> tuple[FileKeyring, DataKey]:
        """A key of ``incident:old`` made by a keyring, its place then moved to the one
        hash as the earlier version kept it; and a fresh keyring object on the same places."""
        keys = Keys(key_prefix)
        first = FileKeyring(tmp_path / "keys", redis_client, key_prefix)
        key = await first.get_or_create("incident:old")
        bucket = keys.key_slot_bucket("incident:old")
        place = await redis_client.hget(bucket, "incident:old")
        assert place is not None
        await redis_client.hdel(bucket, "incident:old")
        await redis_client.hset(keys.key_slots, "incident:old", place)
        return FileKeyring(tmp_path / "keys", redis_client, key_prefix), key

    async def test_a_key_placed_before_reads_and_is_kept_by_a_batch(
        self,
        earlier: tuple[FileKeyring, DataKey],
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """get and get_or_create_many answer the earlier key, and place only the new one."""
        ring, old = earlier
        keys = Keys(key_prefix)
        assert await ring.get("incident:old") == old
        made = await ring.get_or_create_many(["incident:old", "incident:new"])
        assert made["incident:old"] == old
        assert await redis_client.hget(keys.key_slot_bucket("incident:old"), "incident:old") is None
        assert await redis_client.hget(keys.key_slot_bucket("incident:new"), "incident:new")
        assert await redis_client.hlen(keys.key_slots) == 1

    async def test_destroying_a_key_placed_before_removes_its_place(
        self,
        earlier: tuple[FileKeyring, DataKey],
        redis_client: aioredis.Redis,
        key_prefix: str,
        tmp_path: Path,
    ) -> None:
        """destroy zeroes the record and removes the earlier place; the next key is placed
        in its bucket."""
        ring, old = earlier
        keys = Keys(key_prefix)
        assert await ring.destroy("incident:old") is True
        assert await redis_client.exists(keys.key_slots) == 0
        assert _copies(tmp_path / "keys", old.secret) == []
        assert await ring.get("incident:old") is None
        assert await ring.destroy("incident:old") is False
        new = await ring.get_or_create("incident:old")
        assert new != old
        assert await redis_client.hget(keys.key_slot_bucket("incident:old"), "incident:old")

    async def test_a_stale_earlier_place_is_replaced_in_the_bucket(
        self,
        earlier: tuple[FileKeyring, DataKey],
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """An earlier place whose record was zeroed (a crash mid-destroy) reads as no key;
        the next create clears it and places a new key in the bucket."""
        ring, old = earlier
        keys = Keys(key_prefix)
        place = await redis_client.hget(keys.key_slots, "incident:old")
        assert isinstance(place, bytes)
        ring._zero(place, "incident:old", sync=True)
        assert await ring.get("incident:old") is None
        new = await ring.get_or_create("incident:old")
        assert new != old
        assert await redis_client.hlen(keys.key_slots) == 0
        assert await ring.get("incident:old") == new


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
        assert chosen.buckets == Keys("p").key_slot_buckets

    @pytest.mark.parametrize("spec", ["", "file:", "kms", "vault:x"])
    async def test_other_specs_are_refused(self, redis_client: aioredis.Redis, spec: str) -> None:
        """Anything else is a KeyringError naming the variable."""
        with pytest.raises(KeyringError, match="LEDGER_KEYRING"):
            keyring_for(spec, redis_client, "p")
