"""As-of reads: a projection as the log stood at a past moment, from snapshots plus a tail.

The knowledge axis of the ledger is the log: an event is known from the moment it was
recorded, which is the millisecond part of its position (:func:`events.recorded_at_of`).
The state of a projection *as of* a time ``T`` is the pure fold of every event recorded at
or before ``T``. Folding a million events per request is out of the question, so:

**Snapshots.** The :class:`Snapshotter` (one task in the service process that runs the
projectors) folds the log itself, projection by projection, and every ``every`` log entries
(``LEDGER_SNAPSHOT_EVERY``, default 20,000) stores the whole state at that position. It
does not read the stored views, so snapshots do not depend on the projectors, on a view's
generation, or on a view's progress, and it backfills a log that was written before it ran.
A lease per projection (``SET NX PX``) keeps two service processes from doing the same work
(writing a snapshot twice would be harmless: a snapshot at a position is always the same).

**As-of.** :class:`AsOfReader` finds the last position at or before ``T`` (one
``XREVRANGE``), takes the latest snapshot at or before that position, and folds the log
entries between the two with the projection's pure ``apply``, skipping without decoding the
entries of event types the projection ignores. Folding, encoding and decoding run in a
worker thread, page by page, so the event loop keeps serving meanwhile (the fold holds the
interpreter lock, but the loop gets it back every few milliseconds instead of waiting for
the whole fold). The work per request is bounded by one
snapshot interval plus the decode of one snapshot (kept decoded in a small in-process cache,
so repeated questions about the same era cost only the tail).

**Storage.** Per projection version, under the hash tag ``{<name>:v<version>}``:

| key | type | holds |
|---|---|---|
| ``<prefix>:snapshot:{<name>:v<version>}:index`` | sorted set | position, scored by ordinal |
| ``<prefix>:snapshot:{<name>:v<version>}:data`` | hash | position → compressed snapshot |
| ``<prefix>:snapshot:{<name>:v<version>}:lease`` | string | the snapshotter working on it |

A snapshot's *ordinal* is the number of log entries at or before its position. Its blob is
zlib over msgpack (format 1): the position, the ordinal and each document kind as a msgpack
map id → document.

**Retention.** At most ``keep`` snapshots per projection (``LEDGER_SNAPSHOT_KEEP``, default
16). When one more is written, the oldest-but-newest snapshot whose removal leaves the
smallest gap (in log entries, counting the start of the log as a snapshot of nothing) is
removed, repeatedly, so the kept snapshots stay spread over the whole history, the spacing
doubling as the log grows: a question about any era folds at most about
``2 * length / keep`` entries (or ``every``, whichever is larger). The newest snapshot is
always kept. An as-of before the oldest kept snapshot folds from the start of the log.

Sizes, to tune the two settings: on the benchmark workload a community-victims snapshot is
about 100 bytes compressed per log entry folded (6 MB at 60,000 entries), so ``keep``
bounds the Redis memory the snapshots take, and ``every`` (with ``keep`` once the log is
long) bounds the tail a cold question folds.

**Partitions.** On several log partitions there are no snapshots (the snapshotter does
nothing): an as-of folds each partition's events recorded at or before ``T`` from the
start of that partition and merges the folds with ``projection.merge`` (equal to the fold
of the whole log up to ``T``); its position is the partitions' positions joined. The work
per request is then the whole history up to ``T``; per-partition snapshots would bound it.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import secrets
import socket
import zlib
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import CodecError, Position, Recorded, from_fields, position_key, recorded_at_of
from projections import PROJECTIONS, Projection, State
from projections.docs import Docs
from services.errors import LedgerError
from services.runtime.checks import check_redis
from services.settings import Settings
from services.signals import stop_on_signals
from services.store.keys import Keys
from services.store.redis import BULK_SOCKET_TIMEOUT, connect, learn_slots
from services.views.stored import joined, split

__all__ = [
    "ASOF_PROJECTIONS",
    "DEFAULT_EVERY",
    "DEFAULT_KEEP",
    "RELEVANT_TYPES",
    "AsOfError",
    "AsOfReader",
    "CorruptSnapshotError",
    "InvalidAsOfError",
    "SnapshotKeys",
    "SnapshotRef",
    "SnapshotStore",
    "SnapshotsOffError",
    "Snapshotter",
    "fold_log",
    "parse_as_of",
    "position_at",
    "serve_snapshots",
    "snapshot_keys",
    "snapshotter_for",
    "to_drop",
]

log = structlog.get_logger(__name__)

ASOF_PROJECTIONS: Final = ("community-victims", "country-stance", "alignment")
"""The projections the query API answers as of a time (and the snapshotter snapshots)."""

RELEVANT_TYPES: Final[Mapping[str, frozenset[str]]] = {
    "community-victims": frozenset(
        {
            "incident.reported",
            "incident.casualties_revised",
            "incident.retracted",
            "incident.merged",
        }
    ),
    "country-stance": frozenset(
        {"statement.issued", "statement.retracted", "incident.reported", "incident.retracted"}
    ),
    "alignment": frozenset({"statement.issued", "statement.retracted"}),
}
"""Event types each projection's ``apply`` reacts to; entries of other types are skipped
undecoded (``apply`` returns the state unchanged for them). A projection not listed here
gets every entry."""

DEFAULT_EVERY: Final = 20_000
"""Log entries between two snapshots of a projection."""
DEFAULT_KEEP: Final = 16
"""Snapshots kept per projection."""
PAGE: Final = 500
"""Log entries read per ``XRANGE`` while folding (and applied between two yields)."""
FORMAT: Final = 1
"""The format of a snapshot blob."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


class AsOfError(LedgerError):
    """Root of the errors of as-of reads and snapshots."""


class InvalidAsOfError(AsOfError, ValueError):
    """Raised when an ``as_of`` value is not an ISO 8601 date-time with a time zone."""


class SnapshotsOffError(AsOfError):
    """Raised by ``ledger snapshots`` when the settings turn snapshots off
    (``LEDGER_SNAPSHOT_EVERY=0``, or a partitioned log, which snapshots do not cover yet)."""


class CorruptSnapshotError(AsOfError):
    """Raised when a stored snapshot does not decode as the projection's documents.

    It was written by another version of the projection's document types (whose meaning
    changed without a version bump) or by hand; deleting the projection's snapshot keys
    is the remedy (the snapshotter writes them again).
    """


# --- time and positions ----------------------------------------------------------------------


def parse_as_of(text: str) -> dt.datetime:
    """An ``as_of`` query value as an aware datetime; :class:`InvalidAsOfError` otherwise.

    A ``+`` of the zone offset that arrived as a space (an unencoded query string) is read
    as ``+``.
    """
    value = text.strip()
    if " " in value[11:]:
        value = value[:11] + value[11:].replace(" ", "+")
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise InvalidAsOfError(
            f"as_of must be an ISO 8601 date-time with a zone, got {text!r}"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise InvalidAsOfError(f"as_of must carry a time zone (e.g. Z or +00:00), got {text!r}")
    return parsed


def millis_of(at: dt.datetime) -> int:
    """The Unix time of an aware datetime in whole milliseconds (floored)."""
    delta = at - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def position_at(client: aioredis.Redis, log_key: str, at: dt.datetime) -> Position | None:
    """The last log position recorded at or before ``at`` (``None``: nothing was by then)."""
    millis = millis_of(at)
    if millis < 0:
        return None
    entries = await client.xrevrange(log_key, max=str(millis), min="-", count=1)
    return Position(_text(entries[0][0])) if entries else None


# --- folding the log -------------------------------------------------------------------------


@contextlib.contextmanager
def _no_cycle_collection() -> Iterator[None]:
    """Pause the cyclic garbage collector around a burst of allocations (no await inside).

    Decoding a snapshot or applying a page of events allocates many small objects, none in
    cycles; letting the collector walk the growing heap meanwhile costs several times the
    work itself. Reference counting still frees everything as usual.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


async def fold_log(
    client: aioredis.Redis,
    log_key: str,
    projection: Projection,
    state: State,
    *,
    after: Position | None,
    until: Position | None = None,
    limit: int | None = None,
) -> tuple[State, Position | None, int]:
    """Fold the log entries after ``after`` (up to ``until``, at most ``limit``) into ``state``.

    Returns the state, the last position read and how many entries were read (entries of
    types the projection ignores count, undecoded). Yields to the event loop between pages.
    """
    relevant = RELEVANT_TYPES.get(projection.name)
    start = "-" if after is None else f"({after}"
    end = "+" if until is None else str(until)
    last: Position | None = None
    seen = 0
    while limit is None or seen < limit:
        count = PAGE if limit is None else min(PAGE, limit - seen)
        entries: list[Any] = await client.xrange(log_key, min=start, max=end, count=count) or []
        if not entries:
            break
        # in a worker thread: the event loop keeps serving while a page is applied
        state = await asyncio.to_thread(_apply_page, projection, state, entries, relevant)
        seen += len(entries)
        last = Position(_text(entries[-1][0]))
        start = f"({last}"
        if len(entries) < count:
            break
    return state, last, seen


def _apply_page(
    projection: Projection, state: State, entries: list[Any], relevant: frozenset[str] | None
) -> State:
    """Apply one page of log entries (the types the projection reacts to) to ``state``."""
    with _no_cycle_collection():
        for ident, fields in entries:
            position = Position(_text(ident))
            if relevant is None or _text(_field(fields, "type")) in relevant:
                try:
                    event = from_fields(fields)
                except CodecError as exc:
                    raise CodecError(f"log entry {position}: {exc}") from exc
                recorded = Recorded(position, recorded_at_of(position), event)
                state = projection.apply(state, recorded)
    state.take_changes()  # nothing commits these: keep the change set from growing
    return state


# --- snapshots -------------------------------------------------------------------------------


class SnapshotKeys(msgspec.Struct, frozen=True):
    """The Redis keys of one projection version's snapshots (see the module docstring)."""

    index: str
    data: str
    lease: str


def snapshot_keys(prefix: str, projection: Projection) -> SnapshotKeys:
    """The snapshot keys of ``projection`` under ``prefix``."""
    base = f"{prefix}:snapshot:{{{projection.name}:v{projection.version}}}"
    return SnapshotKeys(index=f"{base}:index", data=f"{base}:data", lease=f"{base}:lease")


class SnapshotRef(msgspec.Struct, frozen=True):
    """A stored snapshot: its position and the number of log entries up to it."""

    position: Position
    ordinal: int


class _Blob(msgspec.Struct, frozen=True, array_like=True):
    format: int
    position: str
    ordinal: int
    kinds: dict[str, msgspec.Raw]


_msgpack: Final = msgspec.msgpack.Encoder()
_blob_decoder: Final = msgspec.msgpack.Decoder(_Blob)
_kind_decoders: dict[type[msgspec.Struct], msgspec.msgpack.Decoder[Any]] = {}


def encode_snapshot(state: State, position: Position, ordinal: int) -> bytes:
    """A state as a snapshot blob (zlib over msgpack)."""
    with _no_cycle_collection():
        kinds = {k: msgspec.Raw(_msgpack.encode(docs)) for k, docs in state.kinds().items()}
        return zlib.compress(_msgpack.encode(_Blob(FORMAT, position, ordinal, kinds)), 1)


def decode_snapshot(projection: Projection, blob: bytes) -> State:
    """A snapshot blob back as the projection's state; :class:`CorruptSnapshotError` if not."""
    with _no_cycle_collection():
        return _decode_snapshot(projection, blob)


def _decode_snapshot(projection: Projection, blob: bytes) -> State:
    try:
        outer = _blob_decoder.decode(zlib.decompress(blob))
        if outer.format != FORMAT:
            raise CorruptSnapshotError(f"snapshot format {outer.format} is not {FORMAT}")
        kinds: dict[str, dict[str, msgspec.Struct]] = {}
        for kind, raw in outer.kinds.items():
            doc_type = projection.doc_types.get(kind)
            if doc_type is None:
                raise CorruptSnapshotError(f"{projection.name} has no document kind {kind!r}")
            decoder = _kind_decoders.get(doc_type)
            if decoder is None:
                decoder = _kind_decoders[doc_type] = msgspec.msgpack.Decoder(dict[str, doc_type])  # type: ignore[valid-type]
            kinds[kind] = decoder.decode(raw)
    except (zlib.error, msgspec.DecodeError) as exc:
        raise CorruptSnapshotError(f"{projection.view} snapshot: {exc}") from exc
    return Docs(kinds)


def to_drop(refs: Sequence[SnapshotRef], keep: int) -> list[SnapshotRef]:
    """The snapshots retention removes so that at most ``keep`` remain (module docstring).

    ``refs`` are in log order. The newest is never removed; among the others, the one whose
    removal leaves the smallest gap goes first (the oldest on a tie), until ``keep`` remain.
    """
    kept = list(refs)
    dropped: list[SnapshotRef] = []
    keep = max(keep, 1)
    while len(kept) > keep:
        best, best_gap = 0, None
        for i in range(len(kept) - 1):
            before = kept[i - 1].ordinal if i else 0
            gap = kept[i + 1].ordinal - before
            if best_gap is None or gap < best_gap:
                best, best_gap = i, gap
        dropped.append(kept.pop(best))
    return dropped


class SnapshotStore:
    """Reads and writes the snapshots of projections under one key prefix."""

    def __init__(self, client: aioredis.Redis, prefix: str = "ledger") -> None:
        self.client = client
        self.prefix = prefix

    async def refs(self, projection: Projection) -> list[SnapshotRef]:
        """Every stored snapshot of ``projection``, in log order."""
        keys = snapshot_keys(self.prefix, projection)
        members: list[Any] = await self.client.zrange(keys.index, 0, -1, withscores=True)
        refs = [SnapshotRef(Position(_text(m)), int(score)) for m, score in members]
        refs.sort(key=lambda r: position_key(r.position))
        return refs

    async def load(self, projection: Projection, position: Position) -> State | None:
        """The snapshot of ``projection`` at ``position``, or ``None`` when none is stored."""
        blob = await self.client.hget(snapshot_keys(self.prefix, projection).data, position)
        if blob is None:
            return None
        data = blob if isinstance(blob, bytes) else blob.encode()
        return await asyncio.to_thread(decode_snapshot, projection, data)

    async def save(
        self,
        projection: Projection,
        state: State,
        position: Position,
        ordinal: int,
        *,
        keep: int = DEFAULT_KEEP,
    ) -> list[SnapshotRef]:
        """Store the state at ``position`` and apply the retention; returns what it removed."""
        keys = snapshot_keys(self.prefix, projection)
        blob = await asyncio.to_thread(encode_snapshot, state, position, ordinal)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(keys.data, position, blob)
            pipe.zadd(keys.index, {position: ordinal})
            await pipe.execute()
        dropped = to_drop(await self.refs(projection), keep)
        if dropped:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(keys.index, *(r.position for r in dropped))
                pipe.hdel(keys.data, *(r.position for r in dropped))
                await pipe.execute()
        return dropped


def latest_before(refs: Iterable[SnapshotRef], target: Position) -> SnapshotRef | None:
    """The latest snapshot at or before ``target``."""
    limit = position_key(target)
    best: SnapshotRef | None = None
    for ref in refs:
        if position_key(ref.position) <= limit and (
            best is None or position_key(ref.position) > position_key(best.position)
        ):
            best = ref
    return best


# --- as-of reads -----------------------------------------------------------------------------


class AsOfReader:
    """Answers a projection's state as of a time: the latest snapshot plus the log's tail.

    Decoded snapshots are kept in a small LRU cache (``cache_size`` states); each request
    folds on a shallow copy (documents are frozen), so the cached state never changes.

    On several partitions (``prefix`` a :class:`~services.store.keys.Keys` with
    ``partitions > 1``) each partition's events recorded at or before the time are folded
    from the start of that partition, without snapshots, and the folds are merged
    (``projection.merge``); the position answered is the partitions' last positions at or
    before the time, joined (:func:`services.views.stored.joined`).
    """

    def __init__(
        self, client: aioredis.Redis, prefix: Keys | str = "ledger", cache_size: int = 3
    ) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.store = SnapshotStore(client, self.prefix)
        self.log_key = self.keys.log
        self.cache_size = cache_size
        self._cache: OrderedDict[tuple[str, str], State] = OrderedDict()

    @property
    def partitions(self) -> int:
        """How many log partitions the reader folds."""
        return self.keys.partitions

    async def position_at(self, at: dt.datetime) -> Position | None:
        """The last log position recorded at or before ``at`` (several partitions: joined)."""
        if self.partitions == 1:
            return await position_at(self.client, self.log_key, at)
        return joined([await position_at(self.client, log, at) for log in self.keys.logs])

    async def state_at(
        self, projection: Projection, at: dt.datetime
    ) -> tuple[State, Position | None]:
        """The state of ``projection`` as of ``at`` and the last position at or before it."""
        target = await self.position_at(at)
        if target is None:
            return projection.initial(), None
        return await self.state_until(projection, target), target

    async def state_until(self, projection: Projection, target: Position) -> State:
        """The state of ``projection`` folded up to and including ``target``.

        On several partitions ``target`` names every partition's position (joined).
        """
        if self.partitions > 1:
            return await self._merged_until(projection, target)
        base = latest_before(await self.store.refs(projection), target)
        state: State | None = None
        if base is not None:
            state = await self._snapshot(projection, base.position)
        after = None if state is None or base is None else base.position
        if state is None:
            state = projection.initial()
        state, _, _ = await fold_log(
            self.client, self.log_key, projection, state, after=after, until=target
        )
        return state

    async def _merged_until(self, projection: Projection, target: Position) -> State:
        try:
            bounds = split(target, self.partitions)
        except ValueError as exc:
            raise InvalidAsOfError(str(exc)) from exc
        parts: list[State] = []
        for log_key, bound in zip(self.keys.logs, bounds, strict=True):
            state = projection.initial()
            if bound is not None:
                state, _, _ = await fold_log(
                    self.client, log_key, projection, state, after=None, until=bound
                )
            parts.append(state)
        return projection.merge(parts)

    async def _snapshot(self, projection: Projection, position: Position) -> State | None:
        key = (projection.view, position)
        cached = self._cache.get(key)
        if cached is None:
            cached = await self.store.load(projection, position)
            if cached is None:  # removed by the retention meanwhile
                return None
            self._cache[key] = cached
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return Docs(cached.kinds())


# --- the snapshotter -------------------------------------------------------------------------

_RENEW: Final = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_REDIS_DOWN: Final = (rexc.ConnectionError, rexc.TimeoutError, OSError)


class Snapshotter:
    """Writes every ``every`` log entries a snapshot of each as-of projection (see above).

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
        projections: Iterable[Projection] | None = None,
        interval: float = 1.0,
        lease_ms: int = 60_000,
        owner: str | None = None,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be at least 1, got {every}")
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.every = every
        self.keep = keep
        self.store = SnapshotStore(client, self.prefix)
        self.log_key = self.keys.log
        chosen = (PROJECTIONS[n] for n in ASOF_PROJECTIONS) if projections is None else projections
        self.projections = tuple(chosen)
        self.interval = interval
        self.lease_ms = lease_ms
        self.owner = owner or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.written = 0
        self._renew = client.register_script(_RENEW)
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

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
        with contextlib.suppress(*_REDIS_DOWN, rexc.RedisError):
            for projection in self.projections:
                lease = snapshot_keys(self.prefix, projection).lease
                if _text(await self.client.get(lease) or b"") == self.owner:
                    await self.client.delete(lease)

    async def _run(self) -> None:
        backoff = self.interval
        while not self._stop.is_set():
            try:
                await self.run_once()
                backoff = self.interval
            except (*_REDIS_DOWN, rexc.RedisError) as exc:
                log.warning("snapshotter.redis_error", error=str(exc), retry_in=backoff)
                backoff = min(backoff * 2, 30.0)
            except Exception:
                log.exception("snapshotter.failed")
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

    async def _hold(self, projection: Projection) -> bool:
        lease = snapshot_keys(self.prefix, projection).lease
        if await self.client.set(lease, self.owner, nx=True, px=self.lease_ms):
            return True
        return bool(await self._renew(keys=[lease], args=[self.owner, self.lease_ms]))

    async def _catch_up(self, projection: Projection) -> int:
        length = int(await self.client.xlen(self.log_key))
        refs = await self.store.refs(projection)
        last = refs[-1] if refs else None
        ordinal = last.ordinal if last else 0
        if length - ordinal < self.every or not await self._hold(projection):
            return 0
        position = last.position if last else None
        state = None if last is None else await self.store.load(projection, last.position)
        if state is None:  # no snapshot yet (or it vanished): from the start of the log
            state, position, ordinal = projection.initial(), None, 0
        written = 0
        while length - ordinal >= self.every and not self._stop.is_set():
            state, reached, seen = await fold_log(
                self.client, self.log_key, projection, state, after=position, limit=self.every
            )
            if seen < self.every or reached is None:
                break
            position, ordinal = reached, ordinal + seen
            await self.store.save(projection, state, position, ordinal, keep=self.keep)
            written += 1
            self.written += 1
            log.info(
                "snapshot.written", projection=projection.name, position=position, ordinal=ordinal
            )
            if not await self._hold(projection):
                break
        return written


def snapshotter_for(client: aioredis.Redis, settings: Settings) -> Snapshotter | None:
    """The snapshotter of ``settings`` (``None``: snapshots are off, ``LEDGER_SNAPSHOT_EVERY=0``,
    or the log is partitioned, which snapshots do not cover yet)."""
    if settings.snapshot_every <= 0 or settings.keys.partitioned:
        return None
    return Snapshotter(
        client, prefix=settings.keys, every=settings.snapshot_every, keep=settings.snapshot_keep
    )


async def serve_snapshots(settings: Settings, url: str) -> None:
    """Write the as-of snapshots until SIGTERM/SIGINT: ``ledger snapshots``.

    A process of its own in a deployment: writing the first snapshots of a long log folds
    the whole history and encodes big states, which would stall projectors or readers
    sharing a process with it. :class:`SnapshotsOffError` when ``settings`` turn them off.
    """
    client = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    try:
        snapshots = snapshotter_for(client, settings)
        if snapshots is None:
            raise SnapshotsOffError(
                "as-of snapshots are off: LEDGER_SNAPSHOT_EVERY is 0 or the log is partitioned"
            )
        await learn_slots(client)
        await check_redis(client)
        stopped = stop_on_signals()
        await snapshots.start()
        log.info("snapshotter.started", prefix=settings.key_prefix, every=settings.snapshot_every)
        try:
            await stopped.wait()
        finally:
            await snapshots.stop()
    finally:
        await client.aclose()
    log.info("snapshotter.stopped")
