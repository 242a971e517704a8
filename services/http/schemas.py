"""The answers of the query API, as its OpenAPI document describes them, and its parameters.

**Citations.** Every source an answer shows is a :class:`Citation`: the publisher's name,
the url (restored from the sealed text, ``"[erased]"`` once erased), the publication date
and the feed that cited it. Aggregates rest on incidents (``behind``: the incident ids
behind a figure, paged) or statements (a stance's ``basis``).
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final

import msgspec
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from events import Position, Source
from projections.community_victims import Figures
from projections.country_stance import Basis, TimelineEntry
from projections.incidents import HistoryEntry, IncidentFields, IncidentRow
from services.http.errors import InvalidQuery, NotFound
from services.http.limits import LimitedBody
from services.views.freshness import Lag

__all__ = [
    "ERRORS",
    "ERRORS_404",
    "ISO3",
    "AlignmentBody",
    "AsOf",
    "BehindBody",
    "Citation",
    "CommunityItem",
    "Country",
    "Dispute",
    "Fresh",
    "HistoryItem",
    "IncidentAnswer",
    "IncidentBody",
    "IncidentsPage",
    "PairItem",
    "StanceBody",
    "StanceItem",
    "TimelineBody",
    "TimelineItem",
    "VictimsBody",
    "cited",
    "fresh",
]

ISO3: Final = r"^[A-Z]{3}$"
"""An ISO 3166-1 alpha-3 country code."""


class Fresh(msgspec.Struct, frozen=True, kw_only=True):
    """How fresh an answer is: ``position``, the checkpoint of the view it was read from
    (``null`` while the view has none; an as-of answer's last position at or before its
    time), ``lag``, the log entries not yet applied to that view (0 as of a time), and
    ``lag_seconds``, how long ago the oldest of them was recorded (0 when there is none)."""

    position: str | None
    lag: int
    lag_seconds: float


def fresh(position: Position | None, lag: Lag) -> dict[str, Any]:
    """The freshness fields of an answer (:class:`Fresh`) of a view read at ``position`` with
    ``lag``, to build a body with: ``Body(**fresh(position, lag), ...)``."""
    return {
        "position": None if position is None else str(position),
        "lag": lag.entries,
        "lag_seconds": lag.seconds,
    }


class Citation(Source, frozen=True, kw_only=True):
    """A source a figure or statement rests on: the publisher's name, the url (``"[erased]"``
    once erased; for any reader, as stored text is shown), the publication date, and the
    feed that cited it."""

    feed: str | None = None


def cited(
    sources: tuple[Source, ...] | list[Source] | None, feed: str | None
) -> tuple[Citation, ...]:
    """``sources`` as citations of ``feed``."""
    return tuple(
        Citation(publisher=s.publisher, url=s.url, published_at=s.published_at, feed=feed)
        for s in sources or ()
    )


class CommunityItem(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One community line: exact, or withheld (numbers and ``at_least`` null, ``suppressed``
    true, ``behind`` null). ``at_least`` says the line includes a lower bound ("at least");
    ``behind`` is where the incidents it sums are listed."""

    community: str
    low: int | None
    best: int | None
    high: int | None
    incidents: int | None
    at_least: bool | None
    suppressed: bool = False
    behind: str | None = None


class VictimsBody(Fresh, frozen=True, kw_only=True):
    """The dead by community under the filters, by ``best`` descending.

    ``total`` and ``unattributed`` (what no line accounts for, by interval arithmetic) carry
    ``at_least`` when they include a lower bound. With ``status`` the lines of that victim
    status and their own total. For a reader, lines that could single out a small group are
    withheld (numbers null, ``suppressed`` true, listed last by name), ``unattributed`` is
    null with ``unattributed_suppressed`` true whenever a line is, and a status total with
    its incidents (``total_suppressed``); ``suppression_k`` is the threshold applied (null:
    the figures are exact). ``behind`` lists the incidents behind the total.
    """

    as_of: dt.datetime | None
    status: str | None = None
    total: Figures | None
    total_suppressed: bool = False
    unattributed: Figures | None
    unattributed_suppressed: bool
    incidents: int | None
    communities: list[CommunityItem]
    suppression_k: int | None
    behind: str | None = None


class BehindBody(Fresh, frozen=True, kw_only=True):
    """One page of the ids of the incidents a community-victims figure sums (of
    ``community``, or the total), under the same filters; ``total_count`` how many in all.
    ``suppressed`` (ids empty) when the figure is withheld from this reader."""

    as_of: dt.datetime | None
    community: str | None
    page: int
    limit: int
    count: int
    total_count: int | None
    incident_ids: list[str]
    suppressed: bool = False


class StanceItem(msgspec.Struct, frozen=True, kw_only=True):
    """Where one country stands on one subject, and why.

    ``stance`` is that of the latest statement of the highest-ranked speaker, ``mixed`` when
    statements of that rank that cannot be put in order disagree; ``family`` its family;
    ``stances`` every stance of ``basis``; ``role`` the rank it speaks at; ``basis`` the
    statements it rests on (id, stance, speaker role and title, CAMEO code, Goldstein, time
    and its precision).
    """

    country: str
    subject: str
    stance: str
    family: str
    stances: list[str]
    role: str
    basis: list[Basis]
    statements: int
    goldstein_mean: float | None
    first_statement_at: dt.datetime
    latest_statement_at: dt.datetime
    reaction_latency_hours: float | None
    latest_statement_id: str


class StanceBody(Fresh, frozen=True, kw_only=True):
    """Every (country, subject) under the filters, by (country, subject)."""

    as_of: dt.datetime | None
    countries: list[StanceItem]


class TimelineItem(TimelineEntry, frozen=True, kw_only=True):
    """One live statement of the country's timeline, with the feed that published it and
    its sources."""

    feed: str | None = None
    sources: tuple[Citation, ...] = ()


class TimelineBody(Fresh, frozen=True, kw_only=True):
    """A country's live statements, by (issued_at, position)."""

    as_of: dt.datetime | None
    country: str
    subject: str | None
    entries: list[TimelineItem]


class PairItem(msgspec.Struct, frozen=True, kw_only=True):
    """A pair of countries (``a`` < ``b``): their mean agreement over shared subjects, and
    ``thin`` when it rests on fewer than 3."""

    a: str
    b: str
    score: float
    shared_subjects: int
    thin: bool


class AlignmentBody(Fresh, frozen=True, kw_only=True):
    """Every pair with a shared subject (or sharing ``subject``), by (a, b)."""

    as_of: dt.datetime | None
    pairs: list[PairItem]


class IncidentsPage(Fresh, frozen=True, kw_only=True):
    """One page of incidents: ``count`` on this page, ``total_count`` under the filters."""

    page: int
    limit: int
    count: int
    total_count: int
    data: list[IncidentRow]


class HistoryItem(HistoryEntry, frozen=True, kw_only=True):
    """One event of the incident's history, with its own sources cited by its feed."""

    sources: tuple[Citation, ...] | None = None


class Dispute(msgspec.Struct, frozen=True, kw_only=True):
    """Another feed disputes the incident: why, on what sources, and when it said so."""

    feed: str
    reason: str | None
    sources: tuple[Citation, ...]
    event_id: str
    position: str
    recorded_at: dt.datetime


class IncidentAnswer(IncidentFields, frozen=True, kw_only=True):
    """An incident as it stands: its report's sources cited by its feed, every history entry
    with its own sources, and the disputes of other feeds (``disputed`` flags them)."""

    sources: tuple[Citation, ...] = ()
    history: tuple[HistoryItem, ...] = ()
    """The latest 50 entries, in log order (``/v1/incidents/{id}/history`` pages them all)."""
    history_total: int = 0
    """How many entries the whole history has."""
    disputed: bool = False
    disputes: tuple[Dispute, ...] = ()


class IncidentBody(Fresh, frozen=True, kw_only=True):
    """One incident as it stands, with its history.

    ``victims_suppressed`` is true when the incident's community lines were left out (for a
    reader: ``victims`` empty and every history entry's ``victims`` null).
    """

    incident: IncidentAnswer
    victims_suppressed: bool = False
    said: HistoryItem | None = None
    """With ``source_as_of``: the report or revision the source had published by then (by
    its own ``source_time``), ``null`` when it had said nothing yet."""


class HistoryPage(Fresh, frozen=True, kw_only=True):
    """A page of an incident's history: ``limit`` entries from ``offset``, in log order,
    shaped as the incident answer's ``history``; ``history_total`` counts them all."""

    incident_id: str
    offset: int
    limit: int
    history_total: int
    history: tuple[HistoryItem, ...]
    victims_suppressed: bool = False


ERRORS: Final = {
    401: ResponseSpec(NotFound, description="missing or unknown bearer token"),
    403: ResponseSpec(NotFound, description="a feed token may not read"),
    422: ResponseSpec(
        InvalidQuery,
        description="a query parameter is invalid, out of its domain, unknown to the route or "
        "given twice",
    ),
    429: ResponseSpec(
        LimitedBody,
        description="over the token's rate, or (live streams) its open streams; Retry-After",
    ),
    503: ResponseSpec(NotFound, description="Redis does not answer; retry (Retry-After)"),
}
ERRORS_404: Final = {
    **ERRORS,
    404: ResponseSpec(NotFound, description="no such incident or projection"),
}

AsOf = Annotated[
    str | None,
    QueryParameter(
        description=(
            "Answer as the ledger knew it at this moment: an ISO 8601 date-time with a zone, "
            "e.g. 2025-03-09T12:00:00Z"
        ),
    ),
]
Country = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[A-Za-z]{3}$",
        description="ISO 3166-1 alpha-3 country code, case-insensitive",
    ),
]
