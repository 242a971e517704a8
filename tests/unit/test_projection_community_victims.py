"""community-victims: sums per community over live incidents, undone exactly, with filters."""

from __future__ import annotations

import datetime as dt

import pytest

from events import Event
from projections import PROJECTIONS, InconsistentStateError, InvalidQueryError, State
from projections.common import docs_of
from projections.community_victims import (
    Cell,
    CommunityRow,
    Figures,
    VictimsAnswer,
    iso_week,
    query,
)
from tests.support.builders import COAST, Log, fatalities, folded, line, roundtrip

NAME = "community-victims"


def state_of(*events: Event) -> State:
    return folded(NAME, *events)


def best_by_community(answer: VictimsAnswer) -> dict[str, int]:
    return {row.community: row.best for row in answer.communities}


def flat(best: int) -> Figures:
    return Figures(best, best, best)


EMPTY = VictimsAnswer(total=Figures(), unattributed=Figures(), incidents=0, communities=[])


class TestReport:
    def test_reported_incident_adds_its_lines_and_total(self) -> None:
        """A report adds each victim line to its community and its fatalities to the total."""
        state = state_of(
            COAST.reported(
                "a", 30, victims=[line("alawite", 20), line("christian", 4, low=3, high=6)]
            )
        )
        answer = query(state)
        assert answer.total == flat(30)
        assert answer.incidents == 1
        assert answer.communities == [
            CommunityRow(community="alawite", low=20, best=20, high=20, incidents=1),
            CommunityRow(community="christian", low=3, best=4, high=6, incidents=1),
        ]
        # interval arithmetic: the total's low less the lines' high, and so on
        assert answer.unattributed == Figures(30 - 26, 30 - 24, 30 - 23)

    def test_reference_case_counts_the_latest_revision_with_alawite_civilians_first(
        self,
    ) -> None:
        """1,311 killed (at least), revised to 1,383 then 1,476: only the last figures count."""
        state = state_of(
            COAST.reported(
                "syr-coast-2025-03",
                1311,
                victims=[line("alawite", 830), line("christian", 11), line("druze", 4)],
                fatalities=fatalities(1311, "at_least", high=1500),
            ),
            COAST.revised(
                "syr-coast-2025-03",
                1383,
                victims=[line("alawite", 1018), line("christian", 11)],
                fatalities=fatalities(1383, "at_least", high=1600),
            ),
            COAST.revised(
                "syr-coast-2025-03",
                1476,
                victims=[
                    line("alawite", 1068),
                    line("alawite", 40, status="combatant"),
                    line("christian", 11),
                ],
                fatalities=fatalities(1476, "at_least", high=1700),
            ),
        )
        answer = query(state)
        assert answer.total == Figures(1476, 1476, 1700, at_least=True)
        assert answer.communities[0] == CommunityRow(
            community="alawite", low=1108, best=1108, high=1108, incidents=1
        )
        assert best_by_community(answer) == {"alawite": 1108, "christian": 11}
        assert answer.unattributed == Figures(1476 - 1119, 1476 - 1119, 1700 - 1119, at_least=True)
        civilians = query(state, status="civilian")
        assert best_by_community(civilians) == {"alawite": 1068, "christian": 11}

    def test_report_without_lines_is_wholly_unattributed(self) -> None:
        """Fatalities with no victim line show in total and unattributed, no community."""
        answer = query(state_of(COAST.reported("a", 12)))
        assert answer.total == answer.unattributed == flat(12)
        assert answer.communities == []

    def test_two_statuses_of_one_community_count_the_incident_once(self) -> None:
        """A community with civilian and combatant lines in one incident has 1 incident."""
        state = state_of(
            COAST.reported(
                "a",
                10,
                victims=[line("alawite", 6), line("alawite", 3, status="combatant")],
            ),
            COAST.reported("b", 5, victims=[line("alawite", 5)]),
        )
        (row,) = query(state).communities
        assert (row.best, row.incidents) == (14, 2)

    def test_statement_events_change_nothing(self) -> None:
        """Events about statements are ignored."""
        state = state_of(COAST.statement("s-1", "USA"), COAST.statement_retracted("s-1"))
        assert len(state) == 0


class TestRevision:
    def test_revision_replaces_the_figures_never_adds(self) -> None:
        """After a revision only the revised figures count."""
        state = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 8)]),
            COAST.revised("a", 15, victims=[line("alawite", 9)]),
        )
        answer = query(state)
        assert answer.total == flat(15)
        assert best_by_community(answer) == {"alawite": 9}

    def test_revision_that_drops_a_community_removes_its_line(self) -> None:
        """A community no longer in the revised lines disappears, cell and all."""
        state = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 5), line("druze", 2)]),
            COAST.revised("a", 10, victims=[line("alawite", 7)]),
        )
        assert best_by_community(query(state)) == {"alawite": 7}
        (cell,) = docs_of(state, "total", Cell).values()
        assert sorted(cell.lines) == ["alawite|civilian"]
        assert sorted(cell.communities) == ["alawite"]

    def test_revision_of_one_incident_leaves_the_others(self) -> None:
        """Revising one incident changes only its own contribution."""
        state = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 10)]),
            COAST.reported("b", 4, victims=[line("alawite", 4)]),
            COAST.revised("a", 2, victims=[line("alawite", 1)]),
        )
        answer = query(state)
        assert answer.total == flat(6)
        assert answer.communities[0].best == 5
        assert answer.communities[0].incidents == 2


class TestRetraction:
    def test_retraction_undoes_exactly_that_incident(self) -> None:
        """Retracting one incident leaves the others' sums as if it had never been reported."""
        others = [
            COAST.reported("b", 7, victims=[line("alawite", 3)]),
            COAST.reported("c", 2, victims=[line("druze", 2)]),
        ]
        with_retraction = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 9)]), *others, COAST.retracted("a")
        )
        assert query(with_retraction) == query(state_of(*others))

    def test_retracting_every_incident_leaves_no_cell(self) -> None:
        """Cells whose incident count reaches zero are deleted, so totals are zero."""
        state = state_of(
            COAST.reported("a", 10, victims=[line("alawite", 9)]),
            COAST.revised("a", 11, victims=[line("alawite", 10)]),
            COAST.retracted("a"),
        )
        assert query(state) == EMPTY
        assert not state.kind("line")
        assert not state.kind("community")
        assert not state.kind("total")

    def test_revision_after_retraction_still_counts_nothing(self) -> None:
        """A retracted incident never counts again, whatever arrives after."""
        state = state_of(COAST.reported("a", 10), COAST.retracted("a"), COAST.revised("a", 99))
        assert query(state) == EMPTY


class TestMerge:
    def test_merged_duplicate_counts_nothing_and_the_canonical_once(self) -> None:
        """After a merge only the canonical incident's figures count."""
        state = state_of(
            COAST.reported("canon", 20, victims=[line("alawite", 15)]),
            COAST.reported("dup", 18, victims=[line("alawite", 14)]),
            COAST.merged("dup", "canon"),
        )
        answer = query(state)
        assert answer.total == flat(20)
        assert answer.incidents == 1
        assert answer.communities[0].incidents == 1

    def test_merge_after_revision_undoes_the_revised_figures(self) -> None:
        """A duplicate revised before its merge takes its revised figures away, exactly."""
        state = state_of(
            COAST.reported("canon", 20, victims=[line("alawite", 15)]),
            COAST.reported("dup", 5, victims=[line("druze", 5)]),
            COAST.revised("dup", 9, victims=[line("druze", 8)]),
            COAST.merged("dup", "canon"),
        )
        assert query(state) == query(
            state_of(COAST.reported("canon", 20, victims=[line("alawite", 15)]))
        )

    def test_merge_before_the_canonical_report_counts_each_incident_at_most_once(self) -> None:
        """A merge folded before the canonical's report: the canonical counts once it arrives."""
        state = state_of(
            COAST.reported("dup", 18, victims=[line("alawite", 14)]),
            COAST.merged("dup", "canon"),
        )
        assert query(state) == EMPTY
        state = state_of(
            COAST.reported("dup", 18, victims=[line("alawite", 14)]),
            COAST.merged("dup", "canon"),
            COAST.reported("canon", 20, victims=[line("alawite", 15)]),
        )
        answer = query(state)
        assert (answer.total, answer.incidents) == (flat(20), 1)
        assert answer.communities[0].best == 15

    def test_duplicate_reported_after_its_merge_never_counts(self) -> None:
        """A duplicate whose merge was folded first does not start counting on its report."""
        state = state_of(
            COAST.reported("canon", 20),
            COAST.merged("dup", "canon"),
            COAST.reported("dup", 18, victims=[line("alawite", 14)]),
        )
        assert query(state).total == flat(20)

    def test_retraction_of_the_canonical_after_merge_leaves_nothing(self) -> None:
        """Retracting the canonical takes its contribution away; the duplicate stays merged."""
        state = state_of(
            COAST.reported("canon", 20, victims=[line("alawite", 15)]),
            COAST.reported("dup", 18),
            COAST.merged("dup", "canon"),
            COAST.retracted("canon"),
        )
        assert query(state) == EMPTY

    def test_retraction_of_the_duplicate_after_merge_changes_nothing(self) -> None:
        """The duplicate counted nothing already; the canonical keeps counting."""
        events = [
            COAST.reported("canon", 20, victims=[line("alawite", 15)]),
            COAST.reported("dup", 18),
            COAST.merged("dup", "canon"),
        ]
        assert query(state_of(*events, COAST.retracted("dup"))) == query(state_of(*events))


class TestQueryFilters:
    @pytest.fixture
    def state(self) -> State:
        """Incidents over two countries, two regions, three weeks and every grading."""
        return state_of(
            COAST.reported(
                "latakia-0306",
                100,
                victims=[line("alawite", 80), line("alawite", 5, status="combatant")],
                occurred_start=dt.date(2025, 3, 6),  # 2025-W10
                grading="confirmed",
            ),
            COAST.reported(
                "tartus-0309",
                40,
                adm1="Tartus",
                victims=[line("alawite", 20), line("christian", 10)],
                occurred_start=dt.date(2025, 3, 9),  # Sunday of 2025-W10
                grading="fair",
            ),
            COAST.reported(
                "tartus-0310",
                7,
                adm1="Tartus",
                victims=[line("christian", 7, status="unknown")],
                occurred_start=dt.date(2025, 3, 10),  # Monday of 2025-W11
                grading="weak",
            ),
            COAST.reported(
                "homs-0320",
                3,
                adm1="Homs",
                victims=[line("sunni-arab", 3)],
                occurred_start=dt.date(2025, 3, 20),
                grading="contested",
            ),
            COAST.reported(
                "latakia-discounted",
                50,
                victims=[line("alawite", 50, status="combatant")],
                grading="discounted",
            ),
            COAST.reported(
                "leb-0306",
                2,
                country="LBN",
                adm1="North",
                victims=[line("alawite", 2)],
                occurred_start=dt.date(2025, 3, 6),
                grading="fair",
            ),
        )

    def test_default_leaves_out_discounted_incidents(self, state: State) -> None:
        """Without min_grading every grading but discounted counts."""
        answer = query(state)
        assert answer.total == flat(100 + 40 + 7 + 3 + 2)
        assert answer.incidents == 5
        assert best_by_community(answer) == {
            "alawite": 80 + 5 + 20 + 2,
            "christian": 17,
            "sunni-arab": 3,
        }

    def test_min_grading_keeps_that_grading_and_stronger(self, state: State) -> None:
        """min_grading=fair keeps confirmed and fair; discounted keeps everything."""
        assert query(state, min_grading="fair").total == flat(100 + 40 + 2)
        assert query(state, min_grading="confirmed").total == flat(100)
        assert query(state, min_grading="discounted").total == flat(202)

    def test_country_filter(self, state: State) -> None:
        """country keeps only that country's incidents."""
        answer = query(state, country="LBN")
        assert answer.total == flat(2)
        assert best_by_community(answer) == {"alawite": 2}

    def test_adm1_filter(self, state: State) -> None:
        """adm1 keeps only that region's incidents."""
        answer = query(state, country="SYR", adm1="Tartus")
        assert answer.total == flat(47)
        assert best_by_community(answer) == {"alawite": 20, "christian": 17}
        assert [row.incidents for row in answer.communities] == [1, 2]

    def test_week_filter_is_the_iso_week_of_occurred_start(self, state: State) -> None:
        """2025-W10 runs Monday 3 March to Sunday 9 March inclusive."""
        assert iso_week(dt.date(2025, 3, 9)) == "2025-W10"
        assert query(state, week="2025-W10").total == flat(100 + 40 + 2)
        assert query(state, week="2025-W11").total == flat(7)
        assert query(state, week="2024-W10") == EMPTY

    def test_date_range_is_inclusive_on_both_ends(self, state: State) -> None:
        """date_from and date_to both include their own day."""
        answer = query(state, date_from=dt.date(2025, 3, 9), date_to=dt.date(2025, 3, 10))
        assert answer.total == flat(47)
        assert query(state, date_from=dt.date(2025, 3, 11)).total == flat(3)
        assert query(state, date_to=dt.date(2025, 3, 6)).total == flat(102)

    def test_week_and_range_combine(self, state: State) -> None:
        """A week and a range together keep the days in both."""
        answer = query(state, week="2025-W10", date_from=dt.date(2025, 3, 7))
        assert answer.total == flat(40)

    def test_status_filter_answers_those_lines_and_their_own_total(self, state: State) -> None:
        """status=combatant: the combatant lines, their sum as the total, the incidents with
        such a line, and nothing unattributed -- not the incidents' whole toll."""
        answer = query(state, status="combatant", country="SYR", adm1="Latakia")
        assert answer.total == flat(5)
        assert answer.incidents == 1
        assert answer.communities == [
            CommunityRow(community="alawite", low=5, best=5, high=5, incidents=1)
        ]
        assert answer.unattributed == Figures()
        assert answer.status == "combatant"
        unknown = query(state, status="unknown")
        assert best_by_community(unknown) == {"christian": 7}
        assert (unknown.total, unknown.incidents) == (flat(7), 1)

    def test_communities_sort_by_best_descending_then_name(self) -> None:
        """Ties on best are broken by community name."""
        state = state_of(
            COAST.reported(
                "a",
                30,
                victims=[line("druze", 5), line("christian", 5), line("alawite", 20)],
            )
        )
        assert [row.community for row in query(state).communities] == [
            "alawite",
            "christian",
            "druze",
        ]

    def test_stored_documents_answer_like_the_fold(self, state: State) -> None:
        """The query reads documents loaded back from JSON, kind by kind, the same way."""
        stored = roundtrip(NAME, state)
        kinds = {kind: dict(docs) for kind, docs in stored.kinds().items()}
        assert query(kinds, week="2025-W10") == query(state, week="2025-W10")

    @pytest.mark.parametrize(
        "filters",
        [
            {"week": "2025-10"},
            {"week": "2025-W54"},
            {"week": "2025-W53"},
            {"status": "dead"},
            {"min_grading": "strong"},
        ],
    )
    def test_bad_filter_raises_invalid_query(self, filters: dict[str, str]) -> None:
        """A malformed week, a week that does not exist, or an unknown value is refused."""
        with pytest.raises(InvalidQueryError):
            query(state_of(), **filters)  # type: ignore[arg-type]


class TestRobustness:
    def test_inconsistent_state_raises_before_writing_anything(self) -> None:
        """A retraction whose cells are missing raises and leaves the state untouched."""
        log = Log()
        projection = PROJECTIONS[NAME]
        state = projection.initial()
        for event in (
            COAST.reported("a", 10, victims=[line("alawite", 5)]),
            COAST.reported("b", 3),
        ):
            projection.apply(state, log.record(event))
        total_id = next(
            ident for ident, cell in state.kind("total").items() if isinstance(cell, Cell)
        )
        state.delete("total", total_id)  # now "a" and "b" claim a total cell that is gone
        state.take_changes()
        before = roundtrip(NAME, state)
        with pytest.raises(InconsistentStateError):
            projection.apply(state, log.record(COAST.retracted("a")))
        assert state == before
        assert state.take_changes() == {}
