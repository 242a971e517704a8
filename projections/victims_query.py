"""The community-victims answer: the dead by community under a :class:`VictimsFilter`.

Semantics of :func:`query`:

- ``total`` is the fatalities of the incidents the filter selects; with a victim ``status``
  it is the lines of that status and their own total (the sum of those lines), not the
  incidents' whole toll;
- ``communities`` are the community lines of those incidents (of that status only, with
  ``status``), by ``best`` descending then name, each with the incidents behind it;
- ``unattributed`` is what no community line accounts for, by interval arithmetic, never
  component by component: ``low = max(0, total.low - Σ lines.high)``, ``best = max(0,
  total.best - Σ lines.best)``, ``high = max(0, total.high - Σ lines.low)``, so it always
  has ``low ≤ best ≤ high``; with ``status`` the total is the lines' own, so nothing of it
  is unattributed (zero);
- ``at_least`` is true on every figure that includes a lower bound (a figure given as
  "at least"): a line, the total, and ``unattributed`` when the total is one.

An answer is a sum over cells (:class:`Tally`): adding or taking away one cell's part moves
it exactly, so a reader holding an answer can follow a view by its changed cells alone and
get what :func:`query` would give (the same :class:`Tally`, the same filter).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from .common import Readable, docs_of
from .docs import Doc
from .filters import DEFAULT_MIN_GRADING, Selection, VictimsFilter, filter_of, select
from .victims_cells import Cell, answer_lines, cell_kept


class Figures(Doc, frozen=True):
    """A low/best/high triple of head counts (a sum, so not bounded like an event's), and
    whether it includes a lower bound (``at_least``)."""

    low: int = 0
    best: int = 0
    high: int = 0
    at_least: bool = False

    def plus(self, other: Figures, sign: int = 1) -> Figures:
        """The componentwise sum ``self + sign * other`` (a lower bound if either is)."""
        return Figures(
            self.low + sign * other.low,
            self.best + sign * other.best,
            self.high + sign * other.high,
            self.at_least or other.at_least,
        )

    @property
    def negative(self) -> bool:
        """Whether any component is below zero."""
        return min(self.low, self.best, self.high) < 0


ZERO = Figures()


class CommunityRow(Doc, frozen=True, kw_only=True):
    """One community's dead under a query's filters, and the incidents behind them."""

    community: str
    low: int
    best: int
    high: int
    incidents: int
    at_least: bool = False


class VictimsAnswer(Doc, frozen=True, kw_only=True):
    """The answer of :func:`query` (see the module docstring for its meaning).

    ``status`` is the victim status the answer is restricted to (``None``: every status):
    with one, ``total`` and ``incidents`` are the lines' own, not the incidents' toll.
    """

    total: Figures
    unattributed: Figures
    incidents: int
    communities: list[CommunityRow]
    status: str | None = None


def unattributed(total: Figures, lines: Iterable[CommunityRow]) -> Figures:
    """What the lines leave of ``total``, by interval arithmetic (see the module docstring)."""
    low = best = high = 0
    for row in lines:
        low, best, high = low + row.low, best + row.best, high + row.high
    return Figures(
        max(0, total.low - high),
        max(0, total.best - best),
        max(0, total.high - low),
        total.at_least,
    )


class Tally:
    """The sums of one query over cells, moved cell by cell.

    ``add(cell)`` and ``add(cell, -1)`` add or take away one cell's part (nothing when the
    filter does not keep the cell); :meth:`answer` is then :func:`query`'s answer over the
    cells added. Pure data: no I/O.
    """

    __slots__ = ("at_least", "incidents", "rows", "selection", "total")

    def __init__(self, selection: Selection) -> None:
        self.selection = selection
        self.total = [0, 0, 0]
        self.incidents = 0
        self.at_least = 0
        self.rows: dict[str, list[int]] = {}
        """community → [low, best, high, incidents, at_least]."""

    def copy(self) -> Tally:
        """An independent copy (adding to one leaves the other as it was)."""
        other = Tally(self.selection)
        other.total = list(self.total)
        other.incidents, other.at_least = self.incidents, self.at_least
        other.rows = {community: list(held) for community, held in self.rows.items()}
        return other

    def add(self, cell: Cell, sign: int = 1) -> None:
        """Add (``sign`` 1) or take away (-1) the part of ``cell`` the filter keeps."""
        if cell_kept(self.selection, cell):
            self.add_kept(cell, sign)

    def add_kept(self, cell: Cell, sign: int = 1) -> None:
        """:meth:`add` of a cell already known to be kept by the filter."""
        status = self.selection.status
        total = self.total
        if status is None:
            total[0] += sign * cell.low
            total[1] += sign * cell.best
            total[2] += sign * cell.high
            self.incidents += sign * cell.incidents
            self.at_least += sign * cell.at_least
        else:
            whole = cell.statuses.get(status)
            if whole is not None:
                total[0] += sign * whole.low
                total[1] += sign * whole.best
                total[2] += sign * whole.high
                self.incidents += sign * whole.incidents
                self.at_least += sign * whole.at_least
        rows = self.rows
        for community, one in answer_lines(self.selection, cell):
            held = rows.get(community)
            if held is None:
                held = rows[community] = [0, 0, 0, 0, 0]
            held[0] += sign * one.low
            held[1] += sign * one.best
            held[2] += sign * one.high
            held[3] += sign * one.incidents
            held[4] += sign * one.at_least
            if held[3] == 0:  # no kept cell has the community any more
                del rows[community]

    def answer(self) -> VictimsAnswer:
        """The answer over the cells added so far."""
        rows = [
            CommunityRow(
                community=community,
                low=low,
                best=best,
                high=high,
                incidents=count,
                at_least=at_least > 0,
            )
            for community, (low, best, high, count, at_least) in self.rows.items()
        ]
        rows.sort(key=lambda row: (-row.best, row.community))
        low, best, high = self.total
        total = Figures(low, best, high, self.at_least > 0)
        return VictimsAnswer(
            total=total,
            unattributed=ZERO if self.selection.status is not None else unattributed(total, rows),
            incidents=self.incidents,
            communities=rows,
            status=self.selection.status,
        )


def tally(where: VictimsFilter | None = None) -> Tally:
    """An empty :class:`Tally` of ``where`` (checked: :class:`InvalidQueryError`)."""
    return Tally(select(where, DEFAULT_MIN_GRADING))


def query(
    state: Readable,
    where: VictimsFilter | None = None,
    *,
    country: str | None = None,
    adm1: str | None = None,
    week: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    min_grading: str | None = None,
) -> VictimsAnswer:
    """The dead by community under the filters (see the module docstring).

    Filters come as a :class:`~projections.filters.VictimsFilter` or, as before it existed,
    as keyword arguments (not both). Without ``min_grading`` every grading but
    ``discounted`` counts. :class:`~projections.errors.InvalidQueryError` names a filter out
    of its domain.
    """
    where = filter_of(
        where,
        country=country,
        adm1=adm1,
        week=week,
        date_from=date_from,
        date_to=date_to,
        status=status,
        min_grading=min_grading,
    )
    sums = tally(where)
    for cell in docs_of(state, "total", Cell).values():
        sums.add(cell)
    return sums.answer()


def cells_of(state: Readable) -> Mapping[str, Cell]:
    """The cells of a community-victims state, by id."""
    return docs_of(state, "total", Cell)


__all__ = [
    "ZERO",
    "CommunityRow",
    "Figures",
    "Tally",
    "VictimsAnswer",
    "cells_of",
    "query",
    "tally",
    "unattributed",
]
