"""Snapshot deltas: a base plus the deltas after it reads back as the very state of the fold.

A random history (reports, revisions, retractions, merges, redactions, statements and their
retractions, from several feeds) is folded and cut at random positions; the state at the
first cut is encoded as a base, the change to each later cut as a delta of the keys the fold
changed since the cut before. Decoding the base and applying the deltas gives, at every
cut, the state of the pure fold: the same documents, in the same order in every kind (so
every answer computed from it is the same, byte for byte).
"""

from __future__ import annotations

import gc
import zlib
from typing import Any

import hypothesis.strategies as st
import msgspec
import pytest
import zstandard
from hypothesis import HealthCheck, assume, given, settings

from events import Event
from projections import PROJECTIONS, Docs, State, fold
from projections.docs import Key
from projections.victims_query import cells_of
from services.views.asof import ASOF_PROJECTIONS
from services.views.snapshots import (
    CorruptSnapshotError,
    LazyDocs,
    apply_delta,
    decode_chain,
    decode_delta,
    decode_snapshot,
    encode_delta,
    encode_snapshot,
)
from tests.support.builders import COAST, Log, line
from tests.support.strategies import PARTITIONED, histories

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
"""The first bytes of a zstd frame."""


def ordered(state: State) -> dict[str, list[tuple[str, object]]]:
    """Every kind's documents as a list, in the state's order (empty kinds left out)."""
    return {kind: list(docs.items()) for kind, docs in state.kinds().items() if docs}


class TestBasePlusDeltas:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=histories(PARTITIONED), data=st.data())
    def test_base_and_deltas_read_back_as_the_fold_in_its_order(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """At every cut, decoded base + applied deltas equal the fold, order included, and so
        does the chain read at once (each document decoded in its last version)."""
        records = Log().records(events)
        assume(records)
        cuts = sorted(data.draw(st.sets(st.integers(1, len(records)), min_size=1, max_size=6)))
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            live = projection.initial()
            read: LazyDocs | None = None
            done = 0
            previous = None
            chain: list[bytes] = []
            positions: list[str] = []
            for cut in cuts:
                changed: set[Key] = set()
                for one in records[done:cut]:
                    projection.apply(live, one)
                    changed.update(live.take_changes())
                done, position = cut, records[cut - 1].position
                if read is None or previous is None:
                    blob = encode_snapshot(live, position, cut)
                    read = decode_snapshot(projection, blob)
                    chain, positions = [], []
                else:
                    blob = encode_delta(live, changed, position, cut, previous)
                    back, delta = decode_delta(projection, blob)
                    assert back == previous
                    read = apply_delta(read, delta)
                chain.append(blob)
                positions.append(position)
                previous = position
                whole = fold(projection, records[:cut])
                assert read == whole, (name, cut)
                assert ordered(read) == ordered(whole), (name, cut)
                chained = decode_chain(projection, None, chain, positions)
                assert ordered(chained) == ordered(whole), (name, cut)

    def test_a_document_deleted_and_put_again_moves_to_the_end_as_in_the_fold(self) -> None:
        """An incident retracted (its cell gone) then a like one reported: the cell ends the
        kind after the delta, as it ends the fold's."""
        projection = PROJECTIONS["community-victims"]
        log = Log()
        first = log.records([COAST.reported("i-1", 5, victims=[line("druze", 5)])])
        second = log.records(
            [
                COAST.reported("i-2", 7, adm1="Tartus", victims=[line("alawite", 7)]),
                COAST.retracted("i-1"),
                COAST.reported("i-3", 5, victims=[line("druze", 5)]),
            ]
        )
        live = fold(projection, first)
        base = decode_snapshot(projection, encode_snapshot(live, first[-1].position, 1))
        live.take_changes()
        for one in second:
            projection.apply(live, one)
        changed = set(live.take_changes())
        blob = encode_delta(live, changed, second[-1].position, 4, first[-1].position)
        read = apply_delta(base, decode_delta(projection, blob)[1])
        assert ordered(read) == ordered(fold(projection, first + second))
        assert list(read.kind("total")) == list(live.kind("total"))

    def test_a_delta_is_no_base_and_a_base_no_delta(self) -> None:
        """Each decoder refuses the other format (a chain never starts on a delta)."""
        projection = PROJECTIONS["alignment"]
        state: State = Docs()
        base = encode_snapshot(state, "2-0", 2)  # type: ignore[arg-type]
        delta = encode_delta(state, [], "2-0", 2, "1-0")  # type: ignore[arg-type]
        try:
            decode_snapshot(projection, delta)
        except CorruptSnapshotError:
            pass
        else:
            raise AssertionError("a delta decoded as a base")
        try:
            decode_delta(projection, base)
        except CorruptSnapshotError:
            pass
        else:
            raise AssertionError("a base decoded as a delta")

    def test_a_chain_decodes_only_the_last_version_of_each_document(self) -> None:
        """A cell the base holds damaged and a delta replaces: the chain reads back as the
        fold, because the version replaced is never decoded; the base alone is a corrupt
        snapshot once its cells are read."""
        projection = PROJECTIONS["community-victims"]
        log = Log()
        first = log.records([COAST.reported("i-1", 5, victims=[line("druze", 5)])])
        second = log.records([COAST.revised("i-1", 9, victims=[line("druze", 9)])])
        live = fold(projection, first)
        [cell] = live.kind("total")
        kinds: Any = {
            **live.kinds(),
            "total": {cell: msgspec.Raw(msgspec.msgpack.encode("no cell"))},
        }
        damaged = encode_snapshot(Docs(kinds), first[-1].position, 1)
        live.take_changes()
        projection.apply(live, second[0])
        changed = set(live.take_changes())
        assert ("total", cell) in changed  # the revision changes the cell in place
        delta = encode_delta(live, changed, second[-1].position, 2, first[-1].position)
        positions = [first[-1].position, second[-1].position]
        read = decode_chain(projection, None, [damaged, delta], positions)
        assert ordered(read) == ordered(fold(projection, first + second))
        alone = decode_chain(projection, None, [damaged], positions[:1])  # cells read lazily
        with pytest.raises(CorruptSnapshotError):
            alone.kind("total")


class TestCompression:
    def test_blobs_are_zstd_frames_and_those_written_with_zlib_before_still_read(self) -> None:
        """Bases and deltas are written as zstd frames; the same blobs written before as zlib
        streams decode to the same state and changes."""
        projection = PROJECTIONS["community-victims"]
        log = Log()
        first = log.records([COAST.reported("i-1", 5, victims=[line("druze", 5)])])
        later = log.records([COAST.revised("i-1", 3)])
        live = fold(projection, first)
        base = encode_snapshot(live, first[-1].position, 1)
        live.take_changes()
        projection.apply(live, later[0])
        delta = encode_delta(
            live, set(live.take_changes()), later[0].position, 2, first[0].position
        )
        assert base[:4] == delta[:4] == ZSTD_MAGIC
        old_base, old_delta = (
            zlib.compress(zstandard.ZstdDecompressor().decompress(blob), 1)
            for blob in (base, delta)
        )
        assert ordered(decode_snapshot(projection, old_base)) == ordered(
            decode_snapshot(projection, base)
        )
        assert decode_delta(projection, old_delta) == decode_delta(projection, delta)

    def test_a_blob_cut_short_is_a_corrupt_snapshot(self) -> None:
        """A frame that does not decompress raises CorruptSnapshotError, not a zstd error."""
        projection = PROJECTIONS["incidents"]
        state = fold(projection, Log().records([COAST.reported("i-1", 5)]))
        blob = encode_snapshot(state, "1-0", 1)  # type: ignore[arg-type]
        with pytest.raises(CorruptSnapshotError):
            decode_snapshot(projection, blob[:-4])


class TestLazyKinds:
    """Community-victims' contributions read from a snapshot stay undecoded until asked for
    (``LAZY_KINDS``): a fold on the state read asks only for those its events touch, and the
    victims sums read the cells alone."""

    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=histories(PARTITIONED), data=st.data())
    def test_a_fold_on_a_state_read_from_a_snapshot_gives_the_fold(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Folding the rest of a history onto a snapshot of its start, read lazily, equals
        the fold of the whole, order included, and so does folding it onto a copy, which
        leaves the state it was taken from as it was."""
        records = Log().records(events)
        assume(records)
        cut = data.draw(st.integers(1, len(records)))
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            start = fold(projection, records[:cut])
            whole = fold(projection, records)
            blob = encode_snapshot(start, records[cut - 1].position, cut)
            read, fresh = decode_snapshot(projection, blob), decode_snapshot(projection, blob)
            copy = read.copy()
            for state in (copy, fresh):
                for one in records[cut:]:
                    projection.apply(state, one)
                assert ordered(state) == ordered(whole), name
            assert ordered(read) == ordered(start), name

    def test_reading_contributions_makes_no_tracked_object_per_incident(self) -> None:
        """A base of 400 incidents read back: fewer new objects tracked by the collector than
        incidents (decoded, each contribution's tuples would be), and each contribution, once
        asked for, equal to the fold's."""
        projection = PROJECTIONS["community-victims"]
        records = Log().records(
            [COAST.reported(f"i-{n}", n % 7 + 1, victims=[line("druze", 1)]) for n in range(400)]
        )
        live = fold(projection, records)
        blob = encode_snapshot(live, records[-1].position, len(records))
        gc.collect()
        gc.disable()
        try:
            before = gc.get_count()[0]
            read = decode_snapshot(projection, blob)
            tracked = gc.get_count()[0] - before
        finally:
            gc.enable()
        assert tracked < 400
        assert read.get("incident", "i-7") == live.get("incident", "i-7")
        assert list(read.kind("incident").items()) == list(live.kind("incident").items())

    def test_a_copy_hands_back_what_it_decodes_unless_it_replaced_those_bytes(self) -> None:
        """A cell a copy (and a copy of it) decodes is the very document its origins then
        hold; a cell the copy's delta replaced is decoded in the copy alone, and the origin
        decodes its own version."""
        projection = PROJECTIONS["community-victims"]
        log = Log()
        first = log.records([COAST.reported("i-1", 5), COAST.reported("i-2", 4, adm1="Hama")])
        second = log.records([COAST.revised("i-1", 9)])
        live = fold(projection, first)
        cells = {cell.adm1: ident for ident, cell in cells_of(live).items()}
        base = decode_snapshot(projection, encode_snapshot(live, first[-1].position, 2))
        copy = base.copy()
        again = copy.copy()
        hama = again.get("total", cells["Hama"])
        assert hama is not None
        assert base._kinds["total"][cells["Hama"]] is hama
        assert copy._kinds["total"][cells["Hama"]] is hama
        live.take_changes()
        projection.apply(live, second[0])
        delta = encode_delta(live, live.take_changes(), second[-1].position, 3, first[-1].position)
        apply_delta(copy, decode_delta(projection, delta)[1])
        coast = cells["Latakia"]
        assert copy.get("total", coast) == live.get("total", coast)
        held: object = base._kinds["total"][coast]
        assert type(held) is msgspec.Raw  # not the copy's version
        assert base.get("total", coast) == fold(projection, first).get("total", coast)

    def test_a_contribution_that_does_not_decode_is_a_corrupt_snapshot(self) -> None:
        """The damage shows when the document is asked for, as a CorruptSnapshotError."""
        projection = PROJECTIONS["community-victims"]
        kinds: Any = {"incident": {"i-1": msgspec.Raw(msgspec.msgpack.encode("no contribution"))}}
        damaged: State = Docs(kinds)
        read = decode_snapshot(projection, encode_snapshot(damaged, "1-0", 1))  # type: ignore[arg-type]
        with pytest.raises(CorruptSnapshotError):
            read.get("incident", "i-1")
        with pytest.raises(CorruptSnapshotError):
            read.kinds()


class TestRelevantTypes:
    @settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=histories(PARTITIONED))
    def test_folding_only_the_relevant_types_gives_the_fold(self, events: list[Event]) -> None:
        """The entries an as-of fold skips undecoded change nothing (a redaction included)."""
        records = Log().records(events)
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            relevant = projection.read_types
            assert relevant is not None, name
            kept = [r for r in records if r.event.type in relevant]
            assert ordered(fold(projection, kept)) == ordered(fold(projection, records)), name


class TestDocsPatch:
    def test_patch_records_no_change_and_moves_the_tail_to_the_end(self) -> None:
        """``patch`` puts in place, deletes, and moves the tail to the end, recording none of
        it; ``take_changed_keys`` gives the keys put or deleted since the last take once."""
        state: State = Docs()
        for ident in ("a", "b", "c"):
            state.put("k", ident, COAST.reported(ident, 1))  # any frozen struct will do
        assert state.take_changed_keys() == {("k", "a"), ("k", "b"), ("k", "c")}
        assert state.take_changed_keys() == set()
        doc = COAST.reported("z", 2)
        state.patch("k", {"b": doc}, ["c"], {"a": doc, "d": doc})
        assert list(state.kind("k").items()) == [("b", doc), ("a", doc), ("d", doc)]
        assert state.take_changes() == {}
