"""incidents: each incident's current state, its history, merges both ways, the listing."""

from __future__ import annotations

import datetime as dt

import pytest

from events import Event
from projections import InvalidQueryError, State
from projections.incidents import IncidentView, document, get, listing
from tests.support.builders import COAST, Log, fatalities, line, roundtrip, traced

NAME = "incidents"


def state_of(*events: Event) -> State:
    return traced(*events)


def view(state: State, incident_id: str) -> IncidentView:
    found = get(state, incident_id)
    assert found is not None
    return found


class TestReport:
    def test_report_sets_every_field_and_one_history_entry(self) -> None:
        """The view holds the report's fields, version 1 and the report in its history."""
        event = COAST.reported(
            "a",
            30,
            victims=[line("alawite", 20)],
            perpetrators=["government security forces"],
            notes="illustrative",
        )
        log = Log()
        state = traced(event, log=log)
        found = view(state, "a")
        assert (found.status, found.reported, found.version) == ("live", True, 1)
        assert (found.country, found.place, found.grading) == ("SYR", event.place, "fair")
        assert found.occurred_start == dt.date(2025, 3, 6)
        assert found.perpetrators == ("government security forces",)
        assert found.notes == "illustrative"
        assert found.fatalities == event.fatalities
        assert found.victims == tuple(event.victims)
        assert found.sources == tuple(event.sources)
        (entry,) = found.history
        assert entry.type == "incident.reported"
        assert entry.event_id == str(event.event_id)
        assert entry.source == "sohr"
        assert entry.fatalities == event.fatalities
        assert entry.reason is None
        assert found.reported_at == found.updated_at == entry.recorded_at

    def test_unknown_incident_is_none(self) -> None:
        """get answers None for an id no event named."""
        assert get(state_of(COAST.reported("a")), "b") is None

    def test_statement_events_change_nothing(self) -> None:
        """Events about statements are ignored."""
        assert len(state_of(COAST.statement("s-1"))) == 0


class TestRevision:
    def test_reference_case_history_keeps_every_figure(self) -> None:
        """1,311 (at least), then 1,383, then 1,476: current figures are the last, all listed."""
        state = state_of(
            COAST.reported("syr-coast", 1311, fatalities=fatalities(1311, "at_least")),
            COAST.revised(
                "syr-coast", 1383, fatalities=fatalities(1383, "at_least"), reason="SOHR"
            ),
            COAST.revised(
                "syr-coast", 1476, fatalities=fatalities(1476, "at_least"), reason="SOHR 2"
            ),
        )
        found = view(state, "syr-coast")
        assert found.fatalities == fatalities(1476, "at_least")
        assert found.version == 3
        assert [e.fatalities.best for e in found.history if e.fatalities] == [1311, 1383, 1476]
        assert [e.reason for e in found.history] == [None, "SOHR", "SOHR 2"]
        assert [e.type for e in found.history] == [
            "incident.reported",
            "incident.casualties_revised",
            "incident.casualties_revised",
        ]

    def test_revision_replaces_figures_and_keeps_the_report_fields(self) -> None:
        """A revision changes figures (victims, injured) and nothing of where or when."""
        state = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 9)]),
            COAST.revised("a", 12, victims=[line("druze", 1)]),
        )
        found = view(state, "a")
        assert found.victims == (line("druze", 1),)
        assert found.place is not None
        assert found.place.adm1 == "Latakia"


class TestRetraction:
    def test_retraction_sets_status_and_lists_the_reason(self) -> None:
        """A retracted incident keeps its fields, says retracted, and lists why."""
        state = state_of(COAST.reported("a"), COAST.retracted("a", reason="double count"))
        found = view(state, "a")
        assert (found.status, found.version) == ("retracted", 2)
        assert found.history[-1].reason == "double count"
        assert found.fatalities is not None


class TestMerge:
    def test_merge_points_the_duplicate_to_its_canonical_and_back(self) -> None:
        """The duplicate is merged into the canonical; the canonical lists its duplicate."""
        state = state_of(
            COAST.reported("canon"), COAST.reported("dup"), COAST.merged("dup", "canon")
        )
        dup, canon = view(state, "dup"), view(state, "canon")
        assert (dup.status, dup.merged_into, dup.version) == ("merged", "canon", 2)
        assert (canon.status, canon.duplicates, canon.version) == ("live", ("dup",), 1)
        assert dup.history[-1] == canon.history[-1]
        assert (canon.history[-1].duplicate, canon.history[-1].into) == ("dup", "canon")

    def test_merge_after_revision_keeps_the_duplicates_revised_figures(self) -> None:
        """The duplicate shows its last figures, its revision and merge in its history."""
        state = state_of(
            COAST.reported("canon", 20),
            COAST.reported("dup", 5),
            COAST.revised("dup", 6),
            COAST.merged("dup", "canon"),
        )
        dup = view(state, "dup")
        assert dup.fatalities == fatalities(6)
        assert [e.type for e in dup.history] == [
            "incident.reported",
            "incident.casualties_revised",
            "incident.merged",
        ]

    def test_merge_before_the_canonical_report_is_kept_until_the_report_arrives(self) -> None:
        """An unreported canonical holds its duplicate; its report later fills it in."""
        early = state_of(COAST.reported("dup"), COAST.merged("dup", "canon"))
        placeholder = view(early, "canon")
        assert (placeholder.reported, placeholder.duplicates) == (False, ("dup",))
        rows, total = listing(early, status="all")
        assert ([row.incident_id for row in rows], total) == (["dup"], 1)
        state = state_of(
            COAST.reported("dup"), COAST.merged("dup", "canon"), COAST.reported("canon", 40)
        )
        canon = view(state, "canon")
        assert (canon.reported, canon.duplicates, canon.version) == (True, ("dup",), 1)
        assert canon.fatalities == fatalities(40)
        assert [e.type for e in canon.history] == ["incident.merged", "incident.reported"]

    def test_retraction_of_the_canonical_after_merge(self) -> None:
        """The canonical is retracted; the duplicate still points to it."""
        state = state_of(
            COAST.reported("canon"),
            COAST.reported("dup"),
            COAST.merged("dup", "canon"),
            COAST.retracted("canon"),
        )
        assert view(state, "canon").status == "retracted"
        assert view(state, "canon").duplicates == ("dup",)
        assert view(state, "dup").merged_into == "canon"

    def test_retraction_of_the_duplicate_after_merge(self) -> None:
        """A retracted duplicate is retracted and leaves the canonical as it was."""
        events = [COAST.reported("canon"), COAST.reported("dup"), COAST.merged("dup", "canon")]
        state = state_of(*events, COAST.retracted("dup"))
        assert view(state, "dup").status == "retracted"
        assert view(state, "canon") == view(state_of(*events), "canon")


class TestListing:
    @pytest.fixture
    def state(self) -> State:
        """Five incidents on four days, two countries, three regions."""
        return state_of(
            COAST.reported("b", occurred_start=dt.date(2025, 3, 6)),
            COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
            COAST.reported("c", adm1="Tartus", occurred_start=dt.date(2025, 3, 8)),
            COAST.reported("d", adm1="Homs", occurred_start=dt.date(2025, 3, 1)),
            COAST.reported("e", country="LBN", adm1="North", occurred_start=dt.date(2025, 3, 9)),
            COAST.retracted("d"),
        )

    def test_newest_occurred_start_first_then_by_id(self, state: State) -> None:
        """Rows come by occurred_start descending, ties by incident_id."""
        rows, total = listing(state, status="all")
        assert [row.incident_id for row in rows] == ["e", "c", "a", "b", "d"]
        assert total == 5

    def test_live_incidents_only_by_default(self, state: State) -> None:
        """Without a status (or with None) the retracted incident is not listed."""
        assert [row.incident_id for row in listing(state)[0]] == ["e", "c", "a", "b"]
        assert listing(state, status=None) == listing(state, status="live")

    def test_filters_by_country_region_and_dates(self, state: State) -> None:
        """country, adm1 and an inclusive date range each narrow the list."""
        assert [r.incident_id for r in listing(state, country="LBN")[0]] == ["e"]
        assert [r.incident_id for r in listing(state, adm1="Tartus")[0]] == ["c"]
        rows, total = listing(state, date_from=dt.date(2025, 3, 6), date_to=dt.date(2025, 3, 8))
        assert ([r.incident_id for r in rows], total) == (["c", "a", "b"], 3)
        assert [r.incident_id for r in listing(state, status="retracted")[0]] == ["d"]

    def test_pages_split_the_list_and_total_counts_every_match(self, state: State) -> None:
        """Page 2 of limit 2 is the third and fourth row; total counts all matches."""
        rows, total = listing(state, status="all", page=2, limit=2)
        assert ([r.incident_id for r in rows], total) == (["a", "b"], 5)
        assert listing(state, status="all", page=4, limit=2) == ([], 5)

    @pytest.mark.parametrize("bad", [{"page": 0}, {"limit": 0}, {"status": "gone"}])
    def test_bad_paging_raises_invalid_query(self, state: State, bad: dict[str, int]) -> None:
        """A page or limit below 1, or an unknown status, is refused."""
        with pytest.raises(InvalidQueryError):
            listing(state, **bad)  # type: ignore[arg-type]

    def test_stored_documents_list_like_the_fold(self, state: State) -> None:
        """The listing reads documents loaded back from JSON the same way."""
        stored = roundtrip(NAME, state)
        assert listing(stored.kinds()) == listing(state)
        assert get(stored.kinds(), "a") == document(state, "a")
