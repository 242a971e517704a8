"""Documents as a stored view holds them: JSON, decoded back into their kind's Struct."""

from __future__ import annotations

from collections.abc import Mapping
from functools import cache
from typing import Any

import msgspec

from projections import Projection
from services.resp import text
from services.views.errors import CorruptViewError, UnknownKindError

__all__ = ["check_kinds", "decode_doc", "decode_kind", "decoder", "encode_doc"]

_encoder = msgspec.json.Encoder()


def encode_doc(doc: msgspec.Struct) -> bytes:
    """A document as the view stores it (JSON)."""
    return _encoder.encode(doc)


@cache
def decoder(doc_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    """The one JSON decoder of a document type."""
    return msgspec.json.Decoder(doc_type)


def check_kinds(projection: Projection, kinds: Any) -> None:
    """:class:`UnknownKindError` unless every one of ``kinds`` is a kind of ``projection``."""
    for kind in kinds:
        if kind not in projection.doc_types:
            raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")


def decode_doc(projection: Projection, kind: str, raw: bytes | str) -> msgspec.Struct:
    """A stored document of ``kind`` back as its Struct; :class:`CorruptViewError` if it is not."""
    doc_type = projection.doc_types.get(kind)
    if doc_type is None:
        raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    try:
        doc: msgspec.Struct = decoder(doc_type).decode(raw)
    except msgspec.DecodeError as exc:
        raise CorruptViewError(f"{projection.name} v{projection.version} {kind}: {exc}") from exc
    return doc


def decode_kind(
    projection: Projection, kind: str, stored: Mapping[Any, bytes | str]
) -> dict[str, msgspec.Struct]:
    """Every stored document of one kind (id → JSON) decoded, by id."""
    return {text(ident): decode_doc(projection, kind, raw) for ident, raw in stored.items()}
