"""Where the data keys of sealed private text live, apart from the log.

One key per entity (``incident:<id>``, ``statement:<id>``), AES-256, with a random id that
every blob it seals names (:mod:`services.store.sealing`). ``LEDGER_KEYRING=file:<dir>``
(the default, ``<LEDGER_DATA_DIR>/keyring/<prefix>``) keeps the keys in page files of
fixed-size records in a directory (:class:`FileKeyring`, mode 0600), outside Redis's AOF and
RDB, for a volume of its own that is backed up apart from Redis or not at all; Redis holds
only where each key is. A KMS would implement the same :class:`Keyring` protocol.
``LEDGER_KEYRING=redis`` keeps the keys in the hash ``<prefix>:keys`` (:class:`RedisKeyring`):
apart from the stream, but on the same server, so erasure has Redis rewrite its AOF and RDB
after the ``HDEL`` (:mod:`services.store.compaction`). Destroying a file key overwrites its
record with zeros and syncs the page; whether the old blocks are overwritten on the device
depends on the file system. Destroying a key is what erasure does
(:mod:`services.protection.erasure`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import hashlib
import os
import re
import secrets
import struct
import threading
import weakref
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from services.store.base import StoreError, StoreUnavailableError
from services.store.keys import Keys, bucket_of

__all__ = [
    "KEY_BYTES",
    "KEY_SLOT_BYTES",
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


KEY_SLOT_BYTES: Final = 80
"""The size of one key's record in a key page (:class:`FileKeyring`)."""
_SLOT: Final = struct.Struct("<4s32s8s32sI")  # magic, SHA-256 of the entity, id, secret, CRC-32
_SLOT_MAGIC: Final = b"LKS1"
_EMPTY_SLOT: Final = bytes(KEY_SLOT_BYTES)
_PAGE_NAME: Final = re.compile(r"[0-9a-f]{16}")

PLACES_SCRIPT: Final = """
-- KEYS[1]: a bucket of the key slots (every bucket shares one hash tag). ARGV[1]: the start
-- of a bucket's key; ARGV[2]: a MessagePack array bucket, entity, bucket, entity, ...
-- Returns each entity's place or nil. One packed argument costs the client far less to
-- send than as many commands.
local base = ARGV[1]
local asked = cmsgpack.unpack(ARGV[2])
local found = {}
for i = 1, #asked, 2 do
  found[#found + 1] = redis.call('HGET', base .. asked[i], asked[i + 1])
end
return found
"""

CLAIM_SCRIPT: Final = """
-- KEYS[1]: a bucket of the key slots. ARGV[1]: the start of a bucket's key; ARGV[2]: a
-- MessagePack array bucket, entity, place, ... Stores each entity's place unless it has one
-- (another creator's); returns each entity's stored place.
local base = ARGV[1]
local offered = cmsgpack.unpack(ARGV[2])
local found = {}
for i = 1, #offered, 3 do
  local bucket = base .. offered[i]
  local place = redis.call('HGET', bucket, offered[i + 1])
  if not place then
    place = offered[i + 2]
    redis.call('HSET', bucket, offered[i + 1], place)
  end
  found[#found + 1] = place
end
return found
"""

UNMAP_SCRIPT: Final = """
-- KEYS[1]: a bucket of the key slots. ARGV[1]: the start of a bucket's key; ARGV[2..]:
-- bucket, entity, place, ... Removes each entity's place where it is still the one given;
-- returns how many it removed.
local base = ARGV[1]
local removed = 0
for i = 2, #ARGV, 3 do
  local bucket = base .. ARGV[i]
  if redis.call('HGET', bucket, ARGV[i + 1]) == ARGV[i + 2] then
    removed = removed + redis.call('HDEL', bucket, ARGV[i + 1])
  end
end
return removed
"""

UNMAP_EARLIER_SCRIPT: Final = """
-- KEYS[1]: the one hash of places written before the buckets. ARGV: entity, place, ...
-- Removes each entity's place where it is still the one given; returns how many it removed.
local removed = 0
for i = 1, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    removed = removed + redis.call('HDEL', KEYS[1], ARGV[i])
  end
end
return removed
"""


def _digest(entity: str) -> bytes:
    return hashlib.sha256(entity.encode()).digest()


def _slot_bytes(entity: str, key: DataKey) -> bytes:
    body = _SLOT.pack(_SLOT_MAGIC, _digest(entity), bytes.fromhex(key.key_id), key.secret, 0)
    return body[:-4] + zlib.crc32(body[:-4]).to_bytes(4, "little")


class FileKeyring:
    """A :class:`Keyring` of key pages in one directory (0700, pages 0600).

    **Layout.** Each keyring object appends the keys it creates to a page of its own,
    ``<16 hex>.page``: fixed-size records of :data:`KEY_SLOT_BYTES` (a magic, the SHA-256 of
    the entity, the key's id and secret, a CRC-32). Where an entity's key is, ``<page>:<slot>``
    and no key material, is kept in Redis, in one of 8,192 small hashes
    ``<prefix>:{keyslots}:<bucket>`` (:meth:`~services.store.keys.Keys.key_slot_bucket`,
    which Redis keeps as listpacks), so every process sharing the directory finds it with
    one script call per batch and one ``pread`` per key.

    **Creating** the keys of a batch costs one ``pwrite`` and one ``fdatasync`` of the page
    (the first batch of a page also creates it and fsyncs the directory), then one script
    call that stores each entity's place unless it has one: concurrent creators (several API
    processes) agree on one key per entity, and the loser's record is zeroed. A place is
    stored only after its record is on disk, so a crash mid-create leaves at most records
    nothing points to.

    **Destroying** a key overwrites its record in place with zeros, fdatasyncs the page and
    then removes its place: no file of the directory keeps the key (whether the old blocks
    are overwritten on the device depends on the file system: copy-on-write ones keep
    them). A place whose record is zero (a crash between the two steps) or gone (the
    directory lost) reads as no key, and the next creator replaces it.

    **Earlier layouts.** A directory written before pages holds one file per key,
    ``<sha256 of the entity>.key`` (``<id>:<base64>``); such keys are still read and
    destroyed (the file unlinked, the directory synced), new keys go to pages. Places
    written before the buckets stay in the one hash ``<prefix>:keyslots``
    (:attr:`~services.store.keys.Keys.key_slots`): read there when a bucket has none, and
    removed there too; new places go to buckets only. Whether that hash exists is looked
    at once per keyring object, so a process of the earlier version must not be writing
    places beside this one (README, *Upgrading*).
    """

    def __init__(
        self, directory: Path | str, client: aioredis.Redis, prefix: str = "ledger"
    ) -> None:
        self.directory = Path(directory)
        self.client = client
        keys = Keys(prefix)
        self.buckets = keys.key_slot_buckets
        self.earlier = keys.key_slots
        self._route = [keys.key_slot_bucket("")]  # any bucket: they share one hash tag
        self._claim = client.register_script(CLAIM_SCRIPT)
        self._places_script = client.register_script(PLACES_SCRIPT)
        self._unmap_script = client.register_script(UNMAP_SCRIPT)
        self._unmap_earlier = client.register_script(UNMAP_EARLIER_SCRIPT)
        self._has_earlier: bool | None = None  # whether the hash of earlier places exists
        self._lock = threading.Lock()  # the page and its next slot, between worker threads
        self._page: str | None = None
        self._page_fd = -1
        self._next_slot = 0
        self._readers: dict[str, int] = {}  # page → descriptor open for reading (event loop)
        self._has_files: bool | None = None  # whether the earlier layout's files may be here
        self._fds: list[int] = []
        weakref.finalize(self, _close_all, self._fds)

    # --- places --------------------------------------------------------------------------

    async def _earlier_exists(self) -> bool:
        """Whether places written before the buckets exist (looked at once)."""
        if self._has_earlier is None:
            self._has_earlier = bool(await self.client.exists(self.earlier))
        return self._has_earlier

    async def _places(self, entities: Sequence[str]) -> list[bytes | None]:
        asked: list[str] = []
        for entity in entities:
            asked += (bucket_of(entity), entity)
        try:
            replies = await self._places_script(keys=self._route, args=[self.buckets, _pack(asked)])
            places = [_as_bytes(place) for place in replies]
            missing = [i for i, place in enumerate(places) if place is None]
            if missing and await self._earlier_exists():
                earlier = await self.client.hmget(self.earlier, [entities[i] for i in missing])
                for i, place in zip(missing, earlier, strict=True):
                    places[i] = _as_bytes(place)
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"file keyring's slots: {exc}") from exc
        return places

    async def _unmap(self, places: dict[str, bytes]) -> int:
        """Remove each entity's place where it is still the one given."""
        args: list[str | bytes] = [self.buckets]
        for entity, place in places.items():
            args += (bucket_of(entity), entity, place)
        try:
            removed = int(await self._unmap_script(keys=self._route, args=args))
            if removed < len(places) and await self._earlier_exists():
                pairs: list[str | bytes] = []
                for entity, place in places.items():
                    pairs += (entity, place)
                removed += int(await self._unmap_earlier(keys=[self.earlier], args=pairs))
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"file keyring's slots: {exc}") from exc
        return removed

    @staticmethod
    def _parse_place(place: bytes) -> tuple[str, int]:
        page, _, slot = place.decode(errors="replace").partition(":")
        if not _PAGE_NAME.fullmatch(page) or not slot.isdigit():
            raise KeyringError(f"a key's place is not <page>:<slot>: {place!r}")
        return page, int(slot)

    def _page_path(self, page: str) -> Path:
        return self.directory / f"{page}.page"

    def _reader(self, page: str) -> int | None:
        fd = self._readers.get(page)
        if fd is None:
            try:
                fd = os.open(self._page_path(page), os.O_RDONLY)
            except FileNotFoundError:
                return None
            except OSError as exc:
                raise KeyringError(f"cannot open a key page in {self.directory}: {exc}") from exc
            self._readers[page] = fd
            self._fds.append(fd)
        return fd

    def _load(self, entity: str, place: bytes) -> DataKey | None:
        """The key at ``place``; ``None`` where its record is zero or gone (destroyed, or the
        directory lost); :class:`KeyringError` when the record is damaged or another's."""
        page, slot = self._parse_place(place)
        fd = self._reader(page)
        if fd is None:
            return None
        try:
            record = os.pread(fd, KEY_SLOT_BYTES, slot * KEY_SLOT_BYTES)
        except OSError as exc:
            raise KeyringError(f"cannot read a key page in {self.directory}: {exc}") from exc
        if len(record) < KEY_SLOT_BYTES or record == _EMPTY_SLOT:
            return None
        magic, digest, key_id, secret, crc = _SLOT.unpack(record)
        if magic != _SLOT_MAGIC or crc != zlib.crc32(record[:-4]):
            raise KeyringError(f"a key record of page {page} is damaged (slot {slot})")
        if digest != _digest(entity):
            raise KeyringError(f"the key record at {page}:{slot} belongs to another entity")
        return DataKey(key_id.hex(), secret)

    async def _lookup(self, wanted: Sequence[str]) -> tuple[dict[str, DataKey], dict[str, bytes]]:
        """The keys of ``wanted`` that have one, and the places that point at no key."""
        found: dict[str, DataKey] = {}
        stale: dict[str, bytes] = {}
        for entity, place in zip(wanted, await self._places(wanted), strict=True):
            if place is not None:
                key = self._load(entity, place)
                if key is None:
                    stale[entity] = place
                else:
                    found[entity] = key
            elif self._may_have_files():
                old = self._read_file(self._file(entity))
                if old is not None:
                    found[entity] = old
        return found, stale

    # --- the earlier layout: one file per key ------------------------------------------------

    def _file(self, entity: str) -> Path:
        return self.directory / f"{hashlib.sha256(entity.encode()).hexdigest()}.key"

    def _may_have_files(self) -> bool:
        """Whether the directory holds key files of the earlier layout (looked at once)."""
        if self._has_files is None:
            try:
                with os.scandir(self.directory) as entries:
                    self._has_files = any(e.name.endswith((".key", ".tmp")) for e in entries)
            except FileNotFoundError:
                self._has_files = False
        return self._has_files

    def _read_file(self, path: Path) -> DataKey | None:
        try:
            return DataKey.load(path.read_bytes())
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyringError(f"cannot read a key file in {self.directory}: {exc}") from exc

    def _destroy_file(self, entity: str) -> bool:
        """Unlink ``entity``'s key file of the earlier layout (and a temporary one a crash
        left), then sync the directory; whether there was one."""
        path = self._file(entity)
        strays = list(self.directory.glob(f"{path.name}.*.tmp"))
        for stray in strays:
            stray.unlink(missing_ok=True)
        try:
            path.unlink()
        except FileNotFoundError:
            existed = False
        except OSError as exc:
            raise KeyringError(f"cannot delete a key file in {self.directory}: {exc}") from exc
        else:
            existed = True
        if existed or strays:
            self._sync_directory()
        return existed

    # --- writing ---------------------------------------------------------------------------

    def _sync_directory(self) -> None:
        """fsync the directory, so a new page or an unlink survives a crash of the machine."""
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _write(self, entities: Sequence[str]) -> dict[str, tuple[bytes, DataKey]]:
        """A fresh key per entity, written to this object's page and on disk before it
        returns (one ``pwrite``, one ``fdatasync``); entity → (place, key). Runs in a worker
        thread."""
        with self._lock:
            if self._page is None:
                self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
                page = secrets.token_hex(8)
                flags = os.O_RDWR | os.O_CREAT | os.O_EXCL
                self._page_fd = os.open(self._page_path(page), flags, 0o600)
                self._fds.append(self._page_fd)
                self._sync_directory()  # the page's name is durable before any key in it
                self._page = page
            page, fd, first = self._page, self._page_fd, self._next_slot
            self._next_slot += len(entities)
        keys = DataKey.new_many(entities)
        data = b"".join(_slot_bytes(entity, key) for entity, key in keys.items())
        at = first * KEY_SLOT_BYTES
        while data:
            written = os.pwrite(fd, data, at)
            data, at = data[written:], at + written
        os.fdatasync(fd)
        return {e: (f"{page}:{first + i}".encode(), k) for i, (e, k) in enumerate(keys.items())}

    def _zero(self, place: bytes, entity: str | None = None, *, sync: bool) -> None:
        """Overwrite the record at ``place`` with zeros (``entity``: only if it is that
        entity's or damaged, never another's), fdatasync'd when ``sync``."""
        page, slot = self._parse_place(place)
        try:
            fd = os.open(self._page_path(page), os.O_RDWR)
        except FileNotFoundError:
            return
        try:
            at = slot * KEY_SLOT_BYTES
            record = os.pread(fd, KEY_SLOT_BYTES, at)
            if len(record) < KEY_SLOT_BYTES or record == _EMPTY_SLOT:
                return
            magic, digest, *_, crc = _SLOT.unpack(record)
            intact = magic == _SLOT_MAGIC and crc == zlib.crc32(record[:-4])
            if entity is not None and intact and digest != _digest(entity):
                raise KeyringError(f"the key record at {page}:{slot} belongs to another entity")
            os.pwrite(fd, _EMPTY_SLOT, at)
            if sync:
                os.fdatasync(fd)
        finally:
            os.close(fd)

    # --- the Keyring protocol ----------------------------------------------------------------

    async def get(self, entity: str) -> DataKey | None:
        """The entity's key, or ``None``."""
        return (await self.get_many([entity])).get(entity)

    async def get_or_create(self, entity: str) -> DataKey:
        """The entity's key, created (durably, mode 0600) when missing."""
        return (await self.get_or_create_many([entity]))[entity]

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one: one ``HMGET``, one read per key."""
        wanted = list(dict.fromkeys(entities))
        if not wanted:
            return {}
        found, _ = await self._lookup(wanted)
        return found

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The key of every one of ``entities``, those missing created together: one write
        and one ``fdatasync`` of the page (off the event loop), then one script call that
        keeps the key another creator stored first."""
        wanted = list(dict.fromkeys(entities))
        if not wanted:
            return {}
        found, stale = await self._lookup(wanted)
        if stale:  # destroyed mid-way, or the directory lost: the next key replaces it
            await self._unmap(stale)
        missing = [e for e in wanted if e not in found]
        if not missing:
            return found
        try:
            made = await asyncio.to_thread(self._write, missing)
        except OSError as exc:
            raise KeyringError(f"cannot write a key page in {self.directory}: {exc}") from exc
        offered: list[str] = []
        for entity in missing:
            offered += (bucket_of(entity), entity, made[entity][0].decode())
        try:
            stored = await self._claim(keys=self._route, args=[self.buckets, _pack(offered)])
        except rexc.RedisError as exc:
            raise StoreUnavailableError(f"file keyring's slots: {exc}") from exc
        for entity, value in zip(missing, stored, strict=True):
            mine, key = made[entity]
            place = _as_bytes(value) or b""
            if place == mine:
                found[entity] = key
                continue
            self._zero(mine, sync=False)  # another creator won: its key is the entity's
            other = self._load(entity, place)
            if other is None:  # destroyed between the two steps: a race with an erasure
                raise KeyringError(f"the key of {entity} was destroyed while it was created")
            found[entity] = other
        return {entity: found[entity] for entity in wanted}

    async def destroy(self, entity: str) -> bool:
        """Zero the entity's key record in place and fdatasync its page, then remove its
        place (or unlink its key file of the earlier layout); whether there was a key."""
        (place,) = await self._places([entity])
        destroyed = False
        try:
            if place is not None:
                await asyncio.to_thread(self._zero, place, entity, sync=True)
                destroyed = await self._unmap({entity: place}) > 0
            if self._may_have_files():
                destroyed = await asyncio.to_thread(self._destroy_file, entity) or destroyed
        except OSError as exc:
            raise KeyringError(f"cannot destroy a key in {self.directory}: {exc}") from exc
        return destroyed


def _as_bytes(value: bytes | str | None) -> bytes | None:
    return value.encode() if isinstance(value, str) else value


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)
    fds.clear()


def keyring_for(spec: str, client: aioredis.Redis, prefix: str = "ledger") -> Keyring:
    """The keyring ``LEDGER_KEYRING`` names: ``redis`` or ``file:<dir>`` (key pages in the
    directory, their places in Redis under ``prefix``)."""
    if spec == "redis":
        return RedisKeyring(client, prefix)
    kind, _, where = spec.partition(":")
    if kind == "file" and where:
        return FileKeyring(where, client, prefix)
    raise KeyringError(f"LEDGER_KEYRING must be redis or file:<dir>, got {spec!r}")
