"""A victims cell's id tells which questions may keep the cell, without decoding it.

:func:`~projections.victims_cells.id_may_be_kept` lets an as-of reader leave undecoded the
cells a filtered question cannot keep; it must never leave out a cell the question keeps.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from events import GRADING_ORDER, Event
from projections import PROJECTIONS, InvalidQueryError, fold
from projections.filters import EVENT_TYPES, VIOLENCE_TYPES, VictimsFilter, select
from projections.victims_cells import cell_kept, id_may_be_kept
from projections.victims_query import cells_of
from tests.support.builders import COAST, Log
from tests.support.strategies import FEEDS, FOLDS, PARTITIONED, histories

DAYS = [dt.date(2025, 3, 1) + dt.timedelta(days=n) for n in range(0, 24, 3)]


@st.composite
def windowed(draw: st.DrawFn) -> list[Event]:
    """Reports whose window of occurrence spans days (an end, a date precision)."""
    events: list[Event] = []
    for n in range(draw(st.integers(0, 6))):
        start = draw(st.sampled_from(DAYS))
        events.append(
            COAST.reported(
                f"w-{n}",
                draw(st.integers(1, 9)),
                occurred_start=start,
                occurred_end=draw(st.sampled_from([None, start + dt.timedelta(days=4)])),
                date_precision=draw(st.integers(1, 5)),
            )
        )
    return events


CHOICES: dict[str, list[Any]] = {
    "country": ["SYR", "lbn", "IRQ"],
    "adm1": ["latakia", "Tartus", "North"],
    "week": ["2025-W10", "2025-W11"],
    "date_from": DAYS,
    "date_to": DAYS,
    "min_grading": list(GRADING_ORDER),
    "grading": list(GRADING_ORDER),
    "event_type": list(EVENT_TYPES[:3]),
    "violence_type": list(VIOLENCE_TYPES),
    "civilian_targeting": [True, False],
    "feed": list(FEEDS),
    "perpetrator": ["HTS"],
}


@st.composite
def filters(draw: st.DrawFn) -> VictimsFilter:
    """A filter on one to three attributes (more would seldom keep any cell)."""
    names = draw(st.lists(st.sampled_from(sorted(CHOICES)), min_size=1, max_size=3, unique=True))
    return VictimsFilter(**{name: draw(st.sampled_from(CHOICES[name])) for name in names})


class TestIdsSelectAsTheCellsDo:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        events=st.one_of(histories(PARTITIONED), histories(FOLDS)),
        spans=windowed(),
        wheres=st.lists(filters(), min_size=1, max_size=6),
    )
    def test_an_id_selects_exactly_what_its_cell_does(
        self, events: list[Event], spans: list[Event], wheres: list[VictimsFilter]
    ) -> None:
        """For every cell of a random history (and reports over windows of days) and random
        filters (country, region, week, dates, gradings, types, targeting, feed,
        perpetrator): the id says "may keep" exactly when the cell is kept."""
        state = fold(PROJECTIONS["community-victims"], Log().records(events + spans))
        for where in [VictimsFilter(), *wheres]:
            try:
                selection = select(where, "contested")
            except InvalidQueryError:  # dates the wrong way round
                continue
            for ident, cell in cells_of(state).items():
                assert id_may_be_kept(selection, ident) == cell_kept(selection, cell), (
                    ident,
                    where,
                )

    def test_free_text_in_the_region_and_perpetrators_reads_back(self) -> None:
        """A region holding ``|`` and quotes, and perpetrators: read from the id's encoded
        tail, the same selections as the cell's."""
        state = fold(
            PROJECTIONS["community-victims"],
            Log().records(
                [
                    COAST.reported("a", 4, adm1='Jableh | "old town"', perpetrators=["HTS", "X"]),
                    COAST.reported("b", 3, adm1="Baniyas"),
                ]
            ),
        )
        cells = cells_of(state)
        assert len(cells) == 2
        for where in (
            VictimsFilter(adm1='jableh | "old town"'),
            VictimsFilter(adm1="baniyas"),
            VictimsFilter(perpetrator="hts"),
            VictimsFilter(perpetrator="Y"),
        ):
            selection = select(where, "contested")
            kept = {i for i, cell in cells.items() if cell_kept(selection, cell)}
            assert kept == {i for i in cells if id_may_be_kept(selection, i)}, where
            assert len(kept) == 1 or where.perpetrator == "Y"

    def test_an_id_that_does_not_read_keeps_the_cell(self) -> None:
        """Anything not of the id's shape is never left out."""
        selection = select(VictimsFilter(country="SYR", adm1="latakia"), "contested")
        for ident in ("", "SYR|x", "SYR|2025-03-01|2025-03-02|weak|a|b|1|f|not json"):
            assert id_may_be_kept(selection, ident)
