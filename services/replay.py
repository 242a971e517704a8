"""Rebuilding a view beside the live one (blue/green), and views as they stood at a position.

``ledger replay <projection>`` folds the whole log into a **new generation** of the view
(``<prefix>:{view:<name>:v<version>:g<N>}:<kind>``, see :mod:`services.views`) while the live
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

**Partitions.** On a partitioned log (several partitions, or a Redis Cluster) rebuilds are
refused (:class:`ReplayPartitionedError`): a view is kept per partition there, and swapping
the partitions' pointers one by one is not built yet. Bumping the projection's version
rebuilds every partition view from its partition's log instead.

``--until <position|datetime>`` builds the view as it stood at that point under the
generation ``until-<position>`` (the last position it includes) and touches nothing else;
it is read with ``load_view(..., generation="until-<position>")``.
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

from .errors import LedgerError
from .runner import RELEASE_SCRIPT, RENEW_SCRIPT
from .store.keys import Keys
from .views import (
    LUA_WRITE_DOCS,
    Generation,
    ViewKeys,
    active_generation,
    doc_change_args,
    load_view,
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
    "refuse_partitioned",
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
    """Raised when a rebuild is asked for on a partitioned log (several partitions, or a
    Redis Cluster): rebuilds serve one partition on one node only, for now.

    Remedy: bump the projection's version instead (the runner then builds the new version's
    partition views from the start of each partition while the old version keeps serving).
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
    """The view's active generation now (not stored; set by :func:`replay_status`)."""


_RECORD_FIELDS: Final = ("generation", "state", "done", "total", "checkpoint", "started_at")


def refuse_partitioned(prefix: Keys | str) -> None:
    """:class:`ReplayPartitionedError` when ``prefix`` names a partitioned layout."""
    keys = Keys.of(prefix)
    if keys.partitioned:
        where = "a Redis Cluster" if keys.cluster else f"{keys.partitions} log partitions"
        raise ReplayPartitionedError(
            f"rebuilding a view is not supported on {where}: each partition's view would be "
            "swapped on its own; bump the projection's version to rebuild it instead"
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
    client: aioredis.Redis, prefix: str, projection: Projection
) -> set[str]:
    """Positions of ``projection``'s entries in the dead-letter stream or dropped from it."""
    keys = Keys(prefix)
    found: set[str] = set()
    for stream in (keys.dlq, keys.dlq_log):
        start = "-"
        while True:
            page = await client.xrange(stream, start, "+", count=1000) or []
            for _, raw in page:
                fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
                if (
                    fields.get("projection") == projection.name
                    and fields.get("version") == str(projection.version)
                    and fields.get("action", "drop") != "retry"
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
--   record fields N, then N pairs (field, value), then per kind hash: puts P, deletes R,
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
i = write_docs(5, i)
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
    """Rebuilds one projection's view (see the module docstring).

    ``progress`` is called with (done, total) after each batch; ``hook`` is awaited after
    each flushed batch with its number (fault tests raise from it to kill a rebuild).
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
        refuse_partitioned(prefix)
        self.client = client
        self.projection = projection
        self.prefix = Keys.of(prefix).prefix
        self.batch_size = batch_size
        self.lock_ms = lock_ms
        self.progress = progress
        self.hook = hook
        self.keys = Keys.of(prefix)
        name, version = projection.name, projection.version
        self.record_key = self.keys.replay(name, version)
        self.lock_key = self.keys.replay_lock(name, version)
        self.owner = f"replay:{secrets.token_hex(6)}"
        self.log = log.bind(projection=name, version=version)
        self._build = client.register_script(BUILD_SCRIPT)
        self._swap = client.register_script(SWAP_SCRIPT)
        self._renew = client.register_script(RENEW_SCRIPT)
        self._release = client.register_script(RELEASE_SCRIPT)
        self._known_dead: set[str] | None = None
        self._lease: str | None = None
        self.done = 0
        self.total = 0
        self.batches = 0

    # --- the lock and the lease ------------------------------------------------------------

    async def _lock(self) -> None:
        if not await self.client.set(self.lock_key, self.owner, nx=True, px=self.lock_ms):
            holder = await self.client.get(self.lock_key)
            raise ReplayRunningError(
                f"a rebuild of {self.projection.view} is running "
                f"(held by {_text(holder) if holder else 'someone'}); wait for it, or for its "
                f"lock to expire within {self.lock_ms / 1000:g} s if its process died"
            )

    async def _renew_all(self) -> None:
        if not await self._renew(keys=[self.lock_key], args=[self.owner, self.lock_ms]):
            raise ReplayRunningError(f"the rebuild lock of {self.projection.view} was taken over")
        if self._lease is not None:
            await self._renew(keys=[self._lease], args=[self.owner, self.lock_ms])

    async def _unlock(self) -> None:
        await self._release(keys=[self.lock_key], args=[self.owner])

    # --- the record ------------------------------------------------------------------------

    async def _record(self) -> ReplayRecord | None:
        raw = await self.client.hgetall(self.record_key)
        if not raw:
            return None
        return _record_of(self.projection, raw)

    # --- running -----------------------------------------------------------------------------

    async def run(self) -> ReplayRecord:
        """Build a new generation (or resume the one in progress), catch up, swap it in."""
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
        live_gen = await active_generation(self.client, self.prefix, projection)
        record = await self._record()
        if record is not None and record.state != "done" and record.generation > live_gen:
            generation = record.generation
            self.done = record.done
            self.log.info("replay.resuming", generation=generation, checkpoint=record.checkpoint)
        else:
            generation = max(live_gen, record.generation if record else 0) + 1
            await self._drop_generation(generation)  # leftovers of an abandoned attempt
            await self.client.delete(self.record_key)
            await self.client.hset(
                self.record_key,
                mapping={
                    "projection": projection.name,
                    "version": str(projection.version),
                    "generation": str(generation),
                    "state": "building",
                    "done": "0",
                    "total": "0",
                    "checkpoint": "",
                    "started_at": _now(),
                },
            )
            self.log.info("replay.started", generation=generation, live=live_gen)
        new = view_keys(self.prefix, projection, generation)
        docs, checkpoint = await load_view(
            self.client, self.prefix, projection, generation=generation
        )
        fold = FoldRun(projection, docs, fresh=checkpoint is None)
        checkpoint = await self._fold(
            new, fold, checkpoint, upper=await self._head(), record_progress=True
        )

        # pause the live projector, catch up to the head as it is now, swap
        live = view_keys(self.prefix, projection, live_gen)
        self._lease = live.lease
        await self.client.set(live.lease, self.owner, px=self.lock_ms)
        await self.client.hset(self.record_key, "state", "swapping")
        checkpoint = await self._fold(
            new, fold, checkpoint, upper=await self._head(), record_progress=True
        )
        await self._ensure_group(live.group)
        result = await self._swap(
            keys=[live.pointer, live.lease, live.meta, new.meta, self.keys.log, self.record_key],
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
        done = await self._record()
        assert done is not None  # noqa: S101  # the swap script wrote it
        return done

    async def build_until(self, until: Position | dt.datetime) -> tuple[str, Position | None]:
        """Build the view as it stood at ``until`` under ``until-<position>``; touch nothing else.

        Returns the generation's name and its checkpoint (``None``: nothing was logged by then).
        Re-running with the same bound continues (or finds finished) the same generation.
        """
        bound = await self._bound(until)
        name = f"until-{bound or '0-0'}"
        await self._lock()
        try:
            keys = view_keys(self.prefix, self.projection, name)
            docs, checkpoint = await load_view(
                self.client, self.prefix, self.projection, generation=name
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

    async def _head(self) -> Position | None:
        last = await self.client.xrevrange(self.keys.log, "+", "-", count=1) or []
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
        """Fold and flush batch after batch up to ``upper`` (the log's head as it was read).

        Bounded by a position read beforehand, so a log that keeps growing cannot keep the
        rebuild from finishing: what arrives later is folded by the next phase or, after the
        swap, by the runner.
        """
        self.total = max(int(await self.client.xlen(self.keys.log)), self.done)
        if fold.pending and checkpoint is None:  # initial documents of a fresh view
            await self._flush(keys, fold, None, None, record_progress)
        if upper is None:  # an empty log
            return checkpoint
        while True:
            await self._renew_all()
            start = "-" if checkpoint is None else f"({checkpoint}"
            page = await self.client.xrange(
                self.keys.log, start, upper or "+", count=self.batch_size
            )
            if not page:
                return checkpoint
            fold.apply_all(page)
            last = Position(_text(page[-1][0]))
            self.done += len(page)
            self.total = max(self.total, self.done)
            await self._flush(keys, fold, checkpoint, last, record_progress)
            checkpoint = last
            self.batches += 1
            if self.progress is not None:
                self.progress(self.done, self.total)
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
        script_keys = [self.lock_key, keys.meta, self.keys.dlq, self.record_key]
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
                self.client, self.prefix, self.projection
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

    async def _ensure_group(self, group: str) -> None:
        try:
            await self.client.xgroup_create(
                self.keys.log, group, id="0", mkstream=True, entries_read=0
            )
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    async def _drop_generation(self, generation: Generation) -> None:
        """UNLINK every key of one generation of the view (freed in the server's background)."""
        keys = view_keys(self.prefix, self.projection, generation)
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


async def replay_status(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> ReplayRecord | None:
    """The record of the view's latest rebuild, whether one runs now, and the active generation.

    ``None`` when the view was never rebuilt (on several partitions: partition 0's view,
    as rebuilds are refused there).
    """
    keys = Keys.of(prefix)
    name, version = projection.name, projection.version
    async with client.pipeline(transaction=True) as pipe:
        pipe.hgetall(keys.replay(name, version))
        pipe.exists(keys.replay_lock(name, version))
        pipe.get(keys.view_pointer(name, version))
        raw, locked, pointer = await pipe.execute()
    if not raw:
        return None
    record = _record_of(projection, raw)
    record.running = bool(locked)
    record.active_generation = parse_generation(pointer)
    return record
