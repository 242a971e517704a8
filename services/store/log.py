"""The one reader of the log: its entries page by page, decoded into :class:`Recorded`.

Every part of the service that reads the log reads it here: the Redis store, the projectors'
catch-up, rebuilds, as-of folds, verification, export, freshness. An entry is decoded once
(:func:`decode_entry`) into its position, its :class:`~events.Recorded` event (with the
sealed text it keeps, if any) and, when it does not decode, the error instead, so a folder
can isolate it rather than stop; :meth:`LogReader.recorded` raises instead.
:func:`stream_pages` pages any stream the same way (dead letters, the audit trail).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, Final

import redis.asyncio as aioredis
from redis.client import NEVER_DECODE

from events import CodecError, Position, Recorded, from_fields, position_key, recorded_at_of
from services.resp import field, paired, text
from services.store.keys import Keys, bucket_of
from services.store.positions import START

__all__ = [
    "ENTITY_EVENTS_SCRIPT",
    "PAGE",
    "RAW",
    "LogEntry",
    "LogReader",
    "RawEntry",
    "decode_entry",
    "decode_page",
    "recorded_of",
    "stream_pages",
    "xrange",
    "xrange_args",
]

PAGE: Final = 1000
"""Entries read per ``XRANGE`` unless a reader asks for another size."""

RawEntry = tuple[Position, Mapping[Any, Any]]
"""An entry as the stream holds it: its position and its fields (``type``, ``data``, …)."""

LogEntry = tuple[Position, Recorded | None, Exception | None]
"""A decoded entry: its position, and its recorded event or the error decoding it raised."""


def decode_entry(ident: Any, fields: Mapping[Any, Any]) -> LogEntry:
    """Decode one entry, keeping the error of one that does not decode (never raises)."""
    position = Position(text(ident))
    try:
        event = from_fields(fields)
    except Exception as exc:  # a poison entry: the folder decides what becomes of it
        return position, None, exc
    # field() spelt out: this runs once per entry of every fold, and most entries have no seal
    blob = fields.get(b"sealed") or fields.get("sealed")
    sealed = text(blob) if blob else None
    return position, Recorded(position, recorded_at_of(position), event, sealed), None


def recorded_of(ident: Any, fields: Mapping[Any, Any]) -> Recorded:
    """Decode one entry; :class:`~events.CodecError` naming its position if it does not."""
    position, recorded, error = decode_entry(ident, fields)
    if recorded is not None:
        return recorded
    assert error is not None  # noqa: S101  # one of the two is set
    if isinstance(error, CodecError):
        raise CodecError(f"log entry {position}: {error}") from error
    raise error


def decode_page(entries: Iterable[RawEntry], types: frozenset[str] | None = None) -> list[LogEntry]:
    """Decode a page of entries; entries of types outside ``types`` are left out undecoded,
    and so are entries without fields (deleted from the log)."""
    return [
        decode_entry(position, fields)
        for position, fields in entries
        if fields and (types is None or text(field(fields, "type")) in types)
    ]


def xrange_args(key: str, low: str, high: str, count: int | None = None) -> list[Any]:
    """The ``XRANGE`` command for :func:`xrange`, to queue on a pipeline with
    ``execute_command(*args, **RAW)``."""
    bounds = ["XRANGE", key, low, high]
    return bounds if count is None else [*bounds, "COUNT", count]


RAW: Final[dict[str, Any]] = {NEVER_DECODE: True}
"""The option that keeps a reply as bytes, whatever the client's ``decode_responses``: the
entries' ``d`` is binary (:mod:`events.codec`)."""


async def xrange(
    client: aioredis.Redis, key: str, low: str, high: str, count: int | None = None
) -> list[Any]:
    """``XRANGE`` with the entries' fields as stored (bytes) on any client."""
    command = xrange_args(key, low, high, count)
    page: list[Any] = await client.execute_command(*command, **RAW) or []  # type: ignore[no-untyped-call]
    return page


async def stream_pages(
    client: aioredis.Redis,
    key: str,
    *,
    low: str = "-",
    high: str = "+",
    size: int = PAGE,
    limit: int | None = None,
) -> AsyncIterator[list[RawEntry]]:
    """The entries of a stream from ``low`` to ``high`` (``XRANGE`` bounds), ``size`` a page,
    at most ``limit`` in all."""
    seen = 0
    while limit is None or seen < limit:
        count = size if limit is None else min(size, limit - seen)
        page = await xrange(client, key, low, high, count)
        if not page:
            return
        found = [(Position(text(ident)), fields or {}) for ident, fields in page]
        seen += len(found)
        yield found
        if len(found) < count:
            return
        low = f"({found[-1][0]}"


ENTITY_EVENTS_SCRIPT: Final = """
-- KEYS: the log, the entities hash (of before buckets) and the history hash of one partition.
-- ARGV[1]: a position; ARGV[2]: entities and their buckets, 'entity bucket entity bucket ...'
-- (one argument: the client packs one string, however many entities).
-- Returns the entries (as XRANGE gives them) of every event of those entities at or before
-- the position, each once: the entity's first event (the fifth part of its state,
-- 'version|status|into|owner|created') and the positions its history lists (all of them
-- for an entity recorded before its state kept the first), in no particular order. An
-- entity whose first event comes after the position costs one HGET.
local log, entities, history = KEYS[1], KEYS[2], KEYS[3]
local function parts(pos)
  local ms, seq = string.match(pos, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local top_ms, top_seq = parts(ARGV[1])
local unbucketed = redis.call('EXISTS', entities) == 1
local seen, out = {}, {}
local function after_top(pos)
  local ms, seq = parts(pos)
  return ms == nil or ms > top_ms or (ms == top_ms and seq > top_seq)
end
local function take(pos)
  if seen[pos] or after_top(pos) then return end
  seen[pos] = true
  local got = redis.call('XRANGE', log, pos, pos)
  if got[1] then out[#out + 1] = got[1] end
end
for entity, bucket in string.gmatch(ARGV[2], '(%S+) (%S+)') do
  local state = redis.call('HGET', entities .. ':' .. bucket, entity)
  if not state and unbucketed then
    state = redis.call('HGET', entities, entity)
  end
  local created = state and string.match(state, '^[^|]*|[^|]*|[^|]*|[^|]*|([^|]*)$')
  -- no event at or before the position when the first one is after it
  if state and not (created and created ~= '' and after_top(created)) then
    if created and created ~= '' then take(created) end
    local held = redis.call('HGET', history, entity)
    if held then
      for pos in string.gmatch(held, '%S+') do take(pos) end
    end
  end
end
return out
"""
"""Reads the events of many entities up to a position in one call (:meth:`LogReader.upto`)."""


class LogReader:
    """Reads one partition of the log (the whole log while there is one partition)."""

    def __init__(self, client: aioredis.Redis, keys: Keys | str, partition: int = 0) -> None:
        self.client = client
        keys = Keys.of(keys)
        self.key = keys.log_of(partition)
        self._index: tuple[str, str] | None = (
            keys.entities_of(partition),
            keys.history_of(partition),
        )

    async def upto(self, entities: Sequence[str], until: Position) -> list[RawEntry]:
        """Every entry of an event of ``entities`` (a merge under both incidents) at or before
        ``until``, each once, in log order: one script call (:data:`ENTITY_EVENTS_SCRIPT`)
        over the partition's entities and history indexes."""
        if not entities:
            return []
        if self._index is None:
            raise ValueError(f"a reader made by LogReader.at({self.key!r}) has no indexes")
        packed = " ".join(f"{entity} {bucket_of(entity)}" for entity in entities)
        found: list[Any] = await self.client.execute_command(  # type: ignore[no-untyped-call]
            "EVAL", ENTITY_EVENTS_SCRIPT, 3, self.key, *self._index, until, packed, **RAW
        )
        entries: list[RawEntry] = [
            (Position(text(ident)), paired(fields)) for ident, fields in found or []
        ]
        entries.sort(key=lambda entry: position_key(entry[0]))
        return entries

    @classmethod
    def at(cls, client: aioredis.Redis, key: str) -> LogReader:
        """The reader of the log partition stored under ``key``."""
        reader = cls(client, "ledger")
        reader.key = key
        reader._index = None  # its indexes are not known: no upto()
        return reader

    async def raw(
        self, after: Position | None = None, *, until: str | None = None, count: int = PAGE
    ) -> list[RawEntry]:
        """Up to ``count`` entries after ``after`` (``None``: from the start) and up to
        ``until`` (included; ``None``: the head), as stored."""
        start = "-" if after is None else f"({after}"
        page = await xrange(self.client, self.key, start, "+" if until is None else until, count)
        return [(Position(text(ident)), fields or {}) for ident, fields in page]

    async def read(
        self, after: Position | None = None, *, until: str | None = None, count: int = PAGE
    ) -> list[LogEntry]:
        """Up to ``count`` entries after ``after`` (to ``until``), each decoded or with its
        error (:func:`decode_entry`)."""
        return [decode_entry(p, f) for p, f in await self.raw(after, until=until, count=count)]

    async def recorded(self, after: Position = START, count: int = PAGE) -> list[Recorded]:
        """Up to ``count`` events strictly after ``after``; :class:`CodecError` for an entry
        that does not decode."""
        if count < 1:
            return []
        return [recorded_of(p, f) for p, f in await self.raw(after, count=count)]

    def pages(
        self, after: Position | None = None, *, until: str | None = None, size: int = PAGE
    ) -> AsyncIterator[list[RawEntry]]:
        """Every entry after ``after`` up to ``until`` (included), ``size`` a page."""
        low = "-" if after is None else f"({after}"
        return stream_pages(self.client, self.key, low=low, high=until or "+", size=size)

    async def head(self) -> Position | None:
        """The last position of the log, or ``None`` while it is empty."""
        return await self.last_at("+")

    async def first(self) -> Position | None:
        """The first position of the log, or ``None`` while it is empty."""
        found = await xrange(self.client, self.key, "-", "+", 1)
        return Position(text(found[0][0])) if found else None

    async def last_at(self, top: str) -> Position | None:
        """The last position at or before ``top`` (an entry id, or ``<ms>`` for any entry of
        that millisecond), or ``None`` when there is none."""
        command = ("XREVRANGE", self.key, top, "-", "COUNT", 1)
        found: list[Any] = await self.client.execute_command(*command, **RAW) or []  # type: ignore[no-untyped-call]
        return Position(text(found[0][0])) if found else None

    async def length(self) -> int:
        """How many entries the log holds."""
        return int(await self.client.xlen(self.key))

    async def length_and_head(self) -> tuple[int, Position | None]:
        """How many entries the log holds and its last position, read in one ``MULTI``."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.xlen(self.key)
            pipe.execute_command("XREVRANGE", self.key, "+", "-", "COUNT", 1, **RAW)
            length, last = await pipe.execute()
        return int(length), Position(text(last[0][0])) if last else None

    async def count_after(
        self, after: Position | None, *, until: Position | None = None, page: int = 10_000
    ) -> int:
        """The entries after ``after`` (from the start for ``None``) up to ``until`` (included;
        ``None``: the head), counted page by page (only ids are kept, never the fields)."""
        if after is None and until is None:
            return await self.length()
        count = 0
        async for found in self.pages(after, until=until, size=page):
            count += len(found)
        return count
