"""Own kinds: a runner that holds only the per-incident documents an event names folds to the
same state as one that holds the whole view.

A projection's :attr:`~projections.Projection.own_kinds` are most of its view (one or more
documents per incident). The projector drops them from memory after each commit and, before
each event, reads back from the stored view those :attr:`~projections.Projection.own_keys`
names. Over random histories (reports, revisions citing new and repeated sources,
retractions, merges into incidents reported or not yet, redactions, disputes, statements),
cut into random batches, that runner's stored view equals the fold of the whole log, and
no event deletes a document of an own kind (a dropped document read back would undo it).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import hypothesis.strategies as st
import msgspec
from hypothesis import HealthCheck, given, settings

from events import Event, Recorded
from projections import PROJECTIONS, Docs, Projection, State, fold
from projections.docs import Key
from projections.incidents import IncidentView
from tests.support.builders import COAST, Log
from tests.support.strategies import FOLDS, PARTITIONED, histories

PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def forgetting_fold(
    projection: Projection, records: Sequence[Recorded], cuts: Sequence[int]
) -> State:
    """Fold in batches as the projector does with own kinds: after each batch the changed
    documents are stored and the own kinds dropped; before each event, the own documents it
    names that are stored and not held are read back. Returns the stored documents."""
    stored: dict[Key, msgspec.Struct] = {}
    own = projection.own_kinds
    state = projection.initial()
    bounds = [0, *sorted(set(cuts)), len(records)]
    for start, end in itertools.pairwise(bounds):
        for one in records[start:end]:
            wanted = [key for key in projection.own_keys(one.event) if state.get(*key) is None]
            state.recall({key: stored.get(key) for key in wanted})
            state = projection.apply(state, one)
        for key, doc in state.take_changes().items():
            if doc is None:
                assert key[0] not in own, f"{projection.name} deleted {key}"
                stored.pop(key, None)
            else:
                stored[key] = doc
        state.forget(own)
    whole: dict[str, dict[str, msgspec.Struct]] = {}
    for (kind, ident), doc in stored.items():
        whole.setdefault(kind, {})[ident] = doc
    return Docs(whole)


def stored_fold(projection: Projection, records: Sequence[Recorded]) -> State:
    """The fold of the whole log, as the documents it would store (initial ones included)."""
    state = fold(projection, records)
    return Docs({kind: docs for kind, docs in state.kinds().items() if docs})


OWNING = [p for p in PROJECTIONS.values() if p.own_kinds]


def assert_forgetting_folds_as_the_whole_view(events: list[Event], data: st.DataObject) -> None:
    """For every projection with own kinds, cut the history at drawn places: the forgetting
    fold stores what the whole fold does."""
    records = Log().records(events)
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=8))
    for projection in OWNING:
        assert forgetting_fold(projection, records, cuts) == stored_fold(projection, records), (
            projection.name
        )


class TestOwnKinds:
    def test_the_views_that_hold_most_declare_own_kinds(self) -> None:
        """Community-victims' contributions and the incidents' rows and sources are own kinds."""
        assert {p.name: p.own_kinds for p in OWNING} == {
            "community-victims": frozenset({"incident"}),
            "incidents": frozenset({"incident", "source"}),
        }

    @PROPERTY
    @given(events=histories(FOLDS), data=st.data())
    def test_forgetting_own_kinds_folds_as_the_whole_view(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Merges may name incidents not reported yet; every batch drops the own kinds."""
        assert_forgetting_folds_as_the_whole_view(events, data)

    @PROPERTY
    @given(events=histories(PARTITIONED), data=st.data())
    def test_forgetting_own_kinds_folds_as_the_whole_view_with_redactions_and_disputes(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Valid histories with redactions, disputes and more merges, cut anywhere."""
        assert_forgetting_folds_as_the_whole_view(events, data)

    def test_a_merge_into_a_dropped_incident_lists_it_on_the_stored_one(self) -> None:
        """The merge reads the canonical incident back: without it in ``own_keys`` the
        canonical row would be rebuilt from nothing and lose its report."""
        incidents = PROJECTIONS["incidents"]
        records = Log().records([COAST.reported("i-1"), COAST.reported("i-2"), COAST.merged()])
        forgetful = forgetting_fold(incidents, records, [2])
        canonical = forgetful.get("incident", "i-1")
        assert isinstance(canonical, IncidentView)
        assert canonical.reported
        assert canonical.duplicates == ("i-2",)
        assert forgetful == stored_fold(incidents, records)

    def test_a_source_cited_again_after_a_drop_counts_once(self) -> None:
        """A revision reads back the marks of the sources it cites: without them in
        ``own_keys`` a source cited again in a later batch would count twice."""
        incidents = PROJECTIONS["incidents"]
        another = msgspec.structs.replace(COAST.sources[0], url="https://example.org/second")
        events = [
            COAST.reported("i-1"),
            COAST.revised("i-1", 12, sources=[another]),
            COAST.revised("i-1", 14, sources=[another]),
        ]
        records = Log().records(events)
        forgetful = forgetting_fold(incidents, records, [1, 2])
        whole = stored_fold(incidents, records)
        assert forgetful == whole
        row = whole.get("incident", "i-1")
        assert isinstance(row, IncidentView)
        assert row.source_count == len(COAST.sources) + 1
