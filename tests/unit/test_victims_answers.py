"""community-victims answers: honest intervals, "at least" travelling, strict filters.

Each test sets up a few incidents (given), asks one question (when) and checks one property
of the answer (then).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from events import Event
from projections import PROJECTIONS, InvalidQueryError, State
from projections.common import docs_of
from projections.community_victims import Cell, Figures, query, tally
from projections.filters import VictimsFilter, occurrence_window
from tests.support.builders import COAST, Log, fatalities, folded, line

NAME = "community-victims"


def state_of(*events: Event) -> State:
    return folded(NAME, *events)


def total_best(state: State, **filters: Any) -> int:
    return query(state, VictimsFilter(**filters)).total.best


class TestIntervals:
    def test_unattributed_is_interval_arithmetic_never_componentwise(self) -> None:
        """Given 50/60/70 dead with lines alawite 40/50/60 and christian 2/3/4, when asked,
        then unattributed is 0/7/28, not the impossible 8/7/6."""
        state = state_of(
            COAST.reported(
                "a",
                60,
                fatalities=fatalities(60, low=50, high=70),
                victims=[
                    line("alawite", 50, low=40, high=60),
                    line("christian", 3, low=2, high=4),
                ],
            )
        )
        answer = query(state)
        assert answer.total == Figures(50, 60, 70)
        assert answer.unattributed == Figures(0, 7, 28)

    def test_unattributed_never_goes_below_zero(self) -> None:
        """Given lines whose highs exceed the total's low, then unattributed.low is 0."""
        state = state_of(
            COAST.reported(
                "a",
                10,
                fatalities=fatalities(10, low=5, high=12),
                victims=[line("x", 9, low=4, high=11)],
            )
        )
        assert query(state).unattributed == Figures(0, 1, 8)


class TestAtLeast:
    @pytest.fixture
    def state(self) -> State:
        """An "at least 1,311" toll with an "at least 40" line, beside an exact incident."""
        return state_of(
            COAST.reported(
                "coast",
                1311,
                fatalities=fatalities(1311, "at_least"),
                victims=[
                    line("alawite", 40, qualifier="at_least"),
                    line("christian", 11),
                ],
            ),
            COAST.reported("other", 5, adm1="Homs", victims=[line("christian", 2)]),
        )

    def test_total_and_unattributed_say_at_least_when_the_toll_does(self, state: State) -> None:
        """Then the total, and what the lines leave of it, are lower bounds."""
        answer = query(state)
        assert answer.total.at_least is True
        assert answer.unattributed.at_least is True
        assert query(state, adm1="Homs").total.at_least is False

    def test_a_line_says_at_least_when_any_figure_in_it_does(self, state: State) -> None:
        """Then alawite (an at-least line) says so; christian (exact lines only) does not."""
        rows = {row.community: row.at_least for row in query(state).communities}
        assert rows == {"alawite": True, "christian": False}

    def test_the_cell_counts_its_lower_bounds(self, state: State) -> None:
        """Then the cell of the coastal incident counts one lower-bound total and line."""
        cell = next(c for c in docs_of(state, "total", Cell).values() if c.adm1 == "Latakia")
        assert cell.at_least == 1
        assert cell.lines["alawite|civilian"].at_least == 1
        assert cell.lines["christian|civilian"].at_least == 0

    def test_a_revision_to_an_exact_figure_drops_the_qualifier(self) -> None:
        """Given the toll revised to an exact count, then the total is no longer a bound."""
        after = state_of(
            COAST.reported("a", 10, fatalities=fatalities(10, "at_least")), COAST.revised("a", 12)
        )
        assert query(after).total == Figures(12, 12, 12, at_least=False)


class TestWindows:
    def test_an_incident_over_several_days_is_in_a_range_inside_them(self) -> None:
        """Given an incident from 6 to 9 March, when asking for 7-8 March, then it counts."""
        state = state_of(
            COAST.reported(
                "a",
                10,
                occurred_start=dt.date(2025, 3, 6),
                occurred_end=dt.date(2025, 3, 9),
                date_precision=2,
            )
        )
        assert total_best(state, date_from=dt.date(2025, 3, 7), date_to=dt.date(2025, 3, 8)) == 10
        assert total_best(state, date_from=dt.date(2025, 3, 10)) == 0
        assert total_best(state, date_to=dt.date(2025, 3, 5)) == 0

    def test_a_month_precision_incident_is_not_placed_on_one_day(self) -> None:
        """Given an incident known to the month (start 1 March), then any day of March finds
        it, and a week of April does not."""
        state = state_of(
            COAST.reported("a", 10, occurred_start=dt.date(2025, 3, 1), date_precision=4)
        )
        assert total_best(state, date_from=dt.date(2025, 3, 20), date_to=dt.date(2025, 3, 20)) == 10
        assert total_best(state, week="2025-W13") == 10  # 24-30 March
        assert total_best(state, week="2025-W15") == 0

    @pytest.mark.parametrize(
        ("start", "end", "precision", "window"),
        [
            ((2025, 3, 6), None, 1, ((2025, 3, 6), (2025, 3, 6))),
            ((2025, 3, 6), (2025, 3, 9), 1, ((2025, 3, 6), (2025, 3, 9))),
            ((2025, 3, 6), None, 2, ((2025, 3, 6), (2025, 3, 11))),
            ((2025, 3, 6), (2025, 3, 8), 2, ((2025, 3, 6), (2025, 3, 8))),
            ((2025, 3, 6), None, 3, ((2025, 3, 3), (2025, 3, 9))),
            ((2025, 2, 20), None, 4, ((2025, 2, 1), (2025, 2, 28))),
            ((2025, 2, 20), (2025, 3, 2), 4, ((2025, 2, 1), (2025, 3, 31))),
            ((2024, 7, 1), None, 5, ((2024, 1, 1), (2024, 12, 31))),
        ],
    )
    def test_the_window_widens_to_what_the_precision_allows(
        self, start: Any, end: Any, precision: int, window: Any
    ) -> None:
        """Day 1: as given; 2: up to six days; 3: the ISO week; 4: the month; 5: the year."""
        expected = (dt.date(*window[0]), dt.date(*window[1]))
        ends = None if end is None else dt.date(*end)
        assert occurrence_window(dt.date(*start), ends, precision) == expected


class TestFilters:
    @pytest.fixture
    def state(self) -> State:
        """Three incidents differing in every attribute a filter selects by."""
        return state_of(
            COAST.reported(
                "battle",
                20,
                adm1="Tartus",
                event_type="Battles",
                violence_type="state_based",
                perpetrators=["Syrian Arab Army", "Armed group A"],
                civilian_targeting=False,
                source="acled",
                grading="confirmed",
            ),
            COAST.reported(
                "massacre",
                30,
                adm1="Latakia",
                perpetrators=["Armed group A"],
                source="sohr",
                grading="weak",
            ),
            COAST.reported(
                "riot", 4, country="LBN", adm1="North", event_type="Riots", source="acled"
            ),
        )

    @pytest.mark.parametrize(
        ("filters", "best"),
        [
            ({"event_type": "Battles"}, 20),
            ({"violence_type": "one_sided"}, 34),
            ({"perpetrator": "armed group a"}, 50),
            ({"perpetrator": "Syrian Arab Army"}, 20),
            ({"feed": "acled"}, 24),
            ({"grading": "weak"}, 30),
            ({"civilian_targeting": False}, 20),
            ({"civilian_targeting": True}, 34),
            ({"country": "syr"}, 50),
            ({"adm1": "tartus"}, 20),
            ({"adm1": "TARTUS", "event_type": "Riots"}, 0),
        ],
    )
    def test_each_filter_selects_the_incidents_it_names(
        self, state: State, filters: dict[str, Any], best: int
    ) -> None:
        """When filtering by one attribute (places and perpetrators in any case), then only
        the incidents having it count."""
        assert total_best(state, **filters) == best

    def test_the_place_as_reported_is_kept(self, state: State) -> None:
        """Then the cells keep adm1 as the feed spelled it, whatever the filter's case."""
        cells = docs_of(state, "total", Cell).values()
        assert sorted(c.adm1 for c in cells) == ["Latakia", "North", "Tartus"]

    @pytest.mark.parametrize(
        ("filters", "parameter"),
        [
            ({"event_type": "battles"}, "event_type"),
            ({"violence_type": "genocide"}, "violence_type"),
            ({"grading": "strong"}, "grading"),
            ({"status": "dead"}, "status"),
            ({"date_from": dt.date(2025, 3, 9), "date_to": dt.date(2025, 3, 1)}, "from"),
        ],
    )
    def test_a_value_outside_its_domain_is_refused_naming_the_parameter(
        self, filters: dict[str, Any], parameter: str
    ) -> None:
        """Nothing is answered as if filtered: the query raises, naming the parameter."""
        with pytest.raises(InvalidQueryError) as info:
            query(state_of(), VictimsFilter(**filters))
        assert info.value.parameter == parameter
        assert str(info.value).startswith(parameter)

    def test_the_filter_and_the_keywords_ask_the_same(self, state: State) -> None:
        """The older keyword signature and a VictimsFilter give the same answer; not both."""
        assert query(state, adm1="Tartus", min_grading="fair") == query(
            state, VictimsFilter(adm1="Tartus", min_grading="fair")
        )
        with pytest.raises(TypeError):
            query(state, VictimsFilter(adm1="Tartus"), country="SYR")

    def test_a_filter_is_hashable_and_equal_by_value(self) -> None:
        """Answers can be kept under their filter."""
        one, two = VictimsFilter(feed="acled"), VictimsFilter(feed="acled")
        assert one == two
        assert hash(one) == hash(two)
        assert {one: 1}[two] == 1


class TestTally:
    def test_moving_by_changed_cells_equals_asking_again(self) -> None:
        """Given a tally followed cell by cell (the old cell taken away, the new one added),
        then after every event its answer is the query's, for every status."""
        projection = PROJECTIONS[NAME]
        events = [
            COAST.reported("a", 10, victims=[line("alawite", 4), line("druze", 2, "combatant")]),
            COAST.reported("b", 7, victims=[line("alawite", 3, qualifier="at_least")]),
            COAST.revised("a", 12, victims=[line("alawite", 6)]),
            COAST.merged("b", "a"),
        ]
        for status in (None, "civilian", "combatant"):
            where = VictimsFilter(status=status)
            sums = tally(where)
            held: dict[str, Cell] = {}
            state = projection.initial()
            for one in Log().records(events):
                projection.apply(state, one)
                for (kind, ident), doc in state.take_changes().items():
                    if kind != "total":
                        continue
                    if ident in held:
                        sums.add(held.pop(ident), -1)
                    if isinstance(doc, Cell):
                        sums.add(doc)
                        held[ident] = doc
                assert sums.answer() == query(state, where), status
