"""The query parameters of the read API, checked strictly, and the answer format asked for.

**Strict.** Every read route takes exactly the parameters its handler declares (the
OpenAPI document lists them): :func:`strict_query`, a guard of the read router, answers
422 naming a parameter the route does not take or one given twice, before the handler
runs; a value outside its domain is 422 naming the parameter too (the framework checks
types, patterns and enumerations; :mod:`projections.filters` checks the rest). Nothing is
ever answered as if filtered when it was not.

**The filters that select incidents** (``GET /v1/incidents``, the community-victims
answer and the incidents behind it; :class:`projections.VictimsFilter`): ``country`` and
``adm1`` (case-insensitive; the place as reported is what answers show), ``from``/``to``
(incidents whose window of occurrence, widened by its date precision, overlaps the range),
``week``, ``grading``, ``min_grading``, ``event_type`` (ACLED), ``violence_type`` (UCDP),
``perpetrator``, ``feed`` (the reporting feed) and ``civilian_targeting``.

**Format.** ``format=csv`` or ``Accept: text/csv`` asks for CSV
(:mod:`services.http.tables`); ``format=json`` (the default) for JSON, whatever ``Accept``
says.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

from litestar.connection import ASGIConnection
from litestar.di import NamedDependency, Provide
from litestar.handlers.base import BaseRouteHandler
from litestar.params import ParameterKwarg, PathParameter, QueryParameter

from events import Grading
from events.incidents import AcledEventType, ViolenceType
from projections import VictimsFilter
from services.http.errors import InvalidParameterError
from services.http.schemas import Country

__all__ = [
    "FILTERS",
    "AdmOne",
    "CivilianTargeting",
    "DateFrom",
    "DateTo",
    "EventType",
    "Feed",
    "Format",
    "GradingParam",
    "MinGrading",
    "Perpetrator",
    "ViolenceTypeParam",
    "Week",
    "Where",
    "incident_filters",
    "strict_query",
    "wants_csv",
]

AdmOne = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=200,
        description="first-order administrative division, case-insensitive (Tartus = tartus)",
    ),
]
Week = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^\d{4}-W\d{2}$",
        description="ISO week, e.g. 2025-W10: incidents whose window of occurrence overlaps it",
    ),
]
DateFrom = Annotated[
    dt.date | None,
    QueryParameter(
        name="from",
        description="incidents whose window of occurrence (widened by its date precision) "
        "ends on or after this date (YYYY-MM-DD)",
    ),
]
DateTo = Annotated[
    dt.date | None,
    QueryParameter(
        name="to",
        description="incidents whose window of occurrence starts on or before this date",
    ),
]
GradingParam = Annotated[
    Grading | None, QueryParameter(description="only incidents of this Airwars grading")
]
MinGrading = Annotated[
    Grading | None,
    QueryParameter(description="this Airwars grading or a stronger one"),
]
EventType = Annotated[
    AcledEventType | None, QueryParameter(description="ACLED event type of the incidents")
]
ViolenceTypeParam = Annotated[
    ViolenceType | None, QueryParameter(description="UCDP type of violence of the incidents")
]
Perpetrator = Annotated[
    str | None,
    QueryParameter(
        min_length=1,
        max_length=200,
        description="one of the incidents' perpetrators, case-insensitive",
    ),
]
Feed = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", description="the feed that reported the incidents"
    ),
]
CivilianTargeting = Annotated[
    bool | None, QueryParameter(description="incidents that did (true) or did not target civilians")
]
Format = Annotated[
    Literal["json", "csv"] | None,
    QueryParameter(
        description="the answer's format: csv (as with Accept: text/csv) or json (default)"
    ),
]

_ALWAYS: Final = frozenset({"access_token"})
"""Taken by every read route: the live streams' token parameter (see the middleware); on
other routes a token in the query is refused by the middleware's rules, not here."""
_ALLOWED: dict[object, frozenset[str]] = {}
"""The names each handler takes, by its function (an app copies its route handlers; the
function stays the same)."""


_RESERVED: Final = frozenset(
    {"request", "socket", "state", "headers", "cookies", "query", "scope", "body", "data"}
)
"""Handler arguments the framework fills in from the request itself, never from the query."""


def _declared(handler: BaseRouteHandler) -> frozenset[str]:
    """The query parameter names ``handler`` and its dependencies declare (aliases as the
    API names them)."""
    paths = {
        part.strip("{}").partition(":")[0]
        for path in getattr(handler, "paths", ())
        for part in path.split("/")
        if part.startswith("{")
    }
    dependencies = handler.resolve_dependencies()
    fields = [
        (name, field)
        for signature in (
            handler.parsed_fn_signature,
            *(one.parsed_fn_signature for one in dependencies.values()),
        )
        for name, field in signature.parameters.items()
        if name not in dependencies
    ]
    names: set[str] = set()
    for name, field in fields:
        kwarg = field.kwarg_definition
        if name in _RESERVED or name in paths or isinstance(kwarg, PathParameter):
            continue
        if isinstance(kwarg, ParameterKwarg) and (kwarg.header or kwarg.cookie):
            continue
        names.add(kwarg.name or name if isinstance(kwarg, QueryParameter) else name)
    return frozenset(names)


def strict_query(connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler) -> None:
    """Guard: 422 for a query parameter the route does not take, or one given twice."""
    allowed = _ALLOWED.get(handler.fn)
    if allowed is None:
        allowed = _ALLOWED[handler.fn] = _declared(handler) | _ALWAYS
    for name in connection.query_params:
        if name not in allowed:
            takes = ", ".join(sorted(allowed - _ALWAYS)) or "none"
            raise InvalidParameterError(
                name, f"is not a parameter of this route (it takes: {takes})"
            )
        if len(connection.query_params.getall(name)) > 1:
            raise InvalidParameterError(name, "is given more than once")


def wants_csv(accept: str | None, format_: str | None) -> bool:
    """Whether the answer is to be CSV: ``format=csv``, or ``Accept`` naming ``text/csv``
    without ``format=json``."""
    if format_ is not None:
        return format_ == "csv"
    return accept is not None and "text/csv" in accept.lower()


def incident_filters(
    *,
    country: Country = None,
    adm1: AdmOne = None,
    week: Week = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    min_grading: MinGrading = None,
    grading: GradingParam = None,
    event_type: EventType = None,
    violence_type: ViolenceTypeParam = None,
    perpetrator: Perpetrator = None,
    feed: Feed = None,
    civilian_targeting: CivilianTargeting = None,
) -> VictimsFilter:
    """The incident filters of a request, as one :class:`~projections.VictimsFilter` (a
    dependency: its parameters are the route's, in the OpenAPI document too)."""
    return VictimsFilter(
        country=country,
        adm1=adm1,
        week=week,
        date_from=date_from,
        date_to=date_to,
        min_grading=min_grading,
        grading=grading,
        event_type=event_type,
        violence_type=violence_type,
        perpetrator=perpetrator,
        feed=feed,
        civilian_targeting=civilian_targeting,
    )


FILTERS: Final = {"where": Provide(incident_filters, sync_to_thread=False)}
"""The dependency of a route that selects incidents: its handler takes ``where`` (:data:`Where`)."""
Where = NamedDependency[VictimsFilter]
"""A handler's argument receiving the incident filters of :data:`FILTERS`."""
