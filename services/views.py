"""Stored views: where a projection's documents and checkpoint live in Redis, and reading them.

A projection ``name`` at ``version`` keeps one hash per document kind,
``<prefix>:{view:<name>:v<version>}:<kind>`` (document id → the document as JSON), and a meta
hash ``<prefix>:{view:<name>:v<version>}:meta`` whose field ``position`` is the checkpoint:
the last log position the documents include. The runner (:mod:`services.runner`) writes the
changed documents and the checkpoint in one atomic step, so whatever a reader loads in one
``MULTI``/``EXEC`` is the fold of the log up to that checkpoint, never half a batch.

Bumping a projection's version gives it new keys (and a new consumer group): the new version
is rebuilt from the start of the log while the old one keeps serving.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec
import redis.asyncio as aioredis

from events import Position
from projections import Projection
from projections.docs import Docs

from .errors import LedgerError
from .store.keys import Keys

__all__ = [
    "CHECKPOINT_FIELD",
    "CorruptViewError",
    "UnknownKindError",
    "ViewError",
    "ViewKeys",
    "decode_doc",
    "encode_doc",
    "load_checkpoint",
    "load_kind",
    "load_view",
    "view_keys",
]

CHECKPOINT_FIELD = "position"
"""The field of a view's meta hash holding its checkpoint."""


class ViewError(LedgerError):
    """Root of the errors of reading a stored view."""


class UnknownKindError(ViewError):
    """Raised when a document kind is asked for that the projection does not declare."""


class CorruptViewError(ViewError):
    """Raised when a stored document does not decode as its kind's type.

    The view was written by another version of the projection (whose fold meaning changed
    without a version bump) or by hand; rebuilding it under a new version is the remedy.
    """


class ViewKeys(msgspec.Struct, frozen=True):
    """The Redis names that belong to one projection version."""

    name: str
    version: int
    kinds: dict[str, str]
    """Document kind → the hash holding that kind's documents."""
    meta: str
    """The meta hash (field ``position`` is the checkpoint)."""
    lease: str
    """The lease key of the projector working on this view."""
    group: str
    """The consumer group on the log that feeds this view."""


def view_keys(prefix: str, projection: Projection) -> ViewKeys:
    """The keys and the consumer group of ``projection``'s stored view under ``prefix``."""
    keys = Keys(prefix)
    name, version = projection.name, projection.version
    return ViewKeys(
        name=name,
        version=version,
        kinds={kind: keys.view(name, version, kind) for kind in projection.doc_types},
        meta=keys.view_meta(name, version),
        lease=keys.lease(name, version),
        group=f"projector:{name}:v{version}",
    )


_encoder = msgspec.json.Encoder()


def encode_doc(doc: msgspec.Struct) -> bytes:
    """A document as the view stores it (JSON)."""
    return _encoder.encode(doc)


@cache
def _decoder(doc_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(doc_type)


def decode_doc(projection: Projection, kind: str, raw: bytes | str) -> msgspec.Struct:
    """A stored document of ``kind`` back as its Struct; :class:`CorruptViewError` if it is not."""
    doc_type = projection.doc_types.get(kind)
    if doc_type is None:
        raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    try:
        doc: msgspec.Struct = _decoder(doc_type).decode(raw)
    except msgspec.DecodeError as exc:
        raise CorruptViewError(f"{projection.name} v{projection.version} {kind}: {exc}") from exc
    return doc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _checkpoint(raw: bytes | str | None) -> Position | None:
    return None if raw is None else Position(_text(raw))


def _decode_kind(
    projection: Projection, kind: str, stored: Mapping[bytes | str, bytes | str]
) -> dict[str, msgspec.Struct]:
    return {_text(ident): decode_doc(projection, kind, raw) for ident, raw in stored.items()}


async def load_view(
    client: aioredis.Redis, prefix: str, projection: Projection
) -> tuple[Docs[msgspec.Struct], Position | None]:
    """Every document of the stored view and its checkpoint, read as one atomic snapshot.

    A view never written answers the projection's initial state and ``None``.
    """
    keys = view_keys(prefix, projection)
    kinds = list(keys.kinds)
    async with client.pipeline(transaction=True) as pipe:
        for kind in kinds:
            pipe.hgetall(keys.kinds[kind])
        pipe.hget(keys.meta, CHECKPOINT_FIELD)
        replies = await pipe.execute()
    checkpoint = _checkpoint(replies[-1])
    if checkpoint is None:
        return projection.initial(), None
    stored = {
        kind: _decode_kind(projection, kind, reply)
        for kind, reply in zip(kinds, replies[:-1], strict=True)
    }
    return Docs(stored), checkpoint


async def load_kind(
    client: aioredis.Redis, prefix: str, projection: Projection, kind: str
) -> dict[str, msgspec.Struct]:
    """Every stored document of one ``kind``, by id (empty when the view was never written)."""
    keys = view_keys(prefix, projection)
    if kind not in keys.kinds:
        raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    stored = await client.hgetall(keys.kinds[kind])
    return _decode_kind(projection, kind, stored)


async def load_checkpoint(
    client: aioredis.Redis, prefix: str, projection: Projection
) -> Position | None:
    """The stored view's checkpoint: the last log position it includes (``None``: none yet)."""
    raw = await client.hget(view_keys(prefix, projection).meta, CHECKPOINT_FIELD)
    return _checkpoint(raw)
