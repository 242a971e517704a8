"""Where the data keys of sealed private text live, apart from the log.

One key per entity (``incident:<id>``, ``statement:<id>``), AES-256, with a random id that
every blob it seals names (:mod:`services.store.sealing`). ``LEDGER_KEYRING=file:<dir>``
(the default, ``<LEDGER_DATA_DIR>/keyring/<prefix>``) keeps one file per key in a directory
(:class:`FileKeyring`, mode 0600), outside Redis's AOF and RDB, for a volume of its own that
is backed up apart from Redis or not at all; a KMS would implement the same :class:`Keyring`
protocol. ``LEDGER_KEYRING=redis`` keeps the keys in the hash ``<prefix>:keys``
(:class:`RedisKeyring`): apart from the stream, but on the same server, so erasure has Redis
rewrite its AOF and RDB after the ``HDEL`` (:mod:`services.store.compaction`). Deleting a
file unlinks it and syncs its directory; whether its blocks are overwritten depends on the
file system and device. Destroying a key is what erasure
does (:mod:`services.protection.erasure`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import ctypes
import functools
import hashlib
import os
import secrets
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from services.store.base import StoreError, StoreUnavailableError
from services.store.keys import Keys

__all__ = [
    "KEY_BYTES",
    "DataKey",
    "FileKeyring",
    "Keyring",
    "KeyringError",
    "MemoryKeyring",
    "RedisKeyring",
    "SealingError",
    "keyring_for",
]

KEY_BYTES: Final = 32
"""AES-256."""
_KEY_ID_BYTES: Final = 8


class SealingError(StoreError):
    """Root of the errors of sealing private text and of its keyrings."""


class KeyringError(SealingError):
    """Raised when a keyring cannot store, read or destroy a key (file system, bad record)."""


class DataKey(msgspec.Struct, frozen=True):
    """One entity's data key: a random id (named in every blob it seals) and 32 bytes."""

    key_id: str
    secret: bytes

    def __repr__(self) -> str:  # keep key material out of logs and tracebacks
        return f"DataKey(key_id={self.key_id!r}, secret=<hidden>)"

    @classmethod
    def new(cls) -> DataKey:
        """A fresh random key."""
        return cls(secrets.token_hex(_KEY_ID_BYTES), secrets.token_bytes(KEY_BYTES))

    @classmethod
    def new_many(cls, entities: Sequence[str]) -> dict[str, DataKey]:
        """A fresh random key per entity, from one read of the system's random source."""
        size = _KEY_ID_BYTES + KEY_BYTES
        pool = secrets.token_bytes(size * len(entities))
        keys: dict[str, DataKey] = {}
        for i, entity in enumerate(entities):
            at = i * size
            key_id = pool[at : at + _KEY_ID_BYTES].hex()
            keys[entity] = cls(key_id, pool[at + _KEY_ID_BYTES : at + size])
        return keys

    def dump(self) -> str:
        """The key as one line of text: ``<id>:<base64 secret>``."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode()}"

    @classmethod
    def load(cls, text: str | bytes) -> DataKey:
        """Read :meth:`dump`'s form; :class:`KeyringError` when it is not a key."""
        raw = text.decode() if isinstance(text, bytes) else text
        key_id, _, secret = raw.strip().partition(":")
        try:
            data = base64.b64decode(secret, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise KeyringError("a stored data key is not valid base64") from exc
        if len(key_id) != 2 * _KEY_ID_BYTES or len(data) != KEY_BYTES:
            raise KeyringError("a stored data key has the wrong size")
        return cls(key_id, data)


@runtime_checkable
class Keyring(Protocol):
    """Where the data keys live, apart from the log. One key per entity (``incident:<id>``)."""

    async def get(self, entity: str) -> DataKey | None:
        """The entity's key, or ``None`` when it has none (never had, or it was destroyed)."""
        ...

    async def get_or_create(self, entity: str) -> DataKey:
        """The entity's key, created when missing (concurrent callers get the same key)."""
        ...

    async def destroy(self, entity: str) -> bool:
        """Destroy the entity's key for good; whether there was one."""
        ...

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one (one round trip where it can)."""
        ...

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The key of every one of ``entities``, created where missing."""
        ...


class MemoryKeyring:
    """A :class:`Keyring` in this process's memory (tests, runs without Redis)."""

    def __init__(self) -> None:
        self._keys: dict[str, DataKey] = {}

    async def get(self, entity: str) -> DataKey | None:
        """The entity's key, or ``None``."""
        return self._keys.get(entity)

    async def get_or_create(self, entity: str) -> DataKey:
        """The entity's key, created when missing."""
        return self._keys.setdefault(entity, DataKey.new())

    async def destroy(self, entity: str) -> bool:
        """Forget the entity's key; whether there was one."""
        return self._keys.pop(entity, None) is not None

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one."""
        return {e: self._keys[e] for e in entities if e in self._keys}

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The key of every one of ``entities``, created where missing."""
        return {e: await self.get_or_create(e) for e in entities}


GET_OR_CREATE_SCRIPT: Final = """
-- KEYS[1]: the keyring hash. ARGV[1]: a MessagePack array entity, candidate, entity, ...
-- Returns each entity's stored key, storing its candidate first where it has none
-- (one HMGET and one HSET per 1,000 entities: unpack has a stack limit).
local offered = cmsgpack.unpack(ARGV[1])
local found = {}
local CHUNK = 1000
for first = 1, #offered, 2 * CHUNK do
  local last = math.min(first + 2 * CHUNK - 1, #offered)
  local names = {}
  for i = first, last, 2 do
    names[#names + 1] = offered[i]
  end
  local values = redis.call('HMGET', KEYS[1], unpack(names))
  local missing = {}
  for j = 1, #names do
    local value = values[j]
    if not value then
      value = offered[first + 2 * j - 1]
      missing[#missing + 1] = names[j]
      missing[#missing + 1] = value
    end
    found[#found + 1] = value
  end
  if #missing > 0 then
    redis.call('HSET', KEYS[1], unpack(missing))
  end
end
return found
"""

_pack: Final = msgspec.msgpack.Encoder().encode


class RedisKeyring:
    """A :class:`Keyring` on the Redis hash ``<prefix>:keys`` (entity → ``<id>:<base64>``).

    The hash is apart from the stream, so the log can be copied without its keys, but it
    shares the server and its backups. In production configure a key file directory
    (:class:`FileKeyring`, ``LEDGER_KEYRING=file:<dir>``) or a KMS behind this protocol.
    Redis errors raise :class:`~services.store.base.StoreUnavailableError`.
    """

    def __init__(self, client: aioredis.Redis, prefix: str = "ledger") -> None:
        self.client = client
        self.key = Keys(prefix).keyring
        self._get_or_create = client.register_script(GET_OR_CREATE_SCRIPT)

    async def get(self, entity: str) -> DataKey | None:
        """The entity's key, or ``None``."""
        try:
            raw = await self.client.hget(self.key, entity)
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"redis keyring: {exc}") from exc
        return None if raw is None else DataKey.load(raw)

    async def get_or_create(self, entity: str) -> DataKey:
        """The entity's key; ``HSETNX`` makes concurrent creators agree on one."""
        found = await self.get(entity)
        if found is not None:
            return found
        try:
            await self.client.hsetnx(self.key, entity, DataKey.new().dump())
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"redis keyring: {exc}") from exc
        found = await self.get(entity)
        if found is None:  # destroyed between the two commands: a race with an erasure
            raise KeyringError(f"the key of {entity} was destroyed while it was created")
        return found

    async def destroy(self, entity: str) -> bool:
        """``HDEL`` the entity's key; whether there was one."""
        try:
            return bool(await self.client.hdel(self.key, entity))
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"redis keyring: {exc}") from exc

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one: one ``HMGET``."""
        wanted = list(dict.fromkeys(entities))
        if not wanted:
            return {}
        try:
            values = await self.client.hmget(self.key, wanted)
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"redis keyring: {exc}") from exc
        return {e: DataKey.load(v) for e, v in zip(wanted, values, strict=True) if v is not None}

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """Every entity's key in one script call (:data:`GET_OR_CREATE_SCRIPT`).

        Each entity comes with a fresh candidate key, stored only where the entity has none:
        concurrent creators agree on one key, as with ``HSETNX``.
        """
        wanted = list(dict.fromkeys(entities))
        if not wanted:
            return {}
        candidates = DataKey.new_many(wanted)
        dumps = {entity: key.dump() for entity, key in candidates.items()}
        offered: list[str] = []
        for entity, dump in dumps.items():
            offered += (entity, dump)
        try:
            values = await self._get_or_create(keys=[self.key], args=[_pack(offered)])
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"redis keyring: {exc}") from exc
        found: dict[str, DataKey] = {}
        for entity, value in zip(wanted, values, strict=True):
            stored = value.decode() if isinstance(value, bytes) else value
            found[entity] = candidates[entity] if stored == dumps[entity] else DataKey.load(stored)
        return found


class FileKeyring:
    """A :class:`Keyring` of key files in one directory (0700), one file per key (0600).

    A file is named by the SHA-256 of its entity (ids may be longer than a file name) and
    holds ``<id>:<base64>``. A key is created by linking a finished temporary file into
    place, so concurrent creators agree on one key and no reader sees half a file.
    """

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    def _path(self, entity: str) -> Path:
        return self.directory / f"{hashlib.sha256(entity.encode()).hexdigest()}.key"

    def _read(self, path: Path) -> DataKey | None:
        try:
            return DataKey.load(path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyringError(f"cannot read a key file in {self.directory}: {exc}") from exc

    async def get(self, entity: str) -> DataKey | None:
        """The entity's key, or ``None``."""
        return self._read(self._path(entity))

    async def get_or_create(self, entity: str) -> DataKey:
        """The entity's key, created (atomically, mode 0600) when missing."""
        return (await self.get_or_create_many([entity]))[entity]

    def _create(self, entities: Sequence[str]) -> None:
        """Create the key files of ``entities``, durably, with two syncs for all of them.

        Each key is written to a temporary file; one ``syncfs`` puts every new file's
        content on disk; each is then linked into place (a creator that lost the race to
        another keeps the other's key), the temporary names are removed and one fsync of
        the directory makes the links and removals durable. Runs in a worker thread.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        temps: list[tuple[Path, Path]] = []
        try:
            for entity in entities:
                path = self._path(entity)
                temp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
                fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                temps.append((temp, path))
                try:
                    os.write(fd, DataKey.new().dump().encode())
                finally:
                    os.close(fd)
            _sync_file_system(self.directory)
            for temp, path in temps:
                with contextlib.suppress(FileExistsError):  # another creator won: keep its key
                    os.link(temp, path)
        finally:
            for temp, _ in temps:
                temp.unlink(missing_ok=True)
        self._sync_directory()

    def _sync_directory(self) -> None:
        """fsync the directory, so a link or an unlink survives a crash of the machine."""
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    async def destroy(self, entity: str) -> bool:
        """Unlink the entity's key file and sync the directory; whether there was one."""
        path = self._path(entity)
        for stray in self.directory.glob(f"{path.name}.*.tmp"):  # left by a crash mid-create
            stray.unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise KeyringError(f"cannot delete a key file in {self.directory}: {exc}") from exc
        try:
            self._sync_directory()
        except OSError as exc:
            raise KeyringError(f"cannot sync the key directory {self.directory}: {exc}") from exc
        return True

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one."""
        found = {e: self._read(self._path(e)) for e in dict.fromkeys(entities)}
        return {e: k for e, k in found.items() if k is not None}

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The key of every one of ``entities``, those missing created together (two disk
        syncs for the lot, off the event loop)."""
        wanted = list(dict.fromkeys(entities))
        found = await self.get_many(wanted)
        missing = [e for e in wanted if e not in found]
        if missing:
            try:
                await asyncio.to_thread(self._create, missing)
            except OSError as exc:
                raise KeyringError(f"cannot write a key file in {self.directory}: {exc}") from exc
            found |= await self.get_many(missing)
        lost = [e for e in wanted if e not in found]
        if lost:
            raise KeyringError(f"the key of {lost[0]} was destroyed while it was created")
        return found


def _sync_file_system(directory: Path) -> None:
    """Flush every file of the file system ``directory`` is on (``syncfs``; ``sync`` where
    the C library has no ``syncfs``)."""
    syncfs = getattr(_libc(), "syncfs", None)
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


@functools.cache
def _libc() -> ctypes.CDLL:
    """The C library the process runs with (loaded on first use)."""
    return ctypes.CDLL(None, use_errno=True)


def keyring_for(spec: str, client: aioredis.Redis, prefix: str = "ledger") -> Keyring:
    """The keyring ``LEDGER_KEYRING`` names: ``redis`` or ``file:<dir>``."""
    if spec == "redis":
        return RedisKeyring(client, prefix)
    kind, _, where = spec.partition(":")
    if kind == "file" and where:
        return FileKeyring(where)
    raise KeyringError(f"LEDGER_KEYRING must be redis or file:<dir>, got {spec!r}")
