"""The incidents of the query API: ``GET /v1/incidents`` (a page, ACLED-like, JSON or CSV)
and ``GET /v1/incidents/{incident_id}`` (one incident with its history, citations and
disputes). Guarded and answered like the rest of the read side (:mod:`services.http.read`).

**The listing** shows live incidents by default (``status`` ``merged``, ``retracted`` or
``all`` for the others), under the filters every incident selection takes
(:mod:`services.http.query`), newest occurrence first; each row has its event type, place
as reported, dates with their precision, current figures with their qualifier, grading, the
reporting feed, the number of distinct sources and whether another feed disputes it.

**One incident** carries its report's sources (publisher, url, publication date, feed),
every history entry with its own sources, and the disputes of other feeds (``disputed``,
``disputes``). A reader gets it without the incident's community lines (``victims`` empty,
every history entry's ``victims`` null, ``victims_suppressed`` true); an analyst's or
operator's answer holding lines is audited first.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from events import Position
from projections import PROJECTIONS
from projections import incidents as incidents_projection
from projections.incidents import IncidentView
from services.http.errors import InvalidParameterError
from services.http.query import FILTERS, Format, Where
from services.http.schemas import (
    ERRORS,
    ERRORS_404,
    Dispute,
    HistoryItem,
    IncidentAnswer,
    IncidentBody,
    IncidentsPage,
    cited,
    fresh,
)
from services.http.side import side_of, token_of
from services.http.tables import answer
from services.protection.auth import sees_exact
from services.protection.reveal import reveal_incident
from services.views.asof import InvalidAsOfError, parse_as_of
from services.views.freshness import Lag

__all__ = ["DEFAULT_LIMIT", "INCIDENT_ROUTES", "MAX_LIMIT", "answer_of"]

MAX_LIMIT: Final = 5000
"""Most incidents one page of ``GET /v1/incidents`` holds."""
DEFAULT_LIMIT: Final = 50
_DISPUTED: Final = "incident.disputed"


def answer_of(view: IncidentView) -> IncidentAnswer:
    """The incident as answered: its sources and its history's cited by their feeds, and
    its disputes gathered from its history."""
    history = tuple(
        HistoryItem(
            **{
                **msgspec.structs.asdict(entry),
                "sources": None if entry.sources is None else cited(entry.sources, entry.source),
            }
        )
        for entry in view.history
    )
    disputes = tuple(
        Dispute(
            feed=entry.source,
            reason=entry.reason,
            sources=cited(entry.sources, entry.source),
            event_id=entry.event_id,
            position=entry.position,
            recorded_at=entry.recorded_at,
        )
        for entry in view.history
        if entry.type == _DISPUTED
    )
    fields = msgspec.structs.asdict(view)
    fields.update(
        sources=cited(view.sources, view.feed),
        history=history,
        disputed=view.disputed,
        disputes=disputes,
    )
    return IncidentAnswer(**fields)


@get(
    "/v1/incidents",
    summary="Incidents",
    description="The live incidents under the filters (`status` for the others), newest "
    "occurrence first, paged like ACLED's API: `page` from 1, `limit` up to 5,000.",
    responses=ERRORS,
    tags=["read"],
    dependencies=FILTERS,
)
async def list_incidents(
    request: Request[Any, Any, Any],
    *,
    where: Where,
    status: Annotated[
        Literal["live", "retracted", "merged", "all"],
        QueryParameter(description="incident status (default live; all: every status)"),
    ] = "live",
    page: Annotated[int, QueryParameter(ge=1, description="page number, from 1")] = 1,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_LIMIT, description="incidents per page (at most 5000)")
    ] = DEFAULT_LIMIT,
    format: Format = None,  # the query parameter's name
) -> Response[IncidentsPage]:
    """One page of incidents and how many match in all."""
    side = side_of(request)
    state, position, lag = await side.current(PROJECTIONS[incidents_projection.NAME], ("incident",))
    rows, total = incidents_projection.listing(state, where, status=status, page=page, limit=limit)
    body = IncidentsPage(
        **fresh(position, lag),
        page=page,
        limit=limit,
        count=len(rows),
        total_count=total,
        data=rows,
    )
    return answer(request.headers.get("accept"), body, format)


@get(
    "/v1/incidents/{incident_id:str}",
    summary="One incident",
    description="The incident as it stands, with every event that touched it (each with "
    "its sources), the sources of its report and the disputes of other feeds.",
    responses=ERRORS_404,
    tags=["read"],
)
async def get_incident(
    request: Request[Any, Any, Any],
    incident_id: Annotated[str, PathParameter(description="the incident's id")],
    source_as_of: Annotated[
        str | None,
        QueryParameter(
            description=(
                "Also answer `said`: the figures the source itself had published at this "
                "moment, by its own time (ACLED's row timestamp), an ISO 8601 date-time "
                "with a zone"
            )
        ),
    ] = None,
) -> IncidentBody:
    """The incident and its history; 404 when no event named it.

    A reader gets it without the incident's community lines.
    """
    said_at = None if source_as_of is None else _moment(source_as_of)
    side = side_of(request)
    state, position, lag = await side.current(PROJECTIONS[incidents_projection.NAME], ("incident",))
    view = incidents_projection.get(state, incident_id)
    if view is None:
        raise NotFoundException(f"no incident {incident_id!r}")
    view = await reveal_incident(side.sealing, view)
    if said_at is not None:
        return _said(await _incident_body(request, view, position, lag), view, said_at)
    return await _incident_body(request, view, position, lag)


def _moment(text: str) -> dt.datetime:
    try:
        return parse_as_of(text)
    except InvalidAsOfError:
        raise InvalidParameterError(
            "source_as_of", f"must be an ISO 8601 date-time with a zone, got {text!r}"
        ) from None


def _said(body: IncidentBody, view: IncidentView, at: dt.datetime) -> IncidentBody:
    """``body`` with ``said``: the history item of the entry in force at ``at``."""
    entry = incidents_projection.said_at(view, at)
    said = None
    if entry is not None:
        said = next(h for h in body.incident.history if h.position == entry.position)
    return msgspec.structs.replace(body, said=said)


async def _incident_body(
    request: Request[Any, Any, Any], view: IncidentView, position: Position | None, lag: Lag
) -> IncidentBody:
    """The answer of one incident, the community lines left out for a reader."""
    incident_id = view.incident_id
    token = token_of(request)
    side = side_of(request)
    lines = len(view.victims) + sum(len(h.victims or ()) for h in view.history)
    if not sees_exact(token):
        history = tuple(
            msgspec.structs.replace(h, victims=None) if h.victims is not None else h
            for h in view.history
        )
        view = msgspec.structs.replace(view, victims=(), history=history)
        return IncidentBody(
            **fresh(position, lag), incident=answer_of(view), victims_suppressed=True
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
    return IncidentBody(**fresh(position, lag), incident=answer_of(view))


INCIDENT_ROUTES: Final = (list_incidents, get_incident)
"""The incident routes of the read router."""
