"""The stored form of view documents: MessagePack written, JSON of older views still read."""

from __future__ import annotations

import json
import random

import msgspec
import pytest

from projections import PROJECTIONS, Projection
from services.views.codec import decode_doc, decode_view, encode_doc, pack_docs, readable
from services.views.errors import CorruptViewError
from tests.support.builders import Log, folded, mixed, opening

INCIDENTS: Projection = PROJECTIONS["incidents"]


def every_document(name: str) -> list[tuple[str, msgspec.Struct]]:
    """(kind, document) for every document a fold of a busy log gives projection ``name``."""
    events = [*opening(), *mixed(400, random.Random(7))]
    state = folded(name, *events, log=Log())
    return [(kind, doc) for kind, docs in state.kinds().items() for doc in docs.values()]


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
class TestEveryKindRoundTrips:
    def test_a_document_comes_back_equal_from_its_stored_form(self, name: str) -> None:
        """Every document of every type is stored as MessagePack and decodes back equal."""
        projection = PROJECTIONS[name]
        documents = every_document(name)
        types = projection.doc_types
        assert {types[kind] for kind, _ in documents} == set(types.values())
        for kind, doc in documents:
            stored = encode_doc(doc)
            assert stored[:1] not in (b"{", b"[")  # MessagePack, not JSON
            assert decode_doc(projection, kind, stored) == doc

    def test_a_document_stored_as_json_before_still_reads(self, name: str) -> None:
        """A view written before MessagePack holds JSON documents; each decodes to the same
        document, from bytes or text, so such a view needs no rebuild."""
        projection = PROJECTIONS[name]
        for kind, doc in every_document(name):
            old = msgspec.json.encode(doc)
            assert decode_doc(projection, kind, old) == doc
            assert decode_doc(projection, kind, old.decode()) == doc

    def test_a_view_mixing_both_forms_loads_whole(self, name: str) -> None:
        """A kind whose documents were written partly before and partly after loads whole."""
        projection = PROJECTIONS[name]
        stored: dict[str, dict[str, bytes]] = {}
        expected: dict[str, dict[str, msgspec.Struct]] = {}
        state = folded(name, *opening(), *mixed(200, random.Random(3)), log=Log())
        for kind, docs in state.kinds().items():
            for n, (ident, doc) in enumerate(docs.items()):
                form = msgspec.json.encode if n % 2 else encode_doc
                stored.setdefault(kind, {})[ident] = form(doc)
                expected.setdefault(kind, {})[ident] = doc
        assert decode_view(projection, stored).kinds() == expected


class TestPackedForAScript:
    def test_packed_documents_are_an_array_of_strings_holding_each_stored_form(self) -> None:
        """pack_docs gives a MessagePack array (``array 32``) of ``str 32`` items, item i
        holding exactly ``encode_doc`` of document i, in order."""
        docs = [doc for _, doc in every_document("community-victims")]
        packed = pack_docs(docs)
        assert packed[0] == 0xDD
        assert int.from_bytes(packed[1:5], "big") == len(docs)
        at, items = 5, []
        while at < len(packed):
            assert packed[at] == 0xDB
            size = int.from_bytes(packed[at + 1 : at + 5], "big")
            items.append(packed[at + 5 : at + 5 + size])
            at += 5 + size
        assert items == [encode_doc(doc) for doc in docs]

    def test_no_documents_pack_as_an_empty_array(self) -> None:
        """An empty batch is an empty MessagePack array."""
        assert msgspec.msgpack.decode(pack_docs([])) == []


class TestWhatDoesNotDecode:
    @pytest.mark.parametrize(
        "raw",
        [
            b'{"i": 5}',  # JSON of the wrong shape
            msgspec.msgpack.encode({"i": 5}),  # MessagePack of the wrong shape
            b"\xc1",  # a byte MessagePack never uses
            b"not a document",
            b"",
        ],
    )
    def test_a_document_of_the_wrong_shape_is_a_corrupt_view(self, raw: bytes) -> None:
        """Bytes that are no document of the kind raise CorruptViewError naming view and kind."""
        with pytest.raises(CorruptViewError, match="incidents v5 incident"):
            decode_doc(INCIDENTS, "incident", raw)


class TestReadable:
    def test_a_stored_document_reads_as_its_json(self) -> None:
        """``ledger verify`` shows a stored document as JSON, whatever form it is stored in."""
        kind, doc = next(d for d in every_document("incidents") if d[0] == "incident")
        as_json = json.loads(msgspec.json.encode(doc))
        assert json.loads(readable(INCIDENTS, kind, encode_doc(doc))) == as_json
        assert json.loads(readable(INCIDENTS, kind, msgspec.json.encode(doc))) == as_json

    def test_bytes_that_do_not_decode_are_shown_escaped(self) -> None:
        """A document that does not decode is shown as its bytes, those not UTF-8 escaped."""
        assert readable(INCIDENTS, "incident", b"\xc1broken") == "\\xc1broken"
