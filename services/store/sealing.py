"""Private text sealed at the store's edge.

Four fields can hold personal data: an incident's ``notes``, a source's ``url``, a
statement speaker's ``name`` and an event's ``reason`` (:mod:`events.private`).
:class:`SealingStore` wraps the event store: on append it encrypts them and the log keeps
only placeholders; on read it decrypts them again. Everything else stays plain, so
projections and the runner never need a key.

**Sealing.** Each incident and statement has its own data key (AES-256-GCM), created on the
first event that carries private text and held by a :class:`Keyring`, apart from the log.
An event's private fields become placeholders that still pass the schema (notes, reasons and
names ``"[sealed]"``, urls ``None``) and the entry gets a fifth field, ``sealed``, the text
``2|<key id>|<paths, comma-separated>|<base64(nonce ‖ ciphertext)>`` where the ciphertext is
the MessagePack array of the texts in the order of the paths, the nonce 96 random bits and
the associated data ``2|<event id>|<paths>`` (a blob moved to another entry, or given other
paths, does not decrypt). The paths stay readable: they name fields, never their text, and
tell where text was once it is erased. Blobs written before this form are the JSON
``{"k": key id, "p": [paths], "c": base64(nonce ‖ ciphertext)}``, the ciphertext the JSON map
path → text and the associated data ``<event id>|<paths>``; they open as they are (the
compact form is about 50 bytes shorter an entry).

**Reading.** :meth:`SealingStore.read` and :meth:`SealingStore.read_entity` (the export, the
read API) restore the text. When the entity's key is gone (or was replaced by a newer key
after an erasure) the fields read ``"[erased]"`` (notes, names) or ``None`` (urls; the read
API shows ``"[erased]"`` where :meth:`SealingStore.open_entity` says a url was erased). A blob
that does not authenticate raises :class:`TamperedError`, never garbage.

**Erasure** (:mod:`services.protection.erasure`) appends ``incident.redacted`` /
``statement.redacted`` (source :data:`OPERATOR_FEED`) and then destroys the entity's key in
its keyring (:mod:`services.store.keyring`): the sealed text of every earlier event of the
entity is unreadable for good. Text sent for the entity afterwards (a revision's source url)
is sealed under a new key and stays readable. Only erasure (and the import of a log holding
erasures) may append a redaction: :class:`SealingStore` refuses one whose source is not
:data:`OPERATOR_FEED`, so a feed cannot mark text erased that still is not.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import uuid
from collections.abc import Sequence
from typing import Final, Protocol, runtime_checkable

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from events import (
    ERASED,
    AnyEvent,
    Event,
    IncidentRedacted,
    Position,
    Recorded,
    StatementRedacted,
    id_texts,
    masked,
    private_fields,
    sealed_form,
    with_private,
)
from events.errors import CodecError
from services.store.base import Appended, AppendRejectedError, EntityState, EventStore
from services.store.keyring import DataKey, Keyring, SealingError
from services.store.positions import START
from services.store.rules import OPERATOR_FEED, digest_part

__all__ = [
    "NONCE_BYTES",
    "Files",
    "SealableStore",
    "SealingStore",
    "TamperedError",
    "Unsealed",
    "blob_key_id",
    "blob_paths",
    "key_entity",
    "open_records",
    "private_digest",
    "seal",
    "unseal",
]

NONCE_BYTES: Final = 12
"""96-bit nonces, random per sealed event."""


class TamperedError(SealingError):
    """Raised when a sealed blob is malformed or does not authenticate under its key.

    The ciphertext, its nonce, its paths or the event id it is bound to was altered, or the
    blob belongs to another entry: the text is refused rather than returned as garbage.
    """


# --- sealing one event -----------------------------------------------------------------------


class _Blob(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A blob in either form (module docstring): its key id, paths and base64 body."""

    k: str
    p: list[str]
    c: str
    compact: bool = False
    """The compact form (``2|…``), whose text is a MessagePack array; else the JSON form."""


_blob_decoder: Final = msgspec.json.Decoder(_Blob)
_json_texts: Final = msgspec.json.Decoder(dict[str, str])
_packed_texts: Final = msgspec.msgpack.Decoder(list[str])
_pack_texts: Final = msgspec.msgpack.Encoder().encode
_COMPACT: Final = "2"
"""The first part of a compact blob."""


def _aad(event_id: uuid.UUID | str, paths: Sequence[str], *, compact: bool = True) -> bytes:
    joined = ",".join(paths)
    return (f"{_COMPACT}|{event_id}|{joined}" if compact else f"{event_id}|{joined}").encode()


_encode: Final = msgspec.json.Encoder().encode


def _blob(aead: AESGCM, key_id: str, event_id: str, fields: dict[str, str], *, nonce: bytes) -> str:
    """The compact blob of ``fields`` (path → text) sealed with ``aead`` (the key
    ``key_id``'s) under ``nonce``, bound to ``event_id`` and the paths."""
    paths = list(fields)
    cipher = aead.encrypt(nonce, _pack_texts(list(fields.values())), _aad(event_id, paths))
    body = base64.b64encode(nonce + cipher).decode()
    return f"{_COMPACT}|{key_id}|{','.join(paths)}|{body}"


def seal(key: DataKey, event_id: uuid.UUID | str, fields: dict[str, str]) -> str:
    """The sealed blob of an event's private ``fields`` (path → text) under ``key``.

    The associated data binds it to ``event_id`` and to its list of paths.
    """
    nonce = secrets.token_bytes(NONCE_BYTES)
    return _blob(AESGCM(key.secret), key.key_id, str(event_id), fields, nonce=nonce)


def _parse(blob: str) -> _Blob:
    if blob.startswith(f"{_COMPACT}|"):
        parts = blob.split("|")
        if len(parts) != 4 or not parts[1] or not parts[2]:
            raise TamperedError("a sealed blob is malformed: not 2|key|paths|text")
        return _Blob(k=parts[1], p=parts[2].split(","), c=parts[3], compact=True)
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
    aad = _aad(event_id, parsed.p, compact=parsed.compact)
    try:
        plain = AESGCM(key.secret).decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], aad)
    except InvalidTag as exc:
        raise TamperedError(f"the sealed text of event {event_id} does not authenticate") from exc
    if parsed.compact:
        try:
            texts = _packed_texts.decode(plain)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise TamperedError(f"a sealed blob's text is malformed: {exc}") from exc
        if len(texts) != len(parsed.p):
            raise TamperedError("a sealed blob's paths disagree with its text")
        return dict(zip(parsed.p, texts, strict=True))
    fields = _json_texts.decode(plain)
    if list(fields) != parsed.p:
        raise TamperedError("a sealed blob's paths disagree with its text")
    return fields


def private_digest(key: DataKey, fields: dict[str, str]) -> str:
    """The keyed digest of an event's private text that the idempotency index compares
    (:func:`~services.store.rules.body_digest`): '' when any of it reads ``"[erased]"`` (an
    export taken after an erasure: only the rest of the body can be compared). Keyed with
    the entity's data key, so it tells nothing of the text once the key is destroyed."""
    if ERASED in fields.values():
        return ""
    return digest_part(_encode(fields), key.secret)


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
    key = keys.get(key_entity(event))
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
    keys = await keyring.get_many([key_entity(r.event) for r in records if r.sealed is not None])
    return [_open(r, keys) for r in records]


class SealableStore(EventStore, Protocol):
    """An event store whose entries can keep a sealed blob beside the event (both stores)."""

    async def append(
        self,
        events: Sequence[AnyEvent],
        *,
        sealed: Sequence[str | None] | None = None,
        private: Sequence[str] | None = None,
    ) -> list[Appended]:
        """Append like :meth:`EventStore.append`, keeping ``sealed[i]`` with event ``i`` and
        comparing ``private[i]`` when its id comes again."""
        ...


_REDACTIONS: Final[frozenset[type]] = frozenset((IncidentRedacted, StatementRedacted))


def _is_redaction(event: Event) -> bool:
    return type(event) in _REDACTIONS  # exact types (final): far cheaper than isinstance


def key_entity(event: Event) -> str:
    """Whose data key seals ``event``'s text: its entity's, but a redaction's reason has a
    key of its own (``<entity>#redaction:<event id>``) that erasing the entity does not
    destroy, so the reason outlives the erasure it explains and is never in the clear."""
    if _is_redaction(event):
        return f"{event.entity}#redaction:{event.event_id}"
    return event.entity


@runtime_checkable
class Files(Protocol):
    """The files a store keeps its data in, rewritten so deleted data leaves them
    (:class:`services.store.compaction.RedisFiles`)."""

    async def compact(self) -> None:
        """Rewrite the files; what was deleted before the call is in none of them after."""
        ...


class SealingStore:
    """An :class:`~services.store.base.EventStore` that seals private text on its way in.

    See the module docstring. ``inner`` is the Redis or in-memory store; ``keyring`` holds
    the data keys; ``files``, when given, are rewritten by erasure after a key is destroyed
    (Redis's AOF and RDB: the deleted key, and deleted inbox submissions, leave the disk).
    """

    def __init__(self, inner: SealableStore, keyring: Keyring, files: Files | None = None) -> None:
        self.inner = inner
        self.keyring = keyring
        self.files = files

    async def _sealed(
        self, events: Sequence[AnyEvent]
    ) -> tuple[list[AnyEvent], list[str | None], list[str]]:
        """Each event with its private text masked, its sealed blob and its private digest.

        The batch's keys come in one keyring call; each key's AES-GCM object is made once
        per batch, and the nonces are drawn in one read of the random source.
        """
        private = [private_fields(event) for event in events]
        owners = [
            key_entity(e) if fields else "" for e, fields in zip(events, private, strict=True)
        ]
        keys = await self.keyring.get_or_create_many([owner for owner in owners if owner])
        nonces = secrets.token_bytes(NONCE_BYTES * len(events)) if keys else b""
        aeads: dict[str, AESGCM] = {}
        stored: list[AnyEvent] = []
        blobs: list[str | None] = []
        digests: list[str] = []
        ids = id_texts(events)
        for index, (event, fields, owner) in enumerate(zip(events, private, owners, strict=True)):
            if not fields:
                stored.append(event)
                blobs.append(None)
                digests.append("")
                continue
            key = keys[owner]
            aead = aeads.get(key.key_id)
            if aead is None:
                aead = aeads[key.key_id] = AESGCM(key.secret)
            nonce = nonces[index * NONCE_BYTES : (index + 1) * NONCE_BYTES]
            blobs.append(_blob(aead, key.key_id, ids[index], fields, nonce=nonce))
            digests.append(private_digest(key, fields))
            stored.append(sealed_form(event))
        return stored, blobs, digests

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
        stored, blobs, digests = await self._sealed(events)
        return await self.inner.append(stored, sealed=blobs, private=digests)

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
        stored, blobs, digests = await self._sealed([event])
        (appended,) = await self.inner.append(stored, sealed=blobs, private=digests)
        return appended
