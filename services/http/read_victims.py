"""The community-victims answers of the query API: the dead by community under the filters
(``GET /v1/projections/community-victims``) and the incidents behind one of its figures
(``GET /v1/projections/community-victims/incidents``), JSON or CSV. Guarded, suppressed for
readers and audited for cleared tokens as :mod:`services.http.read` says.

Each line of the answer (and its total) names in ``behind`` the URL of the incidents it
sums: the second route with the same filters (and ``as_of``), ``community`` for a line,
paged by ``page`` and ``limit``; what a reader's answer withholds, the incidents behind it
are withheld too.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal
from urllib.parse import urlencode

import msgspec
from litestar import Request, Response, get
from litestar.params import QueryParameter

from projections import PROJECTIONS, VictimsFilter
from projections import incidents as incidents_projection
from services.http.query import FILTERS, Format, Where
from services.http.read_incidents import DEFAULT_LIMIT, MAX_LIMIT
from services.http.schemas import ERRORS, AsOf, BehindBody, CommunityItem, VictimsBody, fresh
from services.http.side import side_of, token_of
from services.http.tables import answer
from services.protection.auth import sees_exact

__all__ = ["BEHIND_PATH", "VICTIMS_PATH", "VICTIMS_ROUTES"]

VICTIMS_PATH: Final = "/v1/projections/community-victims"
BEHIND_PATH: Final = f"{VICTIMS_PATH}/incidents"
VictimStatus = Annotated[
    Literal["civilian", "combatant", "unknown"] | None,
    QueryParameter(description="only the community lines of this victim status, and their total"),
]
Community = Annotated[
    str | None,
    QueryParameter(
        pattern=r"^[a-z0-9][a-z0-9-]{0,127}$",
        description="the community whose line's incidents to list (none: the total's)",
    ),
]
Split = Annotated[
    Literal["community", "party"] | None,
    QueryParameter(
        description=(
            "what the lines split the dead by: `community` (default) or `party` (lines "
            "`civilians`, `side_a`, `side_b`, `unknown`, as UCDP GED splits deaths)"
        )
    ),
]
_NOT_FILTERS = frozenset({"format", "page", "limit", "community", "access_token", "by"})


def _behind_link(request: Request[Any, Any, Any], community: str | None) -> str:
    """The URL of the incidents behind a figure of this answer (same filters)."""
    pairs = [(k, v) for k, v in request.query_params.items() if k not in _NOT_FILTERS]
    if community is not None:
        pairs.append(("community", community))
    return f"{BEHIND_PATH}?{urlencode(pairs)}" if pairs else BEHIND_PATH


async def _victims_answer(
    request: Request[Any, Any, Any], where: VictimsFilter, as_of: str | None
) -> VictimsBody:
    side = side_of(request)
    token = token_of(request)
    cleared = sees_exact(token)
    answer, position, lag, at = await side.victims(where, cleared=cleared, as_of=as_of)
    by_party = where.by == "party"
    if cleared and answer.communities and not by_party:  # party lines name no community
        await side.audit(
            token,
            f"GET {VICTIMS_PATH}",
            {**_named(where), "as_of": as_of},
            position=position,
            as_of=as_of,
            lines=len(answer.communities),
        )
    return VictimsBody(
        **fresh(position, lag),
        as_of=at,
        status=where.status,
        total=answer.total,
        total_suppressed=answer.total_suppressed,
        unattributed=answer.unattributed,
        unattributed_suppressed=answer.unattributed_suppressed,
        incidents=answer.incidents,
        communities=[
            CommunityItem(
                **msgspec.structs.asdict(row),
                behind=None if row.suppressed or by_party else _behind_link(request, row.community),
            )
            for row in answer.communities
        ],
        suppression_k=None if cleared else side.suppression_k,
        behind=None if answer.total_suppressed else _behind_link(request, None),
    )


def _named(where: VictimsFilter) -> dict[str, Any]:
    """The filters given, as the API names them."""
    names = {"date_from": "from", "date_to": "to"}
    given = msgspec.structs.asdict(where)
    return {names.get(k, k): v for k, v in given.items() if v is not None}


@get(
    VICTIMS_PATH,
    summary="Victims by community",
    description=(
        "The dead of the live incidents under the filters, by community (low/best/high, "
        "`at_least` for lower bounds), with the total and the part no community line "
        "accounts for (interval arithmetic); `behind` links each line to its incidents. "
        "`by=party` answers the same shape with the lines `civilians`, `side_a`, `side_b` "
        "and `unknown` (deaths by party) instead of communities."
    ),
    responses=ERRORS,
    tags=["read"],
    dependencies=FILTERS,
)
async def community_victims(
    request: Request[Any, Any, Any],
    *,
    where: Where,
    status: VictimStatus = None,
    by: Split = None,
    as_of: AsOf = None,
    format: Format = None,  # the query parameter's name
) -> Response[VictimsBody]:
    """The dead by community (or by party), sorted by ``best`` descending (suppressed for
    readers)."""
    where = msgspec.structs.replace(where, status=status, by=by)
    return answer(
        request.headers.get("accept"), await _victims_answer(request, where, as_of), format
    )


@get(
    BEHIND_PATH,
    summary="The incidents behind a victims figure",
    description=(
        "The ids of the incidents a community-victims line (`community`) or total sums, "
        "under the same filters, newest occurrence first, paged (`page` from 1, `limit` up "
        "to 5,000). Withheld (`suppressed`) from a reader when the figure is."
    ),
    responses=ERRORS,
    tags=["read"],
    dependencies=FILTERS,
)
async def victims_behind(
    request: Request[Any, Any, Any],
    *,
    community: Community = None,
    where: Where,
    status: VictimStatus = None,
    as_of: AsOf = None,
    page: Annotated[int, QueryParameter(ge=1, description="page number, from 1")] = 1,
    limit: Annotated[
        int, QueryParameter(ge=1, le=MAX_LIMIT, description="ids per page (at most 5000)")
    ] = DEFAULT_LIMIT,
    format: Format = None,  # the query parameter's name
) -> Response[BehindBody]:
    """One page of the incident ids behind a line or the total."""
    where = msgspec.structs.replace(where, status=status)
    side = side_of(request)
    token = token_of(request)
    cleared = sees_exact(token)
    withheld = False
    if not cleared:  # what the reader's answer withholds, the incidents behind it too
        figures, _, _, _ = await side.victims(where, cleared=False, as_of=as_of)
        # the total's incidents when the total is withheld; a line's unless it is shown (a
        # lone withheld line goes unnamed, so a line not shown by name is withheld)
        withheld = (
            figures.total_suppressed
            if community is None
            else not any(
                row.community == community and not row.suppressed for row in figures.communities
            )
        )
    projection = PROJECTIONS[incidents_projection.NAME]
    state, position, lag, at = await side.answer_state(
        projection, incidents_projection.READ_KINDS, as_of
    )
    ids, total = incidents_projection.behind(state, where, community, page=page, limit=limit)
    shown: int | None = total
    if withheld:
        ids, shown = [], None
    elif community is not None and cleared and ids:
        await side.audit(
            token,
            f"GET {BEHIND_PATH}",
            {**_named(where), "community": community, "as_of": as_of},
            position=position,
            as_of=as_of,
            lines=1,
        )
    body = BehindBody(
        **fresh(position, lag),
        as_of=at,
        community=community,
        page=page,
        limit=limit,
        count=len(ids),
        total_count=shown,
        incident_ids=ids,
        suppressed=withheld,
    )
    return answer(request.headers.get("accept"), body, format)


VICTIMS_ROUTES: Final = (community_victims, victims_behind)
"""The community-victims routes of the read router."""
