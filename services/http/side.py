"""The read side of the HTTP API: what the query endpoints share, kept in ``app.state.read``.

:class:`ReadSide` holds the views as the read side caches them
(:class:`~services.views.cache.ViewReader`), the community-victims sums kept per query
(:class:`~projections.victims_sums.VictimsSums`), the as-of reader, the live hub, the read
metrics and the sealing store private text is revealed through. Every answer carries its
freshness: ``position``, the checkpoint of the view it was read from, ``lag``, the log
entries not yet applied to it, and ``lag_seconds``, the age of the oldest of them
(:func:`services.views.freshness.lag_after`, which the live notices, the gauges and
``/readyz`` use too).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog
from litestar import Request
from litestar.connection import ASGIConnection
from litestar.exceptions import NotFoundException
from litestar.handlers.base import BaseRouteHandler

from events import Position, recorded_at_of
from projections import PROJECTIONS, Projection, Readable, VictimsFilter
from projections import community_victims as victims_projection
from projections.common import docs_of
from projections.community_victims import Cell
from projections.docs import Key
from projections.suppression import DEFAULT_K, ProtectedAnswer, exact, protected_query
from projections.victims_sums import VictimsSums
from services.health import HealthOf, PartHealth, degraded_of
from services.http.live import LiveHub
from services.metrics import ReadMetrics
from services.projector.pool import ProjectorPool
from services.protection.audit import record_read
from services.protection.auth import READ_ROLES, PermissionDeniedError
from services.protection.reveal import Sources
from services.runtime.health_board import read_board
from services.settings import Token
from services.store.keys import Keys
from services.views.asof import AsOfReader, parse_as_of
from services.views.cache import ANSWERS_PER_VIEW, ViewReader
from services.views.freshness import NO_LAG, Lag, lag_after
from services.views.generations import Generation
from services.views.listing import Days, Listing
from services.views.redis import RedisViewStore
from services.views.store import ViewStore

__all__ = [
    "ProjectorState",
    "ReadSide",
    "projector_state_of",
    "refresh_quietly",
    "require_reader",
    "side_of",
    "token_of",
]

log = structlog.get_logger("services.http.read")

ProjectorState = Callable[[], str]
"""Tells ``/readyz`` how the projectors of this process are doing (``running``, …)."""


class ReadSide:
    """Everything the read endpoints use, kept in ``app.state.read``.

    ``projector_state`` tells ``/readyz`` whether this process's projectors run (``None``:
    the process does not run them); ``health`` reports the degraded parts of the process
    (its inbox, projectors, snapshot writer), to which the live hub's poll is added, and
    ``process`` is the name the process posts them under on the health board
    (:mod:`services.runtime.health_board`), where ``/readyz`` also finds the other
    processes' parts.
    ``suppression_k`` is the threshold of the community figures readers get
    (``LEDGER_SUPPRESSION_K``).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: Keys | str = "ledger",
        *,
        projector_state: ProjectorState | None = None,
        live: LiveHub | None = None,
        suppression_k: int = DEFAULT_K,
        views: ViewStore | None = None,
        sealing: Sources = None,
        health: Sequence[HealthOf] = (),
        process: str | None = None,
    ) -> None:
        if suppression_k < 1:
            raise ValueError(f"suppression_k must be at least 1, got {suppression_k}")
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.suppression_k = suppression_k
        store = views or RedisViewStore(client, self.keys)
        self.views = ViewReader(store)
        self.victims_sums: dict[VictimsFilter, VictimsSums] = {}
        """Kept sums of the community-victims queries asked of the view now, by filters."""
        self.asof = AsOfReader(client, self.keys)
        self.projector_state = projector_state
        self.metrics: ReadMetrics | None = None
        self.live = live or LiveHub(store, PROJECTIONS.values())
        self.live.on_clients = self._on_clients
        self.live.lag_of = self.lag_of
        self.health: list[HealthOf] = [*health, self.live.part.health]
        self.process = process
        """This process's name on the health board (its own parts are reported directly)."""
        self.sealing = sealing
        """The store private text and sources are revealed through: the sealing store, or
        the plain event store (``None``: documents shown as stored)."""

    def degraded(self) -> dict[str, PartHealth]:
        """The degraded parts of this process (``/readyz``)."""
        return degraded_of(self.health)

    async def degraded_everywhere(self, seconds: float = 0.5) -> dict[str, PartHealth]:
        """The degraded parts of this process, and those the other processes of the
        deployment posted to the health board (``<process>/<part>``; left out when Redis is
        too slow to say)."""
        found = self.degraded()
        mine = f"{self.process}/"
        with contextlib.suppress(rexc.RedisError, OSError, TimeoutError):
            async with asyncio.timeout(seconds):
                board = await read_board(self.client, self.keys)
            found.update({k: v for k, v in board.items() if not k.startswith(mine)})
        return found

    async def lags_quietly(self, seconds: float = 1.0) -> dict[str, Lag] | None:
        """Every view's lag now, by projection (``None`` when Redis is too slow to say)."""
        try:
            async with asyncio.timeout(seconds):
                found = {}
                for projection in PROJECTIONS.values():
                    checkpoint = await self.views.views.checkpoint(projection)
                    found[projection.name] = await self.lag_of(projection, checkpoint)
                return found
        except (rexc.RedisError, OSError, TimeoutError):
            return None

    async def lag_of(
        self,
        projection: Projection,
        checkpoint: Position | None,
        *,
        generations: Sequence[Generation] | None = None,
    ) -> Lag:
        """The lag of ``projection``'s view at ``checkpoint`` (as every answer has it), read
        from ``generations`` when given (:func:`~services.views.freshness.lag_after`)."""
        return await lag_after(
            self.client, self.keys, projection, checkpoint, generations=generations
        )

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
            checkpoint = await self.views.views.checkpoint(projection)
            lag = await self.lag_of(projection, checkpoint)
            metrics.lag.labels(projection.name).set(lag.entries)
            metrics.lag_seconds.labels(projection.name).set(lag.seconds)
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
        where: VictimsFilter,
    ) -> VictimsSums:
        """The :class:`VictimsSums` of ``where`` at ``checkpoint`` (moved or rebuilt)."""
        sums = self.victims_sums.get(where)
        if sums is None:
            if len(self.victims_sums) >= ANSWERS_PER_VIEW:
                self.victims_sums.clear()
            sums = VictimsSums(self.suppression_k, where)  # checks the filter first
            self.victims_sums[where] = sums
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

    async def victims(
        self, where: VictimsFilter, *, cleared: bool, as_of: str | None
    ) -> tuple[ProtectedAnswer, Position | None, Lag, dt.datetime | None]:
        """The community-victims answer under ``where``: exact for a ``cleared`` token, else
        with small counts withheld; of the view now (kept per checkpoint and query, moved by
        the changed cells) or of the fold as of ``as_of``. With its position, lag and time."""
        projection = PROJECTIONS[victims_projection.NAME]
        if as_of is not None:  # the kept sums of the snapshot, moved by the tail's cells
            moment = parse_as_of(as_of)
            target = await self.asof.position_at(moment)
            if target is not None:
                sums = await self.asof.victims_sums(projection, target, self.suppression_k, where)
                shown = exact(sums.answer()) if cleared else sums.protected()
                return shown, target, NO_LAG, moment
        state, position, lag, at = await self.answer_state(projection, ("total",), as_of)

        def compute() -> ProtectedAnswer:
            if at is None and position is not None:
                sums = self.kept_sums(projection, state, position, where)
                return exact(sums.answer()) if cleared else sums.protected()
            if cleared:
                return exact(victims_projection.query(state, where))
            return protected_query(state, self.suppression_k, where)

        if at is None:  # the view now: the same answer for every poll until the view moves
            key = (cleared, self.suppression_k, where)
            answer: ProtectedAnswer = self.views.answer(projection, position, key, compute)
        else:
            answer = compute()
        return answer, position, lag, at

    async def audit(
        self,
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
            self.client,
            self.prefix,
            token=token,
            endpoint=endpoint,
            filters=filters,
            position=None if position is None else str(position),
            as_of=as_of,
            lines=lines,
        )
        log.info("read.audited", audit_id=ident, principal=token.name, endpoint=endpoint)

    async def current(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[Readable, Position | None, Lag]:
        """The stored documents of ``kinds``, the view's checkpoint and its lag."""
        docs, checkpoint = await self.views.read(projection, kinds)
        generations = self.views.generations(projection)  # those just read: no pointer read
        return docs, checkpoint, await self.lag_of(projection, checkpoint, generations=generations)

    async def documents(
        self, projection: Projection, keys: Sequence[Key]
    ) -> tuple[dict[Key, msgspec.Struct | None], Position | None, Lag] | None:
        """A few stored documents, the view's checkpoint and its lag, read without their
        whole kinds; ``None`` on several partitions (where a document is the partition
        views' merged: :meth:`current` reads them)."""
        store = self.views.views
        if store.partitions > 1:
            return None
        docs, checkpoint, generation = await store.read_documents(projection, keys)
        return docs, checkpoint, await self.lag_of(projection, checkpoint, generations=[generation])

    async def listing(
        self,
        projection: Projection,
        kind: str,
        groups: Sequence[str],
        *,
        first: int,
        limit: int,
        days: Days = (None, None),
    ) -> tuple[Listing, Lag] | None:
        """One page of ``kind``'s listing index (:meth:`ViewStore.listing
        <services.views.store.ViewStore.listing>`) and the view's lag; ``None`` on several
        partitions (:meth:`current` reads the kind whole there)."""
        store = self.views.views
        if store.partitions > 1:
            return None
        found = await store.listing(projection, kind, groups, first=first, limit=limit, days=days)
        lag = await self.lag_of(projection, found.checkpoint, generations=[found.generation])
        return found, lag

    async def answer_state(
        self, projection: Projection, kinds: Sequence[str], as_of: str | None
    ) -> tuple[Readable, Position | None, Lag, dt.datetime | None]:
        """What a projection endpoint reads: the view now, or the fold as of ``as_of``."""
        if as_of is None:
            docs, position, lag = await self.current(projection, kinds)
            return docs, position, lag, None
        at = parse_as_of(as_of)
        state, position = await self.asof.state_at(projection, at)
        return state, position, NO_LAG, at


def side_of(request: Request[Any, Any, Any]) -> ReadSide:
    side: ReadSide | None = request.app.state.get("read")
    if side is None:
        raise NotFoundException("the read side does not run in this process")
    return side


def require_reader(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard: a reader, analyst or operator token (401 without a valid one, 403 for a feed)."""
    token_of(connection)


def token_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Token:
    """The caller's token, checked to be one that may read."""
    token: Token = connection.app.state.ledger.auth.authenticate(
        connection.headers.get("authorization")
    )
    if token.role not in READ_ROLES:
        raise PermissionDeniedError(f"a {token.role} token may not read; use a reader token")
    return token


def projector_state_of(pool: ProjectorPool) -> ProjectorState:
    """A ``/readyz`` reporter for a :class:`~services.projector.pool.ProjectorPool`."""

    def state() -> str:
        if pool.crashed():
            return "failed"
        if pool.health():
            return "degraded"
        return "running" if pool.running else "stopped"

    return state


async def refresh_quietly(side: ReadSide, seconds: float = 1.0) -> None:
    """Refresh the read gauges, giving up (and keeping the old values) when Redis is slow."""
    with contextlib.suppress(rexc.RedisError, OSError, TimeoutError):
        await asyncio.wait_for(side.refresh_metrics(), seconds)
