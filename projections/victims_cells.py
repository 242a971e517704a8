"""The documents of community-victims: what each incident adds, and the cells summing them.

A *cell* sums the live incidents that no filter can tell apart: those of one country, adm1
(as reported), window of occurrence, grading, event type, violence type, civilian
targeting, reporting feed and set of perpetrators. It holds their fatalities and, per
community, per ``<community>|<status>`` line and per victim status, the sums of their
victim lines. Every sum is a :class:`Sums` ``(low, best, high, incidents, at_least)``:
``incidents`` counts the incidents behind it, ``at_least`` how many of them give it as a
lower bound (qualifier ``at_least``), so the qualifier travels into every sum.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any, Final, Literal

import msgspec

from events import CasualtiesRevised, Grading, PartyLine, VictimLine

from .docs import VALUES, Doc, share_fields
from .filters import Selection, occurrence_window

VictimStatus = Literal["civilian", "combatant", "unknown"]


class Sums(Doc, frozen=True, array_like=True):
    """The sums of a community, line, status or party of a cell: ``incidents`` counts the
    incidents behind them, ``at_least`` how many give theirs as a lower bound. Stored as an
    array of five, as a tuple would be.

    A document, so not tracked by the cyclic garbage collector, and a dict holding only
    these is not tracked either. With tuples, a decoded community-victims state of a million
    events held 2.8 million tracked objects, and the first collection after decoding one
    walked them all (715 ms, BENCHMARKS.md).
    """

    low: int
    best: int
    high: int
    incidents: int
    at_least: int


SHARED: dict[Sums, Sums] = {}
"""One shared :class:`Sums` per distinct value a cell holds (a pure memo; the fold puts
each sum it makes here, and a cell read from storage swaps its own for these:
:meth:`Cell.settled`), so a process holding a view keeps each value once. A few thousand
distinct sums cover a million events.
"""
MAX_SHARED: Final = 50_000
""":data:`SHARED` is emptied when it reaches this many sums."""


class Line(Doc, frozen=True, array_like=True):
    """One victim line of an incident's current figures."""

    community: str
    status: VictimStatus
    low: int
    best: int
    high: int
    at_least: bool = False

    def settled(self) -> Line:
        """The line holding the :data:`~projections.docs.VALUES` text of its community, in
        place (its decoder made a fresh one)."""
        share_fields(self, ("community",))
        return self


class PartyShare(Doc, frozen=True, array_like=True):
    """One party line of an incident's current figures (deaths of civilians, side A, …)."""

    party: str
    low: int
    best: int
    high: int
    at_least: bool = False


class Contribution(Doc, frozen=True, kw_only=True, array_like=True):
    """What one incident adds to the cells now, and what is needed to undo it."""

    incident_id: str
    status: Literal["live", "retracted", "merged"] = "live"
    merged_into: str | None = None
    reported: bool = False
    country: str | None = None
    adm1: str | None = None
    window_start: dt.date | None = None
    window_end: dt.date | None = None
    """The days the incident may have happened on (``filters.occurrence_window``)."""
    grading: Grading | None = None
    event_type: str | None = None
    violence_type: str | None = None
    civilian_targeting: bool = False
    feed: str | None = None
    """The feed that reported the incident."""
    perpetrators: tuple[str, ...] = ()
    total: tuple[int, int, int] = (0, 0, 0)
    """The incident's fatalities: (low, best, high)."""
    at_least: bool = False
    """The fatalities are a lower bound."""
    lines: tuple[Line, ...] = ()
    parties: tuple[PartyShare, ...] = ()
    """The incident's deaths by party (none when no source splits them)."""

    @property
    def counts(self) -> bool:
        """Whether the incident contributes: reported, and neither retracted nor merged."""
        return self.status == "live" and self.reported

    def settled(self) -> Contribution:
        """The contribution holding the :data:`~projections.docs.VALUES` object of each value
        many incidents repeat and of each line, in place (its decoder made fresh ones)."""
        share_fields(self, _REPEATED)
        share = VALUES.setdefault
        lines = tuple([share(line, line.settled()) for line in self.lines])
        msgspec.structs.force_setattr(self, "lines", lines)
        return self


_REPEATED: Final = (
    "country",
    "adm1",
    "window_start",
    "window_end",
    "event_type",
    "violence_type",
    "feed",
    "perpetrators",
    "total",
)
"""The fields of a :class:`Contribution` whose values many incidents repeat."""


_CELL_REPEATED: Final = (
    "country",
    "adm1",
    "occurred_start",
    "occurred_end",
    "event_type",
    "violence_type",
    "feed",
    "perpetrators",
)
"""The fields of a :class:`Cell` whose values many cells repeat."""


class Cell(Doc, frozen=True, array_like=True):
    """Sums over the live incidents alike in every attribute a filter selects by.

    ``low``/``best``/``high`` are the incidents' fatalities, ``incidents`` their number and
    ``at_least`` how many give theirs as a lower bound; ``communities`` holds a
    :data:`Sums` per community (over every victim status, so distinct incidents per
    community are exact), ``lines`` per ``<community>|<status>`` and ``statuses`` per victim
    status (over every community, so distinct incidents per status are exact). Entries whose
    incident count reaches zero are dropped.
    """

    country: str
    adm1: str
    occurred_start: dt.date
    """The first day of the incidents' window of occurrence."""
    occurred_end: dt.date
    """The last day of the incidents' window of occurrence."""
    grading: Grading
    event_type: str
    violence_type: str
    civilian_targeting: bool
    feed: str
    perpetrators: tuple[str, ...]
    low: int = 0
    best: int = 0
    high: int = 0
    incidents: int = 0
    at_least: int = 0
    communities: dict[str, Sums] = {}
    lines: dict[str, Sums] = {}
    statuses: dict[str, Sums] = {}
    parties: dict[str, Sums] = {}
    """A :data:`Sums` per party (``civilians``, ``side_a``, ``side_b``, ``unknown``)."""

    def settled(self) -> Cell:
        """The cell with the :data:`SHARED` object of each of its sums and the
        :data:`~projections.docs.VALUES` object of each value many cells repeat, in place:
        what its decoder made is freed at once, and no value is kept twice."""
        share_fields(self, _CELL_REPEATED)
        share = SHARED.setdefault
        for sums in (self.communities, self.lines, self.statuses, self.parties):
            for key, one in sums.items():
                sums[key] = share(one, one)
        return self


_DAYS: dict[dt.date, str] = {}
"""ISO texts of the dates seen, so each date is formatted once (a pure memo)."""
_MAX_DAYS: Final = 100_000
_TAILS: dict[tuple[str, tuple[str, ...]], str] = {}
"""The encoded free-text part of the cell ids seen, by (adm1, perpetrators) (a pure memo)."""
_MAX_TAILS: Final = 100_000
_tail: Final = msgspec.json.Encoder()


def _free(adm1: str, perpetrators: tuple[str, ...]) -> str:
    key = (adm1, perpetrators)
    text = _TAILS.get(key)
    if text is None:
        if len(_TAILS) >= _MAX_TAILS:
            _TAILS.clear()
        text = _TAILS[key] = _tail.encode([adm1, *perpetrators]).decode()
    return text


def _day(day: dt.date) -> str:
    text = _DAYS.get(day)
    if text is None:
        if len(_DAYS) >= _MAX_DAYS:
            _DAYS.clear()
        text = _DAYS[day] = day.isoformat()
    return text


def cell_id(c: Contribution) -> str | None:
    """The id of the cell ``c`` counts in, or ``None`` when it counts nowhere (not reported,
    retracted or merged, or without a place or date).

    ``country|start|end|grading|event type|violence type|targeting|feed|`` then the adm1
    and the perpetrators as one JSON array: the fixed parts hold no ``|``, and the free
    text comes last, encoded, so two different cells never share an id.
    """
    if c.status != "live" or not c.reported:
        return None
    country, adm1, start, end = c.country, c.adm1, c.window_start, c.window_end
    if country is None or adm1 is None or start is None or end is None:
        return None
    return (
        f"{country}|{_DAYS.get(start) or _day(start)}|{_DAYS.get(end) or _day(end)}|"
        f"{c.grading or 'weak'}|{c.event_type}|{c.violence_type}|{int(c.civilian_targeting)}|"
        f"{c.feed}|{_free(adm1, c.perpetrators)}"
    )


def cell_kept(selection: Selection, cell: Cell) -> bool:
    """Whether a query's selection keeps the incidents of ``cell`` (all or none of them)."""
    if selection.grading_only:
        return cell.grading in selection.gradings
    return selection.keeps(
        country=cell.country,
        adm1=cell.adm1,
        window=(cell.occurred_start, cell.occurred_end),
        grading=cell.grading,
        event_type=cell.event_type,
        violence_type=cell.violence_type,
        civilian_targeting=cell.civilian_targeting,
        feed=cell.feed,
        perpetrators=cell.perpetrators,
    )


def id_may_be_kept(selection: Selection, ident: str) -> bool:
    """Whether a query's selection may keep the cell ``ident``, read from its id alone
    (:func:`cell_id`), so a reader can leave the cells it cannot keep undecoded: ``False``
    only where :func:`cell_kept` is ``False`` for the cell of that id. An id that does not
    read as one, and an event type, violence type or feed its id holds as ``None`` (the cell
    holds ``""``), select nothing out."""
    parts = ident.split("|", 8)
    if len(parts) != 9:
        return True
    country, start, end, grading, event_type, violence_type, targeting, feed, tail = parts
    if selection.grading_only:
        return grading in selection.gradings
    adm1: str | None = None
    perpetrators: list[str] = []
    window: tuple[dt.date, dt.date] | None = None
    try:
        if selection.adm1 is not None or selection.perpetrator is not None:
            adm1, *perpetrators = _tail_decoder.decode(tail)
        if selection.low is not None or selection.high is not None:
            window = (dt.date.fromisoformat(start), dt.date.fromisoformat(end))
    except (msgspec.DecodeError, ValueError):
        return True
    return selection.keeps(
        country=country,
        adm1=adm1,
        window=window,
        grading=grading,
        event_type=selection.event_type if event_type == "None" else event_type,
        violence_type=selection.violence_type if violence_type == "None" else violence_type,
        civilian_targeting=targeting == "1",
        feed=selection.feed if feed == "None" else feed,
        perpetrators=perpetrators,
    )


_tail_decoder: Final = msgspec.json.Decoder(list[str])


def answer_lines(selection: Selection, cell: Cell) -> Iterable[tuple[str, Sums]]:
    """The lines of ``cell`` a query answers with, by name: its party lines (``by=party``),
    its lines of the query's victim status, or its communities over every status."""
    if selection.by_party:
        return cell.parties.items()
    status = selection.status
    if status is None:
        return cell.communities.items()
    return ((community_of(k), one) for k, one in cell.lines.items() if status_of(k) == status)


def small_lines(selection: Selection, cell: Cell, k: int) -> set[str]:
    """The names of the lines of ``cell`` a query shows that are small (``best`` < ``k``):
    the cells of the finest unit, each ``<community>|<status>`` line (of the query's
    status), or each party line."""
    if selection.by_party:
        return {party for party, one in cell.parties.items() if one.best < k}
    status = selection.status
    return {
        community_of(key)
        for key, one in cell.lines.items()
        if one.best < k and (status is None or status_of(key) == status)
    }


def status_of(line_key: str) -> str:
    """The victim status of a ``<community>|<status>`` line key."""
    return line_key.rpartition("|")[2]


def community_of(line_key: str) -> str:
    """The community of a ``<community>|<status>`` line key."""
    return line_key.rpartition("|")[0]


def party_shares(parties: Iterable[PartyLine]) -> tuple[PartyShare, ...]:
    """An event's party lines as a contribution holds them."""
    return tuple(
        [PartyShare(p.party, p.low, p.best, p.high, p.qualifier == "at_least") for p in parties]
    )


def victim_lines(victims: Iterable[VictimLine]) -> tuple[Line, ...]:
    """An event's victim lines as a contribution holds them."""
    share = VALUES.setdefault
    lines = []
    for v in victims:
        community = share(v.community, v.community)
        line = Line(community, v.status, v.low, v.best, v.high, v.qualifier == "at_least")
        lines.append(share(line, line))
    return tuple(lines)


def amended(current: Contribution, event: CasualtiesRevised) -> dict[str, Any]:
    """What a revision changes of what selects the incident (its place, window, types,
    perpetrators, targeting), as :class:`Contribution` fields."""
    changes: dict[str, Any] = {}
    if event.place is not None:
        changes["adm1"] = event.place.adm1
    if event.occurred_start is not None:
        changes["window_start"], changes["window_end"] = occurrence_window(
            event.occurred_start, None, event.date_precision or 1
        )
    for name in ("event_type", "violence_type", "civilian_targeting"):
        value = getattr(event, name)
        if (value is not None or name in event.cleared) and value != getattr(current, name):
            changes[name] = value
    if event.perpetrators is not None:
        changes["perpetrators"] = tuple(event.perpetrators)
    return changes
