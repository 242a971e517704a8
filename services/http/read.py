"""The query API of the read side: the stored views, their freshness, and as-of answers.

Every endpoint needs a ``reader``, ``analyst`` or ``operator`` bearer token (401 without one,
403 for a feed token) and answers JSON:

=========================================================== ==================================
``GET /v1/projections/community-victims``                    the dead by community
``GET /v1/projections/country-stance``                       stances per (country, subject)
``GET /v1/projections/country-stance/{country}/timeline``    a country's live statements
``GET /v1/projections/alignment``                            pairs of countries' agreement
``GET /v1/incidents``                                        incidents, paged (ACLED-like)
``GET /v1/incidents/{incident_id}``                          one incident with its history
``GET /v1/live/{projection}``                                Server-Sent Events (``live.py``)
=========================================================== ==================================

**Freshness.** Every answer carries ``position``, the checkpoint of the view it was read
from (``null`` while the view has none), and ``lag``, the log entries not yet applied to that
view (:mod:`services.views.freshness`). Documents and checkpoint are read consistently, as
one snapshot of the view, through the read side's cache (:mod:`services.views.cache`): a
community-victims answer moves with the changed cells alone
(:class:`~projections.victims_sums.VictimsSums`), and a projection answer is computed once
per checkpoint and query, however often it is asked. What the handlers share is the read
side (:mod:`services.http.side`); their answers are :mod:`services.http.schemas`.

**As of.** The projection endpoints take ``as_of``, an ISO 8601 date-time with a zone: the
answer is then the pure fold of the events recorded at or before it (:mod:`services.views.asof`),
``position`` the last log position at or before it, ``lag`` 0 and ``as_of`` echoes it
(``null`` otherwise). Date filters (``week``, ``from``, ``to``) act on when incidents
occurred; ``as_of`` on when the ledger learnt of them.

**Data protection.** Community figures are special-category data. A ``reader`` gets every
community-victims answer (as-of included) through :func:`projections.suppression.protected_query`:
lines that could single out a small group come back with ``low``/``best``/``high``/
``incidents`` null and ``suppressed: true``, and ``unattributed`` null with
``unattributed_suppressed: true`` whenever a line is withheld; ``suppression_k`` says the
threshold applied. A reader's ``GET /v1/incidents/{id}`` leaves out the incident's own
community lines (``victims`` empty, every history entry's ``victims`` null,
``victims_suppressed: true``). An ``analyst`` or ``operator`` gets exact figures
(``suppression_k`` null), and each such answer holding community lines is first recorded in
the audit stream (:mod:`services.protection.audit`); if that write fails, the request fails.

**Errors.** A bad query parameter answers 422 ``{"error": "invalid", "errors": [{"field",
"message"}]}`` naming the parameter; an unknown incident or projection 404; Redis not
answering 503 with ``Retry-After``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Final, Literal

import msgspec
import structlog
from litestar import Request, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter
from litestar.response import ServerSentEvent

from events import Grading, Position
from projections import PROJECTIONS
from projections import alignment as alignment_projection
from projections import country_stance as stance_projection
from projections import incidents as incidents_projection
from services.http.errors import QUERY_NAMES, READ_ERRORS, InvalidParameterError
from services.http.schemas import (
    ERRORS,
    ERRORS_404,
    ISO3,
    AlignmentBody,
    AsOf,
    Country,
    DateFrom,
    DateTo,
    IncidentBody,
    IncidentsPage,
    PairItem,
    StanceBody,
    StanceItem,
    TimelineBody,
    VictimsBody,
)
from services.http.side import require_reader, side_of, token_of
from services.protection.auth import sees_exact
from services.protection.reveal import reveal_incident, reveal_timeline

__all__ = ["MAX_LIMIT", "read_router"]

log = structlog.get_logger(__name__)

MAX_LIMIT: Final = 5000
"""Most incidents one page of ``GET /v1/incidents`` holds."""
DEFAULT_LIMIT: Final = 50


def _iso(position: Position | None) -> str | None:
    return None if position is None else str(position)


# --- handlers ---------------------------------------------------------------------------------


@get(
    "/v1/projections/community-victims",
    summary="Victims by community",
    description=(
        "The dead of the live incidents under the filters, by community (low/best/high), "
        "with the total and the part no community line accounts for."
    ),
    responses=ERRORS,
    tags=["read"],
)
async def community_victims(
    request: Request[Any, Any, Any],
    *,
    country: Country = None,
    adm1: Annotated[str | None, QueryParameter(description="first-order division")] = None,
    week: Annotated[str | None, QueryParameter(description="ISO week, e.g. 2025-W10")] = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    status: Annotated[
        Literal["civilian", "combatant", "unknown"] | None,
        QueryParameter(description="only the community lines of this victim status"),
    ] = None,
    min_grading: Annotated[
        Grading | None,
        QueryParameter(description="weakest Airwars grading counted (default: all but discounted)"),
    ] = None,
    as_of: AsOf = None,
) -> VictimsBody:
    """The dead by community, sorted by ``best`` descending (suppressed for readers)."""
    side = side_of(request)
    token = token_of(request)
    cleared = sees_exact(token)
    filters: dict[str, Any] = {
        "country": country,
        "adm1": adm1,
        "week": week,
        "date_from": date_from,
        "date_to": date_to,
        "status": status,
        "min_grading": min_grading,
    }
    answer, position, lag, at = await side.victims(filters, cleared=cleared, as_of=as_of)
    if cleared and answer.communities:
        await side.audit(
            token,
            "GET /v1/projections/community-victims",
            {**{QUERY_NAMES.get(n, n): v for n, v in filters.items()}, "as_of": as_of},
            position=position,
            as_of=as_of,
            lines=len(answer.communities),
        )
    return VictimsBody(
        position=_iso(position),
        lag=lag,
        as_of=at,
        total=answer.total,
        unattributed=answer.unattributed,
        unattributed_suppressed=answer.unattributed_suppressed,
        incidents=answer.incidents,
        communities=answer.communities,
        suppression_k=None if cleared else side.suppression_k,
    )


@get(
    "/v1/projections/country-stance",
    summary="Country stances",
    description="Per (country, subject): latest stance, statement count, mean Goldstein "
    "score, first and latest statement, and reaction latency in hours.",
    responses=ERRORS,
    tags=["read"],
)
async def country_stance(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    country: Country = None,
    as_of: AsOf = None,
) -> StanceBody:
    """Every (country, subject) stance under the filters."""
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[stance_projection.NAME], ("stance",), as_of
    )
    rows = stance_projection.stances(state, subject=subject, country=country)
    return StanceBody(
        position=_iso(position),
        lag=lag,
        as_of=at,
        countries=[
            StanceItem(
                country=row.country,
                subject=row.subject,
                stance=row.stance,
                statements=row.statements,
                goldstein_mean=row.mean_goldstein,
                first_statement_at=row.first_at,
                latest_statement_at=row.latest_at,
                reaction_latency_hours=row.latency_hours,
                latest_statement_id=row.latest_statement_id,
            )
            for row in rows
        ],
    )


@get(
    "/v1/projections/country-stance/{country:str}/timeline",
    summary="A country's statements",
    description="The country's live statements (on one subject, or all), in order.",
    responses=ERRORS,
    tags=["read"],
)
async def country_timeline(
    request: Request[Any, Any, Any],
    country: Annotated[str, PathParameter(description="ISO 3166-1 alpha-3 country code")],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    as_of: AsOf = None,
) -> TimelineBody:
    """A country's live statements by (issued_at, position)."""
    if not re.match(ISO3, country):
        raise InvalidParameterError(
            "country", f"must be an ISO 3166-1 alpha-3 code, got {country!r}"
        )
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[stance_projection.NAME], ("timeline",), as_of
    )
    entries = stance_projection.timeline(state, country, subject=subject)
    entries = await reveal_timeline(side.sealing, country, entries)
    return TimelineBody(
        position=_iso(position),
        lag=lag,
        as_of=at,
        country=country,
        subject=subject,
        entries=entries,
    )


@get(
    "/v1/projections/alignment",
    summary="Alignment of countries",
    description="Pairs of countries (a < b) and how alike they speak: 1 for the same latest "
    "stance or a joint statement, 0.5 when one is neutral, else 0, averaged over the "
    "subjects both spoke on.",
    responses=ERRORS,
    tags=["read"],
)
async def alignment(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="only this subject")] = None,
    as_of: AsOf = None,
) -> AlignmentBody:
    """Every pair with a shared subject, sorted by (a, b)."""
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[alignment_projection.NAME], ("pair",), as_of
    )
    rows = alignment_projection.pairs(state, subject=subject)
    return AlignmentBody(
        position=_iso(position),
        lag=lag,
        as_of=at,
        pairs=[
            PairItem(a=r.a, b=r.b, score=r.score, shared_subjects=r.shared_subjects) for r in rows
        ],
    )


@get(
    "/v1/incidents",
    summary="Incidents",
    description="The reported incidents under the filters, newest occurrence first, paged "
    "like ACLED's API: `page` from 1, `limit` up to 5,000.",
    responses=ERRORS,
    tags=["read"],
)
async def list_incidents(
    request: Request[Any, Any, Any],
    *,
    country: Country = None,
    adm1: Annotated[str | None, QueryParameter(description="first-order division")] = None,
    date_from: DateFrom = None,
    date_to: DateTo = None,
    status: Annotated[
        Literal["live", "retracted", "merged"] | None, QueryParameter(description="incident status")
    ] = None,
    page: Annotated[int, QueryParameter(ge=1, description="page number, from 1")] = 1,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_LIMIT, description="incidents per page (at most 5000)")
    ] = DEFAULT_LIMIT,
) -> IncidentsPage:
    """One page of incidents and how many match in all."""
    side = side_of(request)
    state, position, lag = await side.current(PROJECTIONS[incidents_projection.NAME], ("incident",))
    rows, total = incidents_projection.listing(
        state,
        country=country,
        adm1=adm1,
        date_from=date_from,
        date_to=date_to,
        status=status,
        page=page,
        limit=limit,
    )
    return IncidentsPage(
        position=_iso(position),
        lag=lag,
        page=page,
        limit=limit,
        count=len(rows),
        total_count=total,
        data=rows,
    )


@get(
    "/v1/incidents/{incident_id:str}",
    summary="One incident",
    description="The incident as it stands, with every event that touched it.",
    responses=ERRORS_404,
    tags=["read"],
)
async def get_incident(
    request: Request[Any, Any, Any],
    incident_id: Annotated[str, PathParameter(description="the incident's id")],
) -> IncidentBody:
    """The incident and its history; 404 when no event named it.

    A reader gets it without the incident's community lines.
    """
    side = side_of(request)
    token = token_of(request)
    state, position, lag = await side.current(PROJECTIONS[incidents_projection.NAME], ("incident",))
    view = incidents_projection.get(state, incident_id)
    if view is None:
        raise NotFoundException(f"no incident {incident_id!r}")
    view = await reveal_incident(side.sealing, view)
    lines = len(view.victims) + sum(len(h.victims or ()) for h in view.history)
    if not sees_exact(token):
        history = tuple(
            msgspec.structs.replace(h, victims=None) if h.victims is not None else h
            for h in view.history
        )
        view = msgspec.structs.replace(view, victims=(), history=history)
        return IncidentBody(
            position=_iso(position), lag=lag, incident=view, victims_suppressed=True
        )
    if lines:
        await side.audit(
            token,
            "GET /v1/incidents/{incident_id}",
            {"incident_id": incident_id},
            position=position,
            as_of=None,
            lines=lines,
        )
    return IncidentBody(position=_iso(position), lag=lag, incident=view)


@get(
    "/v1/live/{projection:str}",
    summary="Live view updates (Server-Sent Events)",
    description=(
        "A `view` event (`id` = the new position, data `{projection, position}`) whenever the "
        "view's checkpoint moves, at most about 4 per second. Reconnect with `Last-Event-ID` "
        "to get one event at once if the view moved since."
    ),
    responses=ERRORS_404,
    tags=["read"],
    media_type="text/event-stream",
)
async def live(
    request: Request[Any, Any, Any],
    projection: Annotated[str, PathParameter(description="a projection's name")],
) -> ServerSentEvent:
    """The stream of a view's checkpoint moves."""
    side = side_of(request)
    if projection not in side.live.projections:
        raise NotFoundException(f"no projection {projection!r}")
    last = request.headers.get("last-event-id")
    return ServerSentEvent(side.live.stream(projection, last))


def read_router() -> Router:
    """The router of the read endpoints (guarded: reader or operator token)."""
    return Router(
        path="/",
        route_handlers=[
            community_victims,
            country_stance,
            country_timeline,
            alignment,
            list_incidents,
            get_incident,
            live,
        ],
        guards=[require_reader],
        exception_handlers=READ_ERRORS,
    )
