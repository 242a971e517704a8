"""incidents: a citation behind every figure, disputes, live-by-default listings with the same
filters as every other answer, and the incidents behind an aggregate line.

Each test folds a few events (given), asks one question (when) and checks one property of the
answer (then).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import Event, Place, Source
from projections import InvalidQueryError, State
from projections.community_victims import query
from projections.filters import VictimsFilter
from projections.incidents import IncidentView, behind, get, listing
from tests.support.builders import COAST, fatalities, folded, line, traced

NAME = "incidents"
MONITOR = Source(
    publisher="SOHR",
    url="https://www.syriahr.com/en/1",
    published_at=dt.datetime(2025, 3, 8, tzinfo=dt.UTC),
)
WIRE = Source(publisher="Wire", url="https://wire.example.org/2")


def state_of(*events: Event) -> State:
    return traced(*events)


def view(state: State, incident_id: str) -> IncidentView:
    found = get(state, incident_id)
    assert found is not None
    return found


class TestCitations:
    def test_every_history_entry_keeps_its_own_sources_and_feed(self) -> None:
        """Given a report on one source and a revision on another, then each history entry
        names its feed and its own sources (name, url, publication date)."""
        state = state_of(
            COAST.reported("a", 10, sources=[MONITOR]),
            COAST.revised("a", 14, sources=[WIRE], source="sohr"),
        )
        history = view(state, "a").history
        assert [(h.type, h.source, h.sources) for h in history] == [
            ("incident.reported", "sohr", (MONITOR,)),
            ("incident.casualties_revised", "sohr", (WIRE,)),
        ]

    def test_the_incident_names_the_feed_that_reported_it(self) -> None:
        """Then ``feed`` is the reporting feed, its owner."""
        assert view(state_of(COAST.reported("a", source="acled")), "a").feed == "acled"


class TestDisputes:
    def test_a_dispute_is_in_the_history_and_flags_the_incident(self) -> None:
        """Given another feed's dispute, then the history lists it with its reason and
        sources, and the incident is flagged, naming the feed."""
        state = state_of(COAST.reported("a", 10), COAST.disputed("a", source="acled"))
        found = view(state, "a")
        assert found.disputed is True
        assert found.disputed_by == ("acled",)
        entry = found.history[-1]
        assert (entry.type, entry.source, entry.reason) == (
            "incident.disputed",
            "acled",
            "our sources count fewer dead",
        )
        assert entry.sources == (Source(publisher="ACLED", url="https://acleddata.com/"),)

    def test_a_dispute_changes_no_figure_status_or_version(self) -> None:
        """Then everything but the history, the flag and updated_at is as before."""
        before = view(state_of(COAST.reported("a", 10, victims=[line("x", 4)])), "a")
        after = view(
            state_of(COAST.reported("a", 10, victims=[line("x", 4)]), COAST.disputed("a")), "a"
        )
        assert (after.fatalities, after.victims, after.status, after.version) == (
            before.fatalities,
            before.victims,
            before.status,
            before.version,
        )

    def test_two_disputes_by_one_feed_name_it_once(self) -> None:
        """Given acled disputing twice and ucdp once, then both feeds are named once each."""
        state = state_of(
            COAST.reported("a"),
            COAST.disputed("a"),
            COAST.disputed("a"),
            COAST.disputed("a", source="ucdp-ged"),
        )
        found = view(state, "a")
        assert found.disputed_by == ("acled", "ucdp-ged")
        assert len(found.history) == 4

    def test_a_dispute_does_not_touch_community_victims(self) -> None:
        """Then the victims answer is the same with and without the dispute."""
        events = [COAST.reported("a", 10, victims=[line("x", 4)])]
        assert query(folded("community-victims", *events, COAST.disputed("a"))) == query(
            folded("community-victims", *events)
        )


class TestListing:
    @pytest.fixture
    def state(self) -> State:
        """A live incident known to the month, one over three days, a retracted and a merged
        one, and a disputed one."""
        return state_of(
            COAST.reported(
                "month",
                20,
                occurred_start=dt.date(2025, 3, 1),
                date_precision=4,
                adm1="Tartus",
                fatalities=fatalities(20, "at_least"),
                sources=[MONITOR, WIRE],
                event_type="Battles",
                violence_type="state_based",
                civilian_targeting=False,
                perpetrators=["Armed group A"],
            ),
            COAST.reported(
                "days",
                7,
                occurred_start=dt.date(2025, 3, 6),
                occurred_end=dt.date(2025, 3, 9),
                date_precision=2,
                source="acled",
            ),
            COAST.reported("gone", 5, occurred_start=dt.date(2025, 3, 7)),
            COAST.retracted("gone"),
            COAST.reported("dup", 6, occurred_start=dt.date(2025, 3, 7)),
            COAST.merged("dup", "days"),
            COAST.reported("argued", 3, occurred_start=dt.date(2025, 3, 2), grading="discounted"),
            COAST.revised("argued", 3, sources=[WIRE]),
            COAST.disputed("argued"),
        )

    def test_live_incidents_only_by_default(self, state: State) -> None:
        """Then the retracted and merged incidents are left out unless asked for."""
        assert sorted(r.incident_id for r in listing(state)[0]) == ["argued", "days", "month"]
        assert [r.incident_id for r in listing(state, status="retracted")[0]] == ["gone"]
        assert [r.incident_id for r in listing(state, status="merged")[0]] == ["dup"]
        assert listing(state, status="all")[1] == 5

    def test_a_row_shows_what_a_list_needs(self, state: State) -> None:
        """Then a row has the event type, the place as reported, the dates with their
        precision, the figures with their qualifier, the grading, the feed and sources."""
        (row,) = listing(state, VictimsFilter(adm1="tartus"))[0]
        assert (row.event_type, row.place, row.adm1) == ("Battles", Place(adm1="Tartus"), "Tartus")
        assert (row.occurred_start, row.occurred_end, row.date_precision) == (
            dt.date(2025, 3, 1),
            None,
            4,
        )
        assert row.fatalities == fatalities(20, "at_least")
        assert (row.grading, row.feed, row.sources, row.disputed) == ("fair", "sohr", 2, False)

    def test_sources_count_the_distinct_sources_of_report_and_revisions(self, state: State) -> None:
        """Given a report on the monitor and a revision on the wire, then two sources; the
        dispute's own sources are not the incident's. The disputed incident says so."""
        (row,) = listing(state, VictimsFilter(grading="discounted"))[0]
        assert (row.incident_id, row.sources, row.disputed) == ("argued", 2, True)

    @pytest.mark.parametrize(
        ("filters", "ids"),
        [
            ({"date_from": dt.date(2025, 3, 7), "date_to": dt.date(2025, 3, 8)}, ["days", "month"]),
            ({"week": "2025-W12"}, ["month"]),
            ({"event_type": "Battles"}, ["month"]),
            ({"violence_type": "one_sided"}, ["argued", "days"]),
            ({"feed": "acled"}, ["days"]),
            ({"perpetrator": "ARMED GROUP A"}, ["month"]),
            ({"civilian_targeting": False}, ["month"]),
            ({"min_grading": "fair"}, ["days", "month"]),
            ({"country": "syr", "adm1": "LATAKIA"}, ["argued", "days"]),
        ],
    )
    def test_the_same_filters_as_everywhere(
        self, state: State, filters: dict[str, Any], ids: list[str]
    ) -> None:
        """When filtering the listing, then incidents are selected as community-victims
        selects them (overlapping windows, any case for places; every grading by default)."""
        rows, total = listing(state, VictimsFilter(**filters))
        assert (sorted(r.incident_id for r in rows), total) == (ids, len(ids))

    def test_a_victim_status_is_refused_in_a_listing(self, state: State) -> None:
        """A victim status selects lines, not incidents: refused, naming status."""
        with pytest.raises(InvalidQueryError) as info:
            listing(state, VictimsFilter(status="civilian"))
        assert info.value.parameter == "status"

    def test_an_unknown_incident_status_is_refused(self, state: State) -> None:
        """Only live, retracted, merged and all."""
        with pytest.raises(InvalidQueryError) as info:
            listing(state, status="deleted")
        assert info.value.parameter == "status"


class TestBehind:
    @pytest.fixture
    def events(self) -> list[Event]:
        """Three incidents with lines of two communities and statuses, one discounted."""
        return [
            COAST.reported("a", 30, victims=[line("alawite", 20), line("druze", 5, "combatant")]),
            COAST.reported("b", 12, adm1="Tartus", victims=[line("alawite", 9, "combatant")]),
            COAST.reported("c", 8, victims=[line("druze", 6)], occurred_start=dt.date(2025, 3, 1)),
            COAST.reported("d", 50, victims=[line("alawite", 40)], grading="discounted"),
            COAST.reported("e", 4),
        ]

    def test_the_incidents_behind_a_line_are_those_it_sums(self, events: list[Event]) -> None:
        """When asking for the incidents behind each community's line, then there are as many
        as the line says, and they are the ones with a line of that community."""
        incidents = folded("incidents", *events)
        victims = query(folded("community-victims", *events))
        for row in victims.communities:
            ids, total = behind(incidents, None, row.community)
            assert total == row.incidents == len(ids)
        assert sorted(behind(incidents, None, "alawite")[0]) == ["a", "b"]
        assert sorted(behind(incidents)[0]) == ["a", "b", "c", "e"]

    def test_a_status_and_the_filters_narrow_it_as_they_narrow_the_line(
        self, events: list[Event]
    ) -> None:
        """Given status=combatant and adm1=Latakia, then only incident a is behind druze."""
        incidents = folded("incidents", *events)
        where = VictimsFilter(status="combatant", adm1="latakia")
        assert behind(incidents, where, "druze") == (["a"], 1)
        assert behind(incidents, where, "alawite") == ([], 0)
        assert behind(incidents, VictimsFilter(status="combatant")) == (["a", "b"], 2)

    def test_it_is_paged(self, events: list[Event]) -> None:
        """Newest first like the listing; pages of the limit, with the count of all."""
        incidents = folded("incidents", *events)
        assert behind(incidents, page=1, limit=3) == (["a", "b", "e"], 4)
        assert behind(incidents, page=2, limit=3) == (["c"], 4)
        with pytest.raises(InvalidQueryError):
            behind(incidents, page=0)
