"""As-of reads: a projection as the log stood at a past moment, from snapshots plus a tail.

The knowledge axis of the ledger is the log: an event is known from the moment it was
recorded, which is the millisecond part of its position (:func:`events.recorded_at_of`).
The state of a projection *as of* a time ``T`` is the pure fold of every event recorded at
or before ``T``. Folding a million events per request is out of the question, so:

**Snapshots.** The snapshot writer (:class:`services.projector.snapshots.Snapshotter`:
``ledger snapshots``, or ``ledger serve`` beside its projectors) folds the log itself,
projection by projection, and every ``every`` log entries (``LEDGER_SNAPSHOT_EVERY``,
default 20,000) stores the state at that position: a delta of what changed since the
previous snapshot, or now and then a base, the whole state (:mod:`services.views.snapshots`).
It does not read the stored views, so snapshots do not depend on the projectors, on a
view's generation, or on a view's progress, and it backfills a log that was written before
it ran. A lease per projection (``SET NX PX``) keeps two processes from doing the same work
(writing a snapshot twice would be harmless: a snapshot at a position always reads back as
the same state).

**As-of.** :class:`AsOfReader` finds the last position at or before ``T`` (one
``XREVRANGE``), takes the latest snapshot at or before that position, and folds the log
entries between the two with the projection's pure ``apply``, skipping without decoding the
entries of event types the projection ignores (community-victims' contributions, which
snapshots leave out, are read for the incidents the tail touches from their own events,
through the log's per-entity index). Folding, encoding and decoding run in a
worker thread, page by page, so the event loop keeps serving meanwhile (the fold holds the
interpreter lock, but the loop gets it back every few milliseconds instead of waiting for
the whole fold). The work per request is bounded by one
snapshot interval plus the decode of one snapshot's chain, a base and a few deltas (kept
decoded in a small in-process cache, so repeated questions about the same era cost only the
tail, and a later snapshot of a chain whose earlier one is kept costs only its deltas).

**Storage** and retention of the snapshots: :mod:`services.views.snapshots`.

**Partitions.** On several log partitions there are no snapshots (the snapshot writer does
nothing): an as-of folds each partition's events recorded at or before ``T`` from the
start of that partition and merges the folds with ``projection.merge`` (equal to the fold
of the whole log up to ``T``); its position is the partitions' positions joined. The work
per request is then the whole history up to ``T``; per-partition snapshots would bound it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import OrderedDict
from typing import Final, Generic, NamedTuple, TypeVar

import msgspec
import redis.asyncio as aioredis

from events import CodecError, IncidentEvent, IncidentReported, Position
from projections import Projection, State
from projections.docs import Docs, Key
from projections.filters import VictimsFilter
from projections.victims_cells import id_may_be_kept
from projections.victims_sums import VictimsSums
from services.store.keys import Keys
from services.store.log import LogEntry, LogReader, RawEntry, decode_page
from services.store.positions import joined, split
from services.views.errors import AsOfError
from services.views.fold import fold
from services.views.snapshots import (
    OWN_KINDS,
    LazyDocs,
    SnapshotStore,
    latest_before,
    no_cycle_collection,
    own_kinds,
)

__all__ = [
    "ASOF_PROJECTIONS",
    "AsOfReader",
    "InvalidAsOfError",
    "fold_log",
    "millis_of",
    "parse_as_of",
    "position_at",
]

ASOF_PROJECTIONS: Final = ("community-victims", "country-stance", "alignment")
"""The projections the query API answers as of a time (and the snapshot writer snapshots)."""

PAGE: Final = 500
"""Log entries read per ``XRANGE`` while folding (and applied between two yields)."""

_EPOCH: Final = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)

K = TypeVar("K")
V = TypeVar("V")


class InvalidAsOfError(AsOfError, ValueError):
    """Raised when an ``as_of`` value is not an ISO 8601 date-time with a time zone."""


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


async def position_at(log: LogReader, at: dt.datetime) -> Position | None:
    """The last log position recorded at or before ``at`` (``None``: nothing was by then)."""
    millis = millis_of(at)
    if millis < 0:
        return None
    return await log.last_at(str(millis))


# --- folding the log -------------------------------------------------------------------------


async def fold_log(
    log: LogReader,
    projection: Projection,
    state: State,
    *,
    after: Position | None,
    until: Position | None = None,
    limit: int | None = None,
    changed: set[Key] | None = None,
    lacks_own: bool | None = None,
) -> tuple[State, Position | None, int]:
    """Fold the log entries after ``after`` (up to ``until``, at most ``limit``) into ``state``.

    Returns the state, the last position read and how many entries were read (entries of
    types the projection ignores count, undecoded). Yields to the event loop between pages.
    The keys of the documents the fold put or deleted are added to ``changed`` if given.

    A state read from a snapshot (a :class:`LazyDocs`) lacks the documents snapshots leave
    out (:data:`~services.views.snapshots.OWN_KINDS`): before a page is applied, each one
    its events touch and the state does not hold is put in as the fold of that incident's
    own events up to ``after`` gives it (:meth:`LogReader.upto`: one script call a page). An
    incident the state does not hold was not touched since the snapshot (a document of that
    kind, once put, is never deleted), so its events up to ``after`` are those up to the
    snapshot. So does a state that dropped them standing at a snapshot (``lacks_own``; by
    default, whether it was read from a snapshot).
    """
    relevant = projection.read_types
    if lacks_own is None:
        lacks_own = isinstance(state, LazyDocs)
    own = OWN_KINDS.get(projection.name) if lacks_own else None
    last: Position | None = None
    seen = 0
    while limit is None or seen < limit:
        count = PAGE if limit is None else min(PAGE, limit - seen)
        entries = await log.raw(after, until=until, count=count)
        if not entries:
            break
        # in a worker thread: the event loop keeps serving while a page is applied
        page = await asyncio.to_thread(_decoded, entries, relevant)
        own_docs: _OwnDocs | None = None
        if own is not None and after is not None:
            missing = _missing(state, own, page)
            if missing:
                found = await log.upto(list(missing.values()), after)
                own_docs = _OwnDocs(own, list(missing), found)
        state = await asyncio.to_thread(
            _apply_page, projection, state, page, relevant, changed, own=own_docs
        )
        seen += len(entries)
        last = after = entries[-1][0]
        if len(entries) < count:
            break
    return state, last, seen


def _decoded(entries: list[RawEntry], relevant: frozenset[str] | None) -> list[LogEntry]:
    """A page decoded (the types the projection reacts to), the cycle collector held off."""
    with no_cycle_collection():
        return decode_page(entries, relevant)


class _OwnDocs(NamedTuple):
    """Documents of an own kind to put in before a page: ``wanted`` ids of ``kind``, and the
    raw entries of their incidents' events up to the page."""

    kind: str
    wanted: list[str]
    entries: list[RawEntry]


def _missing(state: State, kind: str, page: list[LogEntry]) -> dict[str, str]:
    """Per incident a page touches whose document of ``kind`` the state lacks, and that has
    events before the page: its entity.

    An incident first met in its report has none: the store appends a report only as its
    incident's first event (``create`` of a missing entity, :mod:`services.store.append`;
    anything else about a missing incident is refused), and snapshots are written only for
    a log of one partition.
    """
    missing: dict[str, str] = {}
    met: set[str] = set()
    for _, recorded, _ in page:
        if recorded is None:
            continue
        event = recorded.event
        if isinstance(event, IncidentEvent) and event.incident_id not in met:
            ident = event.incident_id
            met.add(ident)
            if type(event) is not IncidentReported and state.get(kind, ident) is None:
                missing[ident] = event.entity
    return missing


def _apply_page(
    projection: Projection,
    state: State,
    page: list[LogEntry],
    relevant: frozenset[str] | None,
    changed: set[Key] | None = None,
    *,
    own: _OwnDocs | None = None,
) -> State:
    """Apply one decoded page of log entries to ``state``, the documents ``own`` gives put
    in first."""
    with no_cycle_collection():
        if own is not None:
            scratch = projection.initial()  # the incidents' own events, folded apart
            fold(projection.apply, scratch, decode_page(own.entries, relevant), _raise)
            for ident in own.wanted:
                doc = scratch.get(own.kind, ident)
                if doc is not None:
                    state.put(own.kind, ident, doc)
        fold(projection.apply, state, page, _raise)
    taken = state.take_changed_keys()  # nothing commits these: keep the set from growing
    if changed is not None:
        changed |= taken
    return state


def _raise(entry: LogEntry, error: Exception) -> bool:
    """An as-of fold has no way around an entry it cannot apply: it fails."""
    if entry[1] is None and isinstance(error, CodecError):
        raise CodecError(f"log entry {entry[0]}: {error}") from error
    raise error


# --- as-of reads -----------------------------------------------------------------------------


class AsOfReader:
    """Answers a projection's state as of a time: the latest snapshot plus the log's tail.

    Decoded snapshots are kept in a small LRU cache (``cache_size`` states); each request
    folds on a shallow copy (documents are frozen), so the cached state never changes. The
    folded states are kept the same way per (projection, position): the log up to a position
    never changes, so every query as of a time that lands on a position answered before is
    computed on the kept fold, without reading the log again (``folded_size`` states).
    Reading a snapshot whose chain passes through a kept one reads only the deltas after it.
    The community-victims sums of a snapshot (per filter and threshold, ``sums_size`` of
    them) are kept too, and an answer moves them by the cells the tail changed
    (:meth:`victims_sums`); so are the sums each answer moved (``sums_size`` of them). The
    sums of the unfiltered question are read as the snapshot writer stored them beside the
    snapshot (:func:`~services.views.snapshots.sums_of`), so a cold answer to it decodes only
    the cells its tail changed, not every cell of the snapshot.

    On several partitions (``prefix`` a :class:`~services.store.keys.Keys` with
    ``partitions > 1``) each partition's events recorded at or before the time are folded
    from the start of that partition, without snapshots, and the folds are merged
    (``projection.merge``); the position answered is the partitions' last positions at or
    before the time, joined (:func:`services.store.positions.joined`).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: Keys | str = "ledger",
        cache_size: int = 3,
        folded_size: int = 8,
        sums_size: int = 16,
    ) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.store = SnapshotStore(client, self.keys)
        self.logs = [LogReader(client, self.keys, p) for p in range(self.keys.partitions)]
        self.cache_size = cache_size
        self._cache: _Lru[tuple[str, str], LazyDocs] = _Lru(cache_size)
        self._folded: _Lru[tuple[str, str], _Folded] = _Lru(folded_size)
        self._sums: _Lru[tuple[str, str, int, VictimsFilter], VictimsSums] = _Lru(sums_size)
        self._answered: _Lru[tuple[str, str, int, VictimsFilter], VictimsSums] = _Lru(sums_size)
        self.folds = 0
        """How many folds of the log this reader ran (the rest were answered from the kept
        folds)."""

    @property
    def partitions(self) -> int:
        """How many log partitions the reader folds."""
        return self.keys.partitions

    async def position_at(self, at: dt.datetime) -> Position | None:
        """The last log position recorded at or before ``at`` (several partitions: joined)."""
        if self.partitions == 1:
            return await position_at(self.logs[0], at)
        return joined([await position_at(log, at) for log in self.logs])

    async def state_at(
        self, projection: Projection, at: dt.datetime
    ) -> tuple[State, Position | None]:
        """The state of ``projection`` as of ``at`` (as :meth:`state_until` gives it) and the
        last position at or before it."""
        target = await self.position_at(at)
        if target is None:
            return _without_own(projection, projection.initial()), None
        return await self.state_until(projection, target), target

    async def state_until(self, projection: Projection, target: Position) -> State:
        """The state of ``projection`` folded up to and including ``target`` (a copy of the
        kept fold when this position was folded before), without the kinds snapshots leave
        out (:func:`~services.views.snapshots.own_kinds`: community-victims' contributions,
        which a fold from a snapshot holds only for the incidents its tail touched; answers
        read its cells).

        On several partitions ``target`` names every partition's position (joined).
        """
        folded = await self._folded_until(projection, target)
        return await asyncio.to_thread(_without_own, projection, folded.state)  # decodes cells

    async def victims_sums(
        self, projection: Projection, target: Position, k: int, where: VictimsFilter
    ) -> VictimsSums:
        """The :class:`~projections.victims_sums.VictimsSums` of ``where`` (threshold ``k``)
        over the ``total`` cells of ``projection`` folded up to ``target`` (a copy: the
        caller may move it).

        The sums of the snapshot the fold started from are computed once (kept per snapshot,
        filter and ``k``) and moved by the cells the tail changed, so a question costs the
        tail, not a pass over every cell; equal to summing every cell afresh
        (:class:`VictimsSums` is exact by construction). The sums so moved are kept too (per
        position, filter and ``k``): the same question again costs a copy.
        """
        fresh = VictimsSums(k, where)  # checks the filter before any work
        key = (projection.view, str(target), k, where)
        answered = self._answered.get(key)
        if answered is None:
            answered = await self._victims_sums(projection, target, fresh)
            self._answered.put(key, answered)
        return answered.copy()

    async def _victims_sums(
        self, projection: Projection, target: Position, fresh: VictimsSums
    ) -> VictimsSums:
        folded = await self._folded_until(projection, target)
        state = folded.state
        base = None if folded.base is None else await self._cached(projection, folded.base)
        if base is None or folded.base is None or folded.changed is None:  # every cell
            await asyncio.to_thread(_sum_every_cell, fresh, state, target)
            return fresh
        key = (projection.view, str(folded.base), fresh.k, fresh.where)
        start = self._sums.get(key)
        if start is None:
            start = await self._stored_sums(projection, folded.base, fresh)
            if start is None:  # none stored for this question: sum every cell of the base
                start = fresh
                await asyncio.to_thread(_sum_every_cell, start, base, folded.base)
            self._sums.put(key, start)
        sums = start.copy()
        selection = sums.selection
        changed = [  # a cell the question cannot keep moves nothing: left undecoded
            i for kind, i in folded.changed if kind == "total" and id_may_be_kept(selection, i)
        ]

        def move() -> None:  # in a thread: the cells it reads are decoded as they are read
            sums.move({i: (base.get("total", i), state.get("total", i)) for i in changed}, target)

        await asyncio.to_thread(move)
        return sums

    async def _stored_sums(
        self, projection: Projection, position: Position, fresh: VictimsSums
    ) -> VictimsSums | None:
        """The sums of ``fresh``'s question stored beside the snapshot at ``position``
        (:func:`~services.views.snapshots.sums_of`), if they were."""
        for kept in await self.store.kept_sums(projection, position):
            if kept.k == fresh.k and kept.where == fresh.where:
                return VictimsSums.of_kept(kept)
        return None

    async def _folded_until(self, projection: Projection, target: Position) -> _Folded:
        key = (projection.view, str(target))
        found = self._folded.get(key)
        if found is None:
            found = await self._fold_until(projection, target)
            self.folds += 1
            self._folded.put(key, found)
        return found

    async def _fold_until(self, projection: Projection, target: Position) -> _Folded:
        if self.partitions > 1:
            return _Folded(await self._merged_until(projection, target), None, None)
        base = latest_before(await self.store.refs(projection), target)
        state: State | None = None
        if base is not None:
            state = await self._snapshot(projection, base.position)
        after = None if state is None or base is None else base.position
        if state is None:
            state = projection.initial()
        changed: set[Key] = set()
        state, _, _ = await fold_log(
            self.logs[0], projection, state, after=after, until=target, changed=changed
        )
        return _Folded(state, after, changed if after is not None else None)

    async def _merged_until(self, projection: Projection, target: Position) -> State:
        try:
            bounds = split(target, self.partitions)
        except ValueError as exc:
            raise InvalidAsOfError(str(exc)) from exc
        parts: list[State] = []
        for log, bound in zip(self.logs, bounds, strict=True):
            state = projection.initial()
            if bound is not None:
                state, _, _ = await fold_log(log, projection, state, after=None, until=bound)
            parts.append(state)
        return projection.merge(parts)

    async def _snapshot(self, projection: Projection, position: Position) -> State | None:
        """A copy of the snapshot at ``position`` (``None``: it is gone)."""
        cached = await self._cached(projection, position)
        return None if cached is None else cached.copy()

    async def _cached(self, projection: Projection, position: Position) -> LazyDocs | None:
        """The kept snapshot at ``position``, read and kept if it was not (never change it)."""
        key = (projection.view, str(position))
        cached = self._cache.get(key)
        if cached is None:

            def known(at: Position) -> LazyDocs | None:  # a kept state ends the chain there
                found = self._cache.get((projection.view, str(at)))
                return None if found is None else found.copy()

            cached = await self.store.load(projection, position, known)
            if cached is None:  # removed by the retention meanwhile
                return None
            self._cache.put(key, cached)
        return cached


def _sum_every_cell(sums: VictimsSums, state: State, position: Position) -> None:
    """``sums`` summed afresh over every cell of ``state`` its question may keep, read from
    the cells' ids (:func:`~projections.victims_cells.id_may_be_kept`): a cell read lazily
    that the question cannot keep is never decoded."""
    selection = sums.selection
    cells: dict[str, msgspec.Struct] = {}
    for ident in state.ids("total"):
        if id_may_be_kept(selection, ident):
            cell = state.get("total", ident)
            if cell is not None:
                cells[ident] = cell
    sums.rebuild(cells, position)


def _without_own(projection: Projection, state: State) -> State:
    """A copy of ``state`` without the kinds snapshots of ``projection`` leave out."""
    omit = own_kinds(projection)
    return Docs({kind: docs for kind, docs in state.kinds().items() if kind not in omit})


class _Folded(NamedTuple):
    """A kept fold: the state, the snapshot it started from and the keys the fold changed
    since (``None``: it started from nothing)."""

    state: State
    base: Position | None
    changed: set[Key] | None


class _Lru(Generic[K, V]):
    """At most ``size`` values by key, the least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()

    def get(self, key: K) -> V | None:
        found = self._items.get(key)
        if found is not None:
            self._items.move_to_end(key)
        return found

    def put(self, key: K, value: V) -> None:
        self._items[key] = value
        while len(self._items) > self.size:
            self._items.popitem(last=False)
