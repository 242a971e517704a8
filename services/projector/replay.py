"""Rebuilding a view beside the live one (blue/green), and views as they stood at a position.

``ledger replay <projection>`` folds the whole log into a **new generation** of the view
(``<prefix>:{view:<name>:v<version>:g<N>}:<kind>``, see :mod:`services.views.generations`)
while the live generation keeps serving, then swaps it in:

1. **Build.** A reader of its own (``XRANGE`` in batches, no consumer group) folds the log
   from position 0 in memory and, per batch, flushes the documents the batch changed together
   with the new generation's own checkpoint and its ordinal in one Lua script
   (:data:`~services.projector.replay_scripts.BUILD_SCRIPT`), which
   also records the progress in ``<prefix>:replay:<name>:v<version>``. Once a flush leaves
   more than ``resident`` of the view's own documents in memory (most of a view, one or more
   per incident) they are dropped, and read back from the new generation before a batch that
   names them (:mod:`services.views.own`), so a rebuild's memory does not grow with the log.
   Entries the projection cannot apply are dead-lettered in the same script (unless the
   dead-letter stream or its log already holds them), as the runner does.
2. **Pause the live projector.** The rebuild takes the live view's lease over (the runner's
   next renewal or commit finds it gone, it drops its state and waits): the live checkpoint
   is frozen from here on.
3. **Catch up** with the events that arrived meanwhile, until a read finds nothing new.
4. **Swap** in one Lua script (:data:`~services.projector.replay_scripts.SWAP_SCRIPT`): it
   checks that the lease is still the
   rebuild's, that the pointer still names the generation the rebuild started from and that
   the live checkpoint is at or before the new one; then it moves the projection's consumer
   group to the new checkpoint (``XGROUP SETID``) and flips the pointer. The runner resumes
   on the new generation from its checkpoint: entries delivered before and still pending
   are at or below it and are only acked, later ones are delivered again. No event is lost
   or applied twice, and a reader (which reads the pointer inside its ``MULTI``) sees either
   the old generation or the new one, never a mix.
5. **Release** the lease and ``UNLINK`` the old generation's keys.

The rebuild is **resumable**: killed half-way, the same command finds the record in state
``building`` and goes on from the new generation's own checkpoint. One rebuild per view runs
at a time (the lock ``<prefix>:replay-lock:<name>:v<version>``, renewed per batch). Its
records: :mod:`services.projector.replay_records`.

**Partitions.** On a partitioned log (several partitions, or a Redis Cluster) a view is
kept per partition, each a fold of its own partition's log. A rebuild takes every
partition's lock (``<prefix>:{p<N>}:replay-lock:<name>:v<version>``), writes every
partition's record (``<prefix>:{p<N>}:replay:<name>:v<version>``) for the same new
generation, then runs the steps above for partition 0, then 1, and so on: each partition
view is built from its partition's log, that partition's lease taken over, and its pointer
swapped by the swap script, whose keys (pointer, lease, both metas, the partition's log
with its group, the record) all share the partition's hash tag. The N swaps are therefore
not one atomic step, and need not be: readers merge the partition views, each of which is
a complete fold of its partition at its own checkpoint, whichever generation holds it; so
a reader sees for each partition either its old or its new generation, and both are the
same fold (the new one at least as far along). A rebuild killed between partitions resumes
with the partitions not yet swapped (their records still say ``building``); swapped ones are
skipped. The progress callback counts the events of every partition.

``--until <position|datetime>`` builds the view as it stood at that point under the
generation ``until-<position>`` (the last position it includes) and touches nothing else;
it is read with ``load_view(..., generation="until-<position>")``. On several partitions it
is refused (:class:`~services.projector.replay_records.ReplayPartitionedError`): a single
position names no point of N logs, and views as of a time are what ``GET ...?as_of=``
answers there (:mod:`services.views.asof`).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position
from projections import Projection
from projections.docs import Docs
from services.projector.group import ensure_group
from services.projector.lease import Leases
from services.projector.replay_flush import Flusher
from services.projector.replay_pages import MAX_PAGE, Pages
from services.projector.replay_records import (
    ReplayRecord,
    ReplayRunningError,
    ReplaySwapError,
    combine_records,
    note_error,
    now,
    read_record,
    refuse_until_partitioned,
    start_record,
)
from services.projector.replay_scripts import SWAP_SCRIPT
from services.resp import text
from services.store.keys import Keys
from services.store.log import LogReader
from services.views.fold import FoldRun
from services.views.freshness import checked_ordinal
from services.views.generations import ViewKeys, active_generation, view_keys
from services.views.own import RESIDENT, OwnDocs
from services.views.redis import RedisViewStore

__all__ = ["BatchHook", "ProgressCallback", "Replay", "replay_together", "run_together"]

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (events done, events in total) after each batch."""

BATCH: Final = 50_000
"""Events per batch of a rebuild unless told: each batch's documents are encoded and written
once, with the new checkpoint (the log is read in pages of up to
:data:`~services.projector.replay_pages.MAX_PAGE`)."""

BatchHook = Callable[[int], Any]
"""Awaited after each flushed batch with the batch's number (fault tests raise from it)."""


class Replay:
    """Rebuilds one projection's view, every partition view of it on a partitioned log
    (see the module docstring).

    ``progress`` is called with (done, total) over every partition after each batch;
    ``hook`` is awaited after each flushed batch with its number, counted over every
    partition (fault tests raise from it to kill a rebuild). ``resident``: the own documents
    it holds at most after a flush (:mod:`services.views.own`).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        projection: Projection,
        *,
        prefix: Keys | str = "ledger",
        batch_size: int = BATCH,
        lock_ms: int = 15_000,
        progress: ProgressCallback | None = None,
        hook: BatchHook | None = None,
        pages: Pages | None = None,
        resident: int = RESIDENT,
    ) -> None:
        self.client = client
        self.projection = projection
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.batch_size = batch_size
        self.lock_ms = lock_ms
        self.progress = progress
        self.hook = hook
        self.pages = pages
        """The log's pages, shared with other rebuilds folding beside this one (``None``:
        read on its own)."""
        name, version = projection.name, projection.version
        self.locks = [self.keys.replay_lock(name, version, p) for p in range(self.keys.partitions)]
        self.partition = 0
        """The partition being rebuilt now."""
        self.record_key = self.keys.replay(name, version)
        self.lock_key = self.locks[0]
        self.owner = f"replay:{secrets.token_hex(6)}"
        self.log = log.bind(projection=name, version=version)
        self._swap = client.register_script(SWAP_SCRIPT)
        self.leases = Leases(client)
        self.views = RedisViewStore(client, self.keys)
        self.own = OwnDocs(projection, self.views, limit=resident)
        """The new generation's own kinds, held bounded (:mod:`services.views.own`)."""
        self.flusher = Flusher(client, self.keys, projection, self.owner)
        self.flusher.select(0, self.lock_key, self.record_key, self.log)
        self._lease: str | None = None
        self._held: list[str] = []
        self._done_by = [0] * self.keys.partitions
        self._length_by = [0] * self.keys.partitions
        self.done = 0
        """Events folded into the current partition's new generation."""
        self.total = 0
        """Events in the current partition's log when the last batch was read."""
        self.batches = 0
        self.ordinal = 0
        """The log entries at or before the new generation's checkpoint."""
        self.built: dict[int, tuple[int, Position | None, Docs[msgspec.Struct]]] = {}
        """Per partition swapped in by this run: the generation, its checkpoint and its
        documents as stored (a pool that ran the rebuild starts from them, see
        :meth:`~services.projector.pool.ProjectorPool.preloaded`)."""

    def _select(self, partition: int) -> None:
        """Work on ``partition`` from here on (its record, lock and dead letters)."""
        name, version = self.projection.name, self.projection.version
        self.partition = partition
        self.record_key = self.keys.replay(name, version, partition)
        self.lock_key = self.locks[partition]
        self.log = log.bind(projection=name, version=version)
        if self.keys.partitioned:
            self.log = self.log.bind(partition=partition)
        self.flusher.select(partition, self.lock_key, self.record_key, self.log)

    # --- the locks and the lease -----------------------------------------------------------

    async def _lock(self) -> None:
        """Take every partition's rebuild lock (one rebuild of the view at a time)."""
        for lock in self.locks:
            if not await self.leases.lock(lock, self.owner, self.lock_ms):
                holder = await self.client.get(lock)
                await self._unlock()
                raise ReplayRunningError(
                    f"a rebuild of {self.projection.view} is running "
                    f"(held by {text(holder) if holder else 'someone'}); wait for it, or for "
                    f"its lock to expire within {self.lock_ms / 1000:g} s if its process died"
                )
            self._held.append(lock)

    async def _renew_all(self) -> None:
        for lock in self._held:
            if not await self.leases.renew(lock, self.owner, self.lock_ms):
                raise ReplayRunningError(
                    f"the rebuild lock of {self.projection.view} was taken over"
                )
        if self._lease is not None:
            await self.leases.renew(self._lease, self.owner, self.lock_ms)

    async def _unlock(self) -> None:
        held, self._held = self._held, []
        for lock in held:
            await self.leases.release(lock, self.owner)

    # --- the records -----------------------------------------------------------------------

    async def _record(self, partition: int | None = None) -> ReplayRecord | None:
        key = self.record_key
        if partition is not None:
            key = self.keys.replay(self.projection.name, self.projection.version, partition)
        return await read_record(self.client, key, self.projection)

    async def _start_record(self, partition: int, generation: int) -> ReplayRecord:
        """A fresh record of ``partition`` building ``generation`` (leftovers dropped)."""
        self._select(partition)
        await self.views.drop(self.projection, generation, partition=partition)  # leftovers
        return await start_record(self.client, self.record_key, self.projection, generation)

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> ReplayRecord:
        """Build a new generation (or resume the one in progress), catch up, swap it in;
        partition after partition on a partitioned log."""
        await self._lock()
        try:
            return await self._run()
        except BaseException as exc:
            if not isinstance(exc, ReplayRunningError):
                await note_error(self.client, self.record_key, exc)
            raise
        finally:
            await self._give_back()

    async def _give_back(self) -> None:
        try:
            if self._lease is not None:
                await self.leases.release(self._lease, self.owner)
                self._lease = None
            await self._unlock()
        except (rexc.RedisError, OSError):
            self.log.warning("replay.release_failed")

    async def _run(self) -> ReplayRecord:
        projection = self.projection
        count = self.keys.partitions
        lives = [
            await active_generation(self.client, self.keys, projection, partition=p)
            for p in range(count)
        ]
        records = [await self._record(p) for p in range(count)]
        pending = [
            record.generation
            for live, record in zip(lives, records, strict=True)
            if record is not None and record.state != "done" and record.generation > live
        ]
        if pending:  # a rebuild was killed: resume the partitions it has not swapped yet
            generation = max(pending)
        else:  # plan every partition first, so that a kill leaves each one resumable
            generation = max([*lives, *(r.generation for r in records if r is not None)]) + 1
            records = [await self._start_record(p, generation) for p in range(count)]
            self.log.info("replay.started", generation=generation, live=max(lives))
        for p in range(count):
            self._length_by[p] = await LogReader(self.client, self.keys, p).length()
            record = records[p]
            if record is not None and record.generation == generation:
                self._done_by[p] = record.done
        for p, live in enumerate(lives):
            self._select(p)
            if live >= generation:
                self.log.info("replay.partition_swapped_already", generation=live)
                continue
            record = records[p]
            if record is None or record.generation != generation or record.state == "done":
                record = await self._start_record(p, generation)
                self._done_by[p] = 0
            elif pending:
                self.log.info(
                    "replay.resuming", generation=generation, checkpoint=record.checkpoint
                )
            self.done = record.done
            await self._rebuild(live, generation)
        return await self._result()

    async def _rebuild(self, live_gen: int, generation: int) -> None:
        """Build, catch up and swap in ``generation`` of the current partition's view."""
        projection, partition = self.projection, self.partition
        new = view_keys(self.keys, projection, generation, partition=partition)
        if await self.client.hget(self.record_key, "flushing"):
            # killed while writing a batch in chunks: its documents may be ahead of its
            # checkpoint, so the generation is built again from the start
            self.log.info("replay.restarting_half_flushed", generation=generation)
            await self._start_record(partition, generation)
            self.done = self._done_by[partition] = 0
        docs, checkpoint = await self.views.load_paged(
            projection, generation=generation, partition=partition, without=projection.own_kinds
        )
        self.own.loaded(whole=checkpoint is None)
        self.ordinal = await checked_ordinal(self.client, new, checkpoint)
        fold = FoldRun(projection, docs, fresh=checkpoint is None)
        log = LogReader(self.client, self.keys, partition)
        upper = await log.head() if self.pages is None else await self.pages.head(partition)
        checkpoint = await self._fold(new, fold, checkpoint, upper=upper, progress=True)

        # pause the live projector, catch up to the head as it is now, swap
        live = view_keys(self.keys, projection, live_gen, partition=partition)
        self._lease = live.lease
        await self.leases.seize(live.lease, self.owner, self.lock_ms)
        await self.client.hset(self.record_key, "state", "swapping")
        checkpoint = await self._fold(new, fold, checkpoint, upper=await log.head(), progress=True)
        await ensure_group(self.client, live.log, live.group)
        result = await self._swap(
            keys=[live.pointer, live.lease, live.meta, new.meta, live.log, self.record_key],
            args=[self.owner, str(live_gen), str(generation), live.group, now()],
        )
        if result == -2:  # cannot happen while the lease is ours: the live view is frozen
            raise ReplaySwapError(f"the live view of {projection.view} is ahead of the rebuild")
        if result != 1:
            raise ReplaySwapError(
                f"the swap of {projection.view} was refused ("
                + ("the lease was taken" if result == 0 else "another rebuild swapped first")
                + "); run the command again to resume"
            )
        await self.leases.release(live.lease, self.owner)
        self._lease = None
        self.log.info(
            "replay.swapped", generation=generation, previous=live_gen, checkpoint=checkpoint
        )
        await self.views.drop(projection, live_gen, partition=partition)
        self.built[partition] = (generation, checkpoint, Docs(fold.docs.kinds()))

    async def _result(self) -> ReplayRecord:
        """The record of the finished rebuild (on several partitions: their combination)."""
        parts = [await self._record(p) for p in range(self.keys.partitions)]
        if len(parts) == 1:
            assert parts[0] is not None  # noqa: S101  # the swap script wrote it
            return parts[0]
        return combine_records(self.projection, parts)

    async def build_until(self, until: Position | dt.datetime) -> tuple[str, Position | None]:
        """Build the view as it stood at ``until`` under ``until-<position>``; touch nothing else.

        Returns the generation's name and its checkpoint (``None``: nothing was logged by then).
        Re-running with the same bound continues (or finds finished) the same generation.
        :class:`ReplayPartitionedError` on several partitions.
        """
        refuse_until_partitioned(self.keys)
        bound = await self._bound(until)
        name = f"until-{bound or '0-0'}"
        await self._lock()
        try:
            keys = view_keys(self.keys, self.projection, name)
            docs, checkpoint = await self.views.load_paged(
                self.projection, generation=name, without=self.projection.own_kinds
            )
            self.own.loaded(whole=checkpoint is None)
            self.ordinal = await checked_ordinal(self.client, keys, checkpoint)
            fold = FoldRun(self.projection, docs, fresh=checkpoint is None)
            if bound is not None:
                checkpoint = await self._fold(keys, fold, checkpoint, upper=bound, progress=False)
            self.log.info("replay.until_built", generation=name, checkpoint=checkpoint)
            return name, checkpoint
        finally:
            await self._give_back()

    async def _bound(self, until: Position | dt.datetime) -> Position | None:
        """The last log position at or before ``until`` (``None``: none)."""
        if isinstance(until, dt.datetime):
            millis = int(until.timestamp() * 1000)
            top = f"{millis}-18446744073709551615"
        else:
            top = until
        return await LogReader(self.client, self.keys).last_at(top)

    # --- folding and flushing -------------------------------------------------------------------

    async def _fold(
        self,
        keys: ViewKeys,
        fold: FoldRun,
        checkpoint: Position | None,
        *,
        upper: Position | None = None,
        progress: bool,
    ) -> Position | None:
        """Fold and flush batch after batch of the partition's log up to ``upper`` (its head
        as read); ``progress``: record the progress in the rebuild's record.

        Bounded by a position read beforehand, so a log that keeps growing cannot keep the
        rebuild from finishing: what arrives later is folded by the next phase or, after the
        swap, by the runner.
        """
        log = LogReader(self.client, self.keys, keys.partition)
        self.total = max(await log.length(), self.done)
        self._length_by[self.partition] = self.total
        if fold.pending and checkpoint is None:  # initial documents of a fresh view
            record = self._record_fields(None, progress)
            await self.flusher.flush(keys, fold, None, None, ordinal=0, record=record, failed={})
        if upper is None:  # an empty log
            return checkpoint
        shared = self.pages is not None
        pages = self.pages or Pages(self.client, self.keys, keep=2)
        size = min(self.batch_size, MAX_PAGE)
        after, folded = checkpoint, 0
        failed: dict[Position, Mapping[Any, Any]] = {}
        try:
            while True:
                await self._renew_all()
                page, entries = await pages.page(keys.partition, after, upper, size, reader=self)
                if page:
                    known = len(fold.failures)
                    await self.own.recall(
                        fold.docs, entries, generation=keys.generation, partition=keys.partition
                    )
                    fold.apply_all(entries)
                    if len(fold.failures) > known:  # dead letters keep the entries' fields
                        stored = dict(page)
                        for position, _ in fold.failures[known:]:
                            failed[position] = stored[position]
                    after = page[-1][0]
                    folded += len(page)
                    self.done += len(page)
                end = len(page) < size or after == upper
                if folded and (end or folded >= self.batch_size):
                    assert after is not None  # noqa: S101  # something was folded
                    checkpoint = await self._flush(
                        keys,
                        fold,
                        checkpoint,
                        after,
                        folded=folded,
                        failed=failed,
                        progress=progress,
                    )
                    folded, failed = 0, {}
                    self.own.trim(fold.docs)
                    await self._after_batch()
                if end:
                    return checkpoint
        finally:
            if shared:
                pages.leave(self)
            else:
                pages.close()

    async def _flush(
        self,
        keys: ViewKeys,
        fold: FoldRun,
        checkpoint: Position | None,
        last: Position,
        *,
        folded: int,
        failed: dict[Position, Mapping[Any, Any]],
        progress: bool,
    ) -> Position:
        """Write what the batch of ``folded`` entries up to ``last`` changed, with the new
        checkpoint; returns it."""
        self.total = max(self.total, self.done)
        self._done_by[self.partition] = self.done
        self._length_by[self.partition] = self.total
        record = self._record_fields(last, progress)
        ordinal = self.ordinal + folded
        await self.flusher.flush(
            keys, fold, checkpoint, last, ordinal=ordinal, record=record, failed=failed
        )
        self.ordinal = ordinal
        return last

    async def _after_batch(self) -> None:
        self.batches += 1
        if self.progress is not None:
            done = sum(self._done_by)
            self.progress(done, max(sum(self._length_by), done))
        if self.hook is not None:
            await self.hook(self.batches)

    def _record_fields(self, last: Position | None, progress: bool) -> list[str]:
        """The progress a flush records in the rebuild's record (none: ``progress`` off)."""
        if not progress:
            return []
        return ["done", str(self.done), "total", str(self.total), "checkpoint", last or ""]


async def replay_together(
    client: aioredis.Redis,
    projections: list[Projection],
    *,
    prefix: Keys | str = "ledger",
    batch_size: int = BATCH,
    progress: ProgressCallback | None = None,
    resident: int = RESIDENT,
) -> list[ReplayRecord | Exception]:
    """Rebuild several views side by side from one read of the log: per view, in order, its
    record or the error its rebuild stopped on (``resident``: as :class:`Replay`'s).

    Each view is rebuilt as :class:`Replay` does (its own lock, generation, swap), all at
    once, sharing the pages of the log (:class:`~services.projector.replay_pages.Pages`):
    each page is read and decoded once for every view. ``progress`` is called with the
    events done and in total summed over the views. A rebuild that fails does not stop the
    others; running it again resumes it.
    """
    done = [0] * len(projections)
    totals = [0] * len(projections)

    def reporter(index: int) -> ProgressCallback | None:
        if progress is None:
            return None
        report = progress

        def update(one_done: int, one_total: int) -> None:
            done[index], totals[index] = one_done, one_total
            report(sum(done), sum(totals))

        return update

    pages = Pages(client, prefix, keep=2 + 2 * len(projections))
    jobs = [
        Replay(
            client,
            projection,
            prefix=prefix,
            batch_size=batch_size,
            progress=reporter(index),
            pages=pages,
            resident=resident,
        )
        for index, projection in enumerate(projections)
    ]
    return await run_together(jobs)


async def run_together(jobs: list[Replay]) -> list[ReplayRecord | Exception]:
    """Run rebuilds side by side (sharing their :attr:`Replay.pages`, if they were given the
    same): per rebuild, in order, its record or the error it stopped on."""
    try:
        results = await asyncio.gather(*(job.run() for job in jobs), return_exceptions=True)
    finally:
        for pages in {id(job.pages): job.pages for job in jobs if job.pages}.values():
            pages.close()
    found: list[ReplayRecord | Exception] = []
    for result in results:
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # cancelled, interrupted: not a rebuild's own failure
        found.append(result)
    return found
