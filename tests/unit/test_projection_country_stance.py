"""country-stance: latest stance, counts, Goldstein mean, latency; timelines; retractions."""

from __future__ import annotations

import datetime as dt

import pytest

from events import Event, Target
from projections import PROJECTIONS, State, fold
from projections.country_stance import Basis, StanceRow, stances, timeline
from tests.support.builders import COAST, Log, folded, roundtrip

NAME = "country-stance"
SUBJECT = "syria-coast-2025"


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def state_of(*events: Event) -> State:
    return folded(NAME, *events)


def row(state: State, country: str, subject: str = SUBJECT) -> StanceRow:
    (found,) = stances(state, country=country, subject=subject)
    return found


class TestStatement:
    def test_one_statement_makes_one_row(self) -> None:
        """A statement gives its speaker's row: stance, count 1, its Goldstein, its time."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="condemn", cameo_code="111", issued_at=at(9))
        )
        assert stances(state) == [
            StanceRow(
                country="USA",
                subject=SUBJECT,
                stance="condemn",
                family="critical",
                stances=("condemn",),
                role="other_official",
                basis=(
                    Basis(
                        statement_id="s-1",
                        stance="condemn",
                        role="other_official",
                        title=None,
                        cameo_code="111",
                        goldstein=-2.0,
                        issued_at=at(9),
                        issued_precision="exact",
                        issued_end=None,
                    ),
                ),
                latest_statement_id="s-1",
                statements=1,
                mean_goldstein=-2.0,
                first_at=at(9),
                latest_at=at(9),
                latency_hours=None,
            )
        ]

    def test_joint_statement_counts_for_each_speaker(self) -> None:
        """USA and RUS calling jointly for a meeting each get a row and a timeline entry."""
        state = state_of(
            COAST.statement("s-1", "USA", "RUS", stance="call_for_meeting", cameo_code="026")
        )
        assert [(r.country, r.stance, r.statements) for r in stances(state)] == [
            ("RUS", "call_for_meeting", 1),
            ("USA", "call_for_meeting", 1),
        ]
        (entry,) = timeline(state, "RUS")
        assert entry.co_speakers == ("USA",)
        assert entry.speaker == "Minister of RUS"
        assert entry.goldstein == 4.0

    def test_latest_stance_is_by_issued_at_not_by_arrival(self) -> None:
        """A statement recorded later but issued earlier does not become the latest."""
        state = state_of(
            COAST.statement("s-2", "USA", stance="condemn", issued_at=at(10)),
            COAST.statement(
                "s-1", "USA", stance="call_for_restraint", cameo_code="010", issued_at=at(8)
            ),
        )
        found = row(state, "USA")
        assert (found.stance, found.latest_statement_id) == ("condemn", "s-2")
        assert (found.first_at, found.latest_at, found.statements) == (at(8), at(10), 2)
        assert found.mean_goldstein == pytest.approx((-2.0 + 0.0) / 2)

    def test_equal_issue_times_that_disagree_are_mixed(self) -> None:
        """Two statements of one rank at the same moment, a warning and a welcome: neither
        is the latest, so the stance is mixed and lists both (the timeline still orders them
        by log position)."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="warn", cameo_code="111", issued_at=at(9)),
            COAST.statement("s-2", "USA", stance="welcome", cameo_code="051", issued_at=at(9)),
        )
        found = row(state, "USA")
        assert (found.stance, found.family, found.stances) == (
            "mixed",
            "mixed",
            ("warn", "welcome"),
        )
        assert [b.statement_id for b in found.basis] == ["s-1", "s-2"]
        assert [e.statement_id for e in timeline(state, "USA")] == ["s-1", "s-2"]

    def test_incident_events_alone_make_no_row(self) -> None:
        """Incidents are tracked for latency only; they make no stance row."""
        assert stances(state_of(COAST.reported("a"))) == []


class TestLatency:
    def test_latency_runs_from_midnight_utc_of_the_earliest_named_incident(self) -> None:
        """First statement at 9 March 12:00, incidents from 6 March: 84 hours."""
        state = state_of(
            COAST.reported("a", occurred_start=dt.date(2025, 3, 7)),
            COAST.reported("b", occurred_start=dt.date(2025, 3, 6)),
            COAST.statement("s-1", "USA", issued_at=at(9), incident_ids=["a", "b"]),
            COAST.statement("s-2", "USA", issued_at=at(11)),
        )
        assert row(state, "USA").latency_hours == pytest.approx(84.0)

    def test_incidents_named_by_another_country_on_the_subject_count(self) -> None:
        """The subject's incidents come from every country's statements on it."""
        state = state_of(
            COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
            COAST.statement("s-1", "FRA", issued_at=at(8), incident_ids=["a"]),
            COAST.statement("s-2", "USA", issued_at=at(7, 6)),
        )
        assert row(state, "USA").latency_hours == pytest.approx(30.0)
        assert row(state, "FRA").latency_hours == pytest.approx(60.0)

    def test_incident_reported_after_the_statement_fills_the_latency_in(self) -> None:
        """A statement naming an incident not yet folded gets its latency when it arrives."""
        early = state_of(COAST.statement("s-1", "USA", issued_at=at(9), incident_ids=["a"]))
        assert row(early, "USA").latency_hours is None
        state = state_of(
            COAST.statement("s-1", "USA", issued_at=at(9), incident_ids=["a"]),
            COAST.reported("a", occurred_start=dt.date(2025, 3, 8)),
        )
        assert row(state, "USA").latency_hours == pytest.approx(36.0)

    def test_retracted_incident_no_longer_counts(self) -> None:
        """Retracting the earliest incident moves the latency to the next one, or to None."""
        events = [
            COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
            COAST.reported("b", occurred_start=dt.date(2025, 3, 8)),
            COAST.statement("s-1", "USA", issued_at=at(9), incident_ids=["a", "b"]),
        ]
        assert row(state_of(*events, COAST.retracted("a")), "USA").latency_hours == pytest.approx(
            36.0
        )
        none_left = state_of(*events, COAST.retracted("a"), COAST.retracted("b"))
        assert row(none_left, "USA").latency_hours is None

    def test_incidents_named_on_another_subject_do_not_count(self) -> None:
        """Latency looks only at the incidents named on the row's own subject."""
        state = state_of(
            COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
            COAST.statement("s-1", "FRA", subject="other", incident_ids=["a"]),
            COAST.statement("s-2", "USA", issued_at=at(9)),
        )
        assert row(state, "USA").latency_hours is None


class TestRetraction:
    def test_retracted_statement_is_as_if_never_issued(self) -> None:
        """Issuing then retracting a joint statement leaves exactly the state without it."""
        records = Log().records(
            [
                COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
                COAST.statement("s-1", "USA", stance="condemn", issued_at=at(9)),
                COAST.statement(
                    "s-2", "USA", "FRA", stance="welcome", issued_at=at(10), incident_ids=["a"]
                ),
                COAST.statement("s-3", "FRA", stance="warn", issued_at=at(9, 18)),
                COAST.statement_retracted("s-2"),
            ]
        )
        projection = PROJECTIONS[NAME]
        with_retraction = fold(projection, records)
        assert with_retraction == fold(projection, [records[0], records[1], records[3]])
        assert row(with_retraction, "USA").stance == "condemn"
        assert row(with_retraction, "USA").latency_hours is None

    def test_retracting_the_only_statement_removes_the_row_and_timeline(self) -> None:
        """No statement left: no row, no timeline, no document at all."""
        state = state_of(
            COAST.statement("s-1", "USA", incident_ids=["a"]), COAST.statement_retracted("s-1")
        )
        assert stances(state) == []
        assert timeline(state, "USA") == []
        assert len(state) == 0

    def test_retracting_the_latest_statement_restores_the_previous_stance(self) -> None:
        """The row is recomputed from the statements that remain."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="condemn", cameo_code="111", issued_at=at(9)),
            COAST.statement("s-2", "USA", stance="welcome", cameo_code="051", issued_at=at(10)),
            COAST.statement_retracted("s-2"),
        )
        found = row(state, "USA")
        assert (found.stance, found.statements, found.mean_goldstein) == ("condemn", 1, -2.0)


class TestQueries:
    @pytest.fixture
    def state(self) -> State:
        """Three countries, two subjects."""
        return state_of(
            COAST.statement(
                "s-1",
                "USA",
                "RUS",
                stance="call_for_meeting",
                cameo_code="026",
                issued_at=at(8),
                venue="UNSC",
                target=Target(country="SYR"),
            ),
            COAST.statement("s-2", "USA", stance="condemn", issued_at=at(9)),
            COAST.statement(
                "s-3", "USA", subject="other", stance="neutral", cameo_code="010", issued_at=at(7)
            ),
            COAST.statement(
                "s-4", "FRA", stance="demand_accountability", cameo_code="111", issued_at=at(9, 1)
            ),
        )

    def test_stances_sorted_by_country_then_subject_and_filtered(self, state: State) -> None:
        """Rows come by (country, subject); subject and country filters narrow them."""
        assert [(r.country, r.subject) for r in stances(state)] == [
            ("FRA", SUBJECT),
            ("RUS", SUBJECT),
            ("USA", "other"),
            ("USA", SUBJECT),
        ]
        assert [r.country for r in stances(state, subject=SUBJECT)] == ["FRA", "RUS", "USA"]
        assert [r.subject for r in stances(state, country="USA")] == ["other", SUBJECT]

    def test_timeline_lists_every_statement_in_order_with_its_details(self, state: State) -> None:
        """A country's timeline spans its subjects in (issued_at, position) order."""
        entries = timeline(state, "USA")
        assert [(e.statement_id, e.subject) for e in entries] == [
            ("s-3", "other"),
            ("s-1", SUBJECT),
            ("s-2", SUBJECT),
        ]
        joint = entries[1]
        assert (joint.venue, joint.target, joint.cameo_code) == (
            "UNSC",
            Target(country="SYR"),
            "026",
        )
        assert joint.co_speakers == ("RUS",)
        assert [e.statement_id for e in timeline(state, "USA", subject="other")] == ["s-3"]
        assert timeline(state, "DEU") == []

    def test_stored_documents_answer_like_the_fold(self, state: State) -> None:
        """Queries read documents loaded back from JSON the same way."""
        stored = roundtrip(NAME, state).kinds()
        assert stances(stored) == stances(state)
        assert timeline(stored, "USA") == timeline(state, "USA")
