"""The snapshot writer: every ``every`` log entries, each as-of projection's state.

It folds the log itself, projection by projection (:func:`services.views.asof.fold_log`),
and stores the state at that position (:class:`services.views.snapshots.SnapshotStore`):
a delta of the documents the fold changed since the previous snapshot, or a base (the whole
state) after ``chain`` deltas or once the deltas weigh half their base;
it does not read the stored views, so snapshots do not depend on the projectors, on a
view's generation or progress, and it backfills a log that was written before it ran. It
keeps each state it wrote and folds on from it when its snapshot is still the latest, so a
round costs the entries folded and what changed; it loads the state from the store only
when it holds none, or another writer wrote since (at 1M events the reload every round was
half of the writer's CPU, ``BENCHMARKS.md``). A
lease per projection (:mod:`services.projector.lease`) keeps two processes from doing the
same work (writing a snapshot twice would be harmless: a snapshot at a position is always
the same). ``ledger snapshots`` runs it in a process of its own; ``ledger serve`` runs it
beside its projectors. On several log partitions it does nothing: as-of reads fold each
partition there.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position
from projections import PROJECTIONS, Projection, State
from projections.docs import Key
from projections.suppression import DEFAULT_K
from services.health import Part
from services.projector.lease import Leases, process_name
from services.settings import Settings
from services.store.connection import REDIS_DOWN
from services.store.keys import Keys
from services.store.log import LogReader
from services.views.asof import ASOF_PROJECTIONS, fold_log
from services.views.errors import AsOfError
from services.views.snapshots import (
    CHAIN_SHARE,
    DEFAULT_CHAIN,
    DEFAULT_EVERY,
    DEFAULT_KEEP,
    Chain,
    SnapshotStore,
    own_kinds,
)

__all__ = ["SnapshotsOffError", "Snapshotter", "snapshotter_for"]

log = structlog.get_logger(__name__)


class SnapshotsOffError(AsOfError):
    """Raised by ``ledger snapshots`` when the settings turn snapshots off
    (``LEDGER_SNAPSHOT_EVERY=0``, or a partitioned log, which snapshots do not cover yet)."""


class _Held(msgspec.Struct, frozen=True):
    """A state the writer wrote, kept for its next round: where it stands and its chain."""

    position: Position
    ordinal: int
    state: State
    chain: Chain

    @property
    def at(self) -> tuple[Position, int]:
        return self.position, self.ordinal


class Snapshotter:
    """Writes every ``every`` log entries a snapshot of each as-of projection (module doc).

    A component of the service (``start``/``stop``); :meth:`run_once` does one round and is
    what tests call. ``interval`` is the pause between rounds when there is nothing to do.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: Keys | str = "ledger",
        every: int = DEFAULT_EVERY,
        keep: int = DEFAULT_KEEP,
        chain: int = DEFAULT_CHAIN,
        projections: Iterable[Projection] | None = None,
        interval: float = 1.0,
        lease_ms: int = 60_000,
        owner: str | None = None,
        suppression_k: int = DEFAULT_K,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.every = every
        self.keep = keep
        self.chain = chain
        self.suppression_k = suppression_k
        """The threshold of the sums kept beside each snapshot
        (:func:`~services.views.snapshots.sums_of`): the query API's."""
        self.store = SnapshotStore(client, self.keys)
        self.log = LogReader(client, self.keys)
        chosen = (PROJECTIONS[n] for n in ASOF_PROJECTIONS) if projections is None else projections
        self.projections = tuple(chosen)
        self.interval = interval
        self.lease_ms = lease_ms
        self.owner = owner or process_name()
        self.written = 0
        self.leases = Leases(client)
        self._held: dict[str, _Held] = {}
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.part = Part("snapshots")
        """The writer's health (``/readyz``)."""

    async def start(self) -> None:
        """Start the background task."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="snapshotter")

    async def stop(self) -> None:
        """Stop after the page in flight and release the leases."""
        self._stop.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):
            for projection in self.projections:
                await self.leases.release(self._lease(projection), self.owner)

    async def _run(self) -> None:
        """Rounds until stopped; after an error, the next round waits longer (doubling to
        30 s), the reason logged and, for an unexpected one, the writer degraded until a
        round succeeds (``/readyz``)."""
        backoff = self.interval
        while not self._stop.is_set():
            try:
                await self.run_once()
                backoff = self.interval
                self.part.recovered()
            except (*REDIS_DOWN, rexc.RedisError) as exc:
                log.warning("snapshotter.redis_error", error=str(exc), retry_in=backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception as exc:
                self.part.failed(exc)
                log.exception("snapshotter.restarting", error=str(exc)[:500], retry_in=backoff)
                backoff = min(backoff * 2, 30.0)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), backoff)

    async def run_once(self) -> int:
        """Write every snapshot that is due now, for each projection; returns how many.

        On several partitions there is nothing to do (as-of folds without snapshots there).
        """
        written = 0
        if self.keys.partitions > 1:
            return written
        for projection in self.projections:
            if self._stop.is_set():
                break
            written += await self._catch_up(projection)
        return written

    def _lease(self, projection: Projection) -> str:
        return self.keys.snapshot_lease(projection.name, projection.version)

    async def _hold(self, projection: Projection) -> bool:
        return await self.leases.take(self._lease(projection), self.owner, self.lease_ms)

    async def _catch_up(self, projection: Projection) -> int:
        length = await self.log.length()
        refs = await self.store.refs(projection)
        last = refs[-1] if refs else None
        ordinal = last.ordinal if last else 0
        if length - ordinal < self.every or not await self._hold(projection):
            return 0
        position = last.position if last else None
        # taken out while folding: the fold changes the state in place, so it is kept again
        # only once it stands at a snapshot written
        held = self._held.pop(projection.name, None)
        chain: Chain | None = None
        if last is not None and held is not None and held.at == (last.position, last.ordinal):
            state: State | None = held.state
            chain = held.chain
        else:
            state = None if last is None else await self.store.load(projection, last.position)
            if state is not None and last is not None:
                chain = await self.store.chain(projection, last.position)
        if state is None:  # no snapshot yet (or it vanished): from the start of the log
            state, position, ordinal = projection.initial(), None, 0
        written = 0
        while length - ordinal >= self.every and not self._stop.is_set():
            changed: set[Key] = set()
            state, reached, seen = await fold_log(
                self.log,
                projection,
                state,
                after=position,
                limit=self.every,
                changed=changed,
                lacks_own=position is not None,  # at a snapshot, the state holds none
            )
            if seen < self.every or reached is None:
                return written  # the state went past its snapshot: not kept
            previous = position if self._delta_due(chain) else None
            position, ordinal = reached, ordinal + seen
            done = await self.store.write(
                projection,
                state,
                position,
                ordinal,
                keep=self.keep,
                previous=previous,
                changed=changed,
                sums_k=self.suppression_k,
            )
            chain = (
                Chain(chain.deltas + 1, chain.base_bytes, chain.delta_bytes + done.size)
                if done.delta and chain is not None
                else Chain(0, done.size, 0)
            )
            state.forget(own_kinds(projection))  # the next fold reads back those it needs
            written += 1
            self.written += 1
            log.info(
                "snapshot.written",
                projection=projection.name,
                position=position,
                ordinal=ordinal,
                delta=done.delta,
                bytes=done.size,
            )
            if not await self._hold(projection):
                break
        if position is not None and chain is not None:
            self._held[projection.name] = _Held(position, ordinal, state, chain)
        return written

    def _delta_due(self, chain: Chain | None) -> bool:
        """Whether the next snapshot after one standing at ``chain`` is a delta (else a base)."""
        return (
            chain is not None
            and chain.deltas < self.chain
            and chain.delta_bytes < CHAIN_SHARE * chain.base_bytes
        )


def snapshotter_for(client: aioredis.Redis, settings: Settings) -> Snapshotter | None:
    """The snapshot writer of ``settings`` (``None``: snapshots are off,
    ``LEDGER_SNAPSHOT_EVERY=0``, or the log is partitioned, which snapshots do not cover yet)."""
    if settings.snapshot_every <= 0 or settings.keys.partitioned:
        return None
    return Snapshotter(
        client,
        prefix=settings.keys,
        every=settings.snapshot_every,
        keep=settings.snapshot_keep,
        chain=settings.snapshot_chain,
        suppression_k=settings.suppression_k,
    )
