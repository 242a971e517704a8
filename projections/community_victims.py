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

Partitions: an incident's contribution depends on its own events only (a merge changes the
duplicate, never the canonical's figures), so the state of one partition holds the
contributions of that partition's incidents and cells summing exactly those. :func:`merge`
takes the contributions of every part (each in one part only) and sums the cells of equal
id, key by key.

Query semantics (:func:`query`): ``total`` is the fatalities of the incidents matching the
place, date and grading filters; ``communities`` are the community lines of those incidents,
restricted to one victim ``status`` when asked; ``unattributed`` is ``total`` minus the shown
lines, component by component. With a ``status`` filter, ``total`` therefore stays the
incidents' whole toll and ``unattributed`` includes the lines of the other statuses.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec

from events import (
    GRADING_ORDER,
    CasualtiesRevised,
    Event,
    Grading,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Recorded,
    VictimLine,
)

from .common import Readable, State, docs_of, grouped, union
from .docs import Doc, Docs
from .errors import InconsistentStateError, InvalidQueryError

NAME: Final = "community-victims"
VERSION: Final = 2

VictimStatus = Literal["civilian", "combatant", "unknown"]
VICTIM_STATUSES: Final[tuple[VictimStatus, ...]] = ("civilian", "combatant", "unknown")
DEFAULT_MIN_GRADING: Final[Grading] = "contested"
"""Without ``min_grading`` every grading but ``discounted`` counts."""


class Figures(Doc, frozen=True):
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


class Line(Doc, frozen=True, array_like=True):
    """One victim line of an incident's current figures."""

    community: str
    status: VictimStatus
    low: int
    best: int
    high: int


class Contribution(Doc, frozen=True, kw_only=True, array_like=True):
    """What one incident adds to the cells now, and what is needed to undo it."""

    incident_id: str
    status: Literal["live", "retracted", "merged"] = "live"
    merged_into: str | None = None
    reported: bool = False
    country: str | None = None
    adm1: str | None = None
    occurred_start: dt.date | None = None
    grading: Grading | None = None
    total: tuple[int, int, int] = (0, 0, 0)
    """The incident's fatalities: (low, best, high)."""
    lines: tuple[Line, ...] = ()

    @property
    def counts(self) -> bool:
        """Whether the incident contributes: reported, and neither retracted nor merged."""
        return self.status == "live" and self.reported


class Cell(Doc, frozen=True, array_like=True):
    """Sums over the live incidents of one (country, adm1, occurred_start, grading).

    ``low``/``best``/``high`` are the incidents' fatalities and ``incidents`` their number;
    ``communities`` holds ``(low, best, high, incidents)`` per community (over every victim
    status, so distinct incidents per community are exact) and ``lines`` the same per
    ``<community>|<status>``. Entries whose incident count reaches zero are dropped.
    """

    country: str
    adm1: str
    occurred_start: dt.date
    grading: Grading
    low: int = 0
    best: int = 0
    high: int = 0
    incidents: int = 0
    communities: dict[str, tuple[int, int, int, int]] = {}
    lines: dict[str, tuple[int, int, int, int]] = {}

    @property
    def figures(self) -> Figures:
        """The cell's summed fatalities."""
        return Figures(self.low, self.best, self.high)


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "incident": Contribution,
    "total": Cell,
    "community": Cell,
    "line": Cell,
}
"""``community`` and ``line`` hold no documents since version 2 (a ``total`` cell carries its
communities and lines); they stay declared so that readers asking for them get nothing."""


class CommunityRow(Doc, frozen=True, kw_only=True):
    """One community's dead under a query's filters, and the incidents behind them."""

    community: str
    low: int
    best: int
    high: int
    incidents: int


class VictimsAnswer(Doc, frozen=True, kw_only=True):
    """The answer of :func:`query` (see the module docstring for its meaning)."""

    total: Figures
    unattributed: Figures
    incidents: int
    communities: list[CommunityRow]


def initial() -> State:
    """The empty state."""
    return Docs()


# --- the fold ------------------------------------------------------------------------------

_DAYS: dict[dt.date, str] = {}
"""ISO texts of the dates seen, so each date is formatted once (a pure memo)."""
_MAX_DAYS: Final = 100_000


def _day(day: dt.date) -> str:
    text = _DAYS.get(day)
    if text is None:
        if len(_DAYS) >= _MAX_DAYS:
            _DAYS.clear()
        text = _DAYS[day] = day.isoformat()
    return text


def _cell_id(c: Contribution) -> str | None:
    """The id of the total cell ``c`` counts in, ``country|date|grading|adm1`` (adm1 last: it is
    free text and may hold a ``|``), or ``None`` when ``c`` counts nowhere (not reported,
    retracted or merged, or without a place or date)."""
    if c.status != "live" or not c.reported:
        return None
    country, adm1, day = c.country, c.adm1, c.occurred_start
    if country is None or adm1 is None or day is None:
        return None
    return f"{country}|{_DAYS.get(day) or _day(day)}|{c.grading or 'weak'}|{adm1}"


def _below(ident: str, key: str) -> InconsistentStateError:
    return InconsistentStateError(f"total cell {ident!r}: {key!r} would fall below zero")


_Sums = dict[str, tuple[int, int, int, int]]
"""``(low, best, high, incidents)`` by community, or by ``<community>|<status>``."""

_SHARED: dict[tuple[int, int, int, int], tuple[int, int, int, int]] = {}
"""One shared tuple per distinct ``(low, best, high, incidents)`` a cell holds (a pure memo).

Why: the cyclic garbage collector stops tracking a tuple of ints the first time it sees it,
and a dict whose values are all untracked is not tracked either. Cells whose dicts hold these
shared tuples therefore stay out of every collection; with a fresh tuple per entry, each
copy of a cell's dicts was tracked and collections walking them took about a third of the
fold's time. A few thousand distinct sums cover a million events.
"""
_MAX_SHARED: Final = 50_000


def _move(sums: _Sums, key: str, add: tuple[int, int, int], sign: int, ident: str) -> None:
    """Move one entry by ``(low, best, high, 1)`` times ``sign``; drop it at no incident.

    A dropped entry that comes back goes at the end: the dicts' order is the stored JSON's.
    :class:`InconsistentStateError` when it would fall below zero.
    """
    was = sums.get(key)
    if was is None:
        a, b, h, n = sign * add[0], sign * add[1], sign * add[2], sign
    else:
        a, b, h = was[0] + sign * add[0], was[1] + sign * add[1], was[2] + sign * add[2]
        n = was[3] + sign
    if n < 0 or a < 0 or b < 0 or h < 0:
        raise _below(ident, key)
    if n == 0:
        del sums[key]
    else:
        moved = (a, b, h, n)
        sums[key] = _SHARED.setdefault(moved, moved)


def _shift(ident: str, c: Contribution, sign: int, communities: _Sums, lines: _Sums) -> None:
    """Add (sign 1) or take away (sign -1) the victim lines of ``c``, in place: each line
    under ``<community>|<status>``, and each community once, its lines of every status added
    up, in the order the communities first appear in its lines."""
    c_lines = c.lines
    for line in c_lines:
        _move(
            lines, f"{line.community}|{line.status}", (line.low, line.best, line.high), sign, ident
        )
    if len(c_lines) == 1:
        line = c_lines[0]
        _move(communities, line.community, (line.low, line.best, line.high), sign, ident)
        return
    summed: dict[str, tuple[int, int, int]] = {}
    for line in c_lines:
        so_far = summed.get(line.community)
        summed[line.community] = (
            (line.low, line.best, line.high)
            if so_far is None
            else (so_far[0] + line.low, so_far[1] + line.best, so_far[2] + line.high)
        )
    for community, figures in summed.items():
        _move(communities, community, figures, sign, ident)


def _updated(
    ident: str, cell: Cell | None, changes: tuple[tuple[Contribution, int], ...]
) -> Cell | None:
    """``cell`` with each contribution added (sign 1) or taken away (sign -1), in order;
    ``None`` when no incident is left in it. Nothing of ``cell`` is changed."""
    first = changes[0][0]
    if len(_SHARED) >= _MAX_SHARED:
        _SHARED.clear()
    if cell is None:
        low = best = high = incidents = 0
        communities: _Sums = {}
        lines: _Sums = {}
    else:
        low, best, high, incidents = cell.low, cell.best, cell.high, cell.incidents
        communities, lines = cell.communities.copy(), cell.lines.copy()
    for c, sign in changes:
        t_low, t_best, t_high = c.total
        low, best, high = low + sign * t_low, best + sign * t_best, high + sign * t_high
        incidents += sign
        _shift(ident, c, sign, communities, lines)
    if incidents < 0 or low < 0 or best < 0 or high < 0:
        raise InconsistentStateError(f"total cell {ident!r} would fall below zero")
    if incidents == 0:
        if communities or lines:
            raise InconsistentStateError(f"total cell {ident!r} keeps lines of no incident")
        return None
    return Cell(
        first.country,  # type: ignore[arg-type]  # set on a counting contribution
        first.adm1,  # type: ignore[arg-type]
        first.occurred_start,  # type: ignore[arg-type]
        first.grading or "weak",
        low,
        best,
        high,
        incidents,
        communities,
        lines,
    )


def _cell(state: State, ident: str, removing: bool) -> Cell | None:
    """The stored total cell ``ident``, checked; ``removing`` when a contribution leaves it."""
    cell = state.get("total", ident)
    if cell is None:
        if removing:
            raise InconsistentStateError(f"total cell {ident!r} would fall below zero")
        return None
    if not isinstance(cell, Cell):
        raise InconsistentStateError(f"total {ident!r} is a {type(cell).__name__}")
    return cell


def _write(state: State, ident: str, cell: Cell | None) -> None:
    if cell is None:
        state.delete("total", ident)
    else:
        state.put("total", ident, cell)


def _replace(state: State, old: Contribution | None, new: Contribution) -> None:
    """Swap an incident's contribution: undo ``old``'s cell share, add ``new``'s, store ``new``.

    Every new cell is computed (and checked) before anything is written.
    """
    old_id = None if old is None else _cell_id(old)
    new_id = _cell_id(new)
    if old is None or old_id is None:
        if new_id is not None:
            _write(state, new_id, _updated(new_id, _cell(state, new_id, False), ((new, 1),)))
    elif old_id == new_id:
        cell = _updated(old_id, _cell(state, old_id, True), ((old, -1), (new, 1)))
        _write(state, old_id, cell)
    else:
        undone = _updated(old_id, _cell(state, old_id, True), ((old, -1),))
        if new_id is None:
            _write(state, old_id, undone)
        else:
            added = _updated(new_id, _cell(state, new_id, False), ((new, 1),))
            _write(state, old_id, undone)
            _write(state, new_id, added)
    state.put("incident", new.incident_id, new)


def _lines(victims: Iterable[VictimLine]) -> tuple[Line, ...]:
    return tuple([Line(v.community, v.status, v.low, v.best, v.high) for v in victims])


def _stored(state: State, ident: str) -> Contribution | None:
    """The incident's stored contribution, checked, or ``None``."""
    old = state.get("incident", ident)
    if old is not None and not isinstance(old, Contribution):
        raise InconsistentStateError(f"incident {ident!r} is a {type(old).__name__}")
    return old


def _reported(state: State, event: IncidentReported) -> None:
    ident = event.incident_id
    old = _stored(state, ident)
    f = event.fatalities
    new = Contribution(
        incident_id=ident,
        # a merge or retraction that came first keeps its status
        status="live" if old is None else old.status,
        merged_into=None if old is None else old.merged_into,
        reported=True,
        country=event.country,
        adm1=event.place.adm1,
        occurred_start=event.occurred_start,
        grading=event.grading,
        total=(f.low, f.best, f.high),
        lines=_lines(event.victims),
    )
    _replace(state, old, new)


def _revised(state: State, event: CasualtiesRevised) -> None:
    ident = event.incident_id
    old = _stored(state, ident)
    current = old or Contribution(incident_id=ident)
    f = event.fatalities
    new = msgspec.structs.replace(
        current, total=(f.low, f.best, f.high), lines=_lines(event.victims)
    )
    _replace(state, old, new)


def _retracted(state: State, event: IncidentRetracted) -> None:
    ident = event.incident_id
    old = _stored(state, ident)
    current = old or Contribution(incident_id=ident)
    _replace(state, old, msgspec.structs.replace(current, status="retracted"))


def _merged(state: State, event: IncidentMerged) -> None:
    ident = event.incident_id
    old = _stored(state, ident)
    current = old or Contribution(incident_id=ident)
    if current.status == "retracted":
        return  # a retracted incident stays retracted
    new = msgspec.structs.replace(current, status="merged", merged_into=event.into)
    _replace(state, old, new)


_FOLDS: Final[dict[type[Event], Callable[[State, Any], None]]] = {
    IncidentReported: _reported,
    CasualtiesRevised: _revised,
    IncidentRetracted: _retracted,
    IncidentMerged: _merged,
}
"""How each event type the projection reads changes the state, by exact type (the decoded
events are of these classes, never subclasses)."""


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    fold = _FOLDS.get(type(event))
    if fold is not None:
        fold(state, event)
    return state


# --- merging partitions --------------------------------------------------------------------


def _add_sums(
    into: dict[str, tuple[int, int, int, int]], sums: Mapping[str, tuple[int, int, int, int]]
) -> None:
    get = into.get
    for key, one in sums.items():
        was = get(key)
        into[key] = (
            one
            if was is None
            else (was[0] + one[0], was[1] + one[1], was[2] + one[2], was[3] + one[3])
        )


def _sum_cells(cells: Sequence[Cell]) -> Cell:
    """One cell summing cells of the same id (of disjoint sets of incidents)."""
    first = cells[0]
    communities = dict(first.communities)
    lines = dict(first.lines)
    for cell in cells[1:]:
        _add_sums(communities, cell.communities)
        _add_sums(lines, cell.lines)
    return Cell(
        first.country,
        first.adm1,
        first.occurred_start,
        first.grading,
        sum(cell.low for cell in cells),
        sum(cell.best for cell in cells),
        sum(cell.high for cell in cells),
        sum(cell.incidents for cell in cells),
        communities,
        lines,
    )


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    Contributions are gathered (an incident is in one part only; :class:`MergeConflictError`
    otherwise) and cells of the same id summed. The parts are left as they are; the result
    is new, with no change pending. Integer sums: the order of ``parts`` does not matter.
    """
    kinds: dict[str, Mapping[str, msgspec.Struct]] = {
        "incident": union(parts, "incident", Contribution)
    }
    for kind in ("total", "community", "line"):
        cells: dict[str, Cell] = {}
        single, shared = grouped(parts, kind, Cell)
        cells.update(single)
        for ident, group in shared.items():
            cells[ident] = _sum_cells(group)
        kinds[kind] = cells
    return Docs(kinds)


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

    t_low = t_best = t_high = incidents = 0
    sums: dict[str, list[int]] = {}
    for cell in docs_of(state, "total", Cell).values():
        if not keep(cell):
            continue
        t_low, t_best, t_high = t_low + cell.low, t_best + cell.best, t_high + cell.high
        incidents += cell.incidents
        parts: Iterable[tuple[str, tuple[int, int, int, int]]]
        if status is None:
            parts = cell.communities.items()
        else:
            parts = (
                (community, one)
                for key, one in cell.lines.items()
                for community, _, line_status in (key.rpartition("|"),)
                if line_status == status
            )
        for community, (c_low, c_best, c_high, count) in parts:
            so_far = sums.get(community)
            if so_far is None:
                sums[community] = [c_low, c_best, c_high, count]
            else:
                so_far[0] += c_low
                so_far[1] += c_best
                so_far[2] += c_high
                so_far[3] += count
    total = Figures(t_low, t_best, t_high)
    shown = Figures(
        sum(one[0] for one in sums.values()),
        sum(one[1] for one in sums.values()),
        sum(one[2] for one in sums.values()),
    )
    rows = [
        CommunityRow(community=community, low=c_low, best=c_best, high=c_high, incidents=count)
        for community, (c_low, c_best, c_high, count) in sums.items()
    ]
    rows.sort(key=lambda row: (-row.best, row.community))
    return VictimsAnswer(
        total=total,
        unattributed=total.plus(shown, -1),
        incidents=incidents,
        communities=rows,
    )
