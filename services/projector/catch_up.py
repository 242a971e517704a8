"""Catching up: a backlog applied from pages of the log read once for every worker of a pool.

A backlog of at least one batch is not read through the consumer group: the pool's shared
reader (:class:`SharedReader`) reads the log once in pages and decodes each entry once for
every worker, and each worker applies the pages after its checkpoint (:class:`CatchUp`) and
commits every ``catch_up_entries`` entries (10,000) or ``catch_up_seconds`` (0.25 s),
whichever comes first. Those commits also move the group's last-delivered id to the new
checkpoint (``XGROUP SETID`` with the new checkpoint's ordinal as the entries-read count,
in the same script: :mod:`services.projector.commit`), which leaves the group exactly as
delivering and acking the entries would have: nothing pending, ``lag`` right. It is only
done while nothing is pending in the group; an entry that fails is left to the classic path
(:mod:`services.projector.worker`): the uncommitted step is undone from the stored view and
redelivered through the group, so deliveries are counted and the dead-letter rule holds.
Following the live log goes the same way, batch by batch (:meth:`CatchUp.follow`): one
blocking ``XREAD`` at the head of the log for every worker of the pool (the others find its
page), each worker's batch committed in one script that moves the group too, so a live batch
costs a worker one script call instead of a group read, a pending check, a script and an
ack. The classic path keeps what it is for: entries pending in the group, poison entries
(their deliveries are counted there), and a worker going carefully after an error.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from typing import TYPE_CHECKING, Final, Literal

import msgspec

from events import Position, position_key
from projections.docs import Docs
from services.projector.collector import pace_collector
from services.projector.commit import Batch
from services.resp import stream_entries
from services.store.log import LogEntry, LogReader, decode_page
from services.store.positions import above
from services.views.fold import fold, stop

if TYPE_CHECKING:
    from services.projector.worker import Worker

__all__ = ["CatchUp", "Followed", "SharedReader"]

Followed = Literal["applied", "idle", "classic"]
"""What :meth:`CatchUp.follow` did: applied and committed new entries, found none within the
block time, or left them to the group's classic path."""

_START: Final = (-1, -1)
"""Sorts before every position: the place before the first entry of the log."""


class _Chunk:
    """Consecutive log entries: every entry after ``after_key`` up to ``last_key``."""

    __slots__ = ("after_key", "entries", "full", "keys", "last_key")

    def __init__(self, after_key: tuple[int, int], entries: list[LogEntry], full: bool) -> None:
        self.after_key = after_key
        self.entries = entries
        self.full = full
        """Whether the read filled its page (the log may go on after it)."""
        self.keys = [position_key(position) for position, _, _ in entries]
        self.last_key = self.keys[-1]


class SharedReader:
    """Reads the log once for every worker of a pool while they catch up.

    Pages of ``size`` entries, each entry decoded once (position key, event and
    ``Recorded`` included), are kept for the ``keep`` most recently used pages; a worker
    asking for the entries after a position inside a kept page gets the rest of that page
    without a read. The log is append-only, so a page never goes stale: entries after its
    last one are simply on the next page. The workers run at different speeds, so a page
    is kept until every one of them has likely passed it; a worker that falls further
    behind reads its pages again. Memory: ``size * keep`` decoded events at most.
    """

    def __init__(self, log: LogReader, size: int, keep: int) -> None:
        self.log = log
        self.size = size
        self.keep = keep
        self._chunks: list[_Chunk] = []
        self._lock = asyncio.Lock()
        self._reading: dict[tuple[int, int], asyncio.Future[tuple[list[LogEntry], bool]]] = {}
        """The read waiting at the head of the log, by the place it reads after."""
        self._head_key = _START
        """The last entry any read found (the log holds at least up to it)."""

    def _keep(self, chunk: _Chunk) -> None:
        self._chunks.append(chunk)
        del self._chunks[: -self.keep]
        self._head_key = max(self._head_key, chunk.last_key)

    def _cached(self, key: tuple[int, int]) -> tuple[list[LogEntry], bool] | None:
        for index, chunk in enumerate(self._chunks):
            if chunk.after_key <= key < chunk.last_key:
                if index != len(self._chunks) - 1:  # most recently used last
                    self._chunks.append(self._chunks.pop(index))
                return chunk.entries[bisect.bisect_right(chunk.keys, key) :], chunk.full
        return None

    async def after(self, position: Position | None) -> tuple[list[LogEntry], bool]:
        """Up to ``size`` entries after ``position`` (``None``: from the start), in log order.

        The flag says whether more may follow at once (the read that found them was full);
        when it is false the entries reach what was the head of the log.
        """
        key = _START if position is None else position_key(position)
        found = self._cached(key)
        if found is not None:
            return found
        async with self._lock:  # a worker at the same place waits, then finds the page
            found = self._cached(key)
            if found is not None:
                return found
            page = await self.log.raw(position, count=self.size)
            entries = decode_page(page)
            if not entries:
                return [], False
            chunk = _Chunk(key, entries, len(page) >= self.size)
            self._keep(chunk)
            return chunk.entries, chunk.full

    async def follow(self, position: Position | None, block_ms: int) -> tuple[list[LogEntry], bool]:
        """As :meth:`after`, but at the head of the log waits up to ``block_ms`` for new
        entries (``XREAD BLOCK``); empty when none came.

        One read waits at the head at a time: the workers at the same place wait for the
        same read and all resume together when it answers (so their commits can go to Redis
        together: :class:`~services.projector.commit.Commits`); a pool reads each new
        stretch of the log once. A worker behind what was already read reads at once.
        """
        key = _START if position is None else position_key(position)
        found = self._cached(key)
        if found is not None:
            return found
        if key < self._head_key:
            return await self.after(position)
        reading = self._reading.get(key)
        if reading is None:
            reading = asyncio.ensure_future(self._read_head(position, key, block_ms))
            self._reading[key] = reading
            reading.add_done_callback(lambda done: self._read_done(key, done))
        # shielded: a worker cancelled while it waits does not cancel the others' read
        return await asyncio.shield(reading)

    def _read_done(
        self, key: tuple[int, int], done: asyncio.Future[tuple[list[LogEntry], bool]]
    ) -> None:
        self._reading.pop(key, None)
        if not done.cancelled():
            done.exception()  # its waiters may all be gone (a pool stopped): not an orphan

    async def _read_head(
        self, position: Position | None, key: tuple[int, int], block_ms: int
    ) -> tuple[list[LogEntry], bool]:
        reply = await self.log.client.xread(
            {self.log.key: position or "0-0"}, count=self.size, block=block_ms
        )
        page = stream_entries(reply)
        entries = decode_page((Position(ident), fields) for ident, fields in page)
        if not entries:
            return [], False
        chunk = _Chunk(key, entries, len(page) >= self.size)
        self._keep(chunk)
        return chunk.entries, chunk.full


class CatchUp:
    """One worker's catch-up through its pool's shared reader (see the module docstring)."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.poison_at: Position | None = None
        """A poison entry the last catch-up stopped at: no catch-up until it is behind the
        checkpoint (the classic path handles it)."""
        self.clean = False
        """Known to have had nothing pending in the group since the last check: a commit that
        moved the group found it so (:meth:`follow`)."""

    async def run(self, docs: Docs[msgspec.Struct]) -> bool:
        """Apply a backlog through the pool's shared reader; whether anything was committed.

        Only with nothing pending in the group (the classic path settles pending entries
        first, in order) and a backlog of at least ``batch_size`` entries (a shorter one is
        the classic path's, which keeps a live follower's batches small). Entries are never
        delivered to the group: each commit instead moves the group's last-delivered id to
        the new checkpoint. A commit happens every ``catch_up_entries`` entries or
        ``catch_up_seconds``, whichever comes first, and at the end of the backlog. An entry
        that fails (does not decode, or ``apply`` raises) is not handled here: the
        uncommitted entries are undone and the worker goes back to the classic path.
        """
        worker = self.worker
        if self.poison_at is not None:
            if above(self.poison_at, worker.checkpoint):
                return False
            self.poison_at = None
        if await worker.group.pending():
            return False
        pool, apply = worker.pool, worker.projection.apply
        position = worker.checkpoint
        uncommitted, committed, since = 0, False, time.monotonic()
        while not pool.stopping:
            await worker.renew_if_due()
            entries, more = await worker.reader.after(position)
            if not entries or (
                not committed and not uncommitted and len(entries) < pool.batch_size
            ):
                break  # no backlog (any more): the classic path follows the log
            pace_collector(following=False)
            worker.in_flight = entries[-1][0]
            await worker.recall(docs, entries)
            stopped = fold(apply, docs, entries, stop)
            if stopped is not None:  # a poison entry: the classic path takes it
                (at, _, _), failure = stopped
                worker.log.info(
                    "projector.catch_up_failed",
                    position=at,
                    error_type=type(failure).__name__,
                    undone=uncommitted,
                )
                await worker.put_back(docs)
                self.poison_at = at
                return committed
            position = entries[-1][0]
            uncommitted += len(entries)
            worker.applied += len(entries)
            at_end = not more
            if (
                at_end
                or uncommitted >= pool.catch_up_entries
                or time.monotonic() - since >= pool.catch_up_seconds
            ):
                moved = await self._commit(docs, position, uncommitted)
                committed, uncommitted, since = True, 0, time.monotonic()
                if not moved:  # something is pending in the group: the classic path settles it
                    return True
            if at_end:
                break
            await asyncio.sleep(0)  # let the other workers and the service run
        if uncommitted and position is not None:
            await self._commit(docs, position, uncommitted)
            committed = True
        return committed

    async def follow(self, docs: Docs[msgspec.Struct]) -> Followed:
        """Apply the next new entries of the log through the pool's shared reader and commit
        them with the group moved, as a catch-up commit does (one read for the pool, one
        script a batch, nothing to ack).

        ``"idle"``: no new entry came within the pool's block time; ``"classic"``: this
        path does not apply, the group's is taken (entries are pending in the group, or a
        poison entry lies ahead: its deliveries are counted there). Whether the group holds
        pending entries is asked once, then known from each commit: a commit that moved the
        group found nothing pending, atomically with the checkpoint it wrote. Entries of
        types the projection does not read are not handed to ``apply``; one that did not
        decode stops the fold whatever its type.
        """
        worker = self.worker
        if self.poison_at is not None:
            if above(self.poison_at, worker.checkpoint):
                return "classic"
            self.poison_at = None
        if not self.clean:
            if await worker.group.pending():
                return "classic"
            self.clean = True
        entries, more = await worker.reader.follow(worker.checkpoint, worker.pool.block_ms)
        if not entries:
            return "idle"
        pace_collector(following=True)
        last = entries[-1][0]
        worker.in_flight = last
        reads = worker.projection.reads
        applied = (
            entries
            if reads is None
            else [e for e in entries if e[1] is None or type(e[1].event) in reads]
        )
        await worker.recall(docs, applied)
        stopped = fold(worker.projection.apply, docs, applied, stop)
        if stopped is not None:  # a poison entry: the classic path takes it
            (at, _, _), failure = stopped
            worker.log.info(
                "projector.follow_failed", position=at, error_type=type(failure).__name__
            )
            await worker.put_back(docs)
            self.poison_at = at
            self.clean = False
            return "classic"
        worker.applied += len(applied)
        if not await self._commit(docs, last, len(entries), together=True):
            self.clean = False
        if more:
            worker.fast_due = True  # a backlog: catch up in larger commits
        return "applied"

    async def _commit(
        self, docs: Docs[msgspec.Struct], last: Position, entries: int, *, together: bool = False
    ) -> bool:
        """Commit what the catch-up applied (``entries`` log entries), moving the group
        (``together``: in one call with the other workers' commits of this turn); whether
        the group moved."""
        worker = self.worker
        batch = Batch(docs.take_changes(), last)
        batch.moved = entries
        result = await worker.commit(batch, last, group=worker.group.name, together=together)
        worker.log.debug("projector.caught_up_to", checkpoint=last, moved=result == 1)
        return result == 1
