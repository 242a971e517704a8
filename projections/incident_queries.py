"""The queries of the incidents projection: one incident's document, a listing, the
incidents behind a community-victims figure, what a source said at a moment. Pure: they
read a fold's state or stored documents."""

from __future__ import annotations

import datetime as dt
from typing import Final
from urllib.parse import quote

import msgspec

from events import GRADING_ORDER

from .common import Readable, docs_of, get_doc
from .docs import Listed
from .errors import InvalidQueryError
from .filters import (
    DEFAULT_MIN_GRADING,
    Selection,
    VictimsFilter,
    filter_of,
    occurrence_window,
    select,
)
from .incident_docs import INCIDENT, HistoryEntry, IncidentRow, IncidentView

LISTED: Final = ("live", "retracted", "merged", "all")
"""The statuses a listing may ask for (``all``: every status)."""
STATUSES: Final = LISTED[:-1]
"""An incident's statuses."""
_BEFORE: Final = {"live": (), "merged": ("live",), "retracted": ("live", "merged")}
"""The statuses an incident of each status may have had before: a status only ever moves
from ``live`` to ``merged`` or ``retracted``, and from ``merged`` to ``retracted``
(:mod:`projections.incidents`)."""
_REPORTED: Final = "incident.reported"
_REVISED: Final = "incident.casualties_revised"


def document(state: Readable, incident_id: str) -> IncidentView | None:
    """The incident's document as stored (its history counted, not in it), or ``None``."""
    return get_doc(state, INCIDENT, incident_id, IncidentView)


def _selected(selection: Selection, view: IncidentView) -> bool:
    """Whether a reported incident is among those the selection keeps."""
    if view.occurred_start is None or view.place is None:
        return False
    window = occurrence_window(view.occurred_start, view.occurred_end, view.date_precision)
    return selection.keeps(
        country=view.country,
        adm1=view.place.adm1,
        window=window,
        grading=view.grading,
        event_type=view.event_type,
        violence_type=view.violence_type,
        civilian_targeting=view.civilian_targeting,
        feed=view.feed,
        perpetrators=view.perpetrators,
    )


def _sources_count(view: IncidentView) -> int:
    """The distinct sources of the incident's report and revisions."""
    return view.source_count or len(view.sources)


def _paged(page: int, limit: int) -> None:
    if page < 1:
        raise InvalidQueryError(f"page must be 1 or more, got {page}", parameter="page")
    if limit < 1:
        raise InvalidQueryError(f"limit must be 1 or more, got {limit}", parameter="limit")


def _newest_first(views: list[IncidentView]) -> list[IncidentView]:
    """Newest ``occurred_start`` first, then by ``incident_id``."""
    views.sort(key=lambda view: view.incident_id)
    views.sort(key=lambda view: view.occurred_start or dt.date.min, reverse=True)
    return views


def listing(
    state: Readable,
    where: VictimsFilter | None = None,
    *,
    country: str | None = None,
    adm1: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    page: int = 1,
    limit: int = 50,
) -> tuple[list[IncidentRow], int]:
    """One page of the reported incidents under the filters, and how many match in all.

    ``where`` (or, as before it existed, the keyword filters) selects incidents as
    everywhere (:mod:`projections.filters`; every grading unless ``min_grading`` or
    ``grading`` says otherwise; a victim ``status`` selects lines, not incidents, and is
    refused here). ``status`` is the incident's: ``live`` (the default, also for ``None``),
    ``retracted``, ``merged`` or ``all``. Newest ``occurred_start`` first, then by
    ``incident_id``.
    """
    _paged(page, limit)
    wanted = "live" if status is None else status
    if wanted not in LISTED:
        raise InvalidQueryError(
            f"status must be one of {', '.join(LISTED)}, got {status!r}", parameter="status"
        )
    where = filter_of(where, country=country, adm1=adm1, date_from=date_from, date_to=date_to)
    if where.status is not None:
        raise InvalidQueryError(
            "status of victims selects community lines, not incidents", parameter="status"
        )
    selection = select(where, None)
    kept = [
        view
        for view in docs_of(state, INCIDENT, IncidentView).values()
        if view.reported
        and view.fatalities is not None
        and wanted in ("all", view.status)
        and _selected(selection, view)
    ]
    first = (page - 1) * limit
    return listing_rows(_newest_first(kept)[first : first + limit]), len(kept)


def listed(view: IncidentView) -> Listed:
    """Where the incident stands in the listing index (:attr:`projections.Projection.listed`):
    in the group of its status, country and adm1 (casefolded) under the day its
    occurrence starts, standing for the days of its window of occurrence
    (:func:`~projections.filters.occurrence_window`), when a listing without filters may
    show it; and no longer in the groups of the statuses it may have had before (of every
    status, when a listing may not show it).

    A store that pages the groups a listing names, newest day first and then by id, and
    keeps those whose window meets a range of days, answers :func:`listing` for a status,
    a country, an adm1 and dates (:func:`index_query`) without reading the whole kind."""
    start, place = view.occurred_start, view.place
    where = _place_key(view.country, None if place is None else place.adm1)
    shown = (
        view.reported
        and view.fatalities is not None
        and start is not None
        and place is not None
        and view.grading in GRADING_ORDER
    )
    if not shown or start is None:
        others = tuple(f"{s}|{where}" for s in STATUSES)
        return Listed(group="", day=(start or dt.date.min).toordinal(), others=others)
    low, high = occurrence_window(start, view.occurred_end, view.date_precision)
    return Listed(
        group=f"{view.status}|{where}",
        day=start.toordinal(),
        others=tuple(f"{s}|{where}" for s in _BEFORE[view.status]),
        before=(start - low).days,
        after=(high - start).days,
    )


class IndexQuery(msgspec.Struct, frozen=True, kw_only=True):
    """What the listing index is asked for a listing (:func:`index_query`)."""

    groups: tuple[str, ...]
    """The groups (``*``: any text there; at most one)."""
    low: int | None
    """The first day (ordinal) an incident's window must meet, or ``None``."""
    high: int | None
    """The last day, or ``None``."""


def index_query(where: VictimsFilter | None, status: str | None) -> IndexQuery | None:
    """What the listing index answers :func:`listing` for ``where`` and ``status`` with,
    when the filters are at most a country, an adm1 and dates (``week``, ``from``, ``to``);
    ``None`` when another filter needs the rows, or for a status :func:`listing` refuses.
    :class:`InvalidQueryError` for a filter it refuses too (a week that does not exist)."""
    wanted = "live" if status is None else status
    where = where or VictimsFilter()
    indexed = VictimsFilter(
        country=where.country,
        adm1=where.adm1,
        week=where.week,
        date_from=where.date_from,
        date_to=where.date_to,
    )
    if wanted not in LISTED or where != indexed:
        return None
    selection = select(where, None)
    country = "*" if where.country is None else _part(where.country)
    adm1 = "*" if where.adm1 is None else _part(where.adm1)
    place = "*" if where.country is None and where.adm1 is None else f"{country}|{adm1}"
    return IndexQuery(
        groups=tuple(f"{s}|{place}" for s in (STATUSES if wanted == "all" else (wanted,))),
        low=None if selection.low is None else selection.low.toordinal(),
        high=None if selection.high is None else selection.high.toordinal(),
    )


_ESCAPED: Final = frozenset("%|:*")


def _part(name: str) -> str:
    """A country or adm1 as a group names it: casefolded, with ``%``, ``|``, ``:``, ``*``
    and white space percent-encoded (a group is one word of the index's keys)."""
    return "".join(
        quote(c, safe="") if c in _ESCAPED or c.isspace() else c for c in name.casefold()
    )


def _place_key(country: str | None, adm1: str | None) -> str:
    return f"{_part(country or '')}|{_part(adm1 or '')}"


def listing_rows(views: list[IncidentView]) -> list[IncidentRow]:
    """The listing's rows of ``views`` (those a listing shows, in order)."""
    return [row for view in views if (row := _row(view))]


def _row(view: IncidentView) -> IncidentRow | None:
    """The listing's row of a reported incident (``None`` for one not reported yet)."""
    start, country, place = view.occurred_start, view.country, view.place
    grading, fatalities = view.grading, view.fatalities
    if start is None or country is None or place is None or grading is None or fatalities is None:
        return None
    return IncidentRow(
        incident_id=view.incident_id,
        status=view.status,
        occurred_start=start,
        country=country,
        adm1=place.adm1,
        grading=grading,
        fatalities=fatalities,
        merged_into=view.merged_into,
        version=view.version,
        occurred_end=view.occurred_end,
        date_precision=view.date_precision,
        event_type=view.event_type,
        violence_type=view.violence_type,
        place=place,
        geo_precision=view.geo_precision,
        injured=view.injured,
        feed=view.feed,
        sources=_sources_count(view),
        disputed=view.disputed,
    )


def behind(
    state: Readable,
    where: VictimsFilter | None = None,
    community: str | None = None,
    *,
    page: int = 1,
    limit: int = 50,
) -> tuple[list[str], int]:
    """One page of the ids of the incidents a community-victims figure sums, and how many.

    The incidents community-victims counts under ``where`` (live and reported; every
    grading but ``discounted`` unless ``min_grading`` or ``grading`` says otherwise), with a
    line of ``community`` when one is given, of the victim ``status`` when ``where`` names
    one: the incidents behind that community's line, or behind the total. In the order of
    :func:`listing`.
    """
    _paged(page, limit)
    where = where or VictimsFilter()
    selection = select(where, DEFAULT_MIN_GRADING)
    status = where.status

    def has_line(view: IncidentView) -> bool:
        if community is None and status is None:
            return True
        return any(
            (community is None or line.community == community)
            and (status is None or line.status == status)
            for line in view.victims
        )

    kept = [
        view
        for view in docs_of(state, INCIDENT, IncidentView).values()
        if view.reported and view.status == "live" and _selected(selection, view) and has_line(view)
    ]
    start = (page - 1) * limit
    return [view.incident_id for view in _newest_first(kept)[start : start + limit]], len(kept)


def said_at(view: IncidentView, at: dt.datetime) -> HistoryEntry | None:
    """The report or revision in force at ``at`` on the source's own time axis: the latest
    (by ``source_time``, else by when it was recorded) whose time is not after ``at``;
    ``None`` when the source had said nothing yet. Beside the log's axis (``as_of``: what the
    ledger knew then), this answers what the source (ACLED, UCDP) said then."""
    found: HistoryEntry | None = None
    found_at: dt.datetime | None = None
    for entry in view.history:
        if entry.type not in (_REPORTED, _REVISED):
            continue
        when = entry.source_time or entry.recorded_at
        if when <= at and (found_at is None or when >= found_at):
            found, found_at = entry, when
    return found
