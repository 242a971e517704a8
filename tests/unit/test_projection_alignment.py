"""alignment: pair scores per shared subject (co-signed, equal, neutral, apart), retractions."""

from __future__ import annotations

import datetime as dt

import pytest

from events import Event
from projections import PROJECTIONS, State, fold
from projections.alignment import PairRow, pairs
from tests.support.builders import COAST, Log, folded, roundtrip

NAME = "alignment"


def at(day: int, hour: int = 12) -> dt.datetime:
    return dt.datetime(2025, 3, day, hour, tzinfo=dt.UTC)


def state_of(*events: Event) -> State:
    return folded(NAME, *events)


def scores(state: State, subject: str | None = None) -> dict[tuple[str, str], float]:
    return {(r.a, r.b): r.score for r in pairs(state, subject=subject)}


class TestScore:
    def test_cosigned_statement_scores_one(self) -> None:
        """USA and RUS jointly calling for a meeting agree on the subject."""
        state = state_of(
            COAST.statement("s-1", "USA", "RUS", stance="call_for_meeting", cameo_code="026")
        )
        assert pairs(state) == [PairRow(a="RUS", b="USA", score=1.0, shared_subjects=1, thin=True)]

    def test_cosigning_scores_one_even_when_latest_stances_differ(self) -> None:
        """A co-signed statement on the subject wins over later different stances."""
        state = state_of(
            COAST.statement(
                "s-1", "USA", "RUS", stance="call_for_meeting", cameo_code="026", issued_at=at(8)
            ),
            COAST.statement("s-2", "USA", stance="condemn", issued_at=at(9)),
            COAST.statement("s-3", "RUS", stance="support", cameo_code="051", issued_at=at(9)),
        )
        assert scores(state) == {("RUS", "USA"): 1.0}

    def test_equal_latest_stances_score_one(self) -> None:
        """Separate statements with the same latest stance agree."""
        state = state_of(COAST.statement("s-1", "USA"), COAST.statement("s-2", "FRA"))
        assert scores(state) == {("FRA", "USA"): 1.0}

    def test_a_neutral_latest_stance_scores_half(self) -> None:
        """Either side neutral (and not equal) gives 0.5."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="condemn"),
            COAST.statement("s-2", "CHN", stance="neutral", cameo_code="010"),
        )
        assert scores(state) == {("CHN", "USA"): 0.5}

    def test_different_stances_score_zero(self) -> None:
        """Different, non-neutral latest stances give 0."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="condemn"),
            COAST.statement("s-2", "IRN", stance="support", cameo_code="051"),
        )
        assert scores(state) == {("IRN", "USA"): 0.0}

    def test_only_the_latest_stance_counts(self) -> None:
        """An earlier disagreement is superseded by the latest statements (by issued_at)."""
        state = state_of(
            COAST.statement("s-1", "USA", stance="support", cameo_code="051", issued_at=at(8)),
            COAST.statement("s-2", "FRA", stance="condemn", issued_at=at(9)),
            COAST.statement("s-3", "USA", stance="condemn", issued_at=at(10)),
            COAST.statement("s-4", "USA", stance="warn", issued_at=at(7)),  # late, but older
        )
        assert scores(state) == {("FRA", "USA"): 1.0}

    def test_incident_events_change_nothing(self) -> None:
        """Events about incidents are ignored."""
        assert len(state_of(COAST.reported("a"), COAST.retracted("a"))) == 0


class TestPairs:
    @pytest.fixture
    def state(self) -> State:
        """USA/FRA share two subjects (agree on one), GBR speaks on one, CHN on another."""
        return state_of(
            COAST.statement("s-1", "USA", subject="syria", stance="condemn"),
            COAST.statement("s-2", "FRA", subject="syria", stance="condemn"),
            COAST.statement("s-3", "USA", subject="gaza", stance="support", cameo_code="051"),
            COAST.statement("s-4", "FRA", subject="gaza", stance="condemn"),
            COAST.statement("s-5", "GBR", subject="syria", stance="neutral", cameo_code="010"),
            COAST.statement("s-6", "CHN", subject="ukraine", stance="neutral", cameo_code="010"),
        )

    def test_score_is_the_mean_over_shared_subjects(self, state: State) -> None:
        """Pairs come a < b, sorted; score averages the shared subjects; loners have none."""
        assert pairs(state) == [
            PairRow(a="FRA", b="GBR", score=0.5, shared_subjects=1, thin=True),
            PairRow(a="FRA", b="USA", score=0.5, shared_subjects=2, thin=True),
            PairRow(a="GBR", b="USA", score=0.5, shared_subjects=1, thin=True),
        ]

    def test_subject_filter_scores_that_subject_only(self, state: State) -> None:
        """With a subject, each pair's score is its score on that subject."""
        assert scores(state, "syria") == {
            ("FRA", "GBR"): 0.5,
            ("FRA", "USA"): 1.0,
            ("GBR", "USA"): 0.5,
        }
        assert scores(state, "gaza") == {("FRA", "USA"): 0.0}
        assert pairs(state, subject="ukraine") == []

    def test_stored_documents_answer_like_the_fold(self, state: State) -> None:
        """pairs reads documents loaded back from JSON the same way."""
        assert pairs(roundtrip(NAME, state).kinds()) == pairs(state)


class TestRetraction:
    def test_retracted_statement_is_as_if_never_issued(self) -> None:
        """Issuing then retracting a joint statement leaves exactly the state without it."""
        records = Log().records(
            [
                COAST.statement("s-1", "USA", stance="condemn", issued_at=at(8)),
                COAST.statement("s-2", "RUS", "USA", "CHN", stance="welcome", issued_at=at(9)),
                COAST.statement("s-3", "RUS", stance="support", cameo_code="051", issued_at=at(10)),
                COAST.statement_retracted("s-2"),
            ]
        )
        projection = PROJECTIONS[NAME]
        state = fold(projection, records)
        assert state == fold(projection, [records[0], records[2]])
        assert scores(state) == {("RUS", "USA"): 0.0}

    def test_retracting_the_cosigned_statement_removes_the_cosign(self) -> None:
        """Without the joint statement the pair's latest stances decide."""
        state = state_of(
            COAST.statement(
                "s-1", "USA", "RUS", stance="call_for_meeting", cameo_code="026", issued_at=at(8)
            ),
            COAST.statement("s-2", "USA", stance="condemn", issued_at=at(9)),
            COAST.statement("s-3", "RUS", stance="support", cameo_code="051", issued_at=at(9)),
            COAST.statement_retracted("s-1"),
        )
        assert scores(state) == {("RUS", "USA"): 0.0}

    def test_retracting_every_statement_leaves_no_pair(self) -> None:
        """No live statement: no pair and no document."""
        state = state_of(COAST.statement("s-1", "USA", "RUS"), COAST.statement_retracted("s-1"))
        assert pairs(state) == []
        assert len(state) == 0
