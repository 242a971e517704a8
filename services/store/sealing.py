"""Private text sealed at the store's edge, and erasure in an append-only log.

Three fields can hold personal data: an incident's ``notes``, a source's ``url`` and a
statement speaker's ``name`` (:mod:`events.private`). :class:`SealingStore` wraps the event
store: on append it encrypts them and the log keeps only placeholders; on read it decrypts
them again. Everything else stays plain, so projections and the runner never need a key.

**Sealing.** Each incident and statement has its own data key (AES-256-GCM), created on the
first event that carries private text and held by a :class:`Keyring`, apart from the log.
An event's private fields become placeholders that still pass the schema (notes and names
``"[sealed]"``, urls ``None``) and the entry gets a fifth field, ``sealed``: the JSON
``{"k": key id, "p": [paths], "c": base64(nonce ‖ ciphertext)}`` where the ciphertext is the
JSON map path → text, the nonce 96 random bits and the associated data the event id (a blob
moved to another entry does not decrypt). The paths stay readable: they name fields, never
their text, and tell where text was once it is erased.

**Reading.** :meth:`SealingStore.read` and :meth:`SealingStore.read_entity` (the export, the
read API) restore the text. When the entity's key is gone (or was replaced by a newer key
after an erasure) the fields read ``"[erased]"`` (notes, names) or ``None`` (urls; the read
API shows ``"[erased]"`` where :meth:`SealingStore.open_entity` says a url was erased). A blob
that does not authenticate raises :class:`TamperedError`, never garbage.

**Erasure.** :func:`erase` appends ``incident.redacted``/``statement.redacted`` (source
:data:`OPERATOR_FEED`) and then destroys the entity's key: the log stays append-only and
replayable, and the sealed text of every earlier event of the entity is unreadable for good,
in the log, its replicas and backups alike. Text sent for the entity afterwards (a revision's
source url) is sealed under a new key and stays readable. Only :func:`erase` (and the import
of a log holding erasures) may append a redaction: :class:`SealingStore` refuses one whose
source is not :data:`OPERATOR_FEED`, so a feed cannot mark text erased that still is not.

**Keyrings.** ``LEDGER_KEYRING=redis`` (the default) keeps the keys in the hash
``<prefix>:keys`` (:class:`RedisKeyring`): apart from the stream, but on the same server and
in its backups until they age out. ``LEDGER_KEYRING=file:<dir>`` keeps one file per key in a
directory (:class:`FileKeyring`, mode 0600), for a volume that is backed up apart from Redis
or not at all; a KMS would implement the same :class:`Keyring` protocol. Deleting a file
unlinks it; whether its blocks are overwritten depends on the file system and device.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Final, Literal, Protocol, runtime_checkable

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events import (
    ERASED,
    SEALED,
    AnyEvent,
    IncidentRedacted,
    Position,
    Recorded,
    StatementRedacted,
    masked,
    parse_submission,
    private_fields,
    with_private,
)
from events.errors import CodecError
from services.settings import OPERATOR_FEED
from services.store.base import (
    Appended,
    AppendRejectedError,
    EntityState,
    EventStore,
    StoreError,
    StoreUnavailableError,
)
from services.store.keys import Keys
from services.store.memory import START

__all__ = [
    "OPERATOR_FEED",
    "DataKey",
    "Erasure",
    "FileKeyring",
    "Keyring",
    "KeyringError",
    "MemoryKeyring",
    "RedisKeyring",
    "SealableStore",
    "SealingError",
    "SealingStore",
    "TamperedError",
    "Unsealed",
    "erase",
    "keyring_for",
    "open_records",
    "seal",
    "unseal",
]


KEY_BYTES: Final = 32
"""AES-256."""
NONCE_BYTES: Final = 12
"""96-bit nonces, random per sealed event."""
_KEY_ID_BYTES: Final = 8


class SealingError(StoreError):
    """Root of the errors of sealing private text and of its keyrings."""


class TamperedError(SealingError):
    """Raised when a sealed blob is malformed or does not authenticate under its key.

    The ciphertext, its nonce, its paths or the event id it is bound to was altered, or the
    blob belongs to another entry: the text is refused rather than returned as garbage.
    """


class KeyringError(SealingError):
    """Raised when a keyring cannot store, read or destroy a key (file system, bad record)."""


# --- keys and keyrings -------------------------------------------------------------------------


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
        path = self._path(entity)
        found = self._read(path)
        if found is not None:
            return found
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            temp = path.with_name(f"{path.name}.{secrets.token_hex(8)}.tmp")
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                os.write(fd, DataKey.new().dump().encode())
                os.fsync(fd)
            finally:
                os.close(fd)
            try:
                os.link(temp, path)
            except FileExistsError:
                pass  # another creator won: use its key
            finally:
                temp.unlink()
        except OSError as exc:
            raise KeyringError(f"cannot write a key file in {self.directory}: {exc}") from exc
        found = self._read(path)
        if found is None:
            raise KeyringError(f"the key of {entity} was destroyed while it was created")
        return found

    async def destroy(self, entity: str) -> bool:
        """Unlink the entity's key file; whether there was one."""
        try:
            self._path(entity).unlink()
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise KeyringError(f"cannot delete a key file in {self.directory}: {exc}") from exc
        return True

    async def get_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The keys of those ``entities`` that have one."""
        found = {e: self._read(self._path(e)) for e in dict.fromkeys(entities)}
        return {e: k for e, k in found.items() if k is not None}

    async def get_or_create_many(self, entities: Sequence[str]) -> dict[str, DataKey]:
        """The key of every one of ``entities``, created where missing."""
        return {e: await self.get_or_create(e) for e in dict.fromkeys(entities)}


def keyring_for(spec: str, client: aioredis.Redis, prefix: str = "ledger") -> Keyring:
    """The keyring ``LEDGER_KEYRING`` names: ``redis`` or ``file:<dir>``."""
    if spec == "redis":
        return RedisKeyring(client, prefix)
    kind, _, where = spec.partition(":")
    if kind == "file" and where:
        return FileKeyring(where)
    raise KeyringError(f"LEDGER_KEYRING must be redis or file:<dir>, got {spec!r}")


# --- sealing one event -----------------------------------------------------------------------


class _Blob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    k: str
    p: list[str]
    c: str


_blob_decoder: Final = msgspec.json.Decoder(_Blob)
_text_decoder: Final = msgspec.json.Decoder(dict[str, str])


def _aad(event_id: uuid.UUID | str, paths: Sequence[str]) -> bytes:
    return f"{event_id}|{','.join(paths)}".encode()


def seal(key: DataKey, event_id: uuid.UUID | str, fields: dict[str, str]) -> str:
    """The sealed blob of an event's private ``fields`` (path → text) under ``key``.

    The associated data binds it to ``event_id`` and to its list of paths.
    """
    paths = list(fields)
    nonce = secrets.token_bytes(NONCE_BYTES)
    cipher = AESGCM(key.secret).encrypt(nonce, msgspec.json.encode(fields), _aad(event_id, paths))
    body = base64.b64encode(nonce + cipher).decode()
    return msgspec.json.encode(_Blob(k=key.key_id, p=paths, c=body)).decode()


def _parse(blob: str) -> _Blob:
    try:
        return _blob_decoder.decode(blob)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise TamperedError(f"a sealed blob is malformed: {exc}") from exc


def blob_paths(blob: str) -> list[str]:
    """The paths a sealed blob holds text for (readable without its key)."""
    return list(_parse(blob).p)


def blob_key_id(blob: str) -> str:
    """The id of the key that sealed a blob."""
    return _parse(blob).k


def unseal(key: DataKey, event_id: uuid.UUID | str, blob: str) -> dict[str, str]:
    """The private fields (path → text) a blob sealed; :class:`TamperedError` when altered.

    ``key`` must be the key the blob names (:func:`blob_key_id`).
    """
    parsed = _parse(blob)
    if parsed.k != key.key_id:
        raise TamperedError(f"the blob was sealed under key {parsed.k}, not {key.key_id}")
    try:
        raw = base64.b64decode(parsed.c, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise TamperedError("a sealed blob's ciphertext is not base64") from exc
    if len(raw) < NONCE_BYTES + 16:
        raise TamperedError("a sealed blob's ciphertext is too short")
    try:
        plain = AESGCM(key.secret).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], _aad(event_id, parsed.p)
        )
    except InvalidTag as exc:
        raise TamperedError(f"the sealed text of event {event_id} does not authenticate") from exc
    fields = _text_decoder.decode(plain)
    if list(fields) != parsed.p:
        raise TamperedError("a sealed blob's paths disagree with its text")
    return fields


# --- the sealing store -------------------------------------------------------------------------


class Unsealed(msgspec.Struct, frozen=True):
    """A recorded event with its private text restored, and the paths that were erased."""

    recorded: Recorded
    erased: tuple[str, ...] = ()


def _open(recorded: Recorded, keys: dict[str, DataKey]) -> Unsealed:
    blob = recorded.sealed
    if blob is None:
        return Unsealed(recorded)
    event = recorded.event
    key = keys.get(event.entity)
    parsed = _parse(blob)
    if key is None or key.key_id != parsed.k:
        erased = tuple(parsed.p)
        try:
            restored = with_private(event, masked(erased, ERASED))
        except CodecError as exc:
            raise TamperedError(f"sealed paths of event {event.event_id}: {exc}") from exc
    else:
        erased = ()
        try:
            restored = with_private(event, unseal(key, event.event_id, blob))
        except CodecError as exc:
            raise TamperedError(f"sealed text of event {event.event_id}: {exc}") from exc
    return Unsealed(Recorded(recorded.position, recorded.recorded_at, restored), erased)


async def open_records(keyring: Keyring, records: Sequence[Recorded]) -> list[Unsealed]:
    """Restore the private text of ``records`` with ``keyring``'s keys.

    Text whose key is gone reads ``"[erased]"`` (urls ``None``, listed in ``erased``); a
    blob that does not authenticate raises :class:`TamperedError`.
    """
    keys = await keyring.get_many([r.event.entity for r in records if r.sealed is not None])
    return [_open(r, keys) for r in records]


class SealableStore(EventStore, Protocol):
    """An event store whose entries can keep a sealed blob beside the event (both stores)."""

    async def append(
        self, events: Sequence[AnyEvent], *, sealed: Sequence[str | None] | None = None
    ) -> list[Appended]:
        """Append like :meth:`EventStore.append`, keeping ``sealed[i]`` with event ``i``."""
        ...


def _is_redaction(event: AnyEvent) -> bool:
    return isinstance(event, IncidentRedacted | StatementRedacted)


class SealingStore:
    """An :class:`~services.store.base.EventStore` that seals private text on its way in.

    See the module docstring. ``inner`` is the Redis or in-memory store; ``keyring`` holds
    the data keys.
    """

    def __init__(self, inner: SealableStore, keyring: Keyring) -> None:
        self.inner = inner
        self.keyring = keyring

    async def _sealed(self, events: Sequence[AnyEvent]) -> tuple[list[AnyEvent], list[str | None]]:
        stored: list[AnyEvent] = []
        blobs: list[str | None] = []
        private = [private_fields(event) for event in events]
        keys = await self.keyring.get_or_create_many(
            [event.entity for event, fields in zip(events, private, strict=True) if fields]
        )
        for event, fields in zip(events, private, strict=True):
            if not fields:
                stored.append(event)
                blobs.append(None)
                continue
            key = keys[event.entity]
            blobs.append(seal(key, event.event_id, fields))
            stored.append(with_private(event, masked(fields, SEALED)))
        return stored, blobs

    async def append(self, events: Sequence[AnyEvent]) -> list[Appended]:
        """Seal each event's private text, then append the batch atomically.

        A redaction whose source is not :data:`OPERATOR_FEED` is refused
        (:class:`AppendRejectedError`) before anything is written. A key created for a batch
        the store then refuses stays unused.
        """
        for index, event in enumerate(events):
            if _is_redaction(event) and event.source != OPERATOR_FEED:
                raise AppendRejectedError(
                    index, "type", f"{event.type} is appended by operators only (ledger erase)"
                )
        stored, blobs = await self._sealed(events)
        return await self.inner.append(stored, sealed=blobs)

    async def open_all(self, records: Sequence[Recorded]) -> list[Unsealed]:
        """Restore the private text of ``records`` (``"[erased]"`` where keys are gone)."""
        return await open_records(self.keyring, records)

    async def open_entity(self, entity: str) -> list[Unsealed]:
        """Every event of ``entity`` with its text restored and the paths erased in each."""
        return await self.open_all(await self.inner.read_entity(entity))

    async def read(self, after: Position = START, count: int = 1000) -> list[Recorded]:
        """Up to ``count`` events strictly after ``after``, their private text restored."""
        return [u.recorded for u in await self.open_all(await self.inner.read(after, count))]

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity``, its private text restored."""
        return [u.recorded for u in await self.open_entity(entity)]

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status (from the inner store)."""
        return await self.inner.entity(entity)

    async def head(self) -> Position | None:
        """The last position of the log."""
        return await self.inner.head()

    async def length(self) -> int:
        """How many events the log holds."""
        return await self.inner.length()

    async def append_redaction(self, event: AnyEvent) -> Appended:
        """Append one redaction event (of any source); :func:`erase` uses it."""
        if not _is_redaction(event):
            raise SealingError(f"{event.type} is not a redaction")
        (appended,) = await self.inner.append([event], sealed=[None])
        return appended


# --- erasure ----------------------------------------------------------------------------------

ErasableKind = Literal["incident", "statement"]


class Erasure(msgspec.Struct, frozen=True):
    """What :func:`erase` did: the redaction's event id and position, and the key's fate."""

    entity: str
    event_id: str
    position: str
    key_destroyed: bool
    """Whether a key was there to destroy (``False``: the entity never had private text,
    or an earlier erasure destroyed it already)."""


async def erase(store: SealingStore, kind: ErasableKind, ident: str, reason: str) -> Erasure:
    """Erase an incident's or statement's private text: redaction event, then key destroyed.

    Raises :class:`~events.InvalidEventError` for a malformed id or reason,
    :class:`AppendRejectedError` when no such incident or statement was ever recorded
    (nothing is destroyed then), and the store's other errors. Running it again is harmless
    (a second redaction event; no key left to destroy).
    """
    draft: AnyEvent
    event_id = uuid.uuid4()
    if kind == "incident":
        draft = IncidentRedacted(
            event_id=event_id,
            source=OPERATOR_FEED,
            schema_version=IncidentRedacted.SCHEMA_VERSION,
            incident_id=ident,
            reason=reason,
        )
    else:
        draft = StatementRedacted(
            event_id=event_id,
            source=OPERATOR_FEED,
            schema_version=StatementRedacted.SCHEMA_VERSION,
            statement_id=ident,
            reason=reason,
        )
    event = parse_submission(msgspec.json.encode(draft))  # the schema's checks, or raises
    appended = await store.append_redaction(event)
    destroyed = await store.keyring.destroy(event.entity)
    return Erasure(event.entity, str(event_id), appended.position, destroyed)
