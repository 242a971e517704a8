"""community-victims: the dead of each community, summed over the live incidents.

An incident's current figures are those of its latest ``incident.reported`` or
``incident.casualties_revised`` (a revision replaces, never adds). Only a *live* incident
that has been reported counts; a retracted incident and a merged duplicate count nothing
(the canonical incident counts once, with its own figures). Retracting or merging undoes
exactly that incident's contribution. Events may arrive in an order a single partition
would not produce (a merge into an incident not reported yet, a retraction before the
report): each incident still counts at most once, and a retracted or merged incident never
starts counting again. A dispute changes no figure.

Documents, by kind (:mod:`projections.victims_cells`):

- ``incident``: a :class:`Contribution` per incident, what it adds now (so it can be undone);
- ``total``: a :class:`Cell` per group of live incidents no filter can tell apart (country,
  adm1, window of occurrence, grading, event type, violence type, civilian targeting,
  reporting feed, perpetrators): their fatalities and their lines by community, by
  ``<community>|<status>`` and by status, each with its incidents and how many of them are
  lower bounds ("at least");
- ``community``, ``line``: no documents since version 2 (a ``total`` cell carries its
  communities and lines); declared so that readers asking for them get nothing.

Each cell counts the incidents behind it and disappears when that count reaches zero, so a
query sums cells and never walks incidents.

Partitions: an incident's contribution depends on its own events only (a merge changes the
duplicate, never the canonical's figures), so the state of one partition holds the
contributions of that partition's incidents and cells summing exactly those. :func:`merge`
takes the contributions of every part (each in one part only) and sums the cells of equal
id, key by key.

The query (:func:`query`, in :mod:`projections.victims_query`) answers the dead by community
under a :class:`~projections.filters.VictimsFilter`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from events import (
    CasualtiesRevised,
    Event,
    IncidentEvent,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Recorded,
)

from .common import State
from .docs import VALUES, Docs, Key, keep_values_bounded
from .errors import InconsistentStateError
from .filters import (
    DEFAULT_MIN_GRADING,
    VICTIM_STATUSES,
    VictimsFilter,
    iso_week,
    occurrence_window,
    week_range,
)
from .victims_cells import (
    MAX_SHARED,
    SHARED,
    Cell,
    Contribution,
    Line,
    Sums,
    amended,
    cell_id,
    party_shares,
    victim_lines,
)
from .victims_merge import merge
from .victims_query import (
    ZERO,
    CommunityRow,
    Figures,
    Tally,
    VictimsAnswer,
    query,
    tally,
    unattributed,
)

NAME: Final = "community-victims"
VERSION: Final = 5
"""5: the same documents; the stored view keeps its incidents' contributions in small hashes
(a new layout of the stored view, so it is built again)."""

DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "incident": Contribution,
    "total": Cell,
    "community": Cell,
    "line": Cell,
}

OWN_KINDS: Final = frozenset(("incident",))
"""The kinds of one incident's documents (:attr:`projections.Projection.own_kinds`): its
contribution, read and written only by the events of that incident."""


def own_keys(event: Event) -> tuple[Key, ...]:
    """The contribution an event may read: its incident's (a merge reads only the
    duplicate's; the incident it goes into counts on as it is)."""
    if isinstance(event, IncidentEvent):
        return (("incident", event.incident_id),)
    return ()


def initial() -> State:
    """The empty state."""
    return Docs()


# --- the fold ------------------------------------------------------------------------------


def _below(ident: str, key: str) -> InconsistentStateError:
    return InconsistentStateError(f"total cell {ident!r}: {key!r} would fall below zero")


_Part = tuple[int, int, int, int]
"""``(low, best, high, at_least)`` of what one incident adds to one entry."""


def _move(sums: dict[str, Sums], key: str, add: _Part, sign: int, ident: str) -> None:
    """Move one entry by ``(low, best, high, 1, at_least)`` times ``sign``; drop it at no
    incident. A dropped entry that comes back goes at the end: the dicts' order is the stored
    JSON's. :class:`InconsistentStateError` when it would fall below zero."""
    was = sums.get(key)
    if was is None:
        a, b, h, n, q = sign * add[0], sign * add[1], sign * add[2], sign, sign * add[3]
    else:
        a, b, h = was.low + sign * add[0], was.best + sign * add[1], was.high + sign * add[2]
        n, q = was.incidents + sign, was.at_least + sign * add[3]
    if n < 0 or a < 0 or b < 0 or h < 0 or q < 0:
        raise _below(ident, key)
    if n == 0:
        del sums[key]
    else:
        moved = Sums(a, b, h, n, q)
        sums[key] = SHARED.setdefault(moved, moved)


def _gather(summed: dict[str, _Part], key: str, part: _Part) -> None:
    """Add one line's part to ``summed[key]`` (a lower bound if either is)."""
    so_far = summed.get(key)
    summed[key] = (
        part
        if so_far is None
        else (
            so_far[0] + part[0],
            so_far[1] + part[1],
            so_far[2] + part[2],
            so_far[3] or part[3],
        )
    )


def _shift(ident: str, c: Contribution, sign: int, sums: tuple[dict[str, Sums], ...]) -> None:
    """Add (sign 1) or take away (sign -1) the victim lines of ``c``, in place: each line
    under ``<community>|<status>``, each community and each status once, its lines added up,
    in the order they first appear in its lines."""
    communities, lines, statuses = sums[:3]
    c_lines = c.lines
    if len(c_lines) == 1:  # the common case: no summing needed
        line = c_lines[0]
        part = (line.low, line.best, line.high, int(line.at_least))
        _move(lines, f"{line.community}|{line.status}", part, sign, ident)
        _move(communities, line.community, part, sign, ident)
        _move(statuses, line.status, part, sign, ident)
        return
    by_community: dict[str, _Part] = {}
    by_status: dict[str, _Part] = {}
    for line in c_lines:
        part = (line.low, line.best, line.high, int(line.at_least))
        _move(lines, f"{line.community}|{line.status}", part, sign, ident)
        _gather(by_community, line.community, part)
        _gather(by_status, line.status, part)
    for community, summed in by_community.items():
        _move(communities, community, summed, sign, ident)
    for status, summed in by_status.items():
        _move(statuses, status, summed, sign, ident)


def _updated(
    ident: str, cell: Cell | None, changes: tuple[tuple[Contribution, int], ...]
) -> Cell | None:
    """``cell`` with each contribution added (sign 1) or taken away (sign -1), in order;
    ``None`` when no incident is left in it. Nothing of ``cell`` is changed."""
    first = changes[0][0]
    if len(SHARED) >= MAX_SHARED:
        SHARED.clear()
    if cell is None:
        low = best = high = incidents = at_least = 0
        sums: tuple[dict[str, Sums], ...] = ({}, {}, {}, {})
    else:
        low, best, high = cell.low, cell.best, cell.high
        incidents, at_least = cell.incidents, cell.at_least
        sums = (
            cell.communities.copy(),
            cell.lines.copy(),
            cell.statuses.copy(),
            cell.parties.copy(),
        )
    for c, sign in changes:
        t_low, t_best, t_high = c.total
        low, best, high = low + sign * t_low, best + sign * t_best, high + sign * t_high
        incidents += sign
        at_least += sign * c.at_least
        _shift(ident, c, sign, sums)
        for share in c.parties:  # one line per party: nothing to gather
            part = (share.low, share.best, share.high, int(share.at_least))
            _move(sums[3], share.party, part, sign, ident)
    if min(incidents, low, best, high, at_least) < 0:
        raise InconsistentStateError(f"total cell {ident!r} would fall below zero")
    if incidents == 0:
        if any(sums):
            raise InconsistentStateError(f"total cell {ident!r} keeps lines of no incident")
        return None
    return Cell(
        first.country,  # type: ignore[arg-type]  # set on a counting contribution
        first.adm1,  # type: ignore[arg-type]
        first.window_start,  # type: ignore[arg-type]
        first.window_end,  # type: ignore[arg-type]
        first.grading or "weak",
        first.event_type or "",
        first.violence_type or "",
        first.civilian_targeting,
        first.feed or "",
        first.perpetrators,
        low,
        best,
        high,
        incidents,
        at_least,
        *sums,
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
    old_id = None if old is None else cell_id(old)
    new_id = cell_id(new)
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
    start, end = occurrence_window(event.occurred_start, event.occurred_end, event.date_precision)
    keep_values_bounded()
    share = VALUES.setdefault  # one object per value many incidents repeat
    perpetrators = tuple(event.perpetrators)
    total = (f.low, f.best, f.high)
    new = Contribution(
        incident_id=ident,
        # a merge or retraction that came first keeps its status
        status="live" if old is None else old.status,
        merged_into=None if old is None else old.merged_into,
        reported=True,
        country=share(event.country, event.country),
        adm1=share(event.place.adm1, event.place.adm1),
        window_start=share(start, start),
        window_end=share(end, end),
        grading=event.grading,
        event_type=share(event.event_type, event.event_type),
        violence_type=share(event.violence_type, event.violence_type),
        civilian_targeting=event.civilian_targeting,
        feed=share(event.source, event.source),
        perpetrators=share(perpetrators, perpetrators),
        total=share(total, total),
        at_least=f.qualifier == "at_least",
        lines=victim_lines(event.victims),
        parties=party_shares(event.parties),
    )
    _replace(state, old, new)


def _revised(state: State, event: CasualtiesRevised) -> None:
    ident = event.incident_id
    old = _stored(state, ident)
    current = old or Contribution(incident_id=ident)
    f = event.fatalities
    new = msgspec.structs.replace(
        current,
        total=(f.low, f.best, f.high),
        at_least=f.qualifier == "at_least",
        lines=victim_lines(event.victims),
        parties=party_shares(event.parties),
        **amended(current, event),
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


READS: Final[frozenset[type[Event]]] = frozenset(_FOLDS)
"""The event types ``apply`` reads, by exact type: it leaves the state as it is for any
other (a rebuild does not hand it those)."""


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    fold = _FOLDS.get(type(event))
    if fold is not None:
        fold(state, event)
    return state


__all__ = [
    "DEFAULT_MIN_GRADING",
    "DOC_TYPES",
    "NAME",
    "OWN_KINDS",
    "READS",
    "VERSION",
    "VICTIM_STATUSES",
    "ZERO",
    "Cell",
    "CommunityRow",
    "Contribution",
    "Figures",
    "Line",
    "Tally",
    "VictimsAnswer",
    "VictimsFilter",
    "apply",
    "initial",
    "iso_week",
    "merge",
    "own_keys",
    "query",
    "tally",
    "unattributed",
    "week_range",
]
