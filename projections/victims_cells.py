"""The documents of community-victims: what each incident adds, and the cells summing them.

A *cell* sums the live incidents that no filter can tell apart: those of one country, adm1
(as reported), window of occurrence, grading, event type, violence type, civilian
targeting, reporting feed and set of perpetrators. It holds their fatalities and, per
community, per ``<community>|<status>`` line and per victim status, the sums of their
victim lines. Every sum is a :data:`Sums` tuple ``(low, best, high, incidents,
at_least)``: ``incidents`` counts the incidents behind it, ``at_least`` how many of them
give it as a lower bound (qualifier ``at_least``), so the qualifier travels into every sum.
"""

from __future__ import annotations

import datetime as dt
from typing import Final, Literal

import msgspec

from events import Grading

from .docs import Doc
from .filters import Selection

VictimStatus = Literal["civilian", "combatant", "unknown"]

Sums = tuple[int, int, int, int, int]
"""``(low, best, high, incidents, at_least incidents)`` of a community, line or status."""


class Line(Doc, frozen=True, array_like=True):
    """One victim line of an incident's current figures."""

    community: str
    status: VictimStatus
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

    @property
    def counts(self) -> bool:
        """Whether the incident contributes: reported, and neither retracted nor merged."""
        return self.status == "live" and self.reported


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


def status_of(line_key: str) -> str:
    """The victim status of a ``<community>|<status>`` line key."""
    return line_key.rpartition("|")[2]


def community_of(line_key: str) -> str:
    """The community of a ``<community>|<status>`` line key."""
    return line_key.rpartition("|")[0]
