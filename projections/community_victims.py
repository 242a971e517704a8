"""community-victims: the dead of each community, summed over the live incidents.

An incident's current figures are those of its latest ``incident.reported`` or
``incident.casualties_revised`` (a revision replaces, never adds). Only a *live* incident
that has been reported counts; a retracted incident and a merged duplicate count nothing
(the canonical incident counts once, with its own figures). Retracting or merging undoes
exactly that incident's contribution. Events may arrive in an order a single partition
would not produce (a merge into an incident not reported yet, a retraction before the
report): each incident still counts at most once, and a retracted or merged incident never
starts counting again.

Documents, by kind:

- ``incident``: a :class:`Contribution` per incident, what it adds now (so it can be undone);
- ``line``: a :class:`Cell` per (country, adm1, occurred_start, grading, community, status);
- ``community``: a :class:`Cell` per (country, adm1, occurred_start, grading, community),
  the same sums over every status, so distinct incidents per community are exact;
- ``total``: a :class:`Cell` per (country, adm1, occurred_start, grading), the incidents'
  fatalities.

Each cell counts the incidents behind it and disappears when that count reaches zero, so a
query sums cells and never walks incidents.

Query semantics (:func:`query`): ``total`` is the fatalities of the incidents matching the
place, date and grading filters; ``communities`` are the community lines of those incidents,
restricted to one victim ``status`` when asked; ``unattributed`` is ``total`` minus the shown
lines, component by component. With a ``status`` filter, ``total`` therefore stays the
incidents' whole toll and ``unattributed`` includes the lines of the other statuses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Final, Literal

import msgspec

from events import (
    GRADING_ORDER,
    CasualtiesRevised,
    Grading,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Recorded,
)

from .common import Readable, State, docs_of, get_doc
from .docs import Docs
from .errors import InconsistentStateError, InvalidQueryError

NAME: Final = "community-victims"
VERSION: Final = 1

VictimStatus = Literal["civilian", "combatant", "unknown"]
VICTIM_STATUSES: Final[tuple[VictimStatus, ...]] = ("civilian", "combatant", "unknown")
DEFAULT_MIN_GRADING: Final[Grading] = "contested"
"""Without ``min_grading`` every grading but ``discounted`` counts."""


class Figures(msgspec.Struct, frozen=True):
    """A low/best/high triple of head counts (a sum, so not bounded like an event's)."""

    low: int = 0
    best: int = 0
    high: int = 0

    def plus(self, other: Figures, sign: int = 1) -> Figures:
        """The componentwise sum ``self + sign * other``."""
        return Figures(
            self.low + sign * other.low,
            self.best + sign * other.best,
            self.high + sign * other.high,
        )

    @property
    def negative(self) -> bool:
        """Whether any component is below zero."""
        return min(self.low, self.best, self.high) < 0


ZERO: Final = Figures()


class Line(msgspec.Struct, frozen=True, kw_only=True):
    """One victim line of an incident's current figures."""

    community: str
    status: VictimStatus
    figures: Figures


class Contribution(msgspec.Struct, frozen=True, kw_only=True):
    """What one incident adds to the cells now, and what is needed to undo it."""

    incident_id: str
    status: Literal["live", "retracted", "merged"] = "live"
    merged_into: str | None = None
    reported: bool = False
    country: str | None = None
    adm1: str | None = None
    occurred_start: dt.date | None = None
    grading: Grading | None = None
    total: Figures = ZERO
    lines: tuple[Line, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether the incident contributes: reported, and neither retracted nor merged."""
        return self.status == "live" and self.reported


class Cell(msgspec.Struct, frozen=True, kw_only=True):
    """Sums over the incidents of one cell; ``community``/``status`` set by kind."""

    country: str
    adm1: str
    occurred_start: dt.date
    grading: Grading
    community: str | None = None
    status: VictimStatus | None = None
    figures: Figures = ZERO
    incidents: int = 0


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "incident": Contribution,
    "line": Cell,
    "community": Cell,
    "total": Cell,
}


class CommunityRow(msgspec.Struct, frozen=True, kw_only=True):
    """One community's dead under a query's filters, and the incidents behind them."""

    community: str
    low: int
    best: int
    high: int
    incidents: int


class VictimsAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """The answer of :func:`query` (see the module docstring for its meaning)."""

    total: Figures
    unattributed: Figures
    incidents: int
    communities: list[CommunityRow]


def initial() -> State:
    """The empty state."""
    return Docs()


# --- the fold ------------------------------------------------------------------------------

_Dims = tuple[str, str, dt.date, str, str | None, str | None]
"""(country, adm1, occurred_start, grading, community, status) of a cell."""


def _cell_id(dims: _Dims) -> str:
    country, adm1, day, grading, community, status = dims
    parts = [country, day.isoformat(), grading, *(p for p in (community, status) if p)]
    return "|".join([*parts, adm1])  # adm1 last: it is free text and may hold a '|'


def _shares(contribution: Contribution) -> dict[tuple[str, str], tuple[_Dims, Figures]]:
    """Every cell the incident counts in, with what it adds there."""
    c = contribution
    if not c.counts or c.country is None or c.adm1 is None or c.occurred_start is None:
        return {}
    base = (c.country, c.adm1, c.occurred_start, c.grading or "weak")
    total_dims: _Dims = (*base, None, None)
    shares = {("total", _cell_id(total_dims)): (total_dims, contribution.total)}
    communities: dict[str, Figures] = {}
    for line in contribution.lines:
        dims: _Dims = (*base, line.community, line.status)
        shares["line", _cell_id(dims)] = (dims, line.figures)
        communities[line.community] = communities.get(line.community, ZERO).plus(line.figures)
    for community, figures in communities.items():
        dims = (*base, community, None)
        shares["community", _cell_id(dims)] = (dims, figures)
    return shares


def _replace(state: State, old: Contribution | None, new: Contribution) -> None:
    """Swap an incident's contribution: undo ``old``'s cells, add ``new``'s, store ``new``.

    Every new cell is computed (and checked) before anything is written.
    """
    changes: dict[tuple[str, str], tuple[_Dims, Figures, int]] = {}
    for sign, contribution in ((-1, old), (1, new)):
        if contribution is None:
            continue
        for key, (dims, figures) in _shares(contribution).items():
            _, sum_so_far, count = changes.get(key, (dims, ZERO, 0))
            changes[key] = (dims, sum_so_far.plus(figures, sign), count + sign)
    writes: list[tuple[str, str, Cell | None]] = []
    for (kind, ident), (dims, delta, count) in changes.items():
        cell = get_doc(state, kind, ident, Cell)
        if cell is None:
            country, adm1, day, grading, community, status = dims
            cell = Cell(
                country=country,
                adm1=adm1,
                occurred_start=day,
                grading=grading,  # type: ignore[arg-type]  # taken from a Grading
                community=community,
                status=status,  # type: ignore[arg-type]  # taken from a VictimStatus
            )
        figures, incidents = cell.figures.plus(delta), cell.incidents + count
        if incidents < 0 or figures.negative:
            raise InconsistentStateError(f"{kind} cell {ident!r} would fall below zero")
        if incidents == 0:
            writes.append((kind, ident, None))
        elif delta != ZERO or count:
            writes.append(
                (kind, ident, msgspec.structs.replace(cell, figures=figures, incidents=incidents))
            )
    for kind, ident, doc in writes:
        if doc is None:
            state.delete(kind, ident)
        else:
            state.put(kind, ident, doc)
    state.put("incident", new.incident_id, new)


def _figures(event: IncidentReported | CasualtiesRevised) -> tuple[Figures, tuple[Line, ...]]:
    f = event.fatalities
    lines = tuple(
        Line(
            community=v.community,
            status=v.status,
            figures=Figures(v.low, v.best, v.high),
        )
        for v in event.victims
    )
    return Figures(f.low, f.best, f.high), lines


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if not isinstance(
        event, IncidentReported | CasualtiesRevised | IncidentRetracted | IncidentMerged
    ):
        return state
    ident = event.incident_id
    old = get_doc(state, "incident", ident, Contribution)
    current = old or Contribution(incident_id=ident)
    if isinstance(event, IncidentReported):
        total, lines = _figures(event)
        new = msgspec.structs.replace(
            current,
            reported=True,
            country=event.country,
            adm1=event.place.adm1,
            occurred_start=event.occurred_start,
            grading=event.grading,
            total=total,
            lines=lines,
        )
    elif isinstance(event, CasualtiesRevised):
        total, lines = _figures(event)
        new = msgspec.structs.replace(current, total=total, lines=lines)
    elif isinstance(event, IncidentRetracted):
        new = msgspec.structs.replace(current, status="retracted")
    else:
        if current.status == "retracted":
            return state  # a retracted incident stays retracted
        new = msgspec.structs.replace(current, status="merged", merged_into=event.into)
    _replace(state, old, new)
    return state


# --- the query -----------------------------------------------------------------------------

_WEEK = re.compile(r"^(?P<year>\d{4})-W(?P<week>\d{2})$")


def iso_week(day: dt.date) -> str:
    """The ISO week of a date, as ``2025-W10``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_range(week: str) -> tuple[dt.date, dt.date]:
    """The Monday and Sunday of an ISO week ``YYYY-Www``; :class:`InvalidQueryError` if none."""
    match = _WEEK.match(week)
    if match is None:
        raise InvalidQueryError(f"week must look like 2025-W10, got {week!r}")
    try:
        monday = dt.date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    except ValueError as exc:
        raise InvalidQueryError(f"week {week!r} does not exist: {exc}") from exc
    return monday, monday + dt.timedelta(days=6)


def _gradings(min_grading: str | None) -> frozenset[str]:
    floor = DEFAULT_MIN_GRADING if min_grading is None else min_grading
    if floor not in GRADING_ORDER:
        raise InvalidQueryError(
            f"min_grading must be one of {', '.join(GRADING_ORDER)}, got {floor!r}"
        )
    return frozenset(GRADING_ORDER[: GRADING_ORDER.index(floor) + 1])


def query(
    state: Readable,
    *,
    country: str | None = None,
    adm1: str | None = None,
    week: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    min_grading: str | None = None,
) -> VictimsAnswer:
    """The dead by community under the filters (all optional; dates inclusive).

    ``week`` (ISO, ``2025-W10``) and ``date_from``/``date_to`` filter ``occurred_start`` and
    combine (both must hold). ``status`` keeps the lines of one victim status;
    ``min_grading`` keeps incidents graded at least that strong (default: all but
    ``discounted``). Communities come by ``best`` descending, then by name.
    """
    low, high = date_from, date_to
    if week is not None:
        monday, sunday = week_range(week)
        low = monday if low is None else max(low, monday)
        high = sunday if high is None else min(high, sunday)
    if status is not None and status not in VICTIM_STATUSES:
        raise InvalidQueryError(
            f"status must be one of {', '.join(VICTIM_STATUSES)}, got {status!r}"
        )
    gradings = _gradings(min_grading)

    def keep(cell: Cell) -> bool:
        return (
            (country is None or cell.country == country)
            and (adm1 is None or cell.adm1 == adm1)
            and (low is None or cell.occurred_start >= low)
            and (high is None or cell.occurred_start <= high)
            and cell.grading in gradings
        )

    total, incidents = ZERO, 0
    for cell in docs_of(state, "total", Cell).values():
        if keep(cell):
            total, incidents = total.plus(cell.figures), incidents + cell.incidents
    sums: dict[str, tuple[Figures, int]] = {}
    kind = "community" if status is None else "line"
    for cell in docs_of(state, kind, Cell).values():
        if keep(cell) and (status is None or cell.status == status):
            name = cell.community or ""  # set on every line and community cell
            figures, count = sums.get(name, (ZERO, 0))
            sums[name] = (figures.plus(cell.figures), count + cell.incidents)
    shown = ZERO
    for figures, _ in sums.values():
        shown = shown.plus(figures)
    rows = [
        CommunityRow(
            community=community,
            low=figures.low,
            best=figures.best,
            high=figures.high,
            incidents=count,
        )
        for community, (figures, count) in sums.items()
    ]
    rows.sort(key=lambda row: (-row.best, row.community))
    return VictimsAnswer(
        total=total,
        unattributed=total.plus(shown, -1),
        incidents=incidents,
        communities=rows,
    )
