"""The incidents' listing index, as the stores keep it from each written row alone.

A store never reads a row's earlier place: for each row written it adds the id to the row's
group (under its day) and takes it out of the groups the row names as left behind
(:func:`projections.incident_queries.listed`). Over random histories, valid or not (merges
into incidents not reported yet, retractions of merged incidents), cut into random batches,
an index kept so lists each incident exactly where its final row says, and pages as the
pure listing does, for every status, place and range of days it answers.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from events import Event, Recorded
from projections import PROJECTIONS, VictimsFilter, fold
from projections.common import docs_of
from projections.incident_docs import INCIDENT, IncidentView
from projections.incident_queries import LISTED, index_query, listed, listing, listing_rows
from services.views.listing import listed_page
from tests.support.builders import COAST, Log
from tests.support.strategies import FOLDS, PARTITIONED, histories

PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INCIDENTS = PROJECTIONS["incidents"]

DAYS = st.dates(dt.date(2024, 12, 1), dt.date(2026, 6, 30))
"""Range ends around the histories' days (2025-03-01 and the 20 after; windows up to a
year and more)."""

Index = dict[tuple[str, int], set[str]]
"""(group, day) → the ids listed there."""


def kept_index(records: Sequence[Recorded], cuts: Sequence[int]) -> Index:
    """The index a store keeps: the rows each batch changed, each placed from itself alone
    (``index_doc``'s rule)."""
    index: Index = {}
    state = INCIDENTS.initial()
    for start, end in itertools.pairwise([0, *sorted(set(cuts)), len(records)]):
        for one in records[start:end]:
            state = INCIDENTS.apply(state, one)
        for (kind, ident), row in state.take_changes().items():
            if kind != INCIDENT:
                continue
            assert isinstance(row, IncidentView), f"a row was deleted: {ident}"
            place = listed(row)
            if place.group:
                index.setdefault((place.group, place.day), set()).add(ident)
            for other in place.others:
                index.get((other, place.day), set()).discard(ident)
    return {where: ids for where, ids in index.items() if ids}


def final_places(records: Sequence[Recorded]) -> Index:
    """Where each final row belongs."""
    index: Index = {}
    for ident, row in docs_of(fold(INCIDENTS, records), INCIDENT, IncidentView).items():
        place = listed(row)
        if place.group:
            index.setdefault((place.group, place.day), set()).add(ident)
    return index


def assert_the_kept_index_lists_the_final_rows(events: list[Event], data: st.DataObject) -> None:
    records = Log().records(events)
    cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=8))
    assert kept_index(records, cuts) == final_places(records)


class TestListingIndex:
    @PROPERTY
    @given(events=histories(FOLDS), data=st.data())
    def test_rows_placed_from_themselves_list_where_the_final_rows_say(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Histories not bound by the store's rules (a merged incident retracted, a merge
        into an incident reported later), in random batches."""
        assert_the_kept_index_lists_the_final_rows(events, data)

    @PROPERTY
    @given(events=histories(PARTITIONED), data=st.data())
    def test_valid_histories_with_disputes_and_redactions_too(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Valid histories, with redactions and disputes, in random batches."""
        assert_the_kept_index_lists_the_final_rows(events, data)

    def test_a_merged_incident_retracted_leaves_the_merged_group(self) -> None:
        """Written merged in one batch and retracted in the next, the row leaves both the
        live and the merged group."""
        records = Log().records(
            [COAST.reported("i-1"), COAST.reported("i-2"), COAST.merged(), COAST.retracted("i-2")]
        )
        index = kept_index(records, [2, 3])
        assert {group for (group, _), ids in index.items() if "i-2" in ids} == {
            "retracted|syr|latakia"
        }
        assert index == final_places(records)

    @PROPERTY
    @given(
        events=histories(FOLDS),
        page=st.integers(1, 4),
        limit=st.integers(1, 5),
        low=st.none() | DAYS,
        high=st.none() | DAYS,
        week=st.none() | st.sampled_from(["2025-W09", "2025-W10", "2025-W12", "2026-W05"]),
    )
    def test_a_page_of_the_index_is_the_pure_listings(
        self,
        *,
        events: list[Event],
        page: int,
        limit: int,
        low: dt.date | None,
        high: dt.date | None,
        week: str | None,
    ) -> None:
        """Every status, with and without each country and adm1, over a range of days: the
        in-memory store's page of the index (:func:`~services.views.listing.listed_page`)
        is the pure listing's. The reports' windows span days, weeks, months and years."""
        if low is not None and high is not None and low > high:
            low, high = high, low
        state = fold(INCIDENTS, Log().records(events))
        rows = dict(docs_of(state, INCIDENT, IncidentView))
        places = sorted({(row.country, row.place.adm1) for row in rows.values() if row.place})
        countries = sorted({country for country, _ in places if country})
        wheres = [
            VictimsFilter(country=country, adm1=adm1, date_from=low, date_to=high, week=week)
            for country, adm1 in [
                (None, None),
                *((c.lower(), None) for c in countries),
                *((None, a.upper()) for _, a in places if a),
                *places,
            ]
        ]
        for status, where in itertools.product(LISTED, wheres):
            query = index_query(where, status)
            assert query is not None
            found, total = listed_page(
                INCIDENTS,
                INCIDENT,
                rows,
                query.groups,
                first=(page - 1) * limit,
                limit=limit,
                days=(query.low, query.high),
            )
            shown = listing_rows([row for row in found if isinstance(row, IncidentView)])
            expected = listing(state, where, status=status, page=page, limit=limit)
            assert (shown, total) == expected, (status, where)

    def test_filters_beyond_place_and_dates_are_not_the_indexs(self) -> None:
        """A grading, a feed or a victim status needs the rows; an unknown status too."""
        for where, status in [
            (VictimsFilter(grading="fair"), "live"),
            (VictimsFilter(country="SYR", feed="acled"), "live"),
            (VictimsFilter(status="civilian"), "live"),
            (VictimsFilter(), "deleted"),
        ]:
            assert index_query(where, status) is None
