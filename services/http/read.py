"""The query API of the read side: the stored views, their freshness, and as-of answers.

Every endpoint needs a ``reader``, ``analyst`` or ``operator`` bearer token (401 without one,
403 for a feed token) and answers JSON, or CSV (``format=csv`` or ``Accept: text/csv``;
:mod:`services.http.tables`):

========================================================== =================================
``GET /v1/projections/community-victims``                   the dead by community
``GET /v1/projections/community-victims/incidents``         the incidents behind a line
``GET /v1/projections/country-stance``                      stances per (country, subject)
``GET /v1/projections/country-stance/{country}/timeline``   a country's live statements
``GET /v1/projections/alignment``                           pairs of countries' agreement
``GET /v1/incidents``, ``GET /v1/incidents/{incident_id}``  incidents (``read_incidents.py``)
``GET /v1/live/{projection}``                               Server-Sent Events (``live.py``)
========================================================== =================================

**Strict parameters.** A route answers 422 naming a parameter it does not take, one given
twice, or a value outside its domain (:mod:`services.http.query`); the filters that select
incidents are the same on ``/v1/incidents``, the community-victims answer and the incidents
behind it, as-of answers and CSV included.

**Freshness.** Every answer carries ``position``, the checkpoint of the view it was read
from (``null`` while the view has none), ``lag``, the log entries not yet applied to that
view, and ``lag_seconds``, how long ago the oldest of them was recorded
(:mod:`services.views.freshness`). Documents and checkpoint are read consistently, as
one snapshot of the view, through the read side's cache (:mod:`services.views.cache`): a
community-victims answer moves with the changed cells alone
(:class:`~projections.victims_sums.VictimsSums`), and a projection answer is computed once
per checkpoint and query, however often it is asked. What the handlers share is the read
side (:mod:`services.http.side`); their answers are :mod:`services.http.schemas`.

**As of.** The projection endpoints take ``as_of``, an ISO 8601 date-time with a zone: the
answer is then the pure fold of the events recorded at or before it (:mod:`services.views.asof`),
``position`` the last log position at or before it, ``lag`` and ``lag_seconds`` 0 and
``as_of`` echoes it
(``null`` otherwise). Date filters (``week``, ``from``, ``to``) act on when incidents
occurred; ``as_of`` on when the ledger learnt of them.

**What a figure rests on.** Each community-victims line (and the total) names in
``behind`` the URL of the incidents it sums: ``/v1/projections/community-victims/incidents``
with the same filters (and ``as_of``), ``community`` for a line, paged by ``page`` and
``limit``. A stance lists in ``basis`` the statements it rests on.

**Data protection.** Community figures are special-category data. A ``reader`` gets every
community-victims answer (as-of and CSV included) through
:func:`projections.suppression.protected_query`: lines that could single out a small group
come back with ``low``/``best``/``high``/``incidents`` null and ``suppressed: true``,
``unattributed`` null with ``unattributed_suppressed: true`` whenever a line is withheld,
and with a ``status`` filter the total and its incidents too (``total_suppressed``);
``suppression_k`` says the threshold applied. The incidents behind a withheld figure are
withheld from a reader too (``suppressed: true``, no ids). An ``analyst`` or ``operator``
gets exact figures (``suppression_k`` null), and each such answer holding community lines
(or the incidents behind one community) is first recorded in the audit stream
(:mod:`services.protection.audit`); if that write fails, the request fails.

**Errors.** A bad query parameter answers 422 ``{"error": "invalid", "errors": [{"field",
"message"}]}`` naming the parameter; an unknown incident or projection 404; Redis not
answering 503 with ``Retry-After``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, Router, get
from litestar.exceptions import NotFoundException
from litestar.params import PathParameter, QueryParameter
from litestar.response import ServerSentEvent, ServerSentEventMessage

from projections import PROJECTIONS
from projections import alignment as alignment_projection
from projections import country_stance as stance_projection
from services.http.deps import deps_of
from services.http.errors import READ_ERRORS, InvalidParameterError
from services.http.query import (
    Format,
    strict_query,
)
from services.http.read_incidents import INCIDENT_ROUTES, MAX_LIMIT
from services.http.read_victims import VICTIMS_ROUTES
from services.http.schemas import (
    ERRORS,
    ERRORS_404,
    ISO3,
    AlignmentBody,
    AsOf,
    Country,
    PairItem,
    StanceBody,
    StanceItem,
    TimelineBody,
    TimelineItem,
    cited,
    fresh,
)
from services.http.side import require_reader, side_of, token_of
from services.http.tables import answer
from services.protection.reveal import reveal_timeline, shows_text

__all__ = ["MAX_LIMIT", "read_router"]


def _answer(request: Request[Any, Any, Any], body: Any, format_: str | None) -> Response[Any]:
    """``body`` as JSON, or as CSV when asked for."""
    return answer(request.headers.get("accept"), body, format_)


# --- handlers ---------------------------------------------------------------------------------


@get(
    "/v1/projections/country-stance",
    summary="Country stances",
    description="Per (country, subject): the stance of the highest-ranked speaker's latest "
    "statement (`mixed` when statements of that rank disagree), the statements it rests on "
    "(`basis`), statement count, mean Goldstein score, first and latest statement, and "
    "reaction latency in hours.",
    responses=ERRORS,
    tags=["read"],
)
async def country_stance(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    country: Country = None,
    as_of: AsOf = None,
    format: Format = None,  # the query parameter's name
) -> Response[StanceBody]:
    """Every (country, subject) stance under the filters."""
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[stance_projection.NAME], ("stance",), as_of
    )
    rows = stance_projection.stances(
        state, subject=subject, country=None if country is None else country.upper()
    )
    body = StanceBody(
        **fresh(position, lag),
        as_of=at,
        countries=[
            StanceItem(
                country=row.country,
                subject=row.subject,
                stance=row.stance,
                family=row.family,
                stances=list(row.stances),
                role=row.role,
                basis=list(row.basis),
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
    return _answer(request, body, format)


@get(
    "/v1/projections/country-stance/{country:str}/timeline",
    summary="A country's statements",
    description="The country's live statements (on one subject, or all), in order, each "
    "with its feed and sources.",
    responses=ERRORS,
    tags=["read"],
)
async def country_timeline(
    request: Request[Any, Any, Any],
    country: Annotated[str, PathParameter(description="ISO 3166-1 alpha-3 country code")],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    as_of: AsOf = None,
    format: Format = None,  # the query parameter's name
) -> Response[TimelineBody]:
    """A country's live statements by (issued_at, position)."""
    country = country.upper()
    if not re.match(ISO3, country):
        raise InvalidParameterError(
            "country", f"must be an ISO 3166-1 alpha-3 code, got {country!r}"
        )
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[stance_projection.NAME], ("timeline",), as_of
    )
    entries = stance_projection.timeline(state, country, subject=subject)
    said = await reveal_timeline(side.sealing, country, entries)
    if shows_text(
        side.sealing, said
    ):  # decrypted speaker names or urls: recorded before they are sent
        await side.audit(
            token_of(request),
            "GET /v1/projections/country-stance/{country}/timeline",
            {"country": country, "subject": subject, "as_of": as_of},
            position=position,
            as_of=as_of,
            lines=0,
        )
    body = TimelineBody(
        **fresh(position, lag),
        as_of=at,
        country=country,
        subject=subject,
        entries=[
            TimelineItem(
                **msgspec.structs.asdict(one.entry),
                feed=one.feed,
                sources=cited(one.sources, one.feed),
            )
            for one in said
        ],
    )
    return _answer(request, body, format)


@get(
    "/v1/projections/alignment",
    summary="Alignment of countries",
    description="Pairs of countries (a < b) and how alike they speak: 1 for stances of one "
    "family or a joint statement, 0.5 when one side is procedural or mixed, else 0, averaged "
    "over the subjects both spoke on; `thin` when fewer than 3.",
    responses=ERRORS,
    tags=["read"],
)
async def alignment(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="only this subject")] = None,
    as_of: AsOf = None,
    format: Format = None,  # the query parameter's name
) -> Response[AlignmentBody]:
    """Every pair with a shared subject, sorted by (a, b)."""
    side = side_of(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[alignment_projection.NAME], ("pair",), as_of
    )
    rows = alignment_projection.pairs(state, subject=subject)
    body = AlignmentBody(
        **fresh(position, lag),
        as_of=at,
        pairs=[
            PairItem(a=r.a, b=r.b, score=r.score, shared_subjects=r.shared_subjects, thin=r.thin)
            for r in rows
        ],
    )
    return _answer(request, body, format)


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
    limits = deps_of(request).limits
    if limits is None:
        return ServerSentEvent(side.live.stream(projection, last))
    close = limits.streams.open(token_of(request))  # 429 past the token's open streams
    return ServerSentEvent(_closing(side.live.stream(projection, last), close))


async def _closing(
    stream: AsyncIterator[ServerSentEventMessage], close: Callable[[], None]
) -> AsyncIterator[ServerSentEventMessage]:
    """``stream``, counted open until it ends (the client went away, the service stops)."""
    try:
        async for message in stream:
            yield message
    finally:
        close()


def read_router() -> Router:
    """The router of the read endpoints (guarded: reader or operator token, then strict
    query parameters)."""
    return Router(
        path="/",
        route_handlers=[
            *VICTIMS_ROUTES,
            country_stance,
            country_timeline,
            alignment,
            *INCIDENT_ROUTES,
            live,
        ],
        guards=[require_reader, strict_query],
        exception_handlers=READ_ERRORS,
    )
