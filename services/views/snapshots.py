"""As-of snapshots: a projection's whole state at a log position, stored for as-of reads.

Per projection version, under the hash tag ``{<name>:v<version>}`` (every key built by
:class:`services.store.keys.Keys`):

| key | type | holds |
|---|---|---|
| ``<prefix>:snapshot:{<name>:v<version>}:index`` | sorted set | position, scored by ordinal |
| ``<prefix>:snapshot:{<name>:v<version>}:data`` | hash | position → compressed snapshot |
| ``<prefix>:snapshot:{<name>:v<version>}:lease`` | string | the snapshot writer working on it |

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
long) bounds the tail a cold question folds. The snapshots are written by
:class:`services.projector.snapshots.Snapshotter` and read by
:class:`services.views.asof.AsOfReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import zlib
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import Position, position_key
from projections import Projection, State
from projections.docs import Docs
from services.resp import text
from services.store.keys import Keys
from services.views.errors import AsOfError

__all__ = [
    "DEFAULT_EVERY",
    "DEFAULT_KEEP",
    "CorruptSnapshotError",
    "SnapshotRef",
    "SnapshotStore",
    "decode_snapshot",
    "encode_snapshot",
    "latest_before",
    "no_cycle_collection",
    "to_drop",
]

DEFAULT_EVERY: Final = 20_000
"""Log entries between two snapshots of a projection."""
DEFAULT_KEEP: Final = 16
"""Snapshots kept per projection."""
FORMAT: Final = 1
"""The format of a snapshot blob."""


class CorruptSnapshotError(AsOfError):
    """Raised when a stored snapshot does not decode as the projection's documents.

    It was written by another version of the projection's document types (whose meaning
    changed without a version bump) or by hand; deleting the projection's snapshot keys
    is the remedy (the snapshot writer writes them again).
    """


@contextlib.contextmanager
def no_cycle_collection() -> Iterator[None]:
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
    with no_cycle_collection():
        kinds = {k: msgspec.Raw(_msgpack.encode(docs)) for k, docs in state.kinds().items()}
        return zlib.compress(_msgpack.encode(_Blob(FORMAT, position, ordinal, kinds)), 1)


def decode_snapshot(projection: Projection, blob: bytes) -> State:
    """A snapshot blob back as the projection's state; :class:`CorruptSnapshotError` if not."""
    with no_cycle_collection():
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

    def __init__(self, client: aioredis.Redis, prefix: Keys | str = "ledger") -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix

    async def refs(self, projection: Projection) -> list[SnapshotRef]:
        """Every stored snapshot of ``projection``, in log order."""
        index = self.keys.snapshot_index(projection.name, projection.version)
        members: list[Any] = await self.client.zrange(index, 0, -1, withscores=True)
        refs = [SnapshotRef(Position(text(m)), int(score)) for m, score in members]
        refs.sort(key=lambda r: position_key(r.position))
        return refs

    async def load(self, projection: Projection, position: Position) -> State | None:
        """The snapshot of ``projection`` at ``position``, or ``None`` when none is stored."""
        data_key = self.keys.snapshot_data(projection.name, projection.version)
        blob = await self.client.hget(data_key, position)
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
        name, version = projection.name, projection.version
        index, data = (
            self.keys.snapshot_index(name, version),
            self.keys.snapshot_data(name, version),
        )
        blob = await asyncio.to_thread(encode_snapshot, state, position, ordinal)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(data, position, blob)
            pipe.zadd(index, {position: ordinal})
            await pipe.execute()
        dropped = to_drop(await self.refs(projection), keep)
        if dropped:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.zrem(index, *(r.position for r in dropped))
                pipe.hdel(data, *(r.position for r in dropped))
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
