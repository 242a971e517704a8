"""One projection's worker: applies the log to its stored view while it holds the lease.

**How work is shared.** A projection (of one log partition) is applied by one process at a
time: the holder of its lease ``<prefix>:lease:<name>:v<version>`` (``SET NX PX``, value =
the consumer name, renewed every third of its time, checked before each read;
:mod:`services.projector.lease`). For each projection the first process to take the lease
works and the others wait and retry, taking over within one lease time when the holder dies
or stops (``stop()`` releases the lease at once). A holder that paused past its lease may
still try to commit: the lease check in the commit script refuses it (and the checkpoint
check would refuse it even if it did not), so it cannot apply anything twice; it then drops
its state and competes again. While idle, the holder also settles entries earlier holders
left pending.

**A term** starts by resolving the view's active generation and loading the view in pages
(:meth:`~services.views.store.ViewStore.load_paged`, each well inside the service's 1 s
socket timeout); that load is not one snapshot, which is safe because only the lease holder
writes the view. The lease is renewed between pages: loading a big view (680,000 incidents
documents on a 1M-event log) takes longer than a lease lasts, and a lease lost at every load
would reload for ever. The worker keeps the view in memory while it holds the lease, all but
its own kinds (most of it: one or more documents per incident), which it neither loads nor
keeps: before entries are applied it reads back those they name, and after a commit it drops
them once it holds more than the pool's ``resident`` (:mod:`services.views.own`): it no
longer holds a document per incident of community-victims and incidents. A backlog is
applied through the pool's shared reader (:mod:`services.projector.catch_up`), and so is
the live log: one blocking read of the log
for every worker of the pool, each batch committed in one script
(:mod:`services.projector.commit`) that also moves the consumer group to the new checkpoint,
so nothing is delivered and nothing is left to ack (:meth:`CatchUp.follow
<services.projector.catch_up.CatchUp.follow>`). While entries are pending in the group, a
poison entry lies ahead or the worker goes carefully, the live log goes through the
consumer group (:mod:`services.projector.group`) in batches, each committed in one script
and acked afterwards. An entry at or below the checkpoint changes nothing and is only
acked, so a redelivery never counts an event twice; an entry is acked only once the
checkpoint covers it, so a crash never loses one.

**Poison entries** (``apply`` refuses an entry, or it does not decode) are undone, redelivered
and, after 3 deliveries, dead-lettered (:mod:`services.projector.poison`).

**Generations.** A rebuild (:mod:`services.projector.replay`) swaps a new generation of the
view in; the commit script checks that the pointer still names the generation the worker
writes, and refuses (:class:`~services.projector.errors.GenerationMovedError`, the worker
reloads) once a rebuild swapped another in.

**Redis unreachable.** A connection error or timeout ends the worker's term: it logs, waits
(0.1 s doubling to 5 s), reloads its view and resumes; the loop never dies of it.

**Anything else unexpected** ends the term too, never the worker: it restarts after the same
back-off, goes carefully, and dead-letters an entry that keeps failing it
(:mod:`services.projector.healing`).

**Ordinals and the group.** The worker knows how many log entries are at or before its
checkpoint (the ordinal, :func:`~services.views.freshness.checked_ordinal` when a term
starts) and writes the new one with every commit, from which the view's lag is computed. At
the start of a term it also sets its consumer group from the checkpoint
(:meth:`~services.projector.group.ConsumerGroup.repair`), and again whenever it is idle and
the group disagrees with it, so ``XINFO GROUPS`` tells the truth; an idle worker checks its
stored ordinal against the log the same way (caught up, it must equal the log's length).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Literal

import msgspec
import redis.exceptions as rexc
import structlog

from events import Position
from projections import Projection
from projections.docs import Docs, Key
from services.projector.catch_up import CatchUp
from services.projector.commit import Batch, Committer
from services.projector.errors import (
    CheckpointMovedError,
    GenerationMovedError,
    LeaseLostError,
    RebalancedError,
)
from services.projector.group import ConsumerGroup, Entries
from services.projector.healing import Healing
from services.projector.poison import MAX_DELIVERIES, apply_entry, put_back
from services.store.connection import REDIS_DOWN
from services.store.log import LogEntry, decode_entry
from services.store.positions import above
from services.views.errors import CorruptViewError, ViewChangedError
from services.views.freshness import checked_ordinal
from services.views.generations import ViewKeys, current_view_keys, view_keys
from services.views.own import OwnDocs

if TYPE_CHECKING:
    from services.projector.pool import ProjectorPool

__all__ = ["MAX_DELIVERIES", "Worker", "WorkerState"]

BACKOFF_START: Final = 0.1
BACKOFF_MAX: Final = 5.0

WorkerState = Literal["idle", "waiting", "running", "restarting", "stopped", "failed"]
"""Where a worker is: not started, waiting for the lease, running, waiting to start a new
term after an unexpected error, stopped; ``failed`` only if its task itself died."""

_log = structlog.get_logger()


class Worker:
    """Applies one projection (of one partition) while holding its lease (module docstring)."""

    def __init__(self, pool: ProjectorPool, projection: Projection, partition: int = 0) -> None:
        self.pool = pool
        self.client = pool.client
        self.projection = projection
        self.partition = partition
        self.name = projection.name
        if pool.keys.partitions > 1:
            self.name = f"{projection.name}:p{partition}"
        self.keys: ViewKeys = view_keys(pool.keys, projection, partition=partition)
        self.reader = pool.readers[partition]
        self.log = _log.bind(
            projection=projection.name, version=projection.version, partition=partition
        )
        self.group = ConsumerGroup(
            self.client,
            self.keys.log,
            self.keys.group,
            pool.consumer,
            batch_size=pool.batch_size,
            claim_idle_ms=pool.claim_idle_ms,
            block_ms=pool.block_ms,
            log=self.log,
        )
        self.state: WorkerState = "idle"
        self.healing = Healing()
        self.docs: Docs[msgspec.Struct] | None = None
        self.checkpoint: Position | None = None
        self.ordinal: int | None = None
        """The log entries at or before :attr:`checkpoint` (known once a term started)."""
        self.in_flight: Position | None = None
        """The last entry of the batch in hand, while one is."""
        self.applied = 0
        self.dead_lettered = 0
        self.catch_up = CatchUp(self)
        self.own = OwnDocs(projection, pool.views, limit=pool.resident)
        """The view's own kinds, held bounded (:mod:`services.views.own`)."""
        self.fast_due = True
        self._renewed_at = 0.0
        self._backoff = BACKOFF_START
        self._committer = Committer(self.client, pool.consumer)

    # --- the loop -------------------------------------------------------------------------

    @property
    def error(self) -> BaseException | None:
        """The last unexpected error the worker restarted after (``None``: none yet)."""
        return self.healing.error

    async def run(self) -> None:
        """Compete for the lease and work while holding it, until the pool stops."""
        pool = self.pool
        try:
            await pool.built()  # a fresh view far behind is built first, as a rebuild
            while not pool.stopping:
                try:
                    if not pool.may_take() or not await self._acquire():
                        self.state = "waiting"
                        await pool.pause(pool.lease_retry)
                        continue
                    self.state = "running"
                    await self._term()
                except (LeaseLostError, CheckpointMovedError, GenerationMovedError) as exc:
                    self.log.info("projector.lease_lost", reason=type(exc).__name__)
                    self._forget()
                except RebalancedError:
                    self.log.info("projector.lease_given_up", share=pool.share)
                    await self._give_up_lease()
                    self._forget()
                    self.state = "waiting"
                    await pool.pause(pool.lease_ms / 1000)
                except REDIS_DOWN as exc:
                    self.log.warning(
                        "projector.redis_unreachable", error=str(exc), retry_in=self._backoff
                    )
                    await self._back_off()
                except rexc.RedisError as exc:  # e.g. OOM, NOGROUP after a group was deleted
                    self.log.warning(
                        "projector.redis_error", error=str(exc), retry_in=self._backoff
                    )
                    await self._back_off()
                except Exception as exc:  # anything else: a new term (healing module)
                    self.healing.failed(exc, self.checkpoint, self.in_flight)
                    self.state = "restarting"
                    self.log.exception(
                        "projector.restarting",
                        error_type=type(exc).__name__,
                        error=str(exc)[:500],
                        checkpoint=self.checkpoint,
                        failures=self.healing.failures,
                        retry_in=self._backoff,
                    )
                    pool.faulted.set()
                    await self._back_off()
        except asyncio.CancelledError:
            self.state = "stopped"
            raise
        except BaseException:
            self.state = "failed"
            self.log.exception("projector.failed")
            raise
        await self._give_up_lease()
        self.state = "stopped"

    def _forget(self) -> None:
        """Drop the in-memory state: the next term reloads it from the stored view."""
        self.docs, self.checkpoint, self.ordinal, self.in_flight = None, None, None, None

    async def _back_off(self) -> None:
        self._forget()
        await self.pool.pause(self._backoff)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX)

    async def _term(self) -> None:
        """One stretch of work under the lease: load, catch up, follow the log."""
        self.keys = await current_view_keys(
            self.client, self.pool.keys, self.projection, partition=self.partition
        )
        built = self.pool.preloaded(self.projection, self.partition, self.keys.generation)
        if built is not None:  # just built by the pool's rebuild: as stored, no need to load
            checkpoint, docs = built
            self.own.loaded(whole=False)  # the rebuild may have dropped own documents
        else:
            try:
                docs, checkpoint = await self.pool.views.load_paged(
                    self.projection,
                    generation=self.keys.generation,
                    partition=self.partition,
                    on_page=self.renew_if_due,  # a big view loads for longer than a lease
                    without=self.projection.own_kinds,
                )
            except ViewChangedError as exc:
                raise CheckpointMovedError(str(exc)) from exc
            self.own.loaded(whole=checkpoint is None)
        if (
            checkpoint is None
        ):  # a new view: its initial documents are written with the first commit
            for kind, by_id in list(docs.kinds().items()):
                for ident, doc in list(by_id.items()):
                    docs.put(kind, ident, doc)
        self.docs, self.checkpoint = docs, checkpoint
        self.ordinal = await checked_ordinal(self.client, self.keys, checkpoint)
        await self.group.start()
        await self.group.repair(checkpoint, self.ordinal)
        self.fast_due = True
        self.log.info(
            "projector.term_started",
            checkpoint=checkpoint,
            ordinal=self.ordinal,
            generation=self.keys.generation,
            consumer=self.pool.consumer,
        )
        while not self.pool.stopping:
            await self.renew_if_due()
            self.in_flight = None
            if self.healing.due(self.checkpoint):
                await self.healing.dead_letter_next(self)
                continue
            careful = self.healing.careful(self.checkpoint)
            self.group.batch_size = 1 if careful else self.pool.batch_size
            entries = await self._next_entries(docs, careful)
            self._backoff = BACKOFF_START
            self.state = "running"
            if entries:
                if len(entries) >= self.pool.batch_size:
                    self.fast_due = True  # a backlog: catch up through the shared reader
                await self._process(docs, entries)
            elif entries is not None:  # idle: settle what earlier holders left pending
                self.healing.recovered()
                if not await self.group.take_over(self.checkpoint):
                    self.ordinal = await checked_ordinal(self.client, self.keys, self.checkpoint)
                    await self.group.settle_counters(self.checkpoint, self.ordinal)

    async def _next_entries(self, docs: Docs[msgspec.Struct], careful: bool) -> Entries | None:
        """Own pending entries first, then reclaimed ones, then new ones (blocking briefly).

        Before new ones, when a backlog is likely, the worker catches up through the
        pool's shared reader, and otherwise follows the log through it (never while
        ``careful``, nor while entries are pending in the group or a poison entry lies
        ahead); ``None`` then says it applied entries that way, ``[]`` that none came.
        """
        entries = await self.group.settled()
        if entries:
            self.catch_up.clean = False
            return entries
        if careful or not self.pool.follow:
            self.catch_up.clean = False
            return await self.group.new()
        if self.fast_due:
            self.fast_due = False
            if await self.catch_up.run(docs):
                return None
        followed = await self.catch_up.follow(docs)
        if followed == "applied":
            return None
        if followed == "idle":
            return []
        return await self.group.new()

    # --- the lease --------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        owner = self.pool.consumer
        taken = await self.pool.leases.take(self.keys.lease, owner, self.pool.lease_ms)
        if taken:
            self._renewed_at = time.monotonic()
            self.log.info("projector.lease_acquired", owner=owner)
        return taken

    async def renew_if_due(self) -> None:
        """Renew the lease when a third of its time has passed; :class:`LeaseLostError` when
        it is gone, :class:`RebalancedError` when the pool holds more than its share."""
        if time.monotonic() - self._renewed_at < self.pool.lease_ms / 3000:
            return
        if self.pool.surplus() is self:
            raise RebalancedError(self.keys.lease)
        pool = self.pool
        if not await pool.leases.renew(self.keys.lease, pool.consumer, pool.lease_ms):
            raise LeaseLostError(self.keys.lease)
        self._renewed_at = time.monotonic()

    async def _give_up_lease(self) -> None:
        with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):
            await self.pool.leases.release(self.keys.lease, self.pool.consumer)

    # --- applying -------------------------------------------------------------------------------

    async def _process(self, docs: Docs[msgspec.Struct], entries: Entries) -> None:
        """Apply one batch, then commit it and ack it (see the module docstring)."""
        if await self.group.take_over(self.checkpoint):
            return
        self.in_flight = Position(entries[-1][0])
        batch = Batch(docs.take_changes(), self.checkpoint)
        todo: list[tuple[LogEntry, Mapping[Any, Any]]] = []
        last = batch.last
        for ident, fields in entries:
            position = Position(ident)
            if not fields or not above(position, last):
                batch.acks.append(ident)  # already in the view, or deleted from the log
                continue
            todo.append((decode_entry(position, fields), fields))
            last = position
        await self.recall(docs, [entry for entry, _ in todo])  # one read for the batch
        for entry, fields in todo:
            await self._apply_entry(docs, batch, entry, fields)
        if batch.last is not None and (
            batch.last != self.checkpoint or batch.changes or batch.dead
        ):
            await self.commit(batch, batch.last)
        if batch.acks:
            await self.group.ack(batch.acks)
        self.log.debug(
            "projector.batch",
            entries=len(entries),
            acked=len(batch.acks),
            dead=len(batch.dead),
            checkpoint=self.checkpoint,
        )

    async def _apply_entry(
        self,
        docs: Docs[msgspec.Struct],
        batch: Batch,
        entry: LogEntry,
        fields: Mapping[Any, Any],
    ) -> None:
        """Apply one entry (:func:`services.projector.poison.apply_entry`)."""
        await apply_entry(self, docs, batch, entry, fields)

    async def recall(self, docs: Docs[msgspec.Struct], entries: Iterable[LogEntry]) -> None:
        """Hold the stored own documents ``entries`` name before they are applied
        (:meth:`OwnDocs.recall <services.views.own.OwnDocs.recall>`).

        A stored document that does not decode is the view's fault, not the entries': as when
        the view does not load, the worker restarts until the view is repaired or rebuilt,
        and no entry is dead-lettered for it (no batch is in hand)."""
        try:
            await self.own.recall(
                docs, entries, generation=self.keys.generation, partition=self.partition
            )
        except CorruptViewError:
            self.in_flight = None
            raise

    async def put_back(
        self,
        docs: Docs[msgspec.Struct],
        changes: Mapping[Key, msgspec.Struct | None] | None = None,
    ) -> None:
        """Undo the uncommitted changes (:func:`services.projector.poison.put_back`)."""
        await put_back(self, docs, changes)

    async def commit(
        self, batch: Batch, last: Position, *, group: str | None = None, together: bool = False
    ) -> int:
        """Write the batch's documents, dead letters and checkpoint ``last`` (with its
        ordinal: the batch moved it past ``batch.moved`` entries) in one step.

        ``group`` (its name) also moves the consumer group to ``last`` (a catch-up).
        ``together`` sends it in one script call with the other workers' commits of this
        turn (:class:`~services.projector.commit.Commits`). Returns the script's answer (1,
        or 2 when the group was to move and did not).
        """
        hook = self.pool.hook
        if hook is not None:
            await hook(self.name, "before_commit")
        ordinal = None if self.ordinal is None else self.ordinal + batch.moved
        result = await self._committer.commit(
            self.keys,
            batch,
            self.checkpoint,
            last,
            ordinal=ordinal,
            group=group,
            together=self.pool.commits[self.partition] if together else None,
        )
        self.checkpoint, self.ordinal = last, ordinal
        if self.docs is not None:  # written: the own documents may be dropped
            self.own.trim(self.docs)
        self.healing.recovered()
        self.pool.progress.set()
        if hook is not None:
            await hook(self.name, "after_commit")
        return result
