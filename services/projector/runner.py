"""The projection runner: folds the log into stored views, exactly once, surviving crashes.

One :class:`ProjectorPool` per process runs one worker task per projection. A worker reads
the log through its projection's consumer group ``projector:<name>:v<version>`` (created
by us at id ``0`` so an existing history is delivered too), applies each batch in memory to
the projection's :class:`~projections.docs.Docs`, and then commits.

**The commit is one Lua script** (:data:`COMMIT_SCRIPT`) that writes the documents the batch
changed (``HSET``/``HDEL`` on the view's kind hashes), any dead letters (``XADD`` to
``<prefix>:dlq``), the new checkpoint (field ``position`` of the view's meta hash) and a
record of which documents changed (the view's changes stream, which readers follow), and
only does so when (a) the lease is still the worker's and (b) the stored checkpoint is still
the one the worker's state was built on. The entries are ``XACK``-ed after the commit. An
entry at or below the checkpoint changes nothing and is only acked, so a redelivery (a crash
between commit and ack, a reclaim, a restart) never counts an event twice; an entry is acked
only once the checkpoint covers it, so a crash never loses one.

**Order.** The checkpoint is a single position, so entries must be applied in log order with
no gap: an entry left pending below a newer applied one would later look "at or below the
checkpoint" and be skipped. A worker therefore reads its own pending entries first
(``XREADGROUP`` at id ``0``), then reclaims entries idle for ``claim_idle_ms`` on dead
consumers (``XAUTOCLAIM``), then new ones (``>``). Before it applies any batch it checks the
group's pending summary: an entry above the checkpoint still pending on *another* consumer
was delivered to an earlier lease holder (one that crashed, or paused until its lease
expired) and precedes what was just read. The worker takes such entries over at once
(``XCLAIM … JUSTID``, whatever their idle time: their consumer can no longer commit) and
re-reads its own pending entries from ``0`` in log order; entries at or below the checkpoint
pending elsewhere are simply acked.

**How work is shared.** A projection is applied by one process at a time: the holder of its
lease ``<prefix>:lease:<name>:v<version>`` (``SET NX PX``, value = the consumer name, renewed
by a compare-and-``PEXPIRE`` script every third of its time, checked before each read).
Several processes can run pools over the same prefix; for each projection the first to take
the lease works and the others wait and retry, taking over within one lease time when the
holder dies or stops (``stop()`` releases the lease at once). Different projections may be
held by different processes. A holder that paused past its lease may still try to commit:
the lease check in the commit script refuses it (and the checkpoint check would refuse it
even if it did not), so it cannot apply anything twice; it then drops its state and competes
again. While idle, the holder also settles entries earlier holders left pending.

**Poison entries.** ``apply`` may update the state in place, so when it raises (or the entry
does not decode) the worker undoes exactly what that one entry touched: every key the failed
``apply`` changed goes back to its value after the batch's earlier entries (which the worker
keeps, per key, for the commit anyway) or, for keys the batch had not changed, to the
committed value read back from the view. This costs a lookup of a few keys, never a copy of
the state. The entry is then redelivered to the same worker (``XCLAIM``, which counts a
delivery) and applied again; once ``XPENDING`` counts 3 deliveries it goes to the dead-letter
stream with its error, the projection's name and its original fields, in the same commit that
moves the checkpoint past it, and the worker goes on with later events.

**Generations.** A view may be rebuilt beside the live one (:mod:`services.projector.replay`); the
pointer ``<prefix>:viewptr:<name>:v<version>`` names the active generation. A worker resolves
it whenever it starts a term (after taking the lease, after any error) and writes to that
generation only: the commit script also checks that the pointer still names it, and refuses
(:class:`GenerationMovedError`, the worker reloads) once a rebuild swapped another in.

**Catching up.** A backlog of at least one batch is not read through the group: the pool's
shared reader (:class:`_Reader`) ``XRANGE``s the log once in pages and decodes each entry
once for every worker, and each worker applies the pages after its checkpoint and commits
every ``catch_up_entries`` entries (10,000) or ``catch_up_seconds`` (0.25 s), whichever
comes first. Those commits also move the group's last-delivered id to the new checkpoint
(``XGROUP SETID`` with the entries-read count, in the same script), which leaves the group
exactly as delivering and acking the entries would have: nothing pending, ``lag`` right.
It is only done while nothing is pending in the group; an entry that fails is left to the
classic path above (the uncommitted step is undone from the stored view and redelivered
through the group, so deliveries are counted and the dead-letter rule holds). Following the
live log uses the classic path with its small batches (latency).

**Big views.** A term starts by loading the view in ``HSCAN`` pages
(:func:`services.views.stored.load_view_paged`), each well inside the service's 1 s socket timeout;
that load is not one snapshot, which is safe because only the lease holder writes the view.
The lease is renewed between pages: loading a big view (680,000 incidents documents on a
1M-event log) takes longer than a lease lasts, and a lease lost at every load would reload
for ever. The worker keeps the whole view in memory while it holds the lease, measured at about
2.5 kB per incidents document, 0.9 kB per community-victims document, 0.5 kB per
alignment document and 0.2 kB per country-stance document (so about 2 GB for the incidents
view of a 1M-event log).

**Redis unreachable.** A connection error or timeout ends the worker's term: it logs, waits
(0.1 s doubling to 5 s), reloads its view and resumes; the loop never dies of it.

The commit script touches the lease and the dead-letter stream besides the view's own keys
(which share the hash tag ``{view:<name>:v<version>}``); that is fine on one Redis server.
On a Redis Cluster those two keys would have to move under the view's hash tag.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import gc
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import AnyEvent, Position, Recorded, from_fields, position_key, recorded_at_of
from projections import PROJECTIONS, Projection
from projections.docs import Docs, Key
from services.errors import LedgerError
from services.logging import configure_logging
from services.runtime.checks import check_redis
from services.settings import load_settings
from services.signals import stop_on_signals
from services.store.keys import Keys
from services.store.redis import BULK_SOCKET_TIMEOUT, connect, learn_slots
from services.views.stored import (
    CHECKPOINT_FIELD,
    LUA_WRITE_DOCS,
    VIEW_PAGE,
    ViewChangedError,
    ViewKeys,
    current_view_keys,
    decode_doc,
    doc_change_args,
    load_view_paged,
    view_keys,
)

__all__ = [
    "COLLECTOR_THRESHOLDS",
    "COMMIT_SCRIPT",
    "MAX_DELIVERIES",
    "CheckpointMovedError",
    "GenerationMovedError",
    "LeaseLostError",
    "ProjectionStatus",
    "ProjectorFailedError",
    "ProjectorPool",
    "RunnerError",
    "Step",
    "StepHook",
    "main",
    "parser",
    "serve_projectors",
    "tune_collector",
]

MAX_DELIVERIES: Final = 3
"""Deliveries after which an entry that cannot be applied goes to the dead-letter stream."""

BACKOFF_START: Final = 0.1
BACKOFF_MAX: Final = 5.0

Step = Literal["before_commit", "after_commit"]
"""Points of a batch a :data:`StepHook` is called at (``after_commit`` comes before the ack)."""

StepHook = Callable[[str, Step], Awaitable[None]]
"""Called with the projection's name at each :data:`Step`; fault tests raise from it."""

_REDIS_DOWN: Final = (rexc.ConnectionError, rexc.TimeoutError, OSError)

_log = structlog.get_logger()

COLLECTOR_THRESHOLDS: Final = (50_000, 20, 10)
"""The cyclic garbage collector's thresholds in a process that folds (:func:`tune_collector`)."""


def tune_collector() -> None:
    """Run the cyclic garbage collector's young generation every 50,000 allocations, not 700.

    A fold allocates many short-lived containers (decoded entries, changed keys, a document's
    dicts) while it keeps a whole view alive: with the default thresholds the collector ran
    so often that it cost a fifth of a catch-up, even with the documents themselves untracked
    (``gc=False``, :class:`projections.docs.Doc`). Called once by each process's wiring.
    """
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


class RunnerError(LedgerError):
    """Root of the projection runner's errors."""


class LeaseLostError(RunnerError):
    """Raised inside a worker when its lease turns out to be another's (or gone).

    The lease expired while the worker was paused or cut off and another process took it.
    The worker drops its state and competes for the lease again; nothing was committed.
    """


class CheckpointMovedError(RunnerError):
    """Raised inside a worker when the stored checkpoint is not the one its state is built on.

    Something else committed to the view since the worker loaded it; the worker reloads.
    """


class GenerationMovedError(RunnerError):
    """Raised inside a worker when its view's active generation is no longer the one it writes.

    A rebuild (:mod:`services.projector.replay`) swapped a new generation in; the worker reloads the
    new one and goes on from its checkpoint.
    """


class RebalancedError(RunnerError):
    """Raised inside a worker whose pool holds more than its fair share of the leases.

    Another projector process joined: the worker gives its lease up so that process can
    take it (see :meth:`ProjectorPool.surplus`).
    """


class ProjectorFailedError(RunnerError):
    """Raised by :meth:`ProjectorPool.run_until_caught_up` and by a projector process
    (:func:`serve_projectors`, which then exits for its supervisor to restart it) when a
    worker stopped on an error.

    The error is not one of Redis being unreachable (those are retried): a stored view that
    no longer decodes, or a fault injected by a test. The cause is chained.
    """


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projection's stored view stands."""

    name: str
    version: int
    position: Position | None
    """The view's checkpoint: the last log position it includes."""
    lag: int
    """Log entries after the checkpoint, not yet in the view."""
    pending: int
    """Entries delivered to the projection's consumer group and not yet acked."""
    holder: str | None
    """The consumer holding the projection's lease, if any."""
    state: Literal["idle", "waiting", "running", "stopped", "failed"]
    """This pool's worker for the projection: waiting for the lease, running, …."""
    generation: int = 0
    """The active generation of the view (see :mod:`services.views.stored`)."""
    partition: int = 0
    """The log partition the view folds (0 on one partition)."""


# --- Lua ------------------------------------------------------------------------------------

COMMIT_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- KEYS: lease, meta, dlq, view pointer, log, changes stream, then the view's kind hashes
--   this commit writes.
-- ARGV: owner, expected checkpoint ('' for none), new checkpoint, the generation the worker
--   writes to, the consumer group to move ('' to leave it alone), the group's expected
--   last-delivered id and its entries-read count at the new checkpoint ('' when unknown),
--   the number of dead letters D, then per kind hash what write_docs reads (its kind,
--   puts P, deletes R, P (id, json) pairs, R ids), then per dead letter: pairs F, F pairs.
-- Returns 1 when committed, 2 when committed but the group was left where it was (entries
-- are pending in it, or it is already past the new checkpoint), 0 when the lease is not
-- the owner's, -1 when the checkpoint moved, -2 when the generation is no longer active.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[4]) or '0') ~= ARGV[4] then return -2 end
local current = redis.call('HGET', KEYS[2], 'position')
if (current or '') ~= ARGV[2] then return -1 end
local i, listed = write_docs(7, 9, {})
record_changes(KEYS[6], ARGV[2], ARGV[3], listed)
for _ = 1, tonumber(ARGV[8]) do
  local npairs = tonumber(ARGV[i])
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, i + 1, i + 2 * npairs))
  i = i + 1 + 2 * npairs
end
redis.call('HSET', KEYS[2], 'position', ARGV[3])
if ARGV[5] == '' then return 1 end
local function newer(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[5])) do
  local info = {}
  for x = 1, #group, 2 do info[group[x]] = group[x + 1] end
  if info['name'] == ARGV[5] then
    local last = info['last-delivered-id']
    if info['pending'] ~= 0 or not newer(ARGV[3], last) then return 2 end
    if ARGV[7] ~= '' and last == ARGV[6] then
      redis.call('XGROUP', 'SETID', KEYS[5], ARGV[5], ARGV[3], 'ENTRIESREAD', ARGV[7])
    else
      redis.call('XGROUP', 'SETID', KEYS[5], ARGV[5], ARGV[3])
    end
    return 1
  end
end
return 2
"""
)

RENEW_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

RELEASE_SCRIPT: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


# --- small helpers ----------------------------------------------------------------------------


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _entries(reply: Any) -> list[tuple[str, Mapping[Any, Any]]]:
    """The entries of a one-stream ``XREADGROUP`` reply, whatever RESP shape it came in."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, Mapping) else (r[1] for r in reply)
    found: list[tuple[str, Mapping[Any, Any]]] = []
    for entries in streams:
        for entry in entries:
            # RESP3 nests a stream's entries one level deeper.
            items = entry if entry and isinstance(entry[0], list | tuple) else [entry]
            found.extend((_text(ident), fields or {}) for ident, fields in items)
    return found


def _above(position: str, checkpoint: Position | None) -> bool:
    return checkpoint is None or position_key(position) > position_key(checkpoint)


def _default_consumer() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class _Batch:
    """What one batch leaves to commit: changed documents, dead letters, entries to ack."""

    __slots__ = ("acks", "changes", "dead", "last")

    def __init__(self, changes: dict[Key, msgspec.Struct | None], last: Position | None) -> None:
        self.changes = changes
        self.dead: list[list[bytes | str]] = []
        self.acks: list[str] = []
        self.last = last


_Entry = tuple[Position, Recorded | None, Exception | None]
"""A log entry as the shared reader hands it out: position, decoded event or the decode error."""

_START: Final = (-1, -1)
"""Sorts before every position: the place before the first entry of the log."""


class _Chunk:
    """Consecutive log entries: every entry after ``after_key`` up to ``last_key``."""

    __slots__ = ("after_key", "entries", "full", "keys", "last_key")

    def __init__(self, after_key: tuple[int, int], entries: list[_Entry], full: bool) -> None:
        self.after_key = after_key
        self.entries = entries
        self.full = full
        """Whether the read filled its page (the log may go on after it)."""
        self.keys = [position_key(position) for position, _, _ in entries]
        self.last_key = self.keys[-1]


class _Reader:
    """Reads the log once for every worker of a pool while they catch up.

    ``XRANGE`` pages of ``size`` entries, each entry decoded once (position key, event and
    ``Recorded`` included), are kept for the ``keep`` most recently used pages; a worker
    asking for the entries after a position inside a kept page gets the rest of that page
    without a read. The log is append-only, so a page never goes stale: entries after its
    last one are simply on the next page. The workers run at different speeds, so a page
    is kept until every one of them has likely passed it; a worker that falls further
    behind reads its pages again. Memory: ``size * keep`` decoded events at most.
    """

    def __init__(self, client: aioredis.Redis, log_key: str, size: int, keep: int) -> None:
        self.client = client
        self.log_key = log_key
        self.size = size
        self.keep = keep
        self._chunks: list[_Chunk] = []
        self._lock = asyncio.Lock()

    def _cached(self, key: tuple[int, int]) -> tuple[list[_Entry], bool] | None:
        for index, chunk in enumerate(self._chunks):
            if chunk.after_key <= key < chunk.last_key:
                if index != len(self._chunks) - 1:  # most recently used last
                    self._chunks.append(self._chunks.pop(index))
                return chunk.entries[bisect.bisect_right(chunk.keys, key) :], chunk.full
        return None

    async def after(self, position: Position | None) -> tuple[list[_Entry], bool]:
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
            start = "-" if position is None else f"({position}"
            page = await self.client.xrange(self.log_key, start, "+", count=self.size)
            if not page:
                return [], False
            entries = [_decoded(ident, fields or {}) for ident, fields in page]
            chunk = _Chunk(key, entries, len(entries) >= self.size)
            self._chunks.append(chunk)
            del self._chunks[: -self.keep]
            return chunk.entries, chunk.full


def _decoded(ident: Any, fields: Mapping[Any, Any]) -> _Entry:
    position = Position(_text(ident))
    try:
        event: AnyEvent = from_fields(fields)
    except Exception as exc:  # applied as a poison entry by the worker's classic path
        return position, None, exc
    return position, Recorded(position, recorded_at_of(position), event), None


# --- one projection's worker ----------------------------------------------------------------


class _Worker:
    """Applies one projection while holding its lease (see the module docstring)."""

    def __init__(self, pool: ProjectorPool, projection: Projection, partition: int = 0) -> None:
        self.pool = pool
        self.client = pool.client
        self.projection = projection
        self.partition = partition
        self.name = projection.name
        if pool.keys.partitions > 1:
            self.name = f"{projection.name}:p{partition}"
        self.keys: ViewKeys = view_keys(pool.keys, projection, partition=partition)
        self.log_key = self.keys.log
        self.dlq_key = self.keys.dlq
        self.reader = pool.readers[partition]
        self.log = _log.bind(
            projection=projection.name, version=projection.version, partition=partition
        )
        self.state: Literal["idle", "waiting", "running", "stopped", "failed"] = "idle"
        self.error: BaseException | None = None
        self.docs: Docs[msgspec.Struct] | None = None
        self.checkpoint: Position | None = None
        self.applied = 0
        self.dead_lettered = 0
        self._own_cursor: str | None = "0"
        self._claim_cursor: str | None = "0-0"
        self._fast_due = True
        self._poison_at: Position | None = None
        self._renewed_at = 0.0
        self._backoff = BACKOFF_START
        self._commit = self.client.register_script(COMMIT_SCRIPT)
        self._renew = self.client.register_script(RENEW_SCRIPT)
        self._release = self.client.register_script(RELEASE_SCRIPT)

    # --- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        """Compete for the lease and work while holding it, until the pool stops."""
        pool = self.pool
        try:
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
                except _REDIS_DOWN as exc:
                    self.log.warning(
                        "projector.redis_unreachable", error=str(exc), retry_in=self._backoff
                    )
                    self._forget()
                    await pool.pause(self._backoff)
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX)
                except rexc.RedisError as exc:  # e.g. OOM, NOGROUP after a group was deleted
                    self.log.warning(
                        "projector.redis_error", error=str(exc), retry_in=self._backoff
                    )
                    self._forget()
                    await pool.pause(self._backoff)
                    self._backoff = min(self._backoff * 2, BACKOFF_MAX)
        except asyncio.CancelledError:
            self.state = "stopped"
            raise
        except Exception as exc:
            self.state = "failed"
            self.error = exc
            self.log.exception("projector.failed")
            raise
        await self._give_up_lease()
        self.state = "stopped"

    def _forget(self) -> None:
        """Drop the in-memory state: the next term reloads it from the stored view."""
        self.docs, self.checkpoint = None, None

    async def _term(self) -> None:
        """One stretch of work under the lease: load, catch up, follow the log."""
        self.keys = await current_view_keys(
            self.client, self.pool.keys, self.projection, partition=self.partition
        )
        try:
            docs, checkpoint = await load_view_paged(
                self.pool.load_client,
                self.pool.keys,
                self.projection,
                generation=self.keys.generation,
                page=self.pool.load_page,
                partition=self.partition,
                on_page=self._renew_if_due,  # a big view loads for longer than a lease
            )
        except ViewChangedError as exc:
            raise CheckpointMovedError(str(exc)) from exc
        if (
            checkpoint is None
        ):  # a new view: its initial documents are written with the first commit
            for kind, by_id in list(docs.kinds().items()):
                for ident, doc in list(by_id.items()):
                    docs.put(kind, ident, doc)
        self.docs, self.checkpoint = docs, checkpoint
        await self._ensure_group()
        await self._forget_idle_consumers()
        self._own_cursor, self._claim_cursor = "0", "0-0"
        self._fast_due = True
        self.log.info(
            "projector.term_started",
            checkpoint=checkpoint,
            generation=self.keys.generation,
            consumer=self.pool.consumer,
        )
        while not self.pool.stopping:
            await self._renew_if_due()
            entries = await self._next_entries(docs)
            self._backoff = BACKOFF_START
            if entries:
                if len(entries) >= self.pool.batch_size:
                    self._fast_due = True  # a backlog: catch up through the shared reader
                await self._process(docs, entries)
            elif entries is not None:  # idle: settle what earlier holders left pending
                await self._take_over_stragglers()

    # --- the lease --------------------------------------------------------------------------

    async def _acquire(self) -> bool:
        owner, ttl = self.pool.consumer, self.pool.lease_ms
        taken = await self.client.set(self.keys.lease, owner, nx=True, px=ttl)
        if not taken:  # ours already (a restart under the same consumer name)?
            taken = bool(await self._renew(keys=[self.keys.lease], args=[owner, ttl]))
        if taken:
            self._renewed_at = time.monotonic()
            self.log.info("projector.lease_acquired", owner=owner)
        return bool(taken)

    async def _renew_if_due(self) -> None:
        if time.monotonic() - self._renewed_at < self.pool.lease_ms / 3000:
            return
        if self.pool.surplus() is self:
            raise RebalancedError(self.keys.lease)
        renewed = await self._renew(
            keys=[self.keys.lease], args=[self.pool.consumer, self.pool.lease_ms]
        )
        if not renewed:
            raise LeaseLostError(self.keys.lease)
        self._renewed_at = time.monotonic()

    async def _give_up_lease(self) -> None:
        with contextlib.suppress(*_REDIS_DOWN, rexc.RedisError):
            await self._release(keys=[self.keys.lease], args=[self.pool.consumer])

    # --- reading ------------------------------------------------------------------------------

    async def _ensure_group(self) -> None:
        try:
            await self.client.xgroup_create(
                self.log_key, self.keys.group, id="0", mkstream=True, entries_read=0
            )
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _forget_idle_consumers(self) -> None:
        """Delete other consumers of the group with nothing pending and idle past the threshold."""
        for info in await self.client.xinfo_consumers(self.log_key, self.keys.group):
            name = _text(info["name"])
            idle = int(info.get("inactive", info.get("idle", 0)) or 0)
            if (
                name != self.pool.consumer
                and not info["pending"]
                and idle > self.pool.claim_idle_ms
            ):
                await self.client.xgroup_delconsumer(self.log_key, self.keys.group, name)

    async def _next_entries(
        self, docs: Docs[msgspec.Struct]
    ) -> list[tuple[str, Mapping[Any, Any]]] | None:
        """Own pending entries first, then reclaimed ones, then new ones (blocking briefly).

        Before new ones, when a backlog is likely, the worker catches up through the
        pool's shared reader (:meth:`_catch_up`); ``None`` then says it did.
        """
        pool = self.pool
        if self._own_cursor is not None:
            reply = await self.client.xreadgroup(
                self.keys.group,
                pool.consumer,
                {self.log_key: self._own_cursor},
                count=pool.batch_size,
            )
            entries = _entries(reply)
            if entries:
                self._own_cursor = entries[-1][0]
                return entries
            self._own_cursor = None
        while self._claim_cursor is not None:
            cursor, claimed, *_ = await self.client.xautoclaim(
                self.log_key,
                self.keys.group,
                pool.consumer,
                pool.claim_idle_ms,
                start_id=self._claim_cursor,
                count=pool.batch_size,
            )
            cursor = _text(cursor)
            self._claim_cursor = None if cursor == "0-0" else cursor
            found = [(_text(i), f or {}) for i, f in claimed if i is not None]
            if found:
                self.log.info("projector.reclaimed", entries=len(found))
                return found
        if self._fast_due:
            self._fast_due = False
            if await self._catch_up(docs):
                return None
        reply = await self.client.xreadgroup(
            self.keys.group,
            pool.consumer,
            {self.log_key: ">"},
            count=pool.batch_size,
            block=pool.block_ms,
        )
        return _entries(reply)

    async def _take_over_stragglers(self) -> bool:
        """Take over entries above the checkpoint pending on other consumers (see the docstring).

        Returns whether any were taken: the batch in hand is then left pending and the own
        pending entries are read again from ``0``, in log order.
        """
        summary = await self.client.xpending(self.log_key, self.keys.group)
        others = [
            _text(c["name"])
            for c in summary.get("consumers") or []
            if _text(c["name"]) != self.pool.consumer and int(c["pending"])
        ]
        taken = 0
        for consumer in others:
            pending = await self.client.xpending_range(
                self.log_key, self.keys.group, "-", "+", self.pool.batch_size, consumer
            )
            ids = [_text(p["message_id"]) for p in pending]
            done = [i for i in ids if not _above(i, self.checkpoint)]
            ahead: list[Any] = [i for i in ids if _above(i, self.checkpoint)]
            if done:
                await self.client.xack(self.log_key, self.keys.group, *done)
            if ahead:
                await self.client.xclaim(
                    self.log_key, self.keys.group, self.pool.consumer, 0, ahead, justid=True
                )
                taken += len(ahead)
                self.log.info("projector.took_over", consumer=consumer, entries=len(ahead))
        if taken:
            self._own_cursor = "0"
        return taken > 0

    # --- catching up ----------------------------------------------------------------------------

    async def _group_info(self) -> Mapping[str, Any] | None:
        for group in await self.client.xinfo_groups(self.log_key):
            if _text(group["name"]) == self.keys.group:
                return dict(group)
        return None

    async def _catch_up(self, docs: Docs[msgspec.Struct]) -> bool:
        """Apply a backlog through the pool's shared reader; whether anything was committed.

        Only with nothing pending in the group (the classic path settles pending entries
        first, in order) and a backlog of at least ``batch_size`` entries (a shorter one is
        the classic path's, which keeps a live follower's batches small). Entries come from
        ``XRANGE`` after the checkpoint, decoded once for every worker of the pool
        (:class:`_Reader`), and are never delivered to the group: each commit instead
        moves the group's last-delivered id to the new checkpoint (``XGROUP SETID``, inside
        the commit script, so the view, its checkpoint and the group move together), which is
        what delivering and acking them would have left. A commit happens every
        ``catch_up_entries`` entries or ``catch_up_seconds``, whichever comes first, and at
        the end of the backlog. An entry that fails (does not decode, or ``apply`` raises)
        is not handled here: the uncommitted entries are undone and the worker goes back to
        the classic path, which redelivers them through the group and counts the failing
        entry's deliveries up to the dead-letter stream.
        """
        if self._poison_at is not None:
            if _above(self._poison_at, self.checkpoint):
                return False
            self._poison_at = None
        summary = await self.client.xpending(self.log_key, self.keys.group)
        if int(summary["pending"]):
            return False
        info = await self._group_info()
        if info is None:
            return False
        last_delivered = _text(info["last-delivered-id"])
        entries_read = info.get("entries-read")
        counted: int | None = (
            int(entries_read)
            if entries_read is not None and last_delivered == (self.checkpoint or "0-0")
            else None
        )
        pool, apply = self.pool, self.projection.apply
        position = self.checkpoint
        uncommitted, committed, since = 0, False, time.monotonic()
        while not pool.stopping:
            await self._renew_if_due()
            entries, more = await self.reader.after(position)
            if not entries or (
                not committed and not uncommitted and len(entries) < pool.batch_size
            ):
                break  # no backlog (any more): the classic path follows the log
            for at, recorded, decode_error in entries:
                failure: Exception | None = decode_error
                if recorded is not None:
                    try:
                        apply(docs, recorded)
                        continue
                    except Exception as exc:  # a poison entry: the classic path takes it
                        failure = exc
                self.log.info(
                    "projector.catch_up_failed",
                    position=at,
                    error_type=type(failure).__name__,
                    undone=uncommitted,
                )
                await self._rollback(docs)
                self._poison_at = at
                return committed
            position = entries[-1][0]
            uncommitted += len(entries)
            self.applied += len(entries)
            at_end = not more
            if (
                at_end
                or uncommitted >= pool.catch_up_entries
                or time.monotonic() - since >= pool.catch_up_seconds
            ):
                if counted is not None:
                    counted += uncommitted
                moved = await self._commit_catch_up(docs, position, last_delivered, counted)
                committed, uncommitted, since = True, 0, time.monotonic()
                if not moved:  # something is pending in the group: the classic path settles it
                    return True
                last_delivered = position
            if at_end:
                break
            await asyncio.sleep(0)  # let the other workers and the service run
        if uncommitted and position is not None:
            if counted is not None:
                counted += uncommitted
            await self._commit_catch_up(docs, position, last_delivered, counted)
            committed = True
        return committed

    async def _commit_catch_up(
        self,
        docs: Docs[msgspec.Struct],
        last: Position,
        last_delivered: str,
        entries_read: int | None,
    ) -> bool:
        """Commit what the catch-up applied, moving the group; whether the group moved."""
        batch = _Batch(docs.take_changes(), last)
        group = (self.keys.group, last_delivered, "" if entries_read is None else str(entries_read))
        result = await self._commit_batch(batch, last, group=group)
        self.log.debug("projector.caught_up_to", checkpoint=last, moved=result == 1)
        return result == 1

    async def _rollback(self, docs: Docs[msgspec.Struct]) -> None:
        """Put every document changed since the last commit back to its committed value."""
        touched = list(docs.take_changes())
        committed = await self._committed(touched)
        for key in touched:
            before = committed[key]
            if before is None:
                docs.delete(*key)
            else:
                docs.put(*key, before)
        docs.take_changes()

    async def _committed(self, keys: Sequence[Key]) -> dict[Key, msgspec.Struct | None]:
        """The committed documents of ``keys`` (``None``: not in the view), read in pages."""
        found: dict[Key, msgspec.Struct | None] = {}
        for start in range(0, len(keys), 1000):
            page = keys[start : start + 1000]
            async with self.client.pipeline(transaction=False) as pipe:
                for kind, ident in page:
                    pipe.hget(self.keys.kinds[kind], ident)
                replies = await pipe.execute()
            for (kind, ident), raw in zip(page, replies, strict=True):
                found[(kind, ident)] = (
                    None if raw is None else decode_doc(self.projection, kind, raw)
                )
        return found

    # --- applying -------------------------------------------------------------------------------

    async def _process(
        self, docs: Docs[msgspec.Struct], entries: Sequence[tuple[str, Mapping[Any, Any]]]
    ) -> None:
        """Apply one batch, then commit it and ack it (see the module docstring)."""
        if await self._take_over_stragglers():
            return
        batch = _Batch(docs.take_changes(), self.checkpoint)
        for ident, fields in entries:
            position = Position(ident)
            if not fields or not _above(position, batch.last):
                batch.acks.append(ident)  # already in the view, or deleted from the log
                continue
            await self._apply_entry(docs, batch, position, fields)
        if batch.last is not None and (
            batch.last != self.checkpoint or batch.changes or batch.dead
        ):
            await self._commit_batch(batch, batch.last)
        if batch.acks:
            await self.client.xack(self.log_key, self.keys.group, *batch.acks)
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
        batch: _Batch,
        position: Position,
        fields: Mapping[Any, Any],
    ) -> None:
        """Apply one entry; on failure undo it, redeliver it, and dead-letter it at the limit."""
        while True:
            try:
                event = from_fields(fields)
                self.projection.apply(docs, Recorded(position, recorded_at_of(position), event))
            except Exception as exc:  # a poison entry: whatever apply raised, isolate it
                await self._undo(docs, batch.changes)
                deliveries = await self._deliveries(position)
                if deliveries >= MAX_DELIVERIES:
                    batch.dead.append(self._dead_letter(position, fields, exc, deliveries))
                    self.dead_lettered += 1
                    self.log.warning(
                        "projector.dead_lettered",
                        position=position,
                        error_type=type(exc).__name__,
                        error=str(exc)[:500],
                        deliveries=deliveries,
                    )
                    break
                self.log.info(
                    "projector.entry_failed",
                    position=position,
                    error_type=type(exc).__name__,
                    deliveries=deliveries,
                )
                redelivered: list[Any] = await self.client.xclaim(
                    self.log_key, self.keys.group, self.pool.consumer, 0, [position]
                )
                again = [(i, f) for i, f in redelivered if i is not None and f]
                if not again:  # deleted from the log meanwhile: nothing left to apply
                    break
                fields = again[0][1]
            else:
                batch.changes.update(docs.take_changes())
                self.applied += 1
                break
        batch.last = position
        batch.acks.append(position)

    async def _undo(
        self, docs: Docs[msgspec.Struct], changes: Mapping[Key, msgspec.Struct | None]
    ) -> None:
        """Put back every document a failed ``apply`` touched (see the module docstring)."""
        touched = docs.take_changes()
        committed = await self._committed([key for key in touched if key not in changes])
        for key in touched:
            before = changes[key] if key in changes else committed[key]
            if before is None:
                docs.delete(*key)
            else:
                docs.put(*key, before)
        docs.take_changes()

    async def _deliveries(self, position: Position) -> int:
        pending = await self.client.xpending_range(
            self.log_key, self.keys.group, position, position, 1
        )
        return int(pending[0]["times_delivered"]) if pending else MAX_DELIVERIES

    def _dead_letter(
        self, position: Position, fields: Mapping[Any, Any], exc: Exception, deliveries: int
    ) -> list[bytes | str]:
        letter: list[bytes | str] = [
            "projection", self.name,
            "version", str(self.projection.version),
            "position", position,
            "error_type", type(exc).__name__,
            "error", str(exc)[:2000],
            "deliveries", str(deliveries),
            "consumer", self.pool.consumer,
        ]  # fmt: skip
        for name, value in fields.items():
            letter += [f"entry.{_text(name)}", value]
        return letter

    async def _commit_batch(
        self, batch: _Batch, last: Position, *, group: tuple[str, str, str] | None = None
    ) -> int:
        """Write the batch's documents, dead letters and checkpoint ``last`` in one step.

        ``group`` (name, expected last-delivered id, entries read or ``''``) also moves the
        consumer group to ``last`` (see :meth:`_catch_up`). Returns the script's answer
        (1, or 2 when the group was to move and did not).
        """
        hook = self.pool.hook
        if hook is not None:
            await hook(self.name, "before_commit")
        keys = [
            self.keys.lease,
            self.keys.meta,
            self.dlq_key,
            self.keys.pointer,
            self.log_key,
            self.keys.changes,
        ]
        name, expected, entries_read = group or ("", "", "")
        args: list[bytes | str | int] = [
            self.pool.consumer,
            self.checkpoint or "",
            last,
            str(self.keys.generation),
            name,
            expected,
            entries_read,
            str(len(batch.dead)),
        ]
        doc_keys, doc_args = doc_change_args(batch.changes, self.keys.kinds)
        keys += doc_keys
        args += doc_args
        for letter in batch.dead:
            args += [str(len(letter) // 2), *letter]
        result = await self._commit(keys=keys, args=args)
        if result == 0:
            raise LeaseLostError(self.keys.lease)
        if result == -2:
            raise GenerationMovedError(
                f"{self.keys.pointer} no longer names {self.keys.generation}"
            )
        if result not in (1, 2):
            raise CheckpointMovedError(f"{self.keys.meta} is not at {self.checkpoint}")
        self.checkpoint = last
        self.pool.progress.set()
        if hook is not None:
            await hook(self.name, "after_commit")
        return int(result)


# --- the pool -------------------------------------------------------------------------------


class ProjectorPool:
    """One worker per projection, each applying the log to its stored view.

    ``consumer`` names this process in the consumer groups and as the lease owner (default:
    host, pid and a random suffix). ``hook`` is for fault tests: it is awaited before and after
    each commit and may raise to simulate a crash there.
    """

    def __init__(
        self,
        redis_client: aioredis.Redis,
        *,
        prefix: Keys | str = "ledger",
        projections: Iterable[Projection] | None = None,
        claim_idle_ms: int = 30_000,
        batch_size: int = 1000,
        consumer: str | None = None,
        lease_ms: int = 10_000,
        block_ms: int = 1000,
        hook: StepHook | None = None,
        catch_up_entries: int = 10_000,
        catch_up_seconds: float = 0.25,
        read_size: int = 2000,
        read_keep: int = 8,
        load_page: int = VIEW_PAGE,
        load_client: aioredis.Redis | None = None,
    ) -> None:
        self.client = redis_client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.claim_idle_ms = claim_idle_ms
        self.batch_size = batch_size
        self.consumer = consumer or _default_consumer()
        self.lease_ms = lease_ms
        self.lease_retry = min(max(lease_ms / 4000, 0.05), 2.0)
        self.block_ms = self._block_ms(redis_client, block_ms)
        self.hook = hook
        self.catch_up_entries = catch_up_entries
        self.catch_up_seconds = catch_up_seconds
        self.load_page = load_page
        self.load_client = load_client or redis_client
        """The client loading views at the start of a term (a long timeout: big views)."""
        self.readers = [_Reader(redis_client, log, read_size, read_keep) for log in self.keys.logs]
        self.progress = asyncio.Event()
        self._stop = asyncio.Event()
        chosen = PROJECTIONS.values() if projections is None else projections
        self._workers = [
            _Worker(self, p, partition) for p in chosen for partition in range(self.keys.partitions)
        ]
        self.share = len(self._workers)
        """How many leases this pool may hold: all of them on one partition; on several, a
        fair share of the workers over the live pools (:meth:`_heartbeat`)."""
        self._tasks: list[asyncio.Task[None]] = []

    @staticmethod
    def _block_ms(client: aioredis.Redis, wanted: int) -> int:
        """The read block time, kept well under the client's socket timeout."""
        pool = getattr(client, "connection_pool", None)  # a cluster client has none
        options = pool.connection_kwargs if pool is not None else client.get_connection_kwargs()  # type: ignore[no-untyped-call]
        timeout = options.get("socket_timeout")
        if timeout:
            return max(10, min(wanted, int(timeout * 1000) // 2))
        return wanted

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether workers were started and have not all ended."""
        return any(not t.done() for t in self._tasks)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the pool is stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def may_take(self) -> bool:
        """Whether a worker may compete for a lease: the pool holds less than its share."""
        return sum(w.state == "running" for w in self._workers) < self.share

    def surplus(self) -> _Worker | None:
        """The worker that should give its lease up (the last running one), when the pool
        holds more than its share; else ``None``."""
        running = [w for w in self._workers if w.state == "running"]
        return running[-1] if len(running) > self.share else None

    async def _heartbeat(self) -> None:
        """Keep this pool in the registry of live pools and its :attr:`share` up to date.

        The registry is a sorted set ``<prefix>:projectors`` (consumer → last beat, ms);
        members silent for a lease time are dropped, so a dead process's share returns to
        the others as its leases expire. The share is the workers over the live pools,
        rounded up: with two processes on 16 partitions of 4 projections each holds 32.
        """
        key = f"{self.prefix}:projectors"
        while not self.stopping:
            with contextlib.suppress(*_REDIS_DOWN, rexc.RedisError):
                now = int(time.time() * 1000)
                await self.client.zadd(key, {self.consumer: now})
                await self.client.zremrangebyscore(key, 0, now - self.lease_ms)
                live = max(1, int(await self.client.zcard(key)))
                self.share = -(-len(self._workers) // live)
            await self.pause(self.lease_ms / 3000)
        with contextlib.suppress(*_REDIS_DOWN, rexc.RedisError):
            await self.client.zrem(key, self.consumer)

    async def start(self) -> None:
        """Start one worker task per projection (they compete for their leases)."""
        if self._tasks:
            return
        self._stop.clear()
        self._tasks = [
            asyncio.create_task(w.run(), name=f"projector:{w.name}") for w in self._workers
        ]
        if self.keys.partitions > 1:
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="projector:beat"))

    async def stop(self) -> None:
        """Finish the batches in flight, release the leases, and end the workers."""
        self._stop.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def abort(self) -> None:
        """End every worker at once, as a crash would: no batch finished, no lease released.

        The Redis client can absorb a cancellation that lands while it writes a command, so
        the cancellation is repeated until every task has ended.
        """
        pending = {t for t in self._tasks if not t.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def failure(self) -> BaseException | None:
        """The error a worker stopped on, if one did."""
        return next((w.error for w in self._workers if w.error is not None), None)

    async def wait_failure(self) -> BaseException | None:
        """Wait until a worker stops on an error (that error) or every worker has ended."""
        if self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        return self.failure()

    async def _head(self, partition: int = 0) -> Position | None:
        log = self.keys.log_of(partition)
        last = await self.client.xrevrange(log, "+", "-", count=1) or []
        return Position(_text(last[0][0])) if last else None

    async def run_until_caught_up(self) -> None:
        """Apply until every view's checkpoint reaches the log's head as it is now.

        Caught up also means nothing is left pending in the projections' groups (entries
        redelivered after a crash are settled). Starts the workers when they are not running
        (and stops them again afterwards). The view may be advanced by another pool holding
        the lease; that counts too. Bound the wait with ``asyncio.timeout``;
        :class:`ProjectorFailedError` when a worker failed.
        """
        started_here = not self.running
        if started_here:
            await self.start()
        try:
            heads = [await self._head(p) for p in range(self.keys.partitions)]
            if all(head is None for head in heads):
                return
            while not await self._caught_up(heads):
                error = self.failure()
                if error is not None:
                    raise ProjectorFailedError(str(error)) from error
                self.progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.progress.wait(), 0.05)
        finally:
            if started_here:
                await self.stop()

    async def _caught_up(self, heads: Sequence[Position | None]) -> bool:
        for worker in self._workers:
            head = heads[worker.partition]
            if head is None:
                continue
            keys = await current_view_keys(
                self.client, self.keys, worker.projection, partition=worker.partition
            )
            pending = {
                _text(g["name"]): int(g["pending"])
                for g in await self.client.xinfo_groups(keys.log)
            }
            if pending.get(keys.group, 1):
                return False
            if _above(head, await self._stored_checkpoint(keys)):
                return False
        return True

    async def _stored_checkpoint(self, keys: ViewKeys) -> Position | None:
        raw = await self.client.hget(keys.meta, CHECKPOINT_FIELD)
        return None if raw is None else Position(_text(raw))

    async def status(self) -> list[ProjectionStatus]:
        """Checkpoint, lag, pending count and lease holder of every projection of the pool.

        The lag is the group's ``lag`` (entries never delivered, from ``XINFO GROUPS``) plus
        the pending entries above the checkpoint; it is counted with ``XRANGE`` only when the
        group cannot tell (no group yet, or a log with deleted entries).
        """
        rows = []
        for worker in self._workers:
            keys = await current_view_keys(
                self.client, self.keys, worker.projection, partition=worker.partition
            )
            log = keys.log
            groups: dict[str, Any] = {}
            with contextlib.suppress(rexc.ResponseError):  # no log yet
                for group in await self.client.xinfo_groups(log):
                    groups[_text(group["name"])] = group
            checkpoint = await self._stored_checkpoint(keys)
            holder = await self.client.get(keys.lease)
            info = groups.get(keys.group)
            pending = int(info["pending"]) if info else 0
            lag = await self._lag(log, keys, info, checkpoint, pending)
            rows.append(
                ProjectionStatus(
                    name=worker.projection.name,
                    partition=worker.partition,
                    version=worker.projection.version,
                    position=checkpoint,
                    lag=lag,
                    pending=pending,
                    holder=None if holder is None else _text(holder),
                    state=worker.state,
                    generation=int(keys.generation),
                )
            )
        return rows

    async def _lag(
        self,
        log: str,
        keys: ViewKeys,
        info: Mapping[str, Any] | None,
        checkpoint: Position | None,
        pending: int,
    ) -> int:
        undelivered = None if info is None else info.get("lag")
        if undelivered is not None:
            settled = 0  # pending entries the checkpoint already covers (committed, ack due)
            if pending and checkpoint is not None:
                covered = await self.client.xpending_range(
                    log, keys.group, "-", checkpoint, pending
                )
                settled = len(covered)
            return int(undelivered) + pending - settled
        count, start = 0, "-" if checkpoint is None else f"({checkpoint}"
        while True:
            page = await self.client.xrange(log, start, "+", count=10_000) or []
            count += len(page)
            if len(page) < 10_000:
                return count
            start = f"({_text(page[-1][0])}"


# --- the projector process --------------------------------------------------------------------


def parser() -> argparse.ArgumentParser:
    """The arguments of the projector process (``python -m services.projector.runner``)."""
    return _parser()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m services.projector.runner",
        description="Run the projectors: fold the log into the stored views until stopped.",
    )
    parser.add_argument("--redis-url", default=os.environ.get("LEDGER_REDIS_URL"), required=False)
    parser.add_argument("--prefix", default=os.environ.get("LEDGER_KEY_PREFIX") or "ledger")
    parser.add_argument(
        "--projection",
        action="append",
        choices=sorted(PROJECTIONS),
        help="a projection to run (repeatable; default: every one)",
    )
    parser.add_argument("--claim-idle-ms", type=int, default=None)
    parser.add_argument("--lease-ms", type=int, default=10_000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--consumer", default=None)
    parser.add_argument("--log-level", default="INFO")
    return parser


async def serve_projectors(args: argparse.Namespace) -> None:
    """Run the projectors of ``args`` (see :func:`_parser`) until SIGTERM/SIGINT.

    Refuses a Redis that may evict keys (:func:`services.runtime.checks.check_redis`) first.
    """
    tune_collector()
    settings = msgspec.structs.replace(load_settings(), key_prefix=args.prefix)
    url = args.redis_url or settings.redis_url
    if url is None:
        raise SystemExit("--redis-url (or LEDGER_REDIS_URL) is required")
    client = connect(url, cluster=settings.cluster)
    bulk = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    await learn_slots(client)
    await learn_slots(bulk)
    chosen = [PROJECTIONS[n] for n in args.projection] if args.projection else None
    pool = ProjectorPool(
        client,
        prefix=settings.keys,
        projections=chosen,
        claim_idle_ms=args.claim_idle_ms or settings.claim_idle_ms,
        batch_size=args.batch_size,
        consumer=args.consumer,
        lease_ms=args.lease_ms,
        load_client=bulk,
    )
    try:
        await check_redis(client)
    except BaseException:
        await client.aclose()
        await bulk.aclose()
        raise
    stopped = stop_on_signals()
    await pool.start()
    _log.info("projector.started", consumer=pool.consumer, prefix=args.prefix)
    failing = asyncio.create_task(pool.wait_failure())
    stopping = asyncio.create_task(stopped.wait())
    try:
        await asyncio.wait((failing, stopping), return_when=asyncio.FIRST_COMPLETED)
    finally:
        failing.cancel()
        stopping.cancel()
        await pool.stop()
        await client.aclose()
        await bulk.aclose()
    failure = pool.failure()
    if failure is not None:  # exit, for the supervisor to start the process again
        raise ProjectorFailedError(
            f"a projector stopped on {type(failure).__name__}: {failure}"
        ) from failure
    _log.info("projector.stopped", consumer=pool.consumer)


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of ``python -m services.projector.runner``: run the projectors until stopped."""
    args = _parser().parse_args(argv)
    configure_logging(level=args.log_level)
    asyncio.run(serve_projectors(args))


if __name__ == "__main__":
    main()
