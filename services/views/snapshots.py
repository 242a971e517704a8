"""As-of snapshots: a projection's state at a log position, stored for as-of reads.

Per projection version, under the hash tag ``{<name>:v<version>}`` (every key built by
:class:`services.store.keys.Keys`):

| key | type | holds |
|---|---|---|
| ``<prefix>:snapshot:{<name>:v<version>}:index`` | sorted set | position, scored by ordinal |
| ``<prefix>:snapshot:{<name>:v<version>}:data`` | hash | position → compressed snapshot (and |
| | | ``sums:<position>`` → the sums kept beside it) |
| ``<prefix>:snapshot:{<name>:v<version>}:links`` | hash | position → previous position |
| ``<prefix>:snapshot:{<name>:v<version>}:lease`` | string | the snapshot writer working on it |

A snapshot's *ordinal* is the number of log entries at or before its position. A snapshot
is a *base* or a *delta*. A base's blob is a zstd frame of msgpack (format 1): the position,
the ordinal and each document kind as a msgpack map id → document. A delta (format 2, or 3
when it leaves :data:`OWN_KINDS` out) holds only what changed since the previous snapshot,
whose position it names: per kind, the
documents changed in place, the ids deleted, and the documents that now end the kind (new
ones, or removed and put again), in their order; so base + deltas give the very state a
fold gives, documents in the same order. ``links`` names each delta's previous snapshot
(``""`` for a base; a snapshot without a link, as written before deltas existed, is a
base). Reading a snapshot reads its chain: the base and the deltas up to it
(:meth:`SnapshotStore.load`). Blobs written before zstd are zlib streams; they are told
apart by their first byte (``0x28`` starts every zstd frame, ``0x78`` a zlib stream at the
level written) and read on.

The writer (:class:`services.projector.snapshots.Snapshotter`) writes a delta of the
documents its fold changed since the previous snapshot, and a base when the chain holds
``chain`` deltas (``LEDGER_SNAPSHOT_CHAIN``, default 8) or its deltas weigh half their base:
writing a snapshot costs what changed, and reading one costs a base and at most ``chain``
deltas.

**Retention.** At most ``keep`` snapshots per projection (``LEDGER_SNAPSHOT_KEEP``, default
32). When one more is written, the oldest-but-newest snapshot whose removal leaves the
smallest gap (in log entries, counting the start of the log as a snapshot of nothing) is
removed, repeatedly, so the kept snapshots stay spread over the whole history, the spacing
doubling as the log grows: a question about any era folds at most about
``2 * length / keep`` entries (or ``every``, whichever is larger). The newest snapshot is
always kept. An as-of before the oldest kept snapshot folds from the start of the log. A
removed snapshot leaves the index at once; its blob stays while the chain of a kept one
passes through it (so the blobs kept are at most ``keep`` chains). A reader that meets a
chain missing a blob (the retention ran between its two reads) takes it for no snapshot and
folds from the start of the log: slower, never wrong.

**What a snapshot leaves out.** The kinds of :data:`OWN_KINDS` (community-victims'
contributions, one per incident, two thirds of its state's bytes) are not written: each
depends on its incident's events alone, so a fold from a snapshot reads those of the
incidents its tail touches from the log (:func:`services.views.asof.fold_log`), and the
victims sums read the cells alone. Snapshots written before hold them; they are read as
they are.

**What is kept beside a snapshot.** The writer stores with each community-victims snapshot
the sums of the unfiltered victims question under the service's threshold
(:func:`sums_of`, field ``sums:<position>`` of the data hash, removed with the snapshot). A
reader answering that question starts from them and moves them by the cells its tail
changed, and the cells are read undecoded (:data:`LAZY_KINDS`), so a cold answer decodes
only those: about 0.2 s at a million events instead of 1 s (BENCHMARKS.md). Other questions,
and snapshots written before, are summed over every cell.

**Reading lazily.** The kinds of :data:`LAZY_KINDS` (community-victims' cells, and the
contributions an earlier snapshot holds) are read as each document's undecoded bytes,
decoded when a document is asked for (:class:`LazyDocs`). Reading a whole kind decodes it
first, so no undecoded document leaves the state. While a chain is read, every kind's
documents stay undecoded, and those of the other kinds are decoded once at its end: a
document a later delta replaces is never decoded.

Sizes, to tune the settings: on the benchmark workload a community-victims base is about
16 bytes compressed per log entry folded (3.2 MB at 200,000 entries, 7.8 MB at 1,000,000)
and a delta about 55 to 115 bytes per entry since the previous snapshot (1.1 MB for 20,000
at 200,000 entries, 2.3 MB at 1,000,000; BENCHMARKS.md), so ``keep`` bounds the Redis
memory the snapshots take (all three projections: 155 MB at 1,000,000 entries with 16
kept, 192 MB with 32), and ``every`` (with ``keep`` once the log is long) bounds the tail a
cold question folds. The snapshots are written by
:class:`services.projector.snapshots.Snapshotter` and read by
:class:`services.views.asof.AsOfReader`.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import zlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import zstandard

from events import ZSTD_MAGIC, Position, position_key
from projections import Projection, State
from projections import community_victims as victims
from projections.docs import Docs, Key
from projections.filters import VictimsFilter
from projections.victims_query import cells_of
from projections.victims_sums import KeptSums, VictimsSums
from services.resp import text
from services.store.keys import Keys
from services.views.errors import AsOfError

__all__ = [
    "CHAIN_SHARE",
    "DEFAULT_CHAIN",
    "DEFAULT_EVERY",
    "DEFAULT_KEEP",
    "LAZY_KINDS",
    "OWN_KINDS",
    "SLIM_DELTA_FORMAT",
    "Chain",
    "CorruptSnapshotError",
    "LazyDocs",
    "SnapshotRef",
    "SnapshotStore",
    "Written",
    "apply_delta",
    "decode_chain",
    "decode_delta",
    "decode_snapshot",
    "encode_delta",
    "encode_snapshot",
    "latest_before",
    "no_cycle_collection",
    "own_kinds",
    "sums_of",
    "to_drop",
]

DEFAULT_EVERY: Final = 20_000
"""Log entries between two snapshots of a projection."""
DEFAULT_KEEP: Final = 32
"""Snapshots kept per projection."""
DEFAULT_CHAIN: Final = 8
"""Deltas written after a base before the next base (at most)."""
CHAIN_SHARE: Final = 0.5
"""A base is written instead of a delta once the chain's deltas weigh this share of their
base (compressed bytes)."""
FORMAT: Final = 1
"""The format of a whole state (a base)."""
DELTA_FORMAT: Final = 2
"""The format of a delta: what changed since the previous snapshot, of every kind."""
SLIM_DELTA_FORMAT: Final = 3
"""The format of a delta that leaves the kinds of :data:`OWN_KINDS` out: a chain read drops
them from its state there (a base written before holds them, stale past this delta)."""
LAZY_KINDS: Final[Mapping[str, frozenset[str]]] = {
    "community-victims": frozenset({"incident", "total"}),
}
"""Per projection, the kinds a snapshot read leaves undecoded until a document is asked for
(:class:`LazyDocs`): community-victims' contributions, in the snapshots written before
:data:`OWN_KINDS` left them out (498,237 at a million events and, decoded, 1.5 million tuples
for the collector to walk once; no as-of answer reads them whole), and its cells (58,378 at
a million events, 340 ms to decode): an answer from the sums kept with the snapshot
(:func:`sums_of`) decodes only the cells its tail changed."""


OWN_KINDS: Final[Mapping[str, str]] = {"community-victims": "incident"}
"""Per projection, the kind whose every document is one incident's own, by its id, and
depends on that incident's events alone: community-victims' contributions. Snapshots leave
it out (blobs written before hold it, and read as they are): a fold from a snapshot reads
such a document from the incident's own events the first time its tail touches the incident
(:func:`services.views.asof.fold_log`). At 200,000 events a base of community-victims is
3.2 MB instead of 7.0, a delta 1.1 instead of 1.6 (BENCHMARKS.md)."""


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


class LazyDocs(Docs[msgspec.Struct]):
    """A state read from a snapshot that may hold undecoded documents (:class:`msgspec.Raw`)
    until they are asked for: those of :data:`LAZY_KINDS` once read, any kind's while a
    chain is applied.

    :meth:`get` decodes the document it returns, and keeps it decoded; :meth:`kind` and
    :meth:`kinds` decode the whole kind first, so what they give holds only documents. A
    stored delta's undecoded documents (:func:`apply_delta`) stay undecoded the same way. A
    document that does not decode raises :class:`CorruptSnapshotError`. A copy
    (:meth:`copy`) hands each document it decodes back to the state it was copied from
    while that still holds the same bytes (documents are frozen), so no document is decoded
    twice: a kept snapshot answers the next question with what folds on its copies decoded.
    """

    __slots__ = ("_lazy", "_origin", "_pending")

    def __init__(
        self,
        kinds: Mapping[str, Mapping[str, msgspec.Struct]],
        lazy: Mapping[str, Callable[[msgspec.Raw], msgspec.Struct]],
        pending: Iterable[str] | None = None,
        origin: LazyDocs | None = None,
    ) -> None:
        super().__init__(kinds)
        self._lazy = lazy
        """Each kind that may hold undecoded documents, with what decodes one (shared by
        every state of the projection, never changed)."""
        self._pending = set(self._lazy if pending is None else pending)
        """The kinds that may hold undecoded documents now."""
        self._origin = origin
        """The state this one is a copy of (:meth:`copy`)."""

    def get(self, kind: str, ident: str) -> msgspec.Struct | None:
        """The document ``ident`` of ``kind`` (decoded), or ``None``."""
        doc = super().get(kind, ident)
        undecoded: Any = doc
        if type(undecoded) is msgspec.Raw:
            doc = self._kinds[kind][ident] = self._lazy[kind](undecoded)
            self._hand_back(kind, {ident: (undecoded, doc)})
        return doc

    def _hand_back(
        self, kind: str, decoded: Mapping[str, tuple[msgspec.Raw, msgspec.Struct]]
    ) -> None:
        """Put ``decoded`` (id → its bytes, the document) in the states this one was copied
        from, where each still holds those very bytes."""
        origin = self._origin
        while origin is not None:
            docs: dict[str, Any] = origin._kinds.get(kind, {})
            for ident, (raw, doc) in decoded.items():
                if docs.get(ident) is raw:
                    docs[ident] = doc
            origin = origin._origin

    def kind(self, kind: str) -> Mapping[str, msgspec.Struct]:
        """Every document of one kind, decoded, by id (read-only view)."""
        self._decode_kind(kind)
        return super().kind(kind)

    def kinds(self) -> Mapping[str, Mapping[str, msgspec.Struct]]:
        """Every kind with its documents, decoded (read-only view)."""
        for kind in list(self._pending):
            self._decode_kind(kind)
        return super().kinds()

    def patch(
        self,
        kind: str,
        put: Mapping[str, msgspec.Struct],
        deleted: Iterable[str],
        tail: Mapping[str, msgspec.Struct],
    ) -> None:
        """:meth:`Docs.patch`; the documents may come undecoded."""
        super().patch(kind, put, deleted, tail)
        if kind in self._lazy and _any_undecoded(put, tail):
            self._pending.add(kind)

    def forget(self, kinds: Iterable[str]) -> None:
        """Drop every document of ``kinds`` (not recorded as changes)."""
        for kind in kinds:
            self._kinds.pop(kind, None)
            self._pending.discard(kind)

    def copy(self) -> LazyDocs:
        """A copy to change, its undecoded documents left undecoded."""
        return LazyDocs(self._kinds, self._lazy, self._pending, self)

    def __eq__(self, other: object) -> bool:
        self.kinds()
        if isinstance(other, LazyDocs):
            other.kinds()
        return super().__eq__(other)

    __hash__ = None

    def _decode_kind(self, kind: str) -> None:
        """Decode every undecoded document of ``kind``, in place."""
        if kind not in self._pending:
            return
        self._pending.discard(kind)
        decode = self._lazy[kind]
        docs: dict[str, Any] = self._kinds.get(kind, {})
        decoded: dict[str, tuple[msgspec.Raw, msgspec.Struct]] = {}
        with no_cycle_collection():
            for ident, doc in docs.items():  # values replaced in place: the order is kept
                if type(doc) is msgspec.Raw:
                    docs[ident] = done = decode(doc)
                    if self._origin is not None:
                        decoded[ident] = doc, done
            if decoded:
                self._hand_back(kind, decoded)


def _any_undecoded(*docs: Mapping[str, object]) -> bool:
    return any(type(doc) is msgspec.Raw for some in docs for doc in some.values())


class SnapshotRef(msgspec.Struct, frozen=True):
    """A stored snapshot: its position and the number of log entries up to it."""

    position: Position
    ordinal: int


class Chain(msgspec.Struct, frozen=True):
    """Where a snapshot stands in its chain: how many deltas lead to it from its base, and
    the compressed bytes of the base and of those deltas."""

    deltas: int
    base_bytes: int
    delta_bytes: int


class Written(msgspec.Struct, frozen=True):
    """What :meth:`SnapshotStore.write` stored: a delta or a base, its compressed bytes, and
    the snapshots the retention removed."""

    delta: bool
    size: int
    dropped: list[SnapshotRef]


class _Blob(msgspec.Struct, frozen=True, array_like=True):
    format: int
    position: str
    ordinal: int
    kinds: dict[str, msgspec.Raw]
    previous: str | None = None
    """A delta's previous snapshot (format 2)."""


class _KindDelta(msgspec.Struct, frozen=True, array_like=True):
    """What changed of one kind: documents changed in place (``put``), ids deleted, and the
    documents that end the kind now, in order (``tail``: each removed, then put at the end)."""

    put: msgspec.Raw
    deleted: list[str]
    tail: msgspec.Raw


class _ReadDelta(msgspec.Struct, frozen=True, array_like=True):
    """A :class:`_KindDelta` as read: each document as its bytes."""

    put: dict[str, msgspec.Raw]
    deleted: list[str]
    tail: dict[str, msgspec.Raw]


class _Read(msgspec.Struct, frozen=True, array_like=True):
    """A :class:`_Blob` as read, in one pass: per kind, a base's documents or a delta's
    changes, each document as its bytes."""

    format: int
    position: str
    ordinal: int
    kinds: dict[str, dict[str, msgspec.Raw] | _ReadDelta]
    previous: str | None = None


_msgpack: Final = msgspec.msgpack.Encoder()
_read_decoder: Final = msgspec.msgpack.Decoder(_Read)

Delta = dict[str, tuple[dict[str, msgspec.Struct], list[str], dict[str, msgspec.Struct]]]
"""A decoded delta: per kind, (documents changed in place, ids deleted, the kind's end); a
lazy kind's documents (:data:`LAZY_KINDS`) as their bytes, for :class:`LazyDocs`."""


_LEVEL: Final = 3
"""The zstd level of blobs: at 200,000 events a base is a fifth smaller than zlib's level 1
made it, in half the time (BENCHMARKS.md)."""


def _compressed(packed: bytes) -> bytes:
    # a compressor of its own per blob: blobs are encoded in worker threads
    return zstandard.ZstdCompressor(level=_LEVEL).compress(packed)


def _decompressed(blob: bytes) -> bytes:
    if blob[:1] == bytes((ZSTD_MAGIC,)):
        return zstandard.ZstdDecompressor().decompress(blob)
    return zlib.decompress(blob)  # written before zstd


def encode_snapshot(
    state: State, position: Position, ordinal: int, *, omit: Collection[str] = ()
) -> bytes:
    """A state as a base snapshot blob (zstd over msgpack), without the kinds ``omit``."""
    with no_cycle_collection():
        kinds = {
            k: msgspec.Raw(_msgpack.encode(docs))
            for k, docs in state.kinds().items()
            if k not in omit
        }
        return _compressed(_msgpack.encode(_Blob(FORMAT, position, ordinal, kinds)))


def encode_delta(
    state: State,
    changed: Iterable[Key],
    position: Position,
    ordinal: int,
    previous: Position,
    *,
    omit: Collection[str] = (),
) -> bytes:
    """The change from the snapshot at ``previous`` to ``state`` as a delta blob, without the
    kinds ``omit``.

    ``changed`` are the keys of every document put or deleted since ``previous`` (more is
    harmless). The documents that end a kind and all changed form its *tail*: applied by
    removing each and putting it at the end, they leave the kind in the order the fold left
    it (a document new since ``previous``, or deleted and put again, ends the kind; one
    changed in place keeps its place, and moving one that already ended it changes nothing).
    """
    with no_cycle_collection():
        by_kind: dict[str, set[str]] = {}
        for kind, ident in changed:
            if kind not in omit:
                by_kind.setdefault(kind, set()).add(ident)
        kinds: dict[str, msgspec.Raw] = {}
        for kind, docs in state.kinds().items():  # in the state's order of kinds
            idents = by_kind.get(kind)
            if idents:
                kinds[kind] = msgspec.Raw(_msgpack.encode(_kind_delta(docs, idents)))
        form = SLIM_DELTA_FORMAT if omit else DELTA_FORMAT
        blob = _Blob(form, position, ordinal, kinds, previous)
        return _compressed(_msgpack.encode(blob))


def _kind_delta(docs: Mapping[str, msgspec.Struct], idents: set[str]) -> _KindDelta:
    tail: list[str] = []
    ordered = docs if isinstance(docs, dict) else dict(docs)
    for ident in reversed(ordered):  # the changed documents that end the kind
        if ident not in idents:
            break
        tail.append(ident)
    tail.reverse()
    ending = set(tail)
    put: dict[str, msgspec.Struct] = {}
    deleted: list[str] = []
    for ident in idents:
        if ident in ending:
            continue
        doc = docs.get(ident)
        if doc is None:
            deleted.append(ident)
        else:
            put[ident] = doc
    deleted.sort()
    return _KindDelta(
        msgspec.Raw(_msgpack.encode(put)),
        deleted,
        msgspec.Raw(_msgpack.encode({ident: docs[ident] for ident in tail})),
    )


def decode_snapshot(projection: Projection, blob: bytes) -> LazyDocs:
    """A base snapshot blob back as the projection's state; :class:`CorruptSnapshotError`
    if not (a delta included: it is no state by itself)."""
    with no_cycle_collection():
        read = _read(projection, blob)
        if read.format != FORMAT:
            raise CorruptSnapshotError(f"snapshot format {read.format} is not {FORMAT}")
        state = _base_of(projection, read)
    return _settled(projection, state)


def decode_delta(projection: Projection, blob: bytes) -> tuple[Position, Delta]:
    """A delta blob as its previous snapshot's position and its changes."""
    with no_cycle_collection():
        read = _read(projection, blob)
        if read.format not in _DELTA_FORMATS or read.previous is None:
            raise CorruptSnapshotError(f"snapshot format {read.format} is no delta")
        delta = _delta_of(projection, read)
        lazy, readers = _lazy_kinds(projection), _readers(projection)
        for kind, (put, deleted, tail) in list(delta.items()):
            if kind not in lazy:
                decode: Any = readers[kind]
                delta[kind] = (
                    {ident: decode(raw) for ident, raw in put.items()},
                    deleted,
                    {ident: decode(raw) for ident, raw in tail.items()},
                )
    return Position(read.previous), delta


def apply_delta(state: LazyDocs, delta: Delta) -> LazyDocs:
    """``state`` (changed in place, not recorded as changes) moved by ``delta``."""
    with no_cycle_collection():
        for kind, (put, deleted, tail) in delta.items():
            state.patch(kind, put, deleted, tail)
    return state


def _read(projection: Projection, blob: bytes) -> _Read:
    """A blob read in one pass: every document as its bytes."""
    try:
        return _read_decoder.decode(_decompressed(blob))
    except (zlib.error, zstandard.ZstdError, msgspec.DecodeError) as exc:
        raise CorruptSnapshotError(f"{projection.view} snapshot: {exc}") from exc


_doc_readers: dict[str, Mapping[str, Callable[[msgspec.Raw], msgspec.Struct]]] = {}


def _readers(projection: Projection) -> Mapping[str, Callable[[msgspec.Raw], msgspec.Struct]]:
    """Per document kind of ``projection``, what decodes one document of it (made once)."""
    readers = _doc_readers.get(projection.view)
    if readers is None:
        readers = _doc_readers[projection.view] = {
            kind: _reader(projection, doc_type) for kind, doc_type in projection.doc_types.items()
        }
    return readers


def _reader(
    projection: Projection, doc_type: type[msgspec.Struct]
) -> Callable[[msgspec.Raw], msgspec.Struct]:
    decode = msgspec.msgpack.Decoder(doc_type).decode

    def read(raw: msgspec.Raw) -> Any:
        try:
            return decode(raw)
        except msgspec.DecodeError as exc:
            raise CorruptSnapshotError(f"{projection.view} snapshot: {exc}") from exc

    return read


def own_kinds(projection: Projection) -> frozenset[str]:
    """The kinds snapshots of ``projection`` leave out (:data:`OWN_KINDS`)."""
    own = OWN_KINDS.get(projection.name)
    return frozenset() if own is None else frozenset({own})


def _lazy_kinds(projection: Projection) -> frozenset[str]:
    return LAZY_KINDS.get(projection.name, frozenset())


def _known(projection: Projection, kind: str) -> None:
    if kind not in projection.doc_types:
        raise CorruptSnapshotError(f"{projection.name} has no document kind {kind!r}")


def _base_of(projection: Projection, read: _Read) -> LazyDocs:
    """A base's state, every document as its bytes."""
    kinds: dict[str, dict[str, msgspec.Raw]] = {}
    for kind, docs in read.kinds.items():
        _known(projection, kind)
        if not isinstance(docs, dict):
            raise CorruptSnapshotError(f"{projection.view} snapshot: a delta's {kind} in a base")
        kinds[kind] = docs
    return LazyDocs(kinds, _readers(projection), kinds)  # type: ignore[arg-type]


def _delta_of(projection: Projection, read: _Read) -> Delta:
    """A delta's changes, every document as its bytes."""
    delta: Delta = {}
    for kind, one in read.kinds.items():
        _known(projection, kind)
        if not isinstance(one, _ReadDelta):
            raise CorruptSnapshotError(f"{projection.view} snapshot: a base's {kind} in a delta")
        delta[kind] = (one.put, one.deleted, one.tail)  # type: ignore[assignment]
    return delta


def _settled(projection: Projection, state: LazyDocs) -> LazyDocs:
    """``state`` with every kind but those of :data:`LAZY_KINDS` decoded."""
    for kind in frozenset(projection.doc_types) - _lazy_kinds(projection):
        state.kind(kind)  # decodes it
    return state


def decode_chain(
    projection: Projection,
    start: LazyDocs | None,
    blobs: Sequence[bytes],
    positions: Sequence[str],
) -> LazyDocs:
    """The state a chain's blobs give, oldest first (``start``: a copy of the state before
    the first; ``None``: the first is a base); :class:`CorruptSnapshotError` if they are no
    chain.

    Each blob is read in one pass, every document as its bytes (a pass to find each kind's
    end, then one per kind, took a third longer), and each document is decoded once at the
    end, in its last version: a delta replaces about a third of community-victims' cells,
    which would otherwise be decoded and freed again for each delta. The kinds of
    :data:`LAZY_KINDS` stay undecoded. A delta that leaves :data:`OWN_KINDS` out
    (:data:`SLIM_DELTA_FORMAT`) drops them from the state: an earlier base's are stale past it.
    """
    state = start
    for position, blob in zip(positions, blobs, strict=True):
        with no_cycle_collection():
            read = _read(projection, blob)
            if state is None:
                if read.format != FORMAT:
                    raise CorruptSnapshotError(f"{projection.view} chain at {position}: no base")
                state = _base_of(projection, read)
                continue
            if read.format not in _DELTA_FORMATS:
                raise CorruptSnapshotError(f"{projection.view} chain at {position}: no delta")
            if read.format == SLIM_DELTA_FORMAT:
                state.forget(own_kinds(projection))
            apply_delta(state, _delta_of(projection, read))
    if state is None:
        raise CorruptSnapshotError(f"{projection.view}: an empty chain")
    return _settled(projection, state)


_DELTA_FORMATS: Final = frozenset({DELTA_FORMAT, SLIM_DELTA_FORMAT})


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


def _chain(links: Mapping[str, str], position: str) -> list[str]:
    """The positions from ``position`` back to its base (``position`` first)."""
    chain = [position]
    previous = links.get(position)
    while previous:
        if previous in chain:  # a loop: no base; the read finds a delta where a base belongs
            break
        chain.append(previous)
        previous = links.get(previous)
    return chain


class SnapshotStore:
    """Reads and writes the snapshots of projections under one key prefix."""

    def __init__(self, client: aioredis.Redis, prefix: Keys | str = "ledger") -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix

    def _keys(self, projection: Projection) -> tuple[str, str, str]:
        name, version = projection.name, projection.version
        return (
            self.keys.snapshot_index(name, version),
            self.keys.snapshot_data(name, version),
            self.keys.snapshot_links(name, version),
        )

    async def refs(self, projection: Projection) -> list[SnapshotRef]:
        """Every stored snapshot of ``projection``, in log order."""
        index = self.keys.snapshot_index(projection.name, projection.version)
        members: list[Any] = await self.client.zrange(index, 0, -1, withscores=True)
        refs = [SnapshotRef(Position(text(m)), int(score)) for m, score in members]
        refs.sort(key=lambda r: position_key(r.position))
        return refs

    async def _links(self, projection: Projection) -> dict[str, str]:
        raw: Mapping[Any, Any] = await self.client.hgetall(self._keys(projection)[2])
        return {text(k): text(v) for k, v in raw.items()}

    async def load(
        self,
        projection: Projection,
        position: Position,
        known: Callable[[Position], LazyDocs | None] | None = None,
    ) -> LazyDocs | None:
        """The snapshot of ``projection`` at ``position``, or ``None`` when none is stored
        (or its chain lost a link to a concurrent retention).

        ``known`` gives a state already at hand for a position (a copy it may change), which
        ends the chain there: only the deltas after it are read.
        """
        data_key = self._keys(projection)[1]
        chain = _chain(await self._links(projection), position)
        start: LazyDocs | None = None
        if known is not None:
            for i, at in enumerate(chain):
                start = known(Position(at))
                if start is not None:
                    chain = chain[:i]
                    break
        chain.reverse()
        if not chain:
            return start
        found: list[Any] = await self.client.hmget(data_key, chain)
        if any(blob is None for blob in found):
            return None
        blobs = [b if isinstance(b, bytes) else b.encode() for b in found]
        return await asyncio.to_thread(decode_chain, projection, start, blobs, chain)

    async def kept_sums(self, projection: Projection, position: Position) -> list[KeptSums]:
        """The sums stored beside the snapshot at ``position`` (:func:`sums_of`; none for a
        snapshot written before they were, or removed meanwhile). Sums that do not decode
        (written by a version whose filters differ) count as none: they only save work, so
        the answer sums the cells instead."""
        found: Any = await self.client.hget(self._keys(projection)[1], _sums_field(position))
        if found is None:
            return []
        try:
            return _sums_decoder.decode(found)
        except msgspec.DecodeError:
            return []

    async def chain(self, projection: Projection, position: Position) -> Chain:
        """Where the snapshot at ``position`` stands in its chain (sizes of what is stored)."""
        data_key = self._keys(projection)[1]
        chain = _chain(await self._links(projection), position)
        async with self.client.pipeline(transaction=False) as pipe:
            for at in chain:
                pipe.hstrlen(data_key, at)
            sizes: list[int] = await pipe.execute()
        return Chain(len(chain) - 1, sizes[-1], sum(sizes[:-1]))

    async def save(
        self,
        projection: Projection,
        state: State,
        position: Position,
        ordinal: int,
        *,
        keep: int = DEFAULT_KEEP,
    ) -> list[SnapshotRef]:
        """Store the state at ``position`` as a base and apply the retention; returns what
        it removed."""
        return (await self.write(projection, state, position, ordinal, keep=keep)).dropped

    async def write(
        self,
        projection: Projection,
        state: State,
        position: Position,
        ordinal: int,
        *,
        keep: int = DEFAULT_KEEP,
        previous: Position | None = None,
        changed: Iterable[Key] = (),
        sums_k: int | None = None,
    ) -> Written:
        """Store the state at ``position`` (a delta from the snapshot at ``previous`` of the
        ``changed`` keys when ``previous`` is given, else a base) and apply the retention.

        With ``sums_k``, the sums :func:`sums_of` gives under that threshold are stored
        beside it (:meth:`kept_sums`)."""
        index, data, links = self._keys(projection)
        omit = own_kinds(projection)
        if previous is None:
            blob = await asyncio.to_thread(encode_snapshot, state, position, ordinal, omit=omit)
        else:
            blob = await asyncio.to_thread(
                encode_delta, state, list(changed), position, ordinal, previous, omit=omit
            )
        sums = b""
        if sums_k is not None:
            kept = await asyncio.to_thread(sums_of, projection, state, position, sums_k)
            sums = _msgpack.encode(kept) if kept else b""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(data, position, blob)
            if sums:
                pipe.hset(data, _sums_field(position), sums)
            pipe.hset(links, position, previous or "")
            pipe.zadd(index, {position: ordinal})
            await pipe.execute()
        dropped = await self._retain(projection, keep)
        return Written(previous is not None, len(blob), dropped)

    async def _retain(self, projection: Projection, keep: int) -> list[SnapshotRef]:
        """Remove the snapshots beyond ``keep`` from the index, the blobs no kept snapshot's
        chain passes through, and every sums field but those of the kept snapshots (an
        earlier version's retention left those of the snapshots it dropped)."""
        refs = await self.refs(projection)
        dropped = to_drop(refs, keep)
        if not dropped:
            return dropped
        index, data, links_key = self._keys(projection)
        links = await self._links(projection)
        gone = {r.position for r in dropped}
        kept = {r.position for r in refs} - gone
        needed = {at for position in kept for at in _chain(links, position)}
        unused = sorted((gone | links.keys()) - needed)
        sums = sorted(
            field
            for field in map(text, await self.client.hkeys(data))
            if field.startswith(_SUMS) and field.removeprefix(_SUMS) not in kept
        )
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.zrem(index, *gone)
            if unused or sums:
                pipe.hdel(data, *unused, *sums)
            if unused:
                pipe.hdel(links_key, *unused)
            await pipe.execute()
        return dropped


def sums_of(projection: Projection, state: State, position: Position, k: int) -> list[KeptSums]:
    """The sums kept beside a snapshot of ``projection`` at ``position``: community-victims'
    unfiltered question under the threshold ``k`` (the service's ``LEDGER_SUPPRESSION_K``;
    the exact answer does not depend on it), so a cold as-of answer to it starts from them
    instead of decoding and summing every cell (about 0.7 s at a million events). None for
    the other projections."""
    if projection.name != victims.NAME:
        return []
    sums = VictimsSums(k, VictimsFilter())
    with no_cycle_collection():
        sums.rebuild(cells_of(state), position)
    return [sums.kept()]


_SUMS: Final = "sums:"


def _sums_field(position: str) -> str:
    """The data hash's field of the sums kept beside the snapshot at ``position``."""
    return f"{_SUMS}{position}"


_sums_decoder: Final = msgspec.msgpack.Decoder(list[KeptSums])


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
