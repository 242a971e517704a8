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
view (:mod:`services.views.freshness`). Documents and checkpoint are read consistently, in one
``MULTI``. Decoded documents are cached per view and kind; when the checkpoint moved, a kind
is read again as stored and only the documents whose stored JSON changed are decoded again.
A community-victims answer moves with the changed cells alone (:class:`VictimsSums`), and a
projection answer is computed once per checkpoint and query, however often it is asked.
Views are only ever read through :mod:`services.views.stored`.

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

import asyncio
import contextlib
import datetime as dt
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog
from litestar import MediaType, Request, Response, Router, get
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException, ValidationException
from litestar.handlers.base import BaseRouteHandler
from litestar.openapi import ResponseSpec
from litestar.params import PathParameter, QueryParameter
from litestar.response import ServerSentEvent

from events import Grading, Position, recorded_at_of
from projections import PROJECTIONS, InvalidQueryError, Projection, Readable
from projections import alignment as alignment_projection
from projections import community_victims as victims_projection
from projections import country_stance as stance_projection
from projections import incidents as incidents_projection
from projections.common import docs_of, kinds_of
from projections.community_victims import Cell, CommunityRow, Figures, VictimsAnswer
from projections.country_stance import TimelineEntry
from projections.incidents import IncidentRow, IncidentView
from projections.suppression import (
    DEFAULT_K,
    ProtectedAnswer,
    ShownRow,
    exact,
    protected_query,
    small_communities,
    suppress,
)
from services.http.live import LiveHub
from services.metrics import ReadMetrics
from services.protection.audit import record_read
from services.protection.auth import READ_ROLES, PermissionDeniedError, sees_exact
from services.protection.reveal import reveal_incident, reveal_timeline
from services.settings import Token
from services.store.keys import Keys
from services.views.asof import AsOfReader, InvalidAsOfError, parse_as_of
from services.views.freshness import lag_after
from services.views.stored import KindsRead, decode_doc, joined, load_checkpoint, read_kinds

__all__ = ["MAX_LIMIT", "ReadSide", "ViewReader", "read_router"]

log = structlog.get_logger(__name__)

MAX_LIMIT: Final = 5000
"""Most incidents one page of ``GET /v1/incidents`` holds."""
DEFAULT_LIMIT: Final = 50
_ISO3: Final = r"^[A-Z]{3}$"
_ANSWERS_PER_VIEW: Final = 256
"""Most distinct queries whose answers one view keeps (per checkpoint)."""

ProjectorState = Callable[[], str]
"""Tells ``/readyz`` how the projectors of this process are doing (``running``, …)."""


# --- reading views consistently ---------------------------------------------------------------


class _Kind:
    """One kind's documents as last read: where the view stood, the stored JSON and the decoded."""

    __slots__ = ("changed", "checkpoint", "docs", "generation", "previous", "raw", "seen")

    def __init__(
        self,
        read: KindsRead,
        raw: Mapping[str, bytes | str],
        docs: Mapping[str, msgspec.Struct],
        previous: Position | None = None,
        changed: Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] | None = None,
    ) -> None:
        checkpoint = read.checkpoint
        assert checkpoint is not None  # noqa: S101  # only a written view is cached
        self.checkpoint, self.seen, self.generation = checkpoint, read.seen, read.generation
        self.raw = raw
        """The stored JSON by id: a read of the whole kind decodes only what differs from it."""
        self.docs = docs
        self.previous = previous
        """The checkpoint read before this one, when ``changed`` is the difference from it."""
        self.changed = changed
        """id → (document before, document now) of the documents that changed since
        ``previous`` (``None`` when unknown)."""


class ViewReader:
    """Reads document kinds of stored views with their checkpoint, cached per checkpoint.

    Once it holds a kind, a read fetches only the documents changed since, by following the
    view's changes stream (:func:`services.views.stored.read_kinds`); when it cannot, the kind is
    read again whole (one ``HGETALL``) and only the documents whose stored JSON changed are
    decoded again. ``answers`` holds what handlers computed from the documents at the
    cached checkpoint (:meth:`answer`), dropped when the view moves.
    """

    def __init__(self, client: aioredis.Redis, prefix: Keys | str) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self._cache: dict[tuple[str, str], _Kind] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, tuple[Position, dict[Any, Any]]] = {}
        self._merged: dict[str, tuple[Position, Readable]] = {}

    async def read(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """The documents of ``kinds`` and the checkpoint they are the fold up to.

        On several partitions: every partition view's documents, merged by the projection
        (:attr:`projections.Projection.merge`), at the partitions' checkpoints joined.
        """
        lock = self._locks.setdefault(projection.view, asyncio.Lock())
        async with lock:  # one load per view at a time; the others find it cached
            if self.keys.partitions > 1:
                return await self._read_merged(projection, kinds)
            return await self._read(projection, kinds, projection.view)

    async def _read_merged(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """Every partition view (each read as :meth:`_read` does), merged; read at once."""
        every = list(projection.doc_types)
        found = await asyncio.gather(
            *(
                self._read(projection, every, f"{projection.view}@p{p}", partition=p)
                for p in range(self.keys.partitions)
            )
        )
        position = joined([checkpoint for _, checkpoint in found])
        if position is None:
            return {kind: {} for kind in kinds}, None
        held = self._merged.get(projection.view)
        if held is None or held[0] != position:
            held = (position, projection.merge([state for state, _ in found]))
            self._merged[projection.view] = held
        merged = kinds_of(held[1])
        return {kind: merged.get(kind) or {} for kind in kinds}, position

    async def _read(
        self, projection: Projection, kinds: Sequence[str], slot: str, *, partition: int = 0
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """One (partition) view's ``kinds``, cached under ``slot``: followed or read whole."""
        cached = [self._cache.get((slot, kind)) for kind in kinds]
        held = None
        if cached and all(c is not None for c in cached):
            first = cached[0]
            assert first is not None  # noqa: S101  # checked just above
            where = (first.checkpoint, first.seen, first.generation)
            if all(c is not None and (c.checkpoint, c.seen, c.generation) == where for c in cached):
                held = where
        read = await read_kinds(
            self.client, self.keys, projection, kinds, held=held, partition=partition
        )
        if read.checkpoint is None:
            return {kind: {} for kind in kinds}, None
        found: dict[str, Mapping[str, msgspec.Struct]] = {}
        for index, kind in enumerate(kinds):
            old = self._cache.get((slot, kind))
            if read.changed is not None and old is not None:
                entry = self._followed(projection, kind, old, read, read.changed[index])
            else:
                assert read.whole is not None  # noqa: S101  # one of the two is set
                entry = self._whole(projection, kind, old, read, read.whole[index])
            self._cache[(slot, kind)] = entry
            found[kind] = entry.docs
        return found, read.checkpoint

    @staticmethod
    def _followed(
        projection: Projection,
        kind: str,
        old: _Kind,
        read: KindsRead,
        stored: Mapping[str, bytes | None],
    ) -> _Kind:
        """``old`` moved by the documents that changed since (``None``: deleted)."""
        if read.checkpoint == old.checkpoint and not stored:
            old.seen = read.seen  # nothing of this kind moved
            return old
        # copies, not updates in place: a handler may still hold the documents it was given
        docs, raw = dict(old.docs), dict(old.raw)
        changed: dict[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] = {}
        for ident, text in stored.items():
            before = docs.get(ident)
            if text is None:
                raw.pop(ident, None)
                if before is not None:
                    del docs[ident]
                    changed[ident] = (before, None)
                continue
            doc = decode_doc(projection, kind, text)
            docs[ident], raw[ident] = doc, text
            changed[ident] = (before, doc)
        return _Kind(read, raw, docs, previous=old.checkpoint, changed=changed)

    @staticmethod
    def _whole(
        projection: Projection,
        kind: str,
        old: _Kind | None,
        read: KindsRead,
        raw: Mapping[bytes | str, bytes | str],
    ) -> _Kind:
        """The kind read whole, decoding only the documents whose stored JSON changed."""
        old_raw = {} if old is None else old.raw
        old_docs = {} if old is None else old.docs
        docs: dict[str, msgspec.Struct] = {}
        texts: dict[str, bytes | str] = {}
        changed: dict[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] = {}
        for ident, text in raw.items():
            key = ident.decode() if isinstance(ident, bytes) else ident
            doc = old_docs.get(key) if old_raw.get(key) == text else None
            if doc is None:
                doc = decode_doc(projection, kind, text)
                changed[key] = (old_docs.get(key), doc)
            docs[key], texts[key] = doc, text
        if len(docs) - len(changed) < len(old_docs):  # some were deleted
            for key, gone in old_docs.items():
                if key not in docs:
                    changed[key] = (gone, None)
        return _Kind(
            read,
            texts,
            docs,
            previous=None if old is None else old.checkpoint,
            changed=None if old is None else changed,
        )

    def changes(
        self, projection: Projection, kind: str, since: Position, checkpoint: Position
    ) -> Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] | None:
        """The documents of ``kind`` that changed from ``since`` to ``checkpoint`` (the
        cached one), or ``None`` when the cache cannot tell."""
        hit = self._cache.get((projection.view, kind))
        if hit is None or hit.checkpoint != checkpoint or hit.previous != since:
            return None
        return hit.changed

    def answer(
        self,
        projection: Projection,
        checkpoint: Position | None,
        key: Any,
        compute: Callable[[], Any],
    ) -> Any:
        """``compute()`` for the documents at ``checkpoint``, remembered under ``key`` until the
        view moves (a query's answer is a pure function of the documents and its ``key``)."""
        if checkpoint is None:
            return compute()
        held = self._answers.get(projection.view)
        if held is None or held[0] != checkpoint:
            held = (checkpoint, {})
            self._answers[projection.view] = held
        answers = held[1]
        if key not in answers:
            if len(answers) >= _ANSWERS_PER_VIEW:
                answers.clear()
            answers[key] = compute()
        return answers[key]


class VictimsSums:
    """A community-victims query's sums over the ``total`` cells, kept up to date by cell.

    Every part of :func:`projections.community_victims.query`'s answer is a sum over the
    cells the filters keep (totals, incidents, per-community figures), and the communities
    :func:`projections.suppression.small_communities` withholds are a union over those cells;
    so when cells change, the answer moves by the difference of the changed cells alone
    (each computed by those same functions over a one-cell state), instead of a pass over
    every cell per checkpoint.
    """

    def __init__(self, k: int, filters: Mapping[str, Any]) -> None:
        self.k, self.filters = k, dict(filters)
        self.checkpoint: Position | None = None
        self.total = [0, 0, 0]
        self.incidents = 0
        self.sums: dict[str, list[int]] = {}
        self.small: dict[str, int] = {}
        """community → how many kept cells make it small."""

    def rebuild(self, cells: Mapping[str, msgspec.Struct], checkpoint: Position) -> None:
        """Sum every cell afresh (:meth:`move` keeps the sums after that)."""
        self.total, self.incidents, self.sums, self.small = [0, 0, 0], 0, {}, {}
        whole = victims_projection.query({"total": cells}, **self.filters)
        self.total = [whole.total.low, whole.total.best, whole.total.high]
        self.incidents = whole.incidents
        for row in whole.communities:
            self.sums[row.community] = [row.low, row.best, row.high, row.incidents]
        for ident, cell in cells.items():
            self._small(ident, cell, 1)
        self.checkpoint = checkpoint

    def move(
        self,
        changed: Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]],
        checkpoint: Position,
    ) -> None:
        """Take the sums from the previous checkpoint to ``checkpoint`` by the changed cells."""
        for ident, (before, now) in changed.items():
            if before is not None:
                self._add(ident, before, -1)
            if now is not None:
                self._add(ident, now, 1)
        self.checkpoint = checkpoint

    def _add(self, ident: str, cell: msgspec.Struct, sign: int) -> None:
        part = victims_projection.query({"total": {ident: cell}}, **self.filters)
        self.total[0] += sign * part.total.low
        self.total[1] += sign * part.total.best
        self.total[2] += sign * part.total.high
        self.incidents += sign * part.incidents
        for row in part.communities:
            held = self.sums.setdefault(row.community, [0, 0, 0, 0])
            held[0] += sign * row.low
            held[1] += sign * row.best
            held[2] += sign * row.high
            held[3] += sign * row.incidents
            if held[3] == 0:  # no kept cell has the community any more
                del self.sums[row.community]
        self._small(ident, cell, sign)

    def _small(self, ident: str, cell: msgspec.Struct, sign: int) -> None:
        if not isinstance(cell, Cell) or not any(one[1] < self.k for one in cell.lines.values()):
            return
        for community in small_communities({"total": {ident: cell}}, self.k, **self.filters):
            count = self.small.get(community, 0) + sign
            if count:
                self.small[community] = count
            else:
                del self.small[community]

    def answer(self) -> VictimsAnswer:
        """The query's answer at :attr:`checkpoint`."""
        total = Figures(self.total[0], self.total[1], self.total[2])
        rows = [
            CommunityRow(community=name, low=low, best=best, high=high, incidents=count)
            for name, (low, best, high, count) in self.sums.items()
        ]
        rows.sort(key=lambda row: (-row.best, row.community))
        shown = Figures(
            sum(r.low for r in rows), sum(r.best for r in rows), sum(r.high for r in rows)
        )
        return VictimsAnswer(
            total=total,
            unattributed=total.plus(shown, -1),
            incidents=self.incidents,
            communities=rows,
        )

    def protected(self) -> ProtectedAnswer:
        """The answer a reader gets (:func:`projections.suppression.protected_query`'s)."""
        return suppress(self.answer(), self.k, frozenset(self.small))


# --- what the handlers share ------------------------------------------------------------------


class ReadSide:
    """Everything the read endpoints use, kept in ``app.state.read``.

    ``projector_state`` tells ``/readyz`` whether this process's projectors run (``None``:
    the process does not run them). ``suppression_k`` is the threshold of the community
    figures readers get (``LEDGER_SUPPRESSION_K``).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: Keys | str = "ledger",
        *,
        projector_state: ProjectorState | None = None,
        live: LiveHub | None = None,
        suppression_k: int = DEFAULT_K,
    ) -> None:
        if suppression_k < 1:
            raise ValueError(f"suppression_k must be at least 1, got {suppression_k}")
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.suppression_k = suppression_k
        self.views = ViewReader(client, self.keys)
        self.victims_sums: dict[tuple[Any, ...], VictimsSums] = {}
        """Kept sums of the community-victims queries asked of the view now, by filters."""
        self.asof = AsOfReader(client, self.keys)
        self.projector_state = projector_state
        self.metrics: ReadMetrics | None = None
        self.live = live or LiveHub(client, self.keys, PROJECTIONS.values())
        self.live.on_clients = self._on_clients

    def attach_metrics(self, metrics: ReadMetrics) -> None:
        """Report into ``metrics`` (the app's registry)."""
        self.metrics = metrics
        metrics.sse_clients.set(self.live.clients)

    def _on_clients(self, count: int) -> None:
        if self.metrics is not None:
            self.metrics.sse_clients.set(count)

    async def refresh_metrics(self) -> None:
        """Read every projection's lag and position and the dead letters into the gauges."""
        metrics = self.metrics
        if metrics is None:
            return
        for projection in PROJECTIONS.values():
            checkpoint = await load_checkpoint(self.client, self.keys, projection)
            lag = await lag_after(self.client, self.keys, projection, checkpoint)
            metrics.lag.labels(projection.name).set(lag)
            if checkpoint is not None:
                latest = max(recorded_at_of(one) for one in checkpoint.split(","))
                metrics.position.labels(projection.name).set(latest.timestamp())
        dead = [int(await self.client.xlen(dlq)) for dlq in self.keys.dlqs]
        metrics.dead_letters.set(sum(dead))

    def kept_sums(
        self,
        projection: Projection,
        state: Readable,
        checkpoint: Position,
        filters: Mapping[str, Any],
    ) -> VictimsSums:
        """The :class:`VictimsSums` of ``filters`` at ``checkpoint`` (moved or rebuilt)."""
        key = tuple(filters.items())
        sums = self.victims_sums.get(key)
        if sums is None:
            if len(self.victims_sums) >= _ANSWERS_PER_VIEW:
                self.victims_sums.clear()
            sums = self.victims_sums[key] = VictimsSums(self.suppression_k, filters)
        if sums.checkpoint == checkpoint:
            return sums
        changed = (
            None
            if sums.checkpoint is None
            else self.views.changes(projection, "total", sums.checkpoint, checkpoint)
        )
        if changed is None:
            sums.rebuild(docs_of(state, "total", Cell), checkpoint)
        else:
            sums.move(changed, checkpoint)
        return sums

    async def current(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[Readable, Position | None, int]:
        """The stored documents of ``kinds``, the view's checkpoint and its lag."""
        docs, checkpoint = await self.views.read(projection, kinds)
        return docs, checkpoint, await lag_after(self.client, self.keys, projection, checkpoint)

    async def answer_state(
        self, projection: Projection, kinds: Sequence[str], as_of: str | None
    ) -> tuple[Readable, Position | None, int, dt.datetime | None]:
        """What a projection endpoint reads: the view now, or the fold as of ``as_of``."""
        if as_of is None:
            docs, position, lag = await self.current(projection, kinds)
            return docs, position, lag, None
        at = parse_as_of(as_of)
        state, position = await self.asof.state_at(projection, at)
        return state, position, 0, at


def _side(request: Request[Any, Any, Any]) -> ReadSide:
    side: ReadSide | None = request.app.state.get("read")
    if side is None:
        raise NotFoundException("the read side does not run in this process")
    return side


def require_reader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a reader, analyst or operator token (401 without a valid one, 403 for a feed)."""
    _token(connection)


def _token(connection: ASGIConnection[Any, Any, Any, Any]) -> Token:
    """The caller's token, checked to be one that may read."""
    token: Token = connection.app.state.ledger.auth.authenticate(
        connection.headers.get("authorization")
    )
    if token.role not in READ_ROLES:
        raise PermissionDeniedError(f"a {token.role} token may not read; use a reader token")
    return token


# --- answer bodies ------------------------------------------------------------------------------


class FieldError(msgspec.Struct, frozen=True):
    """One query parameter at fault and what is wrong with it."""

    field: str
    message: str


class InvalidQuery(msgspec.Struct, frozen=True):
    """422: a query parameter is invalid."""

    errors: list[FieldError]
    error: Literal["invalid"] = "invalid"


class NotFound(msgspec.Struct, frozen=True):
    """404: no such incident, projection or route."""

    error: str
    message: str


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


_ERRORS: Final = {
    401: ResponseSpec(NotFound, description="missing or unknown bearer token"),
    403: ResponseSpec(NotFound, description="a feed token may not read"),
    422: ResponseSpec(InvalidQuery, description="a query parameter is invalid"),
    503: ResponseSpec(NotFound, description="Redis does not answer; retry (Retry-After)"),
}
_ERRORS_404: Final = {
    **_ERRORS,
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
    str | None, QueryParameter(pattern=_ISO3, description="ISO 3166-1 alpha-3 country code")
]
DateFrom = Annotated[
    dt.date | None,
    QueryParameter(name="from", description="occurred on or after this date (YYYY-MM-DD)"),
]
DateTo = Annotated[
    dt.date | None,
    QueryParameter(name="to", description="occurred on or before this date (YYYY-MM-DD)"),
]


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
    responses=_ERRORS,
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
    side = _side(request)
    token = _token(request)
    cleared = sees_exact(token)
    projection = PROJECTIONS[victims_projection.NAME]
    state, position, lag, at = await side.answer_state(projection, ("total",), as_of)
    filters: dict[str, Any] = {
        "country": country,
        "adm1": adm1,
        "week": week,
        "date_from": date_from,
        "date_to": date_to,
        "status": status,
        "min_grading": min_grading,
    }
    answer: ProtectedAnswer

    def compute() -> ProtectedAnswer:
        if at is None and position is not None:
            sums = side.kept_sums(projection, state, position, filters)
            return exact(sums.answer()) if cleared else sums.protected()
        if cleared:
            return exact(victims_projection.query(state, **filters))
        return protected_query(state, side.suppression_k, **filters)

    if at is None:  # the view now: the same answer for every poll until the view moves
        key = (cleared, side.suppression_k, *filters.values())
        answer = side.views.answer(projection, position, key, compute)
    else:
        answer = compute()
    if cleared and answer.communities:
        await _audit(
            side,
            token,
            "GET /v1/projections/community-victims",
            {**{_QUERY_NAMES.get(n, n): v for n, v in filters.items()}, "as_of": as_of},
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


async def _audit(
    side: ReadSide,
    token: Token,
    endpoint: str,
    filters: Mapping[str, object],
    *,
    position: Position | None,
    as_of: str | None,
    lines: int,
) -> None:
    """Record an answer with exact community figures before it is sent."""
    ident = await record_read(
        side.client,
        side.prefix,
        token=token,
        endpoint=endpoint,
        filters=filters,
        position=_iso(position),
        as_of=as_of,
        lines=lines,
    )
    log.info("read.audited", audit_id=ident, principal=token.name, endpoint=endpoint)


@get(
    "/v1/projections/country-stance",
    summary="Country stances",
    description="Per (country, subject): latest stance, statement count, mean Goldstein "
    "score, first and latest statement, and reaction latency in hours.",
    responses=_ERRORS,
    tags=["read"],
)
async def country_stance(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    country: Country = None,
    as_of: AsOf = None,
) -> StanceBody:
    """Every (country, subject) stance under the filters."""
    side = _side(request)
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
    responses=_ERRORS,
    tags=["read"],
)
async def country_timeline(
    request: Request[Any, Any, Any],
    country: Annotated[str, PathParameter(description="ISO 3166-1 alpha-3 country code")],
    subject: Annotated[str | None, QueryParameter(description="the subject slug")] = None,
    as_of: AsOf = None,
) -> TimelineBody:
    """A country's live statements by (issued_at, position)."""
    if not re.match(_ISO3, country):
        raise _InvalidParameterError(
            "country", f"must be an ISO 3166-1 alpha-3 code, got {country!r}"
        )
    side = _side(request)
    state, position, lag, at = await side.answer_state(
        PROJECTIONS[stance_projection.NAME], ("timeline",), as_of
    )
    entries = stance_projection.timeline(state, country, subject=subject)
    entries = await reveal_timeline(request.app.state.ledger.store, country, entries)
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
    responses=_ERRORS,
    tags=["read"],
)
async def alignment(
    request: Request[Any, Any, Any],
    subject: Annotated[str | None, QueryParameter(description="only this subject")] = None,
    as_of: AsOf = None,
) -> AlignmentBody:
    """Every pair with a shared subject, sorted by (a, b)."""
    side = _side(request)
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
    responses=_ERRORS,
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
    side = _side(request)
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
    responses=_ERRORS_404,
    tags=["read"],
)
async def get_incident(
    request: Request[Any, Any, Any],
    incident_id: Annotated[str, PathParameter(description="the incident's id")],
) -> IncidentBody:
    """The incident and its history; 404 when no event named it.

    A reader gets it without the incident's community lines.
    """
    side = _side(request)
    token = _token(request)
    state, position, lag = await side.current(PROJECTIONS[incidents_projection.NAME], ("incident",))
    view = incidents_projection.get(state, incident_id)
    if view is None:
        raise NotFoundException(f"no incident {incident_id!r}")
    view = await reveal_incident(request.app.state.ledger.store, view)
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
        await _audit(
            side,
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
    responses=_ERRORS_404,
    tags=["read"],
    media_type="text/event-stream",
)
async def live(
    request: Request[Any, Any, Any],
    projection: Annotated[str, PathParameter(description="a projection's name")],
) -> ServerSentEvent:
    """The stream of a view's checkpoint moves."""
    side = _side(request)
    if projection not in side.live.projections:
        raise NotFoundException(f"no projection {projection!r}")
    last = request.headers.get("last-event-id")
    return ServerSentEvent(side.live.stream(projection, last))


# --- errors -------------------------------------------------------------------------------------


class _InvalidParameterError(InvalidQueryError):
    """Raised by a handler for a parameter the framework cannot check (named explicitly)."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field} {message}")


_FIELD: Final = re.compile(r"^(?P<field>[a-z_]+)\b")
_FIELDS: Final = frozenset({"week", "status", "min_grading", "page", "limit", "country", "as_of"})


def _invalid(field: str, message: str) -> Response[Any]:
    body = InvalidQuery(errors=[FieldError(field, message)])
    return Response(body, status_code=422, media_type=MediaType.JSON)


def _on_invalid_query(_: Request[Any, Any, Any], exc: InvalidQueryError) -> Response[Any]:
    field = getattr(exc, "field", None)
    if field is None:
        match = _FIELD.match(str(exc))
        field = match["field"] if match and match["field"] in _FIELDS else "query"
    return _invalid(field, str(exc))


def _on_invalid_as_of(_: Request[Any, Any, Any], exc: InvalidAsOfError) -> Response[Any]:
    return _invalid("as_of", str(exc))


_QUERY_NAMES: Final = {"date_from": "from", "date_to": "to"}
"""Handler argument → the query parameter's name, where the two differ."""


def _on_bad_parameter(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    extra = exc.extra if isinstance(exc.extra, list) else []
    errors = [
        FieldError(
            _QUERY_NAMES.get(str(e.get("key")), str(e.get("key", "query"))),
            str(e.get("message", exc.detail)),
        )
        for e in extra
        if isinstance(e, dict)
    ] or [FieldError("query", exc.detail)]
    return Response(InvalidQuery(errors=errors), status_code=422, media_type=MediaType.JSON)


def _on_redis_down(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    log.warning("read.unavailable", error=str(exc))
    body = NotFound("unavailable", "the ledger's Redis does not answer; retry")
    return Response(body, status_code=503, media_type=MediaType.JSON, headers={"Retry-After": "1"})


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
        exception_handlers={
            InvalidQueryError: _on_invalid_query,
            InvalidAsOfError: _on_invalid_as_of,
            ValidationException: _on_bad_parameter,
            rexc.ConnectionError: _on_redis_down,
            rexc.TimeoutError: _on_redis_down,
            TimeoutError: _on_redis_down,
        },
    )


def projector_state_of(pool: Any) -> ProjectorState:
    """A ``/readyz`` reporter for a :class:`~services.projector.runner.ProjectorPool`."""

    def state() -> str:
        if pool.failure() is not None:
            return "failed"
        return "running" if pool.running else "stopped"

    return state


async def refresh_quietly(side: ReadSide, seconds: float = 1.0) -> None:
    """Refresh the read gauges, giving up (and keeping the old values) when Redis is slow."""
    with contextlib.suppress(rexc.RedisError, OSError, TimeoutError):
        await asyncio.wait_for(side.refresh_metrics(), seconds)
