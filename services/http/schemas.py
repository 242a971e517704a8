"""The answers of the query API, as its OpenAPI document describes them, and its parameters."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Final

import msgspec
from litestar.openapi import ResponseSpec
from litestar.params import QueryParameter

from projections.community_victims import Figures
from projections.country_stance import TimelineEntry
from projections.incidents import IncidentRow, IncidentView
from projections.suppression import ShownRow
from services.http.errors import InvalidQuery, NotFound

__all__ = [
    "ERRORS",
    "ERRORS_404",
    "ISO3",
    "AlignmentBody",
    "AsOf",
    "Country",
    "DateFrom",
    "DateTo",
    "IncidentBody",
    "IncidentsPage",
    "PairItem",
    "StanceBody",
    "StanceItem",
    "TimelineBody",
    "VictimsBody",
]

ISO3: Final = r"^[A-Z]{3}$"
"""An ISO 3166-1 alpha-3 country code."""


class VictimsBody(msgspec.Struct, frozen=True, kw_only=True):
    """The dead by community under the filters, by ``best`` descending.

    For a reader, lines that could single out a small group are withheld (numbers null,
    ``suppressed`` true, listed last by name), and ``unattributed`` is null with
    ``unattributed_suppressed`` true whenever a line is; ``suppression_k`` is the threshold
    applied (null: the figures are exact).
    """

    position: str | None
    lag: int
    as_of: dt.datetime | None
    total: Figures | None
    unattributed: Figures | None
    unattributed_suppressed: bool
    incidents: int | None
    communities: list[ShownRow]
    suppression_k: int | None


class StanceItem(msgspec.Struct, frozen=True, kw_only=True):
    """Where one country stands on one subject."""

    country: str
    subject: str
    stance: str
    statements: int
    goldstein_mean: float | None
    first_statement_at: dt.datetime
    latest_statement_at: dt.datetime
    reaction_latency_hours: float | None
    latest_statement_id: str


class StanceBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every (country, subject) under the filters, by (country, subject)."""

    position: str | None
    lag: int
    as_of: dt.datetime | None
    countries: list[StanceItem]


class TimelineBody(msgspec.Struct, frozen=True, kw_only=True):
    """A country's live statements, by (issued_at, position)."""

    position: str | None
    lag: int
    as_of: dt.datetime | None
    country: str
    subject: str | None
    entries: list[TimelineEntry]


class PairItem(msgspec.Struct, frozen=True, kw_only=True):
    """A pair of countries (``a`` < ``b``): their mean agreement over shared subjects."""

    a: str
    b: str
    score: float
    shared_subjects: int


class AlignmentBody(msgspec.Struct, frozen=True, kw_only=True):
    """Every pair with a shared subject (or sharing ``subject``), by (a, b)."""

    position: str | None
    lag: int
    as_of: dt.datetime | None
    pairs: list[PairItem]


class IncidentsPage(msgspec.Struct, frozen=True, kw_only=True):
    """One page of incidents: ``count`` on this page, ``total_count`` under the filters."""

    position: str | None
    lag: int
    page: int
    limit: int
    count: int
    total_count: int
    data: list[IncidentRow]


class IncidentBody(msgspec.Struct, frozen=True, kw_only=True):
    """One incident as it stands, with its history.

    ``victims_suppressed`` is true when the incident's community lines were left out (for a
    reader: ``victims`` empty and every history entry's ``victims`` null).
    """

    position: str | None
    lag: int
    incident: IncidentView
    victims_suppressed: bool = False


ERRORS: Final = {
    401: ResponseSpec(NotFound, description="missing or unknown bearer token"),
    403: ResponseSpec(NotFound, description="a feed token may not read"),
    422: ResponseSpec(InvalidQuery, description="a query parameter is invalid"),
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
    str | None, QueryParameter(pattern=ISO3, description="ISO 3166-1 alpha-3 country code")
]
DateFrom = Annotated[
    dt.date | None,
    QueryParameter(name="from", description="occurred on or after this date (YYYY-MM-DD)"),
]
DateTo = Annotated[
    dt.date | None,
    QueryParameter(name="to", description="occurred on or before this date (YYYY-MM-DD)"),
]
