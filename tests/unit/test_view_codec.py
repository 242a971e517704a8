"""The stored form of view documents: MessagePack written, compressed with the shipped
dictionary where that pays, and the forms of older views still read."""

from __future__ import annotations

import datetime as dt
import gc
import hashlib
import json
import random
from pathlib import Path

import msgspec
import pytest
import zstandard

from projections import PROJECTIONS, Projection
from projections.victims_cells import SHARED, Cell, Contribution, Line, Sums
from services.views import codec
from services.views.codec import (
    COMPRESS_FROM,
    DICTIONARY_ID,
    decode_doc,
    decode_view,
    encode_doc,
    pack_docs,
    packed_doc,
    readable,
)
from services.views.errors import CorruptViewError
from tests.support.builders import Log, folded, mixed, opening

INCIDENTS: Projection = PROJECTIONS["incidents"]


def every_document(name: str) -> list[tuple[str, msgspec.Struct]]:
    """(kind, document) for every document a fold of a busy log gives projection ``name``."""
    events = [*opening(), *mixed(400, random.Random(7))]
    state = folded(name, *events, log=Log())
    return [(kind, doc) for kind, docs in state.kinds().items() for doc in docs.values()]


MAGIC = b"\x28\xb5\x2f\xfd"
"""The first bytes of a zstd frame."""
DICTIONARY_SHA256 = "4ed25dec12719975aaf801b08c52c5f03c00a504d3673045c4b47fae6218c250"
"""The SHA-256 of ``services/views/data/views-3.zdict`` as shipped."""
GOLDEN_ROW = (
    "28b52ffd61031400250300f402de0012a169a3692da4736f6872303182a461646d32b14d61617272617420616c"
    "2d4e75276d616e830a0a0a040606b714fc057a86136cb89299db5abf987dc24ec0ea5c4189068f9ec8fbde9eee"
    "a6f17b84c25bdfa53d423661926e08341d07498c1d"
)
"""An incident's row as stored, compressed with the dictionary (hex)."""
GOLDEN_ROW_JSON = {
    "i": "i-1",
    "r": True,
    "f": "sohr",
    "v": 1,
    "os": "2024-03-01",
    "dp": 1,
    "c": "SYR",
    "p": {"adm1": "Idlib", "adm2": "Maarrat al-Nu'man"},
    "gp": 2,
    "vt": "state_based",
    "et": "Explosions/Remote violence",
    "ct": True,
    "g": "weak",
    "fa": {"low": 10, "best": 10, "high": 10},
    "vi": [{"low": 4, "best": 6, "high": 6, "community": "alawite", "status": "civilian"}],
    "so": [{"publisher": "SOHR", "url": "https://example.org/r/1"}],
    "ht": 1,
    "sc": 1,
}


@pytest.mark.parametrize("name", sorted(PROJECTIONS))
class TestEveryKindRoundTrips:
    def test_a_document_comes_back_equal_from_its_stored_form(self, name: str) -> None:
        """Every document of every type is stored as its MessagePack or, from
        :data:`COMPRESS_FROM` bytes, as a smaller zstd frame of it naming the dictionary,
        and decodes back equal."""
        projection = PROJECTIONS[name]
        documents = every_document(name)
        types = projection.doc_types
        assert {types[kind] for kind, _ in documents} == set(types.values())
        for kind, doc in documents:
            stored, packed = encode_doc(doc), packed_doc(doc)
            if stored != packed:
                assert len(packed) >= COMPRESS_FROM
                assert len(stored) < len(packed)
                assert stored[:4] == MAGIC
                assert zstandard.get_frame_parameters(stored).dict_id == DICTIONARY_ID
            assert decode_doc(projection, kind, stored) == doc

    def test_a_document_stored_as_messagepack_before_compression_still_reads(
        self, name: str
    ) -> None:
        """A view written before compression holds plain MessagePack; it reads as it is."""
        projection = PROJECTIONS[name]
        for kind, doc in every_document(name):
            assert decode_doc(projection, kind, packed_doc(doc)) == doc

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


class TestCompression:
    def test_an_incident_row_and_a_victims_cell_are_stored_compressed(self) -> None:
        """The big kinds (an incident's row, a community's contribution and total) shrink to
        at most half their MessagePack over a busy log; the small ones are left as they are."""
        for name, kinds in (
            ("incidents", ["incident"]),
            ("community-victims", ["incident", "total"]),
        ):
            documents = [(kind, doc) for kind, doc in every_document(name) if kind in kinds]
            packed = sum(len(packed_doc(doc)) for _, doc in documents)
            stored = sum(len(encode_doc(doc)) for _, doc in documents)
            assert stored * 2 <= packed, (name, stored, packed)
        small = [doc for kind, doc in every_document("country-stance") if kind == "incident"]
        assert all(encode_doc(doc) == packed_doc(doc) for doc in small)

    def test_the_shipped_dictionary_is_the_one_documents_were_written_with(self) -> None:
        """The dictionary file holds the id every compressed document names, and its bytes
        never change (documents stored with it would no longer decode): a better dictionary
        is a new file under a new id."""
        path = Path(codec.__file__).parent / "data" / codec.DICTIONARY
        dictionary = zstandard.ZstdCompressionDict(path.read_bytes())
        assert dictionary.dict_id() == DICTIONARY_ID
        assert hashlib.sha256(path.read_bytes()).hexdigest() == DICTIONARY_SHA256

    def test_a_document_compressed_as_stored_still_reads(self) -> None:
        """An incident's row as a view stored it, compressed, decodes to its document."""
        raw = bytes.fromhex(GOLDEN_ROW)
        assert json.loads(readable(INCIDENTS, "incident", raw)) == GOLDEN_ROW_JSON

    def test_a_frame_that_does_not_decompress_is_a_corrupt_view(self) -> None:
        """A stored frame cut short raises CorruptViewError, not a zstd error."""
        kind, doc = next(d for d in every_document("incidents") if d[0] == "incident")
        stored = encode_doc(doc)
        assert stored[:4] == MAGIC
        with pytest.raises(CorruptViewError, match="does not decompress"):
            decode_doc(INCIDENTS, kind, stored[:-3])


def a_cell(seed: int) -> Cell:
    """A cell of victim sums, made at run time (no shared constants)."""
    rng = random.Random(seed)

    def sums() -> Sums:
        low = rng.randrange(50)
        return Sums(low, low + 2, low + 5, rng.randrange(1, 4), 0)

    return Cell(
        "SYR",
        "Latakia",
        dt.date(2025, 3, 6),
        dt.date(2025, 3, 7),
        "weak",
        "Violence against civilians",
        "one_sided",
        True,
        "sohr",
        ("Syrian transitional government forces",),
        communities={"Alawite": sums(), "Christian": sums()},
        lines={"Alawite|civilian": sums(), "Christian|civilian": sums()},
        statuses={"civilian": sums()},
        parties={"civilians": sums()},
    )


class TestDecodedCellsShareTheirSums:
    """A cell read from storage holds the fold's shared sums, not fresh ones (each value is
    kept once), and nothing of it is tracked by the cyclic garbage collector: a decoded
    state of a million events held 2.8 million tracked sum tuples, which the first
    collection after it walked (BENCHMARKS.md)."""

    @staticmethod
    def decoded(cell: Cell) -> Cell:
        read = decode_doc(PROJECTIONS["community-victims"], "total", encode_doc(cell))
        assert isinstance(read, Cell)
        return read

    def test_each_sum_of_a_decoded_cell_is_the_shared_tuple_of_its_value(self) -> None:
        cell = a_cell(1)
        read = self.decoded(cell)
        assert read == cell
        for held in (read.communities, read.lines, read.statuses, read.parties):
            assert held
            for one in held.values():
                assert one is SHARED[one]

    def test_a_cell_decoded_as_a_document_or_in_a_snapshot_is_not_tracked(self) -> None:
        cell = a_cell(3)
        in_snapshot = msgspec.msgpack.Decoder(dict[str, Cell]).decode(
            msgspec.msgpack.encode({"c": cell})
        )
        for read in (self.decoded(cell), in_snapshot["c"]):
            assert read == cell
            held = (read.communities, read.lines, read.statuses, read.parties)
            assert not any(gc.is_tracked(one) for one in (read, *held))
            assert not any(gc.is_tracked(one) for sums in held for one in sums.values())
        assert not gc.is_tracked(in_snapshot)

    def test_two_decodes_of_one_cell_hold_the_same_sums(self) -> None:
        cell = a_cell(2)
        first, second = self.decoded(cell), self.decoded(cell)
        assert first is not second
        for key, one in first.lines.items():
            assert second.lines[key] is one


class TestDecodedDocumentsShareRepeatedValues:
    """Contributions and incident rows read from storage hold one object per repeated value
    (a country, a feed, an event type, a date, a line): a decoder makes a fresh one of each,
    which a process holding a view kept once per incident."""

    @pytest.mark.parametrize(
        ("name", "fields"),
        [
            ("community-victims", ("country", "adm1", "event_type", "feed", "window_start")),
            ("incidents", ("country", "event_type", "feed", "occurred_start", "fatalities")),
        ],
    )
    def test_equal_values_of_two_decoded_documents_are_one_object(
        self, name: str, fields: tuple[str, ...]
    ) -> None:
        projection = PROJECTIONS[name]
        docs = [doc for kind, doc in every_document(name) if kind == "incident"]
        read = [decode_doc(projection, "incident", encode_doc(doc)) for doc in docs]
        assert read == docs
        for field in fields:
            values = [getattr(doc, field) for doc in read if getattr(doc, field) is not None]
            assert len(values) > len(set(values)), field  # the check can fail
            by_value: dict[object, object] = {}
            for value in values:
                assert by_value.setdefault(value, value) is value, field

    def test_the_lines_of_decoded_contributions_share_their_communities(self) -> None:
        victims = PROJECTIONS["community-victims"]
        made = [
            Contribution(
                incident_id=f"i-{n}",
                lines=(Line("".join(["Ala", "wite"]), "civilian", n, n, n),),
            )
            for n in range(1, 4)
        ]
        read = [decode_doc(victims, "incident", encode_doc(doc)) for doc in made]
        assert read == made
        communities = [line.community for doc in read for line in doc.lines]  # type: ignore[attr-defined]
        assert len({id(text) for text in communities}) == 1


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
        with pytest.raises(CorruptViewError, match=f"incidents v{INCIDENTS.version} incident"):
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
