"""How a query selects incidents: :class:`VictimsFilter`, checked into a :class:`Selection`.

One set of filters selects incidents wherever incidents are selected (the dead by
community, the incidents behind one of its lines, the incident listing):

- ``country``, ``adm1``: the place as reported, compared case-insensitively (``tartus``
  finds ``Tartus``); answers keep and show the place as reported;
- ``date_from``/``date_to`` (inclusive) and ``week`` (ISO, ``2025-W10``): incidents whose
  window of occurrence overlaps the range (:func:`occurrence_window`: from
  ``occurred_start`` to ``occurred_end``, widened to what the date precision allows, so a
  month-precision incident spans its month and is never placed on one day); ``week`` and a
  range together keep what both keep;
- ``grading`` (one Airwars grading) and ``min_grading`` (that grading or stronger; without
  it the dead by community count every grading but ``discounted``);
- ``event_type`` (ACLED), ``violence_type`` (UCDP), ``civilian_targeting``, ``feed`` (the
  feed that reported the incident), ``perpetrator`` (one of the incident's perpetrators,
  case-insensitively);
- ``status``: a victim status; it selects community lines, not incidents;
- ``by``: ``community`` (default) or ``party``: what the lines split the dead by (not a
  filter of incidents; ``status`` does not apply to party lines).

Every value outside its domain raises :class:`~projections.errors.InvalidQueryError`
naming the parameter as the HTTP API names it (``from``/``to`` for the dates). Pure.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
from collections.abc import Collection
from typing import Final, get_args

import msgspec

from events import GRADING_ORDER, Grading
from events.incidents import AcledEventType, ViolenceType

from .errors import InvalidQueryError

VICTIM_STATUSES: Final = ("civilian", "combatant", "unknown")
SPLITS: Final = ("community", "party")
"""What the dead may be split by (``by``)."""
EVENT_TYPES: Final[tuple[str, ...]] = get_args(AcledEventType)
VIOLENCE_TYPES: Final[tuple[str, ...]] = get_args(ViolenceType)
DEFAULT_MIN_GRADING: Final[Grading] = "contested"
"""Without ``min_grading`` the dead by community count every grading but ``discounted``."""

_WEEK: Final = re.compile(r"^(?P<year>\d{4})-W(?P<week>\d{2})$")


class VictimsFilter(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Every filter a query may select incidents (and victim lines) by; all optional.

    Frozen and hashable, so an answer can be kept under its filter. See the module
    docstring for what each filter means.
    """

    country: str | None = None
    adm1: str | None = None
    week: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    status: str | None = None
    """A victim status: only the community lines of that status (and their own total)."""
    min_grading: str | None = None
    grading: str | None = None
    event_type: str | None = None
    violence_type: str | None = None
    perpetrator: str | None = None
    feed: str | None = None
    civilian_targeting: bool | None = None
    by: str | None = None
    """What the dead are split by: ``community`` (the default) or ``party`` (civilians,
    side A, side B, unknown)."""


def iso_week(day: dt.date) -> str:
    """The ISO week of a date, as ``2025-W10``."""
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def week_range(week: str) -> tuple[dt.date, dt.date]:
    """The Monday and Sunday of an ISO week ``YYYY-Www``; :class:`InvalidQueryError` if none."""
    match = _WEEK.match(week)
    if match is None:
        raise InvalidQueryError(f"week must look like 2025-W10, got {week!r}", parameter="week")
    try:
        monday = dt.date.fromisocalendar(int(match["year"]), int(match["week"]), 1)
    except ValueError as exc:
        raise InvalidQueryError(f"week {week!r} does not exist: {exc}", parameter="week") from exc
    return monday, monday + dt.timedelta(days=6)


def occurrence_window(
    start: dt.date, end: dt.date | None, precision: int | None
) -> tuple[dt.date, dt.date]:
    """The days an incident may have happened on, both included.

    From ``start`` to ``end`` (``start`` when there is none), widened by UCDP's date
    precision when the dates themselves do not span it: 1 the day itself; 2 a range of up
    to six days (``start`` and the five days after, without an ``end``); 3 the ISO week(s);
    4 the calendar month(s); 5 the calendar year(s).
    """
    last = start if end is None or end < start else end
    if precision == 2 and end is None:
        return start, start + dt.timedelta(days=5)
    if precision == 3:
        return start - dt.timedelta(days=start.weekday()), last + dt.timedelta(
            days=6 - last.weekday()
        )
    if precision == 4:
        days = calendar.monthrange(last.year, last.month)[1]
        return start.replace(day=1), last.replace(day=days)
    if precision == 5:
        return start.replace(month=1, day=1), last.replace(month=12, day=31)
    return start, last


def _one_of(parameter: str, value: str | None, allowed: Collection[str]) -> None:
    if value is not None and value not in allowed:
        raise InvalidQueryError(
            f"{parameter} must be one of {', '.join(allowed)}, got {value!r}", parameter=parameter
        )


def _fold(value: str | None) -> str | None:
    return None if value is None else value.casefold()


class Selection:
    """A checked :class:`VictimsFilter`, ready to test incidents (or cells of them) fast."""

    __slots__ = (
        "adm1",
        "by_party",
        "civilian_targeting",
        "country",
        "event_type",
        "feed",
        "grading_only",
        "gradings",
        "high",
        "low",
        "perpetrator",
        "status",
        "violence_type",
    )

    def __init__(self, where: VictimsFilter, default_floor: str | None) -> None:
        _one_of("status", where.status, VICTIM_STATUSES)
        _one_of("by", where.by, SPLITS)
        if where.by == "party" and where.status is not None:
            raise InvalidQueryError(
                "status selects community lines; it does not apply with by=party",
                parameter="status",
            )
        _one_of("min_grading", where.min_grading, GRADING_ORDER)
        _one_of("grading", where.grading, GRADING_ORDER)
        _one_of("event_type", where.event_type, EVENT_TYPES)
        _one_of("violence_type", where.violence_type, VIOLENCE_TYPES)
        if where.date_from and where.date_to and where.date_from > where.date_to:
            raise InvalidQueryError(
                f"from {where.date_from} is after to {where.date_to}", parameter="from"
            )
        low, high = where.date_from, where.date_to
        if where.week is not None:
            monday, sunday = week_range(where.week)
            low = monday if low is None else max(low, monday)
            high = sunday if high is None else min(high, sunday)
        floor = where.min_grading or default_floor
        gradings = set(
            GRADING_ORDER if floor is None else GRADING_ORDER[: GRADING_ORDER.index(floor) + 1]
        )
        if where.grading is not None:
            gradings &= {where.grading}
        self.low, self.high = low, high
        self.gradings = frozenset(gradings)
        self.country = _fold(where.country)
        self.adm1 = _fold(where.adm1)
        self.event_type = where.event_type
        self.violence_type = where.violence_type
        self.civilian_targeting = where.civilian_targeting
        self.feed = where.feed
        self.perpetrator = _fold(where.perpetrator)
        self.status = where.status
        self.by_party = where.by == "party"
        self.grading_only = (
            low is None
            and high is None
            and self.country is None
            and self.adm1 is None
            and self.event_type is None
            and self.violence_type is None
            and self.civilian_targeting is None
            and self.feed is None
            and self.perpetrator is None
        )
        """Whether only the grading selects (then :meth:`keeps` is ``grading in gradings``)."""

    def keeps(
        self,
        *,
        country: str | None,
        adm1: str | None,
        window: tuple[dt.date, dt.date] | None,
        grading: str | None,
        event_type: str | None,
        violence_type: str | None,
        civilian_targeting: bool | None,
        feed: str | None,
        perpetrators: Collection[str],
    ) -> bool:
        """Whether an incident (or a cell of incidents alike in all of these) is selected."""
        if grading not in self.gradings:
            return False
        if self.country is not None and (country is None or country.casefold() != self.country):
            return False
        if self.adm1 is not None and (adm1 is None or adm1.casefold() != self.adm1):
            return False
        if self.low is not None or self.high is not None:
            if window is None:
                return False
            if self.low is not None and window[1] < self.low:
                return False
            if self.high is not None and window[0] > self.high:
                return False
        if self.event_type is not None and event_type != self.event_type:
            return False
        if self.violence_type is not None and violence_type != self.violence_type:
            return False
        if self.civilian_targeting is not None and civilian_targeting != self.civilian_targeting:
            return False
        if self.feed is not None and feed != self.feed:
            return False
        return self.perpetrator is None or any(
            one.casefold() == self.perpetrator for one in perpetrators
        )


def select(where: VictimsFilter | None, default_floor: str | None) -> Selection:
    """``where`` checked (:class:`InvalidQueryError` naming a parameter out of its domain).

    ``default_floor`` is the weakest grading kept when ``where`` names no ``min_grading``
    (``None``: every grading).
    """
    return Selection(where or VictimsFilter(), default_floor)


def filter_of(where: VictimsFilter | None, **legacy: object) -> VictimsFilter:
    """``where``, or the filter the keyword arguments of the older signatures name.

    Query functions take either a :class:`VictimsFilter` or, as before it existed, the
    filters as keyword arguments; giving both is a programming error (``TypeError``).
    """
    given = {name: value for name, value in legacy.items() if value is not None}
    if where is None:
        return msgspec.convert(given, VictimsFilter) if given else VictimsFilter()
    if given:
        raise TypeError(f"filters given both as a VictimsFilter and as {sorted(given)}")
    return where
