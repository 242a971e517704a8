"""Documents as a stored view holds them: MessagePack, decoded back into their kind's Struct.

A document is written as MessagePack (msgspec's encoding of its Struct: an array for the
``array_like`` kinds, a map under the kind's field names otherwise). Views written before
hold JSON documents; they keep reading, told apart by their first byte (a JSON document
starts with ``{`` or ``[``, a MessagePack array or map never does), so a view need not be
rebuilt: each document turns into MessagePack the next time its projector writes it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import msgspec

from projections import Docs, Projection
from services.resp import text
from services.views.errors import CorruptViewError, UnknownKindError

__all__ = [
    "check_kinds",
    "decode_doc",
    "decode_kind",
    "decode_view",
    "doc_reader",
    "encode_doc",
    "pack_docs",
    "readable",
]

_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_JSON_STARTS = frozenset(b"{[")
"""First bytes of a JSON document (a view written before MessagePack)."""


def encode_doc(doc: msgspec.Struct) -> bytes:
    """A document as the view stores it (MessagePack)."""
    return _encoder.encode(doc)


_STR32: Final = struct.Struct(">BI")
"""A MessagePack ``str 32`` header: the type byte and the length."""


def pack_docs(docs: Sequence[msgspec.Struct]) -> bytes:
    """A MessagePack array of the documents as the view stores them, each a MessagePack
    string: a script's ``cmsgpack.unpack`` reads it as a table of Lua strings (Redis 7.0's
    ``cmsgpack`` refuses the bin type; a Lua string holds any bytes). Each document is
    encoded straight into the one buffer."""
    buffer = bytearray(b"\xdd" + len(docs).to_bytes(4, "big"))
    encode_into, head = _encoder.encode_into, _STR32.pack_into
    for doc in docs:
        at = len(buffer)
        buffer += b"\xdb\0\0\0\0"
        encode_into(doc, buffer, -1)
        head(buffer, at, 0xDB, len(buffer) - at - 5)
    return bytes(buffer)


@cache
def doc_reader(doc_type: type[msgspec.Struct]) -> Callable[[bytes | str], Any]:
    """The one function that decodes a stored document of ``doc_type``, MessagePack or JSON
    (it raises :class:`msgspec.DecodeError` on anything else)."""
    from_msgpack = msgspec.msgpack.Decoder(doc_type).decode
    from_json = msgspec.json.Decoder(doc_type).decode

    def read(raw: bytes | str) -> Any:
        if isinstance(raw, str) or (raw and raw[0] in _JSON_STARTS):
            return from_json(raw)
        return from_msgpack(raw)

    return read


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
        doc: msgspec.Struct = doc_reader(doc_type)(raw)
    except msgspec.DecodeError as exc:
        raise CorruptViewError(f"{projection.name} v{projection.version} {kind}: {exc}") from exc
    return doc


def decode_kind(
    projection: Projection, kind: str, stored: Mapping[Any, bytes | str]
) -> dict[str, msgspec.Struct]:
    """Every stored document of one kind (id → stored bytes) decoded, by id."""
    return {text(ident): decode_doc(projection, kind, raw) for ident, raw in stored.items()}


def decode_view(
    projection: Projection, stored: Mapping[str, Mapping[Any, bytes | str]]
) -> Docs[msgspec.Struct]:
    """A state from the stored documents of a view, by kind and id; no change is pending on it."""
    return Docs({kind: decode_kind(projection, kind, docs) for kind, docs in stored.items()})


def readable(projection: Projection, kind: str, raw: bytes | str) -> str:
    """A stored document as a person reads it: JSON, or, when it does not decode, its bytes
    with those that are not UTF-8 escaped."""
    try:
        return _json.encode(decode_doc(projection, kind, raw)).decode()
    except CorruptViewError:
        return raw if isinstance(raw, str) else raw.decode(errors="backslashreplace")
