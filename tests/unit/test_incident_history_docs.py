"""incidents: the history kept beside the incident's document answers as the history held in
it did: the same entries in the same order, page by page, and the same count of distinct
sources in listings.

Each test folds generated or hand-made events (given), reads the documents (when) and checks
one property of what it finds (then).
"""

from __future__ import annotations

import datetime as dt

from hypothesis import HealthCheck, given, settings

from events import Event, Source
from projections import State
from projections.incidents import IncidentView, document, entries, get, listing
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


def incidents_of(state: State) -> list[IncidentView]:
    found = [get(state, ident) for ident in state.kind("incident")]
    return [view for view in found if view is not None]


class TestGeneratedHistories:
    @settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=histories(PARTITIONED))
    def test_pages_put_together_are_the_whole_history_and_sources_count_alike(
        self, events: list[Event]
    ) -> None:
        """Given any accepted history, then each incident's entries read in pages of 2 are
        its whole history, as many as it counts, and its listing row counts the distinct
        sources its whole history cites."""
        state = folded(NAME, *events, log=Log())
        rows = {row.incident_id: row for row in listing(state, status="all", limit=1000)[0]}
        for view in incidents_of(state):
            doc = document(state, view.incident_id)
            assert doc is not None
            paged = tuple(
                entry
                for start in range(0, doc.history_total, 2)
                for entry in entries(state, doc, start, start + 2)
            )
            assert paged == view.history
            assert len(view.history) == doc.history_total
            if view.incident_id in rows:
                assert rows[view.incident_id].sources == distinct_sources(view)


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
