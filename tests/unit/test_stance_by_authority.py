"""Stance by authority: the highest-ranked speaker's latest statement decides, statements of
that rank that cannot be put in order and disagree make the stance mixed, agreement goes by
stance family, and latency counts only from times precise enough.

Each test gives statements (given), folds them (when) and checks the answer (then).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import Event, Speaker
from projections import State
from projections.alignment import PairRow, pairs
from projections.country_stance import StanceRow, stances
from projections.stance_rule import agreement
from tests.support.builders import COAST, folded

SUBJECT = "syria-coast-2025"
DAY = dt.datetime(2025, 3, 9, tzinfo=dt.UTC)


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def stance_row(*events: Event, country: str = "USA") -> StanceRow:
    (found,) = stances(folded("country-stance", *events), country=country, subject=SUBJECT)
    return found


def on_day(statement_id: str, *countries: str, **fields: Any) -> Any:
    """A statement dated to 9 March only (precision day)."""
    return COAST.statement(
        statement_id, *countries, issued_at=DAY, issued_precision="day", **fields
    )


class TestRank:
    def test_a_lower_rank_speaking_later_does_not_override(self) -> None:
        """Given a foreign minister's condemnation and a later warning by an intelligence
        official, then the stance is the foreign minister's."""
        row = stance_row(
            COAST.statement("s-1", stance="condemn", issued_at=at(9, 10), role="foreign_minister"),
            COAST.statement("s-2", stance="warn", issued_at=at(9, 18), role="other_official"),
        )
        assert (row.stance, row.role, row.latest_statement_id) == (
            "condemn",
            "foreign_minister",
            "s-1",
        )
        assert row.statements == 2

    def test_a_head_of_state_outranks_everyone_else(self) -> None:
        """Given a president's welcome and a later spokesperson's condemnation, then the
        stance is the president's welcome."""
        row = stance_row(
            COAST.statement("s-1", stance="welcome", issued_at=at(7), role="head_of_state"),
            COAST.statement("s-2", stance="condemn", issued_at=at(9), role="spokesperson"),
        )
        assert (row.stance, row.family, row.role) == ("welcome", "supportive", "head_of_state")

    def test_each_speaker_of_a_joint_statement_keeps_its_own_rank(self) -> None:
        """Given a joint statement by a US foreign minister and a French spokesperson, then
        each country's basis names its own speaker's role."""
        joint = COAST.statement(
            "s-1",
            speakers=[
                Speaker(country="USA", name="A", role="foreign_minister"),
                Speaker(country="FRA", name="B", role="spokesperson", title="Spokesperson"),
            ],
        )
        assert [b.role for b in stance_row(joint, country="USA").basis] == ["foreign_minister"]
        france = stance_row(joint, country="FRA")
        assert [(b.role, b.title) for b in france.basis] == [("spokesperson", "Spokesperson")]


class TestOverlappingTimes:
    def test_agreeing_statements_of_one_day_are_one_position(self) -> None:
        """Given a condemnation and a call for accountability dated to the same day, then
        the stance is not mixed: critical, listing both, resting on both."""
        row = stance_row(
            on_day("s-1", stance="condemn", role="foreign_minister"),
            on_day("s-2", stance="demand_accountability", role="foreign_minister"),
        )
        assert (row.stance, row.family, row.stances) == (
            "demand_accountability",
            "critical",
            ("condemn", "demand_accountability"),
        )
        assert [b.statement_id for b in row.basis] == ["s-1", "s-2"]
        assert {(b.issued_precision, b.cameo_code, b.goldstein) for b in row.basis} == {
            ("day", "111", -2.0)
        }

    def test_disagreeing_statements_of_one_day_are_mixed(self) -> None:
        """Given a condemnation at 18:00 and a welcome known only to that day, then neither
        can be called the latest: mixed, listing both."""
        row = stance_row(
            on_day("s-1", stance="welcome", role="foreign_minister"),
            COAST.statement("s-2", stance="condemn", issued_at=at(9, 18), role="foreign_minister"),
        )
        assert (row.stance, row.stances) == ("mixed", ("welcome", "condemn"))

    def test_a_range_overlapping_the_latest_is_in_its_basis(self) -> None:
        """Given a warning "in recent days" (1-9 March) and a support on 5 March at the same
        rank, then they cannot be ordered: mixed."""
        row = stance_row(
            COAST.statement(
                "s-1",
                stance="warn",
                issued_at=at(1, 0),
                issued_precision="range",
                issued_end=at(9, 0),
            ),
            COAST.statement("s-2", stance="support", issued_at=at(5)),
        )
        assert row.stance == "mixed"

    def test_statements_that_can_be_ordered_are_not_mixed(self) -> None:
        """Given a support on 5 March and a condemnation on 9 March, both exact, then the
        later condemnation alone is the stance."""
        row = stance_row(
            COAST.statement("s-1", stance="support", issued_at=at(5)),
            COAST.statement("s-2", stance="condemn", issued_at=at(9)),
        )
        assert (row.stance, [b.statement_id for b in row.basis]) == ("condemn", ["s-2"])


class TestLatency:
    @pytest.mark.parametrize(
        ("fields", "hours"),
        [
            ({"issued_at": at(9)}, 84.0),
            ({"issued_at": DAY, "issued_precision": "day"}, 72.0),
            (
                {"issued_at": at(7, 0), "issued_precision": "range", "issued_end": at(9, 0)},
                None,
            ),
        ],
    )
    def test_latency_only_from_a_precise_enough_first_statement(
        self, fields: dict[str, Any], hours: float | None
    ) -> None:
        """Given an incident of 6 March, then an exact first statement gives hours, a day
        gives hours from its start, a range gives none."""
        row = stance_row(
            COAST.reported("a", occurred_start=dt.date(2025, 3, 6)),
            COAST.statement("s-1", incident_ids=["a"], **fields),
        )
        assert row.latency_hours == (None if hours is None else pytest.approx(hours))


def scores(state: State) -> dict[tuple[str, str], float]:
    return {(r.a, r.b): r.score for r in pairs(state)}


class TestAlignmentByFamily:
    def test_condemnation_and_demand_for_accountability_agree(self) -> None:
        """Given the USA condemning and GBR demanding accountability, then they score 1."""
        state = folded(
            "alignment",
            COAST.statement("s-1", "USA", stance="condemn"),
            COAST.statement("s-2", "GBR", stance="demand_accountability"),
        )
        assert scores(state) == {("GBR", "USA"): 1.0}

    def test_a_mixed_side_scores_half(self) -> None:
        """Given the USA mixed (a warning and a welcome at one moment) and GBR condemning,
        then the pair scores 0.5."""
        state = folded(
            "alignment",
            COAST.statement("s-1", "USA", stance="warn"),
            COAST.statement("s-2", "USA", stance="welcome"),
            COAST.statement("s-3", "GBR", stance="condemn"),
        )
        assert scores(state) == {("GBR", "USA"): 0.5}

    def test_alignment_reads_the_highest_ranked_speaker(self) -> None:
        """Given a US foreign minister's condemnation and a later US official's support,
        when RUS condemns, then USA-RUS agree (the minister speaks for the USA)."""
        state = folded(
            "alignment",
            COAST.statement(
                "s-1", "USA", stance="condemn", issued_at=at(8), role="foreign_minister"
            ),
            COAST.statement("s-2", "USA", stance="support", issued_at=at(9)),
            COAST.statement("s-3", "RUS", stance="condemn"),
        )
        assert scores(state) == {("RUS", "USA"): 1.0}

    def test_three_shared_subjects_are_no_longer_thin(self) -> None:
        """Given two countries agreeing on three subjects, then the pair is not thin; on
        two it is."""
        events = [
            COAST.statement(f"s-{i}-{c}", c, subject=subject)
            for i, subject in enumerate(["a", "b", "c"])
            for c in ("FRA", "USA")
        ]
        assert pairs(folded("alignment", *events)) == [
            PairRow(a="FRA", b="USA", score=1.0, shared_subjects=3, thin=False)
        ]
        assert pairs(folded("alignment", *events[:4]))[0].thin is True

    @pytest.mark.parametrize(
        ("mine", "theirs", "value"),
        [
            ("condemn", "warn", 1.0),
            ("support", "welcome", 1.0),
            ("call_for_meeting", "neutral", 1.0),
            ("condemn", "call_for_restraint", 0.5),
            ("welcome", "neutral", 0.5),
            ("mixed", "condemn", 0.5),
            ("mixed", "mixed", 0.5),
            ("condemn", "support", 0.0),
            ("demand_accountability", "welcome", 0.0),
        ],
    )
    def test_agreement_by_family(self, mine: str, theirs: str, value: float) -> None:
        """One family agrees; procedural or mixed is half; critical against supportive is
        none; the order of the two does not matter."""
        assert agreement(mine, theirs) == agreement(theirs, mine) == value
