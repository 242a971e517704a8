"""Stored views: where a projection's documents and checkpoint live in Redis, and reading them.

A projection ``name`` at ``version`` keeps one hash per document kind,
``<prefix>:{view:<name>:v<version>}:<kind>`` (document id → the document as JSON), and a meta
hash ``<prefix>:{view:<name>:v<version>}:meta`` whose field ``position`` is the checkpoint:
the last log position the documents include. The runner (:mod:`services.projector.runner`)
writes the
changed documents and the checkpoint in one atomic step, so whatever a reader loads in one
``MULTI``/``EXEC`` is the fold of the log up to that checkpoint, never half a batch.

Bumping a projection's version gives it new keys (and a new consumer group): the new version
is rebuilt from the start of the log while the old one keeps serving.

**Changes.** Beside them, the stream ``…:changes`` records every commit: the checkpoint it
moved from and to, and per kind the ids of the documents it wrote or deleted (``many`` for a
bulk commit). A reader that holds a view follows it (:func:`read_kinds`) and fetches only
those documents instead of whole kinds.

**Generations.** ``ledger replay`` rebuilds a view beside the live one (blue/green): the
string ``<prefix>:viewptr:<name>:v<version>`` names the active generation, whose keys carry
``:g<N>`` inside the hash tag (``<prefix>:{view:<name>:v<version>:g<N>}:<kind>``). A view
without a pointer is generation 0 and keeps the keys above, so installations from before
generations read on unchanged. The loaders resolve the pointer and then read the pointer
again inside the ``MULTI`` with the hashes; when it moved in between they read again, so a
reader never mixes two generations. Views built ``--until`` a position live under the
generation ``until-<position>`` and are only read when asked for by name.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from functools import cache
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import Position, position_key
from projections import Projection
from projections.docs import Docs
from services.errors import LedgerError
from services.store.keys import Keys

__all__ = [
    "CHANGES_FOLLOWED",
    "CHANGES_KEPT",
    "CHANGES_LISTED",
    "CHECKPOINT_FIELD",
    "LUA_WRITE_DOCS",
    "CorruptViewError",
    "Generation",
    "KindsRead",
    "UnknownKindError",
    "ViewChangedError",
    "ViewError",
    "ViewKeys",
    "active_generation",
    "current_view_keys",
    "decode_doc",
    "doc_change_args",
    "encode_doc",
    "generation_suffix",
    "joined",
    "load_checkpoint",
    "load_kind",
    "load_kinds_raw",
    "load_raw",
    "load_view",
    "load_view_paged",
    "newer",
    "parse_generation",
    "read_kinds",
    "split",
    "view_keys",
]

CHECKPOINT_FIELD = "position"
"""The field of a view's meta hash holding its checkpoint."""


class ViewError(LedgerError):
    """Root of the errors of reading a stored view."""


class UnknownKindError(ViewError):
    """Raised when a document kind is asked for that the projection does not declare."""


class CorruptViewError(ViewError):
    """Raised when a stored document does not decode as its kind's type.

    The view was written by another version of the projection (whose fold meaning changed
    without a version bump) or by hand; rebuilding it under a new version is the remedy.
    """


class ViewChangedError(ViewError):
    """Raised by :func:`load_view_paged` when the checkpoint moved while the view was read.

    Someone else committed to the view meanwhile: the caller does not hold the view's lease
    (or lost it), so the pages it read may mix two checkpoints and must be thrown away.
    """


Generation = int | str
"""A view generation: a number (0 = the keys without a generation part), or the name of a
view built up to a position (``until-<position>``)."""

_POINTER_RETRIES: Final = 50

VIEW_PAGE: Final = 5000
"""Documents asked for per ``HSCAN`` call by :func:`load_view_paged`."""


class ViewKeys(msgspec.Struct, frozen=True):
    """The Redis names that belong to one projection version (and one of its generations)."""

    name: str
    version: int
    kinds: dict[str, str]
    """Document kind → the hash holding that kind's documents."""
    meta: str
    """The meta hash (field ``position`` is the checkpoint)."""
    changes: str
    """The stream of commits and the documents each changed (:func:`load_kinds_changed`)."""
    lease: str
    """The lease key of the projector working on this view."""
    group: str
    """The consumer group on the log that feeds this view."""
    generation: Generation = 0
    """The generation these document and meta keys belong to."""
    pointer: str = ""
    """The string naming the view's active generation."""
    partition: int = 0
    """The log partition this view folds."""
    log: str = ""
    """The log (partition) that feeds the view."""
    dlq: str = ""
    """The dead-letter stream of the view's projector."""


def generation_suffix(generation: Generation) -> str:
    """The part a generation adds inside the hash tag (empty for generation 0)."""
    if isinstance(generation, str):
        if not generation or "{" in generation or "}" in generation:
            raise ValueError(f"not a generation name: {generation!r}")
        return generation
    if generation < 0:
        raise ValueError(f"a generation is not negative, got {generation}")
    return "" if generation == 0 else f"g{generation}"


def view_keys(
    prefix: Keys | str, projection: Projection, generation: Generation = 0, *, partition: int = 0
) -> ViewKeys:
    """The keys and the consumer group of ``projection``'s stored view under ``prefix``.

    ``generation`` picks the document and meta keys (default: generation 0, the keys of a
    view that was never rebuilt); :func:`current_view_keys` resolves the active one. On
    several partitions (or a cluster) each partition has its own view, fed by the group of
    the same name on that partition's log; ``log`` names that log.
    """
    keys = Keys.of(prefix)
    name, version = projection.name, projection.version
    gen = generation_suffix(generation)
    p = partition
    return ViewKeys(
        name=name,
        version=version,
        kinds={kind: keys.view(name, version, kind, gen, p) for kind in projection.doc_types},
        meta=keys.view_meta(name, version, gen, p),
        changes=keys.view_changes(name, version, gen, p),
        lease=keys.lease(name, version, p),
        group=f"projector:{name}:v{version}",
        generation=generation,
        pointer=keys.view_pointer(name, version, p),
        partition=p,
        log=keys.log_of(p),
        dlq=keys.dlq_of(p),
    )


def joined(positions: Sequence[Position | None]) -> Position | None:
    """One position for the checkpoints of every partition, in partition order.

    On one partition it is that partition's position; on several, the entry ids joined by
    commas (``0-0`` for a partition with none yet), ``None`` while no partition has one.
    """
    if len(positions) == 1:
        return positions[0]
    if all(p is None for p in positions):
        return None
    return Position(",".join(p or "0-0" for p in positions))


def newer(position: Position | None, than: Position | None) -> bool:
    """Whether ``position`` is past ``than``: on several partitions, past it in any one."""
    if position is None:
        return False
    if than is None:
        return True
    mine, theirs = position.split(","), than.split(",")
    if len(mine) != len(theirs):
        return position != than
    return any(position_key(a) > position_key(b) for a, b in zip(mine, theirs, strict=True))


def split(position: Position | None, partitions: int) -> list[Position | None]:
    """The per-partition positions of a :func:`joined` one (``None`` for none)."""
    if position is None:
        return [None] * partitions
    parts = [None if p == "0-0" and partitions > 1 else Position(p) for p in position.split(",")]
    if len(parts) != partitions:
        raise ValueError(f"{position!r} does not name {partitions} partitions' positions")
    return parts


def parse_generation(raw: bytes | str | None) -> int:
    """The generation a pointer's value names (no pointer: 0)."""
    if raw is None:
        return 0
    text = _text(raw)
    try:
        return int(text)
    except ValueError:
        raise CorruptViewError(f"a view pointer holds {text!r}, not a generation") from None


async def active_generation(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> int:
    """The generation of ``projection``'s view that readers and the runner use now."""
    pointer = Keys.of(prefix).view_pointer(projection.name, projection.version, partition)
    return parse_generation(await client.get(pointer))


async def current_view_keys(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> ViewKeys:
    """The keys of the active generation of ``projection``'s view (of one partition)."""
    generation = await active_generation(client, prefix, projection, partition=partition)
    return view_keys(prefix, projection, generation, partition=partition)


async def _snapshot(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    generation: Generation | None,
    commands: Any,
    *,
    partition: int = 0,
) -> tuple[ViewKeys, list[Any]]:
    """Run ``commands(pipe, keys)`` in one MULTI on the active (or the given) generation.

    With no ``generation`` given the pointer is read inside the same MULTI; when it moved
    since it was resolved the snapshot is taken again on the new generation.
    """
    for _ in range(_POINTER_RETRIES):
        resolved = (
            await active_generation(client, prefix, projection, partition=partition)
            if generation is None
            else generation
        )
        keys = view_keys(prefix, projection, resolved, partition=partition)
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(keys.pointer)
            commands(pipe, keys)
            replies = await pipe.execute()
        if generation is not None or parse_generation(replies[0]) == resolved:
            return keys, replies[1:]
    raise ViewError(f"the view pointer of {projection.name} v{projection.version} keeps moving")


_encoder = msgspec.json.Encoder()


def encode_doc(doc: msgspec.Struct) -> bytes:
    """A document as the view stores it (JSON)."""
    return _encoder.encode(doc)


# --- the changes stream: which documents each commit changed -----------------------------

CHANGES_KEPT: Final = 256
"""Commits a view's changes stream keeps (about: ``XADD MAXLEN ~``)."""
CHANGES_LISTED: Final = 5000
"""Most document ids one commit lists; a bigger commit (a catch-up) is recorded as ``many``.

A follower's batch (up to 1,000 entries) stays under it: a projector that fell behind for a
moment must not make every reader read whole kinds (at 1M events a whole read of the
victims cells held the API for up to a second)."""
CHANGES_FOLLOWED: Final = 200
"""Most commits a reader follows through the changes stream (further behind, or past a
commit recorded as ``many``, it reads the kinds whole). Below :data:`CHANGES_KEPT`, so a
reader whose last seen entry was trimmed away always finds more than this after it."""
CHANGES_FETCHED: Final = 10_000
"""Most changed documents a reader fetches by id at once (more: it reads the kinds whole)."""

LUA_WRITE_DOCS: Final = """
-- write_docs(first_key, i, listed): for each kind hash KEYS[first_key..], ARGV from i holds
-- its kind, puts P, deletes R, P (id, document) pairs and R ids. Unless listed is nil, each
-- kind's written and deleted ids are added to it (kind, msgpack array of ids, ...) until it
-- would hold more than @LISTED@ ids, when it becomes nil. Returns the index after them and
-- listed.
local function write_docs(first_key, i, listed)
  for k = first_key, #KEYS do
    local kind, puts, dels = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local first_put, first_del = i + 3, i + 3 + 2 * puts
    i = first_del + dels
    for s = first_put, first_del - 1, 1000 do
      redis.call('HSET', KEYS[k], unpack(ARGV, s, math.min(s + 999, first_del - 1)))
    end
    for s = first_del, i - 1, 1000 do
      redis.call('HDEL', KEYS[k], unpack(ARGV, s, math.min(s + 999, i - 1)))
    end
    if listed ~= nil then
      listed.n = (listed.n or 0) + puts + dels
      if listed.n > @LISTED@ then
        listed = nil
      elseif puts + dels > 0 then
        local ids = {}
        for x = first_put, first_del - 1, 2 do ids[#ids + 1] = ARGV[x] end
        for x = first_del, i - 1 do ids[#ids + 1] = ARGV[x] end
        listed[#listed + 1] = kind
        listed[#listed + 1] = cmsgpack.pack(ids)
      end
    end
  end
  return i, listed
end
-- record_changes(key, from, to, listed): append one commit (checkpoint from -> to) to a
-- view's changes stream, with the ids it changed per kind, or 'many' when listed is nil.
local function record_changes(key, from, to, listed)
  local record = {'from', from, 'to', to}
  if listed == nil then
    record[5], record[6] = 'many', '1'
  else
    for x = 1, #listed do record[#record + 1] = listed[x] end
  end
  redis.call('XADD', key, 'MAXLEN', '~', '@KEPT@', '*', unpack(record))
end
""".replace("@LISTED@", str(CHANGES_LISTED)).replace("@KEPT@", str(CHANGES_KEPT))
"""Lua functions, prepended to every script that writes a view's documents (the runner's
commit, rebuilds, dead-letter retries): ``write_docs`` writes what :func:`doc_change_args`
packs, and ``record_changes`` records the commit in the view's changes stream (``from``,
``to``, then per kind the msgpack array of the ids it wrote or deleted, or ``many``), which
readers follow (:func:`read_kinds`)."""


def doc_change_args(
    changes: Mapping[tuple[str, str], msgspec.Struct | None], kind_keys: Mapping[str, str]
) -> tuple[list[str], list[bytes | str | int]]:
    """The kind-hash keys and the arguments ``write_docs`` (:data:`LUA_WRITE_DOCS`) reads
    for ``changes``: per kind its name, the counts, the (id, JSON) pairs and deleted ids."""
    per_kind: dict[str, tuple[list[bytes | str], list[str]]] = {}
    for (kind, ident), doc in changes.items():
        puts, dels = per_kind.setdefault(kind, ([], []))
        if doc is None:
            dels.append(ident)
        else:
            puts += [ident, encode_doc(doc)]
    keys: list[str] = []
    args: list[bytes | str | int] = []
    for kind, (puts, dels) in per_kind.items():
        keys.append(kind_keys[kind])
        args += [kind, len(puts) // 2, len(dels), *puts, *dels]
    return keys, args


_FOLLOW_SCRIPT: Final = """
-- KEYS: view pointer, meta, changes stream, then the kind hashes asked for.
-- ARGV: generation, the checkpoint the reader holds, the last changes entry it saw, then
--   the kind of each kind hash.
-- Returns {} when the reader must read the kinds whole, else {checkpoint, last entry id,
--   then per kind: the changed ids and their documents (nil: deleted)}.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return {} end
local now = redis.call('HGET', KEYS[2], 'position')
if not now then return {} end
local entries = redis.call('XRANGE', KEYS[3], '(' .. ARGV[3], '+', 'COUNT', @FOLLOWED@ + 1)
if #entries > @FOLLOWED@ then return {} end
local at, last, count = ARGV[2], ARGV[3], 0
local wanted = {}
for k = 4, #KEYS do wanted[ARGV[k]] = {} end
for _, entry in ipairs(entries) do
  local f = {}
  for x = 1, #entry[2], 2 do f[entry[2][x]] = entry[2][x + 1] end
  if f['from'] ~= at or f['many'] then return {} end
  at = f['to']
  for kind, set in pairs(wanted) do
    if f[kind] then
      for _, id in ipairs(cmsgpack.unpack(f[kind])) do
        if not set[id] then set[id] = true; count = count + 1 end
      end
    end
  end
  if count > @FETCHED@ then return {} end
  last = entry[1]
end
if at ~= now then return {} end
local out = {now, last}
for k = 4, #KEYS do
  local ids = {}
  for id in pairs(wanted[ARGV[k]]) do ids[#ids + 1] = id end
  local docs = {}
  for s = 1, #ids, 1000 do
    local got = redis.call('HMGET', KEYS[k], unpack(ids, s, math.min(s + 999, #ids)))
    for x = 1, #got do docs[#docs + 1] = got[x] end
  end
  out[#out + 1] = ids
  out[#out + 1] = docs
end
return out
""".replace("@FOLLOWED@", str(CHANGES_FOLLOWED)).replace("@FETCHED@", str(CHANGES_FETCHED))


class KindsRead(msgspec.Struct, frozen=True, kw_only=True):
    """What :func:`read_kinds` found: the view's documents of some kinds, whole or changed."""

    checkpoint: Position | None
    """The view's checkpoint (``None``: never written; nothing else is then set)."""
    seen: str = "0-0"
    """The last entry of the view's changes stream these documents include."""
    generation: Generation = 0
    """The generation read."""
    whole: list[dict[bytes | str, bytes | str]] | None = None
    """Per kind asked for, every stored document (id → JSON); ``None`` when ``changed`` is set."""
    changed: list[dict[str, bytes | None]] | None = None
    """Per kind asked for, the documents changed since the held state (``None``: deleted)."""


async def read_kinds(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    kinds: Sequence[str],
    *,
    held: tuple[Position, str, Generation] | None = None,
    partition: int = 0,
) -> KindsRead:
    """The stored documents of ``kinds`` and the view's checkpoint, as one atomic snapshot.

    A reader that holds the documents at ``held`` (checkpoint, last changes entry seen,
    generation) gets only the documents changed since, fetched by id in one script that
    follows the view's changes stream (:data:`LUA_WRITE_DOCS`); the kinds are read whole
    when it cannot (another generation, a commit recorded as ``many``, too far behind, or a
    checkpoint moved by a writer that records no changes).
    """
    for kind in kinds:
        if kind not in projection.doc_types:
            raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    if held is not None:
        checkpoint, seen, generation = held
        keys = view_keys(prefix, projection, generation, partition=partition)
        reply = await client.register_script(_FOLLOW_SCRIPT)(
            keys=[keys.pointer, keys.meta, keys.changes, *(keys.kinds[kind] for kind in kinds)],
            args=[str(generation), checkpoint, seen, *kinds],
        )
        if reply:
            changed = [
                {_text(ident): doc for ident, doc in zip(ids, docs, strict=True)}
                for ids, docs in zip(reply[2::2], reply[3::2], strict=True)
            ]
            return KindsRead(
                checkpoint=_checkpoint(reply[0]),
                seen=_text(reply[1]),
                generation=generation,
                changed=changed,
            )

    def commands(pipe: Any, keys: ViewKeys) -> None:
        for kind in kinds:
            pipe.hgetall(keys.kinds[kind])
        pipe.hget(keys.meta, CHECKPOINT_FIELD)
        pipe.xrevrange(keys.changes, count=1)

    keys, replies = await _snapshot(client, prefix, projection, None, commands, partition=partition)
    last = replies[-1]
    return KindsRead(
        checkpoint=_checkpoint(replies[-2]),
        seen=_text(last[0][0]) if last else "0-0",
        generation=keys.generation,
        whole=list(replies[:-2]),
    )


@cache
def _decoder(doc_type: type[msgspec.Struct]) -> msgspec.json.Decoder[Any]:
    return msgspec.json.Decoder(doc_type)


def decode_doc(projection: Projection, kind: str, raw: bytes | str) -> msgspec.Struct:
    """A stored document of ``kind`` back as its Struct; :class:`CorruptViewError` if it is not."""
    doc_type = projection.doc_types.get(kind)
    if doc_type is None:
        raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    try:
        doc: msgspec.Struct = _decoder(doc_type).decode(raw)
    except msgspec.DecodeError as exc:
        raise CorruptViewError(f"{projection.name} v{projection.version} {kind}: {exc}") from exc
    return doc


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _checkpoint(raw: bytes | str | None) -> Position | None:
    return None if raw is None else Position(_text(raw))


def _decode_kind(
    projection: Projection, kind: str, stored: Mapping[bytes | str, bytes | str]
) -> dict[str, msgspec.Struct]:
    return {_text(ident): decode_doc(projection, kind, raw) for ident, raw in stored.items()}


async def load_view(
    client: aioredis.Redis,
    prefix: str,
    projection: Projection,
    *,
    generation: Generation | None = None,
) -> tuple[Docs[msgspec.Struct], Position | None]:
    """Every document of the stored view and its checkpoint, read as one atomic snapshot.

    Reads the active generation unless ``generation`` names one. A view never written
    answers the projection's initial state and ``None``.
    """
    kinds = list(projection.doc_types)

    def commands(pipe: Any, keys: ViewKeys) -> None:
        for kind in kinds:
            pipe.hgetall(keys.kinds[kind])
        pipe.hget(keys.meta, CHECKPOINT_FIELD)

    _, replies = await _snapshot(client, prefix, projection, generation, commands)
    checkpoint = _checkpoint(replies[-1])
    if checkpoint is None:
        return projection.initial(), None
    stored = {
        kind: _decode_kind(projection, kind, reply)
        for kind, reply in zip(kinds, replies[:-1], strict=True)
    }
    return Docs(stored), checkpoint


async def load_kind(
    client: aioredis.Redis,
    prefix: str,
    projection: Projection,
    kind: str,
    *,
    generation: Generation | None = None,
) -> dict[str, msgspec.Struct]:
    """Every stored document of one ``kind``, by id (empty when the view was never written)."""
    if kind not in projection.doc_types:
        raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")
    _, replies = await _snapshot(
        client, prefix, projection, generation, lambda pipe, keys: pipe.hgetall(keys.kinds[kind])
    )
    return _decode_kind(projection, kind, replies[0])


async def load_kinds_raw(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    kinds: Sequence[str],
    *,
    generation: Generation | None = None,
    partition: int = 0,
) -> tuple[list[dict[bytes | str, bytes | str]], Position | None]:
    """The stored documents of ``kinds`` as stored (id → JSON, not decoded) and the view's
    checkpoint, read as one atomic snapshot.

    For readers that keep decoded documents and decode again only those whose stored JSON
    changed (:func:`decode_doc`).
    """
    for kind in kinds:
        if kind not in projection.doc_types:
            raise UnknownKindError(f"{projection.name} has no document kind {kind!r}")

    def commands(pipe: Any, keys: ViewKeys) -> None:
        for kind in kinds:
            pipe.hgetall(keys.kinds[kind])
        pipe.hget(keys.meta, CHECKPOINT_FIELD)

    _, replies = await _snapshot(
        client, prefix, projection, generation, commands, partition=partition
    )
    return list(replies[:-1]), _checkpoint(replies[-1])


async def load_checkpoint(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    *,
    generation: Generation | None = None,
) -> Position | None:
    """The stored view's checkpoint: the last log position it includes (``None``: none yet).

    On several partitions, every partition view's checkpoint, :func:`joined`.
    """
    keys = Keys.of(prefix)

    async def one(partition: int) -> Position | None:
        _, replies = await _snapshot(
            client,
            keys,
            projection,
            generation,
            lambda pipe, keys: pipe.hget(keys.meta, CHECKPOINT_FIELD),
            partition=partition,
        )
        return _checkpoint(replies[0])

    return joined(await asyncio.gather(*(one(p) for p in range(keys.partitions))))


async def load_raw(
    client: aioredis.Redis,
    prefix: str,
    projection: Projection,
    *,
    generation: Generation | None = None,
) -> tuple[ViewKeys, dict[str, dict[str, bytes]], Position | None]:
    """The stored view undecoded: its keys, JSON documents by kind and id, and checkpoint.

    One atomic snapshot of the active (or the given) generation, as :func:`load_view`;
    for tools that must see a document even when it no longer decodes.
    """
    kinds = list(projection.doc_types)

    def commands(pipe: Any, keys: ViewKeys) -> None:
        for kind in kinds:
            pipe.hgetall(keys.kinds[kind])
        pipe.hget(keys.meta, CHECKPOINT_FIELD)

    keys, replies = await _snapshot(client, prefix, projection, generation, commands)
    stored = {
        kind: {
            _text(ident): raw if isinstance(raw, bytes) else raw.encode()
            for ident, raw in reply.items()
        }
        for kind, reply in zip(kinds, replies[:-1], strict=True)
    }
    return keys, stored, _checkpoint(replies[-1])


async def load_view_paged(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    *,
    generation: Generation,
    page: int = VIEW_PAGE,
    partition: int = 0,
    on_page: Callable[[], Awaitable[None]] | None = None,
) -> tuple[Docs[msgspec.Struct], Position | None]:
    """Every document of one generation of the view and its checkpoint, read in pages.

    For the projector holding the view's lease only. A view of hundreds of thousands of
    documents does not fit in one ``HGETALL`` under the service's 1 s socket timeout, so
    each kind is read with ``HSCAN … COUNT page`` (a few milliseconds per call). The pages
    are not one snapshot, and need not be: only the lease holder writes the view (its commit
    script checks the lease), so nothing changes it while its holder reads it. The
    checkpoint is read before and after the pages as a guard: when it moved, someone else
    committed meanwhile and :class:`ViewChangedError` is raised (the holder's commit would
    refuse the stale state anyway, as its expected checkpoint no longer matches).
    Readers use :func:`load_view`, which stays one atomic snapshot. ``on_page`` is awaited
    after every page: the holder renews its lease there, as a big view takes longer to load
    than a lease lasts (it may raise to end the load).
    """
    keys = view_keys(prefix, projection, generation, partition=partition)
    before = await client.hget(keys.meta, CHECKPOINT_FIELD)
    checkpoint = _checkpoint(before)
    if checkpoint is None:
        return projection.initial(), None
    stored: dict[str, dict[str, msgspec.Struct]] = {}
    for kind in projection.doc_types:
        decoder = _decoder(projection.doc_types[kind])
        found: dict[str, msgspec.Struct] = {}
        cursor: int = 0
        while True:
            cursor, items = await client.hscan(keys.kinds[kind], cursor, count=page)
            pairs: Mapping[Any, Any] = items  # type: ignore[assignment]  # HSCAN without NOVALUES
            try:
                for ident, raw in pairs.items():
                    found[_text(ident)] = decoder.decode(raw)
            except msgspec.DecodeError as exc:
                raise CorruptViewError(
                    f"{projection.name} v{projection.version} {kind}: {exc}"
                ) from exc
            if on_page is not None:
                await on_page()
            if not cursor:
                break
        stored[kind] = found
    after = await client.hget(keys.meta, CHECKPOINT_FIELD)
    if _checkpoint(after) != checkpoint:
        raise ViewChangedError(
            f"{keys.meta} moved from {checkpoint} to {_checkpoint(after)} during the load"
        )
    return Docs(stored), checkpoint
