"""Documents as a stored view holds them: MessagePack, compressed where that pays, decoded
back into their kind's Struct.

A document is written as MessagePack (msgspec's encoding of its Struct: an array for the
``array_like`` kinds, a map under the kind's field names otherwise). One of at least
:data:`COMPRESS_FROM` bytes is written as one zstd frame of that MessagePack, compressed with
the shipped dictionary ``services/views/data/views-3.zdict`` (id 3, named in the frame's
header; trained by ``tools/train_view_dictionary.py`` on a corpus other than the
benchmark's), unless the frame is not smaller. A dictionary once shipped never changes: a
new one gets a new id and file.

The forms are told apart by their first byte, so views written in an earlier form keep
reading and need no rebuild (each document takes the current form the next time its
projector writes it): a zstd frame starts with ``(`` (``0x28``, its magic number), a JSON
document (views written before MessagePack) with ``{`` or ``[``, and a MessagePack map or
array with none of these.

To read a stored document anywhere: if it starts with the bytes ``28 b5 2f fd``, decompress
it with the dictionary; decode the MessagePack.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import msgspec
import zstandard

from events import ZSTD_MAGIC, DictionaryCodec
from projections import Doc, Docs, Projection
from services.resp import text
from services.views.errors import CorruptViewError, UnknownKindError

__all__ = [
    "COMPRESS_FROM",
    "DICTIONARY",
    "DICTIONARY_ID",
    "check_kinds",
    "decode_doc",
    "decode_kind",
    "decode_view",
    "doc_reader",
    "encode_doc",
    "pack_docs",
    "packed_doc",
    "readable",
]

_encoder = msgspec.msgpack.Encoder()
_json = msgspec.json.Encoder()
_JSON_STARTS = frozenset(b"{[")
"""First bytes of a JSON document (a view written before MessagePack)."""


COMPRESS_FROM: Final = 48
"""The size of MessagePack from which a document is stored compressed: below it a frame
saves nothing (the kinds of a few ids, the pairs' scores), above it a document shrinks to
a third or less (an incident's row: 335 B to 73 B on average, BENCHMARKS.md)."""
DICTIONARY: Final = "views-3.zdict"
"""The zstd dictionary of compressed documents, in ``services/views/data``."""
DICTIONARY_ID: Final = 3
"""The id in that dictionary's header and in every frame compressed with it (the log's
dictionary has id 2)."""


@cache
def _zstd() -> DictionaryCodec:
    """The documents' compressor and decompressor, made once on first use."""
    return DictionaryCodec(__package__, DICTIONARY, DICTIONARY_ID)


def packed_doc(doc: msgspec.Struct) -> bytes:
    """A document's MessagePack, before any compression."""
    return _encoder.encode(doc)


def encode_doc(doc: msgspec.Struct) -> bytes:
    """A document as the view stores it: its MessagePack, as a zstd frame when it is at least
    :data:`COMPRESS_FROM` bytes and the frame is smaller (module docstring)."""
    packed = _encoder.encode(doc)
    if len(packed) < COMPRESS_FROM:
        return packed
    framed: bytes = _zstd().compress(packed)
    return framed if len(framed) < len(packed) else packed


_STR32: Final = struct.Struct(">BI")
"""A MessagePack ``str 32`` header: the type byte and the length."""


def pack_docs(docs: Sequence[msgspec.Struct]) -> bytes:
    """A MessagePack array of the documents as the view stores them (:func:`encode_doc`),
    each a MessagePack string: a script's ``cmsgpack.unpack`` reads it as a table of Lua
    strings (Redis 7.0's ``cmsgpack`` refuses the bin type; a Lua string holds any bytes)."""
    buffer = bytearray(b"\xdd" + len(docs).to_bytes(4, "big"))
    head = _STR32.pack
    for doc in docs:
        stored = encode_doc(doc)
        buffer += head(0xDB, len(stored))
        buffer += stored
    return bytes(buffer)


@cache
def doc_reader(doc_type: type[msgspec.Struct]) -> Callable[[bytes | str], Any]:
    """The one function that decodes a stored document of ``doc_type`` in any of its forms
    (it raises :class:`msgspec.DecodeError` on anything else), then settles it
    (:meth:`projections.docs.Doc.settled`) where its type says how."""
    from_msgpack = msgspec.msgpack.Decoder(doc_type).decode
    from_json = msgspec.json.Decoder(doc_type).decode

    def read(raw: bytes | str) -> Any:
        if isinstance(raw, str) or (raw and raw[0] in _JSON_STARTS):
            return from_json(raw)
        if raw and raw[0] == ZSTD_MAGIC:
            try:
                raw = _zstd().decompress(raw)
            except zstandard.ZstdError as exc:
                message = f"a compressed document does not decompress: {exc}"
                raise msgspec.DecodeError(message) from exc
        return from_msgpack(raw)

    settle = getattr(doc_type, "settled", Doc.settled)
    if settle is Doc.settled:
        return read

    def read_settled(raw: bytes | str) -> Any:
        return settle(read(raw))

    return read_settled


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
