"""incidents: the history read from the log answers as the history the whole fold makes: the
events the store lists under an incident, folded alone, are its entries in the same order,
as many as its document counts, and listings count the distinct sources alike.

Each test folds generated or hand-made events (given), reads the documents or the store's
events of each incident (when) and checks one property of what it finds (then).
"""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import cast

import msgspec
from hypothesis import HealthCheck, given, settings

from events import AnyEvent, Event, Recorded, Source
from projections import PROJECTIONS, State, fold
from projections.incident_docs import ROW_NAMES
from projections.incidents import (
    ROW_LEAVES,
    IncidentView,
    Traced,
    apply,
    document,
    get,
    history_of,
    incident_of,
    listing,
)
from services.store.memory import InMemoryEventStore
from tests.support.builders import COAST, Log, folded
from tests.support.strategies import PARTITIONED, histories

NAME = "incidents"
MONITOR = Source(publisher="SOHR", url="https://www.syriahr.com/en/1")
WIRE = Source(publisher="Wire", published_at=dt.datetime(2025, 3, 9, tzinfo=dt.UTC))
SAME_WIRE = Source(
    publisher="Wire",
    published_at=dt.datetime(2025, 3, 9, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))),
)
"""``WIRE`` again, its publication time given in another zone."""


def distinct_sources(view: IncidentView) -> int:
    """The listing's rule read off the whole history: distinct (publisher, url, publication
    date) of the report and revisions, else the report's sources."""
    seen = {
        (one.publisher, one.url, one.published_at)
        for entry in view.history
        if entry.type in ("incident.reported", "incident.casualties_revised") and entry.sources
        for one in entry.sources
    }
    return len(seen) or len(view.sources)


def traced(records: list[Recorded]) -> Traced:
    """The whole log folded into a state that keeps every incident's history."""
    state = Traced()
    for one in records:
        apply(state, one)
    return state


def by_incident(events: list[Event]) -> tuple[list[Recorded], dict[str, list[Recorded]]]:
    """The log as the in-memory store records it, and the events it lists under each
    incident (its per-entity index: a merge under both incidents)."""

    async def run() -> tuple[list[Recorded], dict[str, list[Recorded]]]:
        store = InMemoryEventStore()
        for event in events:
            await store.append([cast("AnyEvent", event)])
        log = await store.read(count=len(events) + 1)
        idents = {
            ident
            for one in log
            for ident in (getattr(one.event, "incident_id", None), getattr(one.event, "into", None))
            if isinstance(ident, str)
        }
        return log, {ident: await store.read_entity(f"incident:{ident}") for ident in idents}

    return asyncio.run(run())


class TestGeneratedHistories:
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=histories(PARTITIONED))
    def test_the_log_of_each_incident_folded_alone_is_its_whole_history(
        self, events: list[Event]
    ) -> None:
        """Given any accepted history, then each incident's events as the store lists them,
        folded alone, are the entries the fold of the whole log makes for it, as many as its
        document counts, and the whole incident; the view's row is that incident without
        its history and the fields only an answer shows; its listing row counts the distinct
        sources they cite."""
        log, listed = by_incident(events)
        state: State = fold(PROJECTIONS[NAME], log)
        whole = traced(log)
        rows = {row.incident_id: row for row in listing(state, status="all", limit=1000)[0]}
        assert set(listed) == set(state.kind("incident"))
        for ident, records in listed.items():
            doc = document(state, ident)
            view = get(whole, ident)
            assert doc is not None
            assert view is not None
            history = history_of(ident, reversed(records))  # in any order given
            assert history == view.history
            assert len(history) == doc.history_total
            assert incident_of(ident, reversed(records)) == view
            leaves = {name: getattr(IncidentView(incident_id=ident), name) for name in ROW_LEAVES}
            assert msgspec.structs.replace(view, history=(), **leaves) == doc
            if ident in rows:
                assert rows[ident].sources == distinct_sources(view)

    def test_the_incident_stands_where_the_count_of_entries_says(self) -> None:
        """Given a report and two revisions in the log, when the incident is folded up to 2
        entries (a view that has not seen the last revision), then it is the incident after
        the first revision: version 2, its figures, two entries."""
        records = Log().records(
            [COAST.reported("a", 10), COAST.revised("a", 12), COAST.revised("a", 14)]
        )
        found = incident_of("a", records, 2)
        assert found is not None
        assert found.fatalities is not None
        assert (found.version, found.fatalities.best, len(found.history)) == (2, 12, 2)
        assert incident_of("b", records) is None

    def test_the_row_is_stored_under_one_short_name_a_field(self) -> None:
        """Every field of a row has its own short name, and a row loaded back from its
        stored JSON is the row folded."""
        assert set(ROW_NAMES) == set(IncidentView.__struct_fields__)
        assert len(set(ROW_NAMES.values())) == len(ROW_NAMES)
        state = folded(NAME, COAST.reported("a", 10), COAST.revised("a", 12))
        row = document(state, "a")
        stored = msgspec.json.encode(row)
        assert b"occurred_start" not in stored
        assert msgspec.json.decode(stored, type=IncidentView) == row

    def test_a_view_state_keeps_no_history(self) -> None:
        """Given a report and a revision folded as the view folds them, then the document
        counts two entries and holds none."""
        state = folded(NAME, COAST.reported("a", 10), COAST.revised("a", 12))
        view = get(state, "a")
        assert view is not None
        assert (view.history_total, view.history) == (2, ())


class TestDistinctSources:
    def test_revisions_add_only_the_sources_not_cited_before(self) -> None:
        """Given a report on SOHR and revisions on SOHR, Wire, Wire again and Wire in another
        zone, then the listing counts 2 sources."""
        state = folded(
            NAME,
            COAST.reported("a", 10, sources=[MONITOR]),
            COAST.revised("a", 12, sources=[MONITOR]),
            COAST.revised("a", 13, sources=[WIRE, WIRE]),
            COAST.revised("a", 14, sources=[SAME_WIRE]),
        )
        (row,), _ = listing(state)
        assert row.sources == 2
