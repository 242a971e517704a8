"""The incidents of the query API: ``GET /v1/incidents`` (a page, ACLED-like, JSON or CSV)
and ``GET /v1/incidents/{incident_id}`` (one incident with its history, citations and
disputes). Guarded and answered like the rest of the read side (:mod:`services.http.read`).

**The listing** shows live incidents by default (``status`` ``merged``, ``retracted`` or
``all`` for the others), under the filters every incident selection takes
(:mod:`services.http.query`), newest occurrence first; each row has its event type, place
as reported, dates with their precision, current figures with their qualifier, grading, the
reporting feed, the number of distinct sources and whether another feed disputes it. With
no filters but ``country``, ``adm1``, ``week``, ``from`` and ``to`` it is read from the rows'
listing index (one page and its total, with the checkpoint: :mod:`services.views.listing`);
with any other, the rows are read whole through the read side's cache and filtered.

**One incident** is read by its row alone, never the whole kind. It carries its report's
sources (publisher, url, publication date, feed), every history entry with its own sources,
and the disputes of other feeds (``disputed``, ``disputes``). A reader gets it without the
incident's community lines (``victims`` empty, every history entry's ``victims`` null,
``victims_suppressed`` true); an analyst's or operator's answer holding lines is audited
first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Annotated, Any, Final, Literal

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter

from projections import PROJECTIONS
from projections import incidents as incidents_projection
from projections.incident_docs import INCIDENT
from projections.incident_queries import index_query, listing_rows
from projections.incidents import HistoryEntry, IncidentFields, IncidentView
from services.http.errors import InvalidParameterError
from services.http.query import FILTERS, Format, Where
from services.http.schemas import (
    ERRORS,
    ERRORS_404,
    Dispute,
    Fresh,
    HistoryItem,
    HistoryPage,
    IncidentAnswer,
    IncidentBody,
    IncidentsPage,
    cited,
    fresh,
)
from services.http.side import side_of, token_of
from services.http.tables import answer
from services.protection.auth import sees_exact
from services.protection.reveal import opened_incident, reveal_incident, text_in
from services.views.asof import InvalidAsOfError, parse_as_of

__all__ = ["DEFAULT_LIMIT", "INCIDENT_ROUTES", "MAX_LIMIT", "answer_of"]

MAX_LIMIT: Final = 5000
"""Most incidents one page of ``GET /v1/incidents`` holds."""
DEFAULT_LIMIT: Final = 50
HISTORY_PAGE: Final = 50
"""History entries in an incident's answer (the latest ones), and a history page's default."""
MAX_HISTORY_LIMIT: Final = 500
_DISPUTED: Final = "incident.disputed"


def _items(entries: tuple[HistoryEntry, ...]) -> tuple[HistoryItem, ...]:
    """History entries as answered: each one's sources cited by its feed."""
    return tuple(
        HistoryItem(
            **{
                **msgspec.structs.asdict(entry),
                "sources": None if entry.sources is None else cited(entry.sources, entry.source),
            }
        )
        for entry in entries
    )


def answer_of(view: IncidentView) -> IncidentAnswer:
    """The incident as answered: its sources cited by its feed, the latest
    :data:`HISTORY_PAGE` history entries (``history_total`` counts them all; the rest are
    paged by ``/v1/incidents/{id}/history``), and its disputes gathered from its history.

    ``view.history`` holds the entries the answer shows (:func:`_answered`): the latest page,
    after any older dispute or ``said`` entry."""
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
    fields = {name: getattr(view, name) for name in IncidentFields.__struct_fields__}
    fields.update(
        sources=cited(view.sources, view.feed),
        history=_items(view.history[-HISTORY_PAGE:]),
        history_total=view.history_total,
        disputed=view.disputed,
        disputes=disputes,
    )
    return IncidentAnswer(**fields)


def _answered(
    history: tuple[HistoryEntry, ...], view: IncidentView, said_at: dt.datetime | None
) -> tuple[HistoryEntry, ...]:
    """The entries of the incident's history its answer shows, in log order: the latest
    :data:`HISTORY_PAGE`, after the older disputes (the answer lists every dispute) and, with
    ``said_at``, the older entry in force then."""
    total = view.history_total
    first = max(total - HISTORY_PAGE, 0)
    latest = history[first:total]
    if not first or (not view.disputed and said_at is None):
        return latest
    earlier = history[:first]
    said = (
        None
        if said_at is None
        else incidents_projection.said_at(
            msgspec.structs.replace(view, history=(*earlier, *latest)), said_at
        )
    )
    older = tuple(entry for entry in earlier if entry.type == _DISPUTED or entry is said)
    return (*older, *latest)


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
    projection = PROJECTIONS[incidents_projection.NAME]
    query = index_query(where, status)
    found = (
        None
        if query is None
        else await side.listing(
            projection,
            INCIDENT,
            query.groups,
            first=(page - 1) * limit,
            limit=limit,
            days=(query.low, query.high),
        )
    )
    if found is not None:  # a status, a place and dates at most: read from the listing index
        listed, lag = found
        position, total = listed.checkpoint, listed.total
        rows = listing_rows([doc for doc in listed.docs if isinstance(doc, IncidentView)])
    else:  # any other filter: the rows read whole and filtered
        state, position, lag = await side.current(projection, incidents_projection.READ_KINDS)
        rows, total = incidents_projection.listing(
            state, where, status=status, page=page, limit=limit
        )
    body = IncidentsPage(
        **fresh(position, lag),
        page=page,
        limit=limit,
        count=len(rows),
        total_count=total,
        data=rows,
    )
    return answer(request.headers.get("accept"), body, format)


Shown = Callable[[tuple[HistoryEntry, ...], IncidentView], tuple[HistoryEntry, ...]]
"""Which entries of an incident's whole history (as the view counts it) an answer shows."""


async def _incident(
    request: Request[Any, Any, Any],
    incident_id: str,
    endpoint: str,
    filters: dict[str, Any],
    shown: Shown,
) -> tuple[IncidentView, Fresh]:
    """The incident as this token may see it (a reader: no community lines), its private
    text restored, ``history`` holding the entries ``shown`` picks of its history; the answer
    audited first when it carries exact figures or decrypted text. 404 when the view has no
    row of it. The view holds a row of the incident; the whole incident and its history are
    its events read from the log and folded by :func:`projections.incidents.incident_of`, up
    to the entries the row counts (so the answer stands where the view does)."""
    side = side_of(request)
    token = token_of(request)
    projection = PROJECTIONS[incidents_projection.NAME]
    found = await side.documents(projection, [(INCIDENT, incident_id)])
    if found is not None:  # one row read, not the kind
        docs, position, lag = found
        row = docs[(INCIDENT, incident_id)]
        view = row if isinstance(row, IncidentView) else None
    else:  # on several partitions: the partition views' rows merged
        state, position, lag = await side.current(projection, incidents_projection.READ_KINDS)
        view = incidents_projection.document(state, incident_id)
    if view is None:
        raise NotFoundException(f"no incident {incident_id!r}")
    opened = await opened_incident(side.sealing, incident_id)
    whole = incidents_projection.incident_of(
        incident_id, (u.recorded for u in opened), view.history_total
    )
    if whole is not None:  # None without a store: the row as stored, no history
        view = msgspec.structs.replace(whole, history=shown(whole.history, whole))
    view = await reveal_incident(side.sealing, view, opened)
    lines = len(view.victims) + sum(len(h.victims or ()) for h in view.history)
    if not sees_exact(token):
        history = tuple(
            msgspec.structs.replace(h, victims=None) if h.victims is not None else h
            for h in view.history
        )
        view = msgspec.structs.replace(view, victims=(), history=history)
        lines = 0
    if lines or text_in(side.sealing, view):  # exact figures or decrypted text: audited
        await side.audit(
            token,
            endpoint,
            {"incident_id": incident_id, **filters},
            position=position,
            as_of=None,
            lines=lines,
        )
    return view, Fresh(**fresh(position, lag))


@get(
    "/v1/incidents/{incident_id:str}",
    summary="One incident",
    description="The incident as it stands, with the latest 50 events that touched it "
    "(`history`, each with its sources; `history_total` counts them all, "
    "`/v1/incidents/{id}/history` pages the rest), the sources of its report and the "
    "disputes of other feeds.",
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
    """The incident and the latest page of its history; 404 when no event named it.

    A reader gets it without the incident's community lines.
    """
    said_at = None if source_as_of is None else _moment(source_as_of)
    view, fresh_ = await _incident(
        request,
        incident_id,
        "GET /v1/incidents/{incident_id}",
        {} if source_as_of is None else {"source_as_of": source_as_of},
        lambda history, found: _answered(history, found, said_at),
    )
    body = IncidentBody(
        **msgspec.structs.asdict(fresh_),
        incident=answer_of(view),
        victims_suppressed=not sees_exact(token_of(request)),
    )
    return body if said_at is None else _said(body, view, said_at)


def _moment(text: str) -> dt.datetime:
    try:
        return parse_as_of(text)
    except InvalidAsOfError:
        raise InvalidParameterError(
            "source_as_of", f"must be an ISO 8601 date-time with a zone, got {text!r}"
        ) from None


def _said(body: IncidentBody, view: IncidentView, at: dt.datetime) -> IncidentBody:
    """``body`` with ``said``: the history item of the entry in force at ``at`` (of the
    whole history: :func:`_answered` read the older one in force then, if any)."""
    entry = incidents_projection.said_at(view, at)
    said = None if entry is None else _items((entry,))[0]
    return msgspec.structs.replace(body, said=said)


@get(
    "/v1/incidents/{incident_id:str}/history",
    summary="An incident's history, paged",
    description="The events that touched the incident in log order, `limit` (up to 500, "
    "default 50) from `offset` (from 0), in the shape of the incident answer's `history`.",
    responses=ERRORS_404,
    tags=["read"],
)
async def get_incident_history(
    request: Request[Any, Any, Any],
    incident_id: Annotated[str, PathParameter(description="the incident's id")],
    offset: Annotated[int, QueryParameter(ge=0, description="the first entry, from 0")] = 0,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_HISTORY_LIMIT, description="entries (at most 500)")
    ] = HISTORY_PAGE,
) -> HistoryPage:
    """One page of the incident's history; 404 when no event named it."""
    view, fresh_ = await _incident(
        request,
        incident_id,
        "GET /v1/incidents/{incident_id}/history",
        {"offset": offset, "limit": limit},
        lambda history, _: history[offset : offset + limit],
    )
    return HistoryPage(
        **msgspec.structs.asdict(fresh_),
        incident_id=incident_id,
        offset=offset,
        limit=limit,
        history_total=view.history_total,
        history=_items(view.history),
        victims_suppressed=not sees_exact(token_of(request)),
    )


INCIDENT_ROUTES: Final = (list_incidents, get_incident, get_incident_history)
"""The incident routes of the read router."""
