"""Rebuilding a view beside the live one (blue/green), and views as they stood at a position.

``ledger replay <projection>`` folds the whole log into a **new generation** of the view
(``<prefix>:{view:<name>:v<version>:g<N>}:<kind>``, see :mod:`services.views.stored`) while the live
generation keeps serving, then swaps it in:

1. **Build.** A reader of its own (``XRANGE`` in batches, no consumer group) folds the log
   from position 0 in memory and, per batch, flushes the documents the batch changed together
   with the new generation's own checkpoint in one Lua script (:data:`BUILD_SCRIPT`), which
   also records the progress in ``<prefix>:replay:<name>:v<version>``. Entries the
   projection cannot apply are dead-lettered in the same script (unless the dead-letter
   stream or its log already holds them), as the runner does.
2. **Pause the live projector.** The rebuild takes the live view's lease over (the runner's
   next renewal or commit finds it gone, it drops its state and waits): the live checkpoint
   is frozen from here on.
3. **Catch up** with the events that arrived meanwhile, until a read finds nothing new.
4. **Swap** in one Lua script (:data:`SWAP_SCRIPT`): it checks that the lease is still the
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
at a time (the lock ``<prefix>:replay-lock:<name>:v<version>``, renewed per batch).

**Partitions.** On a partitioned log (several partitions, or a Redis Cluster) a view is
kept per partition, each a fold of its own partition's log. A rebuild takes every
partition's lock (``<prefix>:{p<N>}:replay-lock:<name>:v<version>``), writes every
partition's record (``<prefix>:{p<N>}:replay:<name>:v<version>``) for the same new
generation, then runs the steps above for partition 0, then 1, and so on: each partition
view is built from its partition's log, that partition's lease taken over, and its pointer
swapped by :data:`SWAP_SCRIPT`, whose keys (pointer, lease, both metas, the partition's log
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
is refused (:class:`ReplayPartitionedError`): a single position names no point of N logs,
and views as of a time are what ``GET ...?as_of=`` answers there (:mod:`services.views.asof`).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position, Recorded, from_fields, recorded_at_of
from projections import PROJECTIONS, Projection
from projections.docs import Docs, Key
from services.errors import LedgerError
from services.projector.runner import RELEASE_SCRIPT, RENEW_SCRIPT
from services.store.keys import Keys
from services.views.stored import (
    LUA_WRITE_DOCS,
    Generation,
    ViewKeys,
    active_generation,
    doc_change_args,
    joined,
    load_view_paged,
    parse_generation,
    view_keys,
)

__all__ = [
    "BUILD_SCRIPT",
    "SWAP_SCRIPT",
    "FoldRun",
    "ProgressCallback",
    "Replay",
    "ReplayError",
    "ReplayPartitionedError",
    "ReplayRecord",
    "ReplayRunningError",
    "ReplaySwapError",
    "UnknownProjectionError",
    "dead_letter_positions",
    "parse_until",
    "projections_named",
    "refuse_until_partitioned",
    "replay_status",
]

log = structlog.get_logger(__name__)

ProgressCallback = Callable[[int, int], None]
"""Called with (events done, events in total) after each batch."""

BatchHook = Callable[[int], Any]
"""Awaited after each flushed batch with the batch's number (fault tests raise from it)."""

_POSITION: Final = re.compile(r"^\d+-\d+$")


class ReplayError(LedgerError):
    """Root of the errors of rebuilding a view."""


class UnknownProjectionError(ReplayError):
    """Raised when a projection name is not one of :data:`projections.PROJECTIONS`."""


class ReplayRunningError(ReplayError):
    """Raised when another process holds the rebuild lock of the view (or took it over).

    One rebuild per view runs at a time; a rebuild whose process died leaves the lock to
    expire within its lock time, after which the same command resumes it.
    """


class ReplayPartitionedError(ReplayError):
    """Raised when ``--until`` is asked for on a log of several partitions.

    A view as it stood at a point is built from one log; on N partitions a position names
    no point of them all. Remedy: read the view as of a time with ``GET ...?as_of=``
    (:mod:`services.views.asof` merges the partitions' folds up to it). Plain rebuilds work.
    """


class ReplaySwapError(ReplayError):
    """Raised when the swap is refused although the rebuild paused the live projector.

    Another rebuild swapped first (the pointer moved), or the lease was taken from the
    rebuild. The new generation is kept; running the command again resumes and swaps.
    """


class ReplayRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The record of a view's latest rebuild (``<prefix>:replay:<name>:v<version>``)."""

    projection: str
    version: int
    generation: int
    state: Literal["building", "swapping", "done"] = "building"
    done: int = 0
    """Events folded into the new generation so far."""
    total: int = 0
    """Events in the log when the last batch was read."""
    checkpoint: str = ""
    """The new generation's checkpoint."""
    started_at: str = ""
    finished_at: str = ""
    error: str = ""
    """The error the last attempt stopped on (the rebuild resumes from its checkpoint)."""
    running: bool = False
    """Whether a process holds the rebuild lock now (not stored; set by :func:`replay_status`)."""
    active_generation: int = 0
    """The view's active generation now (not stored; set by :func:`replay_status`; on
    several partitions the lowest of the partitions' ones)."""
    partitions: list[ReplayRecord] = msgspec.field(default_factory=list)
    """On several partitions: each partition's record, in partition order (not stored);
    the fields above combine them (sums, the joined checkpoint, ``done`` when all are)."""


_RECORD_FIELDS: Final = ("generation", "state", "done", "total", "checkpoint", "started_at")


def refuse_until_partitioned(prefix: Keys | str) -> None:
    """:class:`ReplayPartitionedError` when ``prefix`` has several log partitions."""
    keys = Keys.of(prefix)
    if keys.partitions > 1:
        raise ReplayPartitionedError(
            f"--until is not supported on {keys.partitions} log partitions: one position "
            "names no point of every partition's log; read the view as of a time with "
            "GET ...?as_of=<datetime> instead (a plain replay works)"
        )


def projections_named(name: str) -> list[Projection]:
    """The projection called ``name``, or every one for ``all``."""
    if name == "all":
        return list(PROJECTIONS.values())
    if name not in PROJECTIONS:
        known = ", ".join(sorted(PROJECTIONS))
        raise UnknownProjectionError(f"no projection {name!r}; known: {known}, or all")
    return [PROJECTIONS[name]]


def parse_until(text: str) -> Position | dt.datetime:
    """A ``--until`` bound: a log position ``ms-seq`` or an ISO 8601 datetime (UTC if naive)."""
    if _POSITION.match(text):
        return Position(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(
            f"--until {text!r} is neither a log position (ms-seq) nor an ISO 8601 datetime"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- folding with poison isolation ----------------------------------------------------------


class FoldRun:
    """A fold in memory that isolates entries the projection cannot apply.

    ``apply`` may update the state in place and then raise; the documents that failed
    application touched are put back to their values before it (every document's last good
    value is kept by reference: documents are frozen). :meth:`take` hands out the documents
    changed since the last call, for a flush.
    """

    def __init__(self, projection: Projection, docs: Docs[msgspec.Struct], *, fresh: bool) -> None:
        self.projection = projection
        self.docs = docs
        docs.take_changes()
        self.known: dict[Key, msgspec.Struct] = {
            (kind, ident): doc
            for kind, by_id in docs.kinds().items()
            for ident, doc in by_id.items()
        }
        # a fresh view writes its initial documents with its first flush
        self.pending: dict[Key, msgspec.Struct | None] = dict(self.known) if fresh else {}
        self.failures: list[tuple[Position, Mapping[Any, Any], Exception]] = []
        self.applied = 0

    def apply(self, position: Position, fields: Mapping[Any, Any]) -> bool:
        """Apply one log entry; ``False`` (and the state unchanged) when it cannot be applied."""
        docs = self.docs
        try:
            event = from_fields(fields)
            self.projection.apply(docs, Recorded(position, recorded_at_of(position), event))
        except Exception as exc:  # a poison entry: whatever apply raised, isolate it
            for key in docs.take_changes():
                before = self.known.get(key)
                if before is None:
                    docs.delete(*key)
                else:
                    docs.put(*key, before)
            docs.take_changes()
            self.failures.append((position, fields, exc))
            return False
        changes = docs.take_changes()
        for key, doc in changes.items():
            if doc is None:
                self.known.pop(key, None)
            else:
                self.known[key] = doc
        self.pending.update(changes)
        self.applied += 1
        return True

    def apply_all(self, entries: Iterable[tuple[Any, Mapping[Any, Any] | None]]) -> None:
        """Apply ``(position, fields)`` entries in order (entries without fields are skipped)."""
        for ident, fields in entries:
            if fields:
                self.apply(Position(_text(ident)), fields)

    def take(self) -> dict[Key, msgspec.Struct | None]:
        """The documents changed since the last call (``None``: deleted)."""
        pending, self.pending = self.pending, {}
        return pending


async def dead_letter_positions(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> set[str]:
    """Positions of ``projection``'s entries of ``partition`` in its dead-letter stream or
    dropped from it (the dead-letter log names the partition in ``dlq_id``, ``p<N>:<id>``)."""
    keys = Keys.of(prefix)
    mine = f"p{partition}:"
    found: set[str] = set()
    for stream in (keys.dlq_of(partition), keys.dlq_log):
        start = "-"
        while True:
            page = await client.xrange(stream, start, "+", count=1000) or []
            for _, raw in page:
                fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
                if (
                    fields.get("projection") == projection.name
                    and fields.get("version") == str(projection.version)
                    and fields.get("action", "drop") != "retry"
                    and (
                        stream != keys.dlq_log
                        or not keys.partitioned
                        or fields.get("dlq_id", "").startswith(mine)
                    )
                ):
                    found.add(fields.get("position", ""))
            if len(page) < 1000:
                break
            start = f"({_text(page[-1][0])}"
    return found


def _dead_letter(
    projection: Projection, position: str, fields: Mapping[Any, Any], exc: Exception, consumer: str
) -> list[bytes | str]:
    letter: list[bytes | str] = [
        "projection", projection.name,
        "version", str(projection.version),
        "position", position,
        "error_type", type(exc).__name__,
        "error", str(exc)[:2000],
        "deliveries", "1",
        "consumer", consumer,
    ]  # fmt: skip
    for name, value in fields.items():
        letter += [f"entry.{_text(name)}", value]
    return letter


# --- Lua -------------------------------------------------------------------------------------

BUILD_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- KEYS: lock, meta (of the generation being built), dlq, record ('' ok), then kind hashes.
-- ARGV: lock owner, expected checkpoint ('' none), new checkpoint, dead letters D,
--   record fields N, then N pairs (field, value), then per kind hash: its kind, puts P,
--   deletes R,
--   P pairs, R ids, then per dead letter: pairs F, F pairs.
-- Returns 1 when flushed, 0 when the lock is not the owner's, -1 when the checkpoint moved.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local current = redis.call('HGET', KEYS[2], 'position')
if (current or '') ~= ARGV[2] then return -1 end
local i = 6
local nrec = tonumber(ARGV[5])
for _ = 1, nrec do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
i = write_docs(5, i, nil)
for _ = 1, tonumber(ARGV[4]) do
  local npairs = tonumber(ARGV[i])
  local fields = {}
  for j = 1, 2 * npairs do fields[j] = ARGV[i + j] end
  i = i + 1 + 2 * npairs
  redis.call('XADD', KEYS[3], '*', unpack(fields))
end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[2], 'position', ARGV[3]) end
return 1
"""
)

SWAP_SCRIPT: Final = """
-- KEYS: view pointer, live lease, live meta, new meta, log, record.
-- ARGV: lease owner, old generation, new generation, consumer group, finished_at.
-- Returns 1 when swapped; 0 lease not ours; -1 pointer moved; -2 live view ahead of the new.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[2] then return -1 end
local function key(p)
  if p == nil or p == false or p == '' then return -1, -1 end
  local ms, seq = string.match(p, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local live = redis.call('HGET', KEYS[3], 'position')
local new = redis.call('HGET', KEYS[4], 'position')
local lms, lseq = key(live)
local nms, nseq = key(new)
if lms > nms or (lms == nms and lseq > nseq) then return -2 end
redis.call('XGROUP', 'SETID', KEYS[5], ARGV[4], new or '0')
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[6], 'state', 'done', 'finished_at', ARGV[5], 'error', '')
return 1
"""


# --- the rebuild -----------------------------------------------------------------------------


class Replay:
    """Rebuilds one projection's view, every partition view of it on a partitioned log
    (see the module docstring).

    ``progress`` is called with (done, total) over every partition after each batch;
    ``hook`` is awaited after each flushed batch with its number, counted over every
    partition (fault tests raise from it to kill a rebuild).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        projection: Projection,
        *,
        prefix: Keys | str = "ledger",
        batch_size: int = 1000,
        lock_ms: int = 15_000,
        progress: ProgressCallback | None = None,
        hook: BatchHook | None = None,
    ) -> None:
        self.client = client
        self.projection = projection
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.batch_size = batch_size
        self.lock_ms = lock_ms
        self.progress = progress
        self.hook = hook
        name, version = projection.name, projection.version
        self.locks = [self.keys.replay_lock(name, version, p) for p in range(self.keys.partitions)]
        self.partition = 0
        """The partition being rebuilt now."""
        self.record_key = self.keys.replay(name, version)
        self.lock_key = self.locks[0]
        self.owner = f"replay:{secrets.token_hex(6)}"
        self.log = log.bind(projection=name, version=version)
        self._build = client.register_script(BUILD_SCRIPT)
        self._swap = client.register_script(SWAP_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._known_dead: set[str] | None = None
        self._lease: str | None = None
        self._held: list[str] = []
        self._done_by = [0] * self.keys.partitions
        self._length_by = [0] * self.keys.partitions
        self.done = 0
        """Events folded into the current partition's new generation."""
        self.total = 0
        """Events in the current partition's log when the last batch was read."""
        self.batches = 0

    def _select(self, partition: int) -> None:
        """Work on ``partition`` from here on (its record, lock and dead letters)."""
        name, version = self.projection.name, self.projection.version
        self.partition = partition
        self.record_key = self.keys.replay(name, version, partition)
        self.lock_key = self.locks[partition]
        self._known_dead = None
        self.log = log.bind(projection=name, version=version)
        if self.keys.partitioned:
            self.log = self.log.bind(partition=partition)

    # --- the locks and the lease -----------------------------------------------------------

    async def _lock(self) -> None:
        """Take every partition's rebuild lock (one rebuild of the view at a time)."""
        for lock in self.locks:
            if not await self.client.set(lock, self.owner, nx=True, px=self.lock_ms):
                holder = await self.client.get(lock)
                await self._unlock()
                raise ReplayRunningError(
                    f"a rebuild of {self.projection.view} is running "
                    f"(held by {_text(holder) if holder else 'someone'}); wait for it, or for "
                    f"its lock to expire within {self.lock_ms / 1000:g} s if its process died"
                )
            self._held.append(lock)

    async def _renew_all(self) -> None:
        for lock in self._held:
            if not await self._renew(keys=[lock], args=[self.owner, self.lock_ms]):
                raise ReplayRunningError(
                    f"the rebuild lock of {self.projection.view} was taken over"
                )
        if self._lease is not None:
            await self._renew(keys=[self._lease], args=[self.owner, self.lock_ms])

    async def _unlock(self) -> None:
        held, self._held = self._held, []
        for lock in held:
            await self._release(keys=[lock], args=[self.owner])

    # --- the records -----------------------------------------------------------------------

    async def _record(self, partition: int | None = None) -> ReplayRecord | None:
        key = self.record_key
        if partition is not None:
            key = self.keys.replay(self.projection.name, self.projection.version, partition)
        raw = await self.client.hgetall(key)
        if not raw:
            return None
        return _record_of(self.projection, raw)

    async def _start_record(self, partition: int, generation: int) -> ReplayRecord:
        """A fresh record of ``partition`` building ``generation`` (leftovers dropped)."""
        self._select(partition)
        await self._drop_generation(generation)  # leftovers of an abandoned attempt
        await self.client.delete(self.record_key)
        started = _now()
        await self.client.hset(
            self.record_key,
            mapping={
                "projection": self.projection.name,
                "version": str(self.projection.version),
                "generation": str(generation),
                "state": "building",
                "done": "0",
                "total": "0",
                "checkpoint": "",
                "started_at": started,
            },
        )
        return ReplayRecord(
            projection=self.projection.name,
            version=self.projection.version,
            generation=generation,
            started_at=started,
        )

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> ReplayRecord:
        """Build a new generation (or resume the one in progress), catch up, swap it in;
        partition after partition on a partitioned log."""
        await self._lock()
        try:
            return await self._run()
        except BaseException as exc:
            if not isinstance(exc, ReplayRunningError):
                await self._note_error(exc)
            raise
        finally:
            await self._give_back()

    async def _give_back(self) -> None:
        try:
            if self._lease is not None:
                await self._release(keys=[self._lease], args=[self.owner])
                self._lease = None
            await self._unlock()
        except (rexc.RedisError, OSError):
            self.log.warning("replay.release_failed")

    async def _note_error(self, exc: BaseException) -> None:
        try:
            if await self.client.exists(self.record_key):
                message = f"{type(exc).__name__}: {exc}"[:500]
                await self.client.hset(self.record_key, "error", message)
        except (rexc.RedisError, OSError):
            pass

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
            self._length_by[p] = int(await self.client.xlen(self.keys.log_of(p)))
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
        docs, checkpoint = await load_view_paged(
            self.client, self.keys, projection, generation=generation, partition=partition
        )
        fold = FoldRun(projection, docs, fresh=checkpoint is None)
        checkpoint = await self._fold(
            new, fold, checkpoint, upper=await self._head(new.log), record_progress=True
        )

        # pause the live projector, catch up to the head as it is now, swap
        live = view_keys(self.keys, projection, live_gen, partition=partition)
        self._lease = live.lease
        await self.client.set(live.lease, self.owner, px=self.lock_ms)
        await self.client.hset(self.record_key, "state", "swapping")
        checkpoint = await self._fold(
            new, fold, checkpoint, upper=await self._head(new.log), record_progress=True
        )
        await self._ensure_group(live.log, live.group)
        result = await self._swap(
            keys=[live.pointer, live.lease, live.meta, new.meta, live.log, self.record_key],
            args=[self.owner, str(live_gen), str(generation), live.group, _now()],
        )
        if result == -2:  # cannot happen while the lease is ours: the live view is frozen
            raise ReplaySwapError(f"the live view of {projection.view} is ahead of the rebuild")
        if result != 1:
            raise ReplaySwapError(
                f"the swap of {projection.view} was refused ("
                + ("the lease was taken" if result == 0 else "another rebuild swapped first")
                + "); run the command again to resume"
            )
        await self._release(keys=[live.lease], args=[self.owner])
        self._lease = None
        self.log.info(
            "replay.swapped", generation=generation, previous=live_gen, checkpoint=checkpoint
        )
        await self._drop_generation(live_gen)

    async def _result(self) -> ReplayRecord:
        """The record of the finished rebuild (on several partitions: their combination)."""
        parts = [await self._record(p) for p in range(self.keys.partitions)]
        if len(parts) == 1:
            assert parts[0] is not None  # noqa: S101  # the swap script wrote it
            return parts[0]
        return _combined(self.projection, parts)

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
            docs, checkpoint = await load_view_paged(
                self.client, self.keys, self.projection, generation=name
            )
            fold = FoldRun(self.projection, docs, fresh=checkpoint is None)
            if bound is not None:
                checkpoint = await self._fold(
                    keys, fold, checkpoint, upper=bound, record_progress=False
                )
            self.log.info("replay.until_built", generation=name, checkpoint=checkpoint)
            return name, checkpoint
        finally:
            await self._give_back()

    async def _head(self, log_key: str) -> Position | None:
        last = await self.client.xrevrange(log_key, "+", "-", count=1) or []
        return Position(_text(last[0][0])) if last else None

    async def _bound(self, until: Position | dt.datetime) -> Position | None:
        """The last log position at or before ``until`` (``None``: none)."""
        if isinstance(until, dt.datetime):
            millis = int(until.timestamp() * 1000)
            top = f"{millis}-18446744073709551615"
        else:
            top = until
        last = await self.client.xrevrange(self.keys.log, top, "-", count=1) or []
        return Position(_text(last[0][0])) if last else None

    # --- folding and flushing -------------------------------------------------------------------

    async def _fold(
        self,
        keys: ViewKeys,
        fold: FoldRun,
        checkpoint: Position | None,
        *,
        upper: Position | None = None,
        record_progress: bool,
    ) -> Position | None:
        """Fold and flush batch after batch of ``keys.log`` up to ``upper`` (its head as read).

        Bounded by a position read beforehand, so a log that keeps growing cannot keep the
        rebuild from finishing: what arrives later is folded by the next phase or, after the
        swap, by the runner.
        """
        self.total = max(int(await self.client.xlen(keys.log)), self.done)
        self._length_by[self.partition] = self.total
        if fold.pending and checkpoint is None:  # initial documents of a fresh view
            await self._flush(keys, fold, None, None, record_progress)
        if upper is None:  # an empty log
            return checkpoint
        while True:
            await self._renew_all()
            start = "-" if checkpoint is None else f"({checkpoint}"
            page = await self.client.xrange(keys.log, start, upper or "+", count=self.batch_size)
            if not page:
                return checkpoint
            fold.apply_all(page)
            last = Position(_text(page[-1][0]))
            self.done += len(page)
            self.total = max(self.total, self.done)
            self._done_by[self.partition] = self.done
            self._length_by[self.partition] = self.total
            await self._flush(keys, fold, checkpoint, last, record_progress)
            checkpoint = last
            self.batches += 1
            if self.progress is not None:
                done = sum(self._done_by)
                self.progress(done, max(sum(self._length_by), done))
            if self.hook is not None:
                await self.hook(self.batches)
            if len(page) < self.batch_size or last == upper:
                return checkpoint

    async def _flush(
        self,
        keys: ViewKeys,
        fold: FoldRun,
        expected: Position | None,
        last: Position | None,
        record_progress: bool,
    ) -> None:
        dead = await self._letters(fold)
        doc_keys, doc_args = doc_change_args(fold.take(), keys.kinds)
        record: list[str] = []
        if record_progress:
            record = [
                "done", str(self.done),
                "total", str(self.total),
                "checkpoint", last or "",
            ]  # fmt: skip
        script_keys = [self.lock_key, keys.meta, keys.dlq, self.record_key]
        args: list[bytes | str | int] = [
            self.owner,
            expected or "",
            last or "",
            len(dead),
            len(record) // 2,
            *record,
            *doc_args,
        ]
        script_keys += doc_keys
        for letter in dead:
            args += [len(letter) // 2, *letter]
        result = await self._build(keys=script_keys, args=args)
        if result == 0:
            raise ReplayRunningError(f"the rebuild lock of {self.projection.view} was taken over")
        if result != 1:
            raise ReplayRunningError(f"{keys.meta} moved under the rebuild: another one writes it")

    async def _letters(self, fold: FoldRun) -> list[list[bytes | str]]:
        """Dead letters for this batch's failed entries the dead-letter stream does not know."""
        if not fold.failures:
            return []
        if self._known_dead is None:
            self._known_dead = await dead_letter_positions(
                self.client, self.keys, self.projection, partition=self.partition
            )
        letters = []
        for position, fields, exc in fold.failures:
            self.log.warning(
                "replay.entry_failed", position=position, error_type=type(exc).__name__
            )
            if position not in self._known_dead:
                letters.append(_dead_letter(self.projection, position, fields, exc, self.owner))
                self._known_dead.add(position)
        fold.failures.clear()
        return letters

    async def _ensure_group(self, log_key: str, group: str) -> None:
        try:
            await self.client.xgroup_create(log_key, group, id="0", mkstream=True, entries_read=0)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _drop_generation(self, generation: Generation) -> None:
        """UNLINK every key of one generation of the current partition's view (freed in the
        server's background)."""
        keys = view_keys(self.keys, self.projection, generation, partition=self.partition)
        names = [*keys.kinds.values(), keys.meta]
        for start in range(0, len(names), 100):
            await self.client.unlink(*names[start : start + 100])


def _record_of(projection: Projection, raw: Mapping[Any, Any]) -> ReplayRecord:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    state = fields.get("state", "building")
    return ReplayRecord(
        projection=projection.name,
        version=projection.version,
        generation=int(fields.get("generation", "0") or 0),
        state=state if state in ("building", "swapping", "done") else "building",  # type: ignore[arg-type]
        done=int(fields.get("done", "0") or 0),
        total=int(fields.get("total", "0") or 0),
        checkpoint=fields.get("checkpoint", ""),
        started_at=fields.get("started_at", ""),
        finished_at=fields.get("finished_at", ""),
        error=fields.get("error", ""),
    )


def _combined(projection: Projection, parts: list[ReplayRecord | None]) -> ReplayRecord:
    """One record for the partitions' records (a missing one counts as never rebuilt)."""
    found = [
        part
        if part is not None
        else ReplayRecord(projection=projection.name, version=projection.version, generation=0)
        for part in parts
    ]
    states = {part.state for part in found if part.generation}
    state: Literal["building", "swapping", "done"] = "done"
    if "swapping" in states:
        state = "swapping"
    elif "building" in states:
        state = "building"
    started = [part.started_at for part in found if part.started_at]
    finished = [part.finished_at for part in found if part.finished_at]
    errors = [f"p{p}: {part.error}" for p, part in enumerate(found) if part.error]
    checkpoints = [Position(part.checkpoint) if part.checkpoint else None for part in found]
    return ReplayRecord(
        projection=projection.name,
        version=projection.version,
        generation=max(part.generation for part in found),
        state=state,
        done=sum(part.done for part in found),
        total=sum(part.total for part in found),
        checkpoint=joined(checkpoints) or "",
        started_at=min(started, default=""),
        finished_at=max(finished, default="") if state == "done" else "",
        error="; ".join(errors)[:500],
        running=any(part.running for part in found),
        active_generation=min(part.active_generation for part in found),
        partitions=found,
    )


async def replay_status(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> ReplayRecord | None:
    """The record of the view's latest rebuild, whether one runs now, and the active generation.

    ``None`` when the view was never rebuilt. On several partitions the partitions' records
    combined (:attr:`ReplayRecord.partitions` holds each one).
    """
    keys = Keys.of(prefix)
    name, version = projection.name, projection.version
    parts: list[ReplayRecord | None] = []
    pointers: list[tuple[bool, int]] = []
    for partition in range(keys.partitions):
        async with client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.replay(name, version, partition))
            pipe.exists(keys.replay_lock(name, version, partition))
            pipe.get(keys.view_pointer(name, version, partition))
            raw, locked, pointer = await pipe.execute()
        if not raw:
            parts.append(None)
            pointers.append((bool(locked), parse_generation(pointer)))
            continue
        record = _record_of(projection, raw)
        record.running = bool(locked)
        record.active_generation = parse_generation(pointer)
        parts.append(record)
        pointers.append((record.running, record.active_generation))
    if all(part is None for part in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    combined = _combined(projection, parts)
    for part, (running, generation) in zip(combined.partitions, pointers, strict=True):
        part.running, part.active_generation = running, generation
    combined.running = any(running for running, _ in pointers)
    combined.active_generation = min(generation for _, generation in pointers)
    return combined
