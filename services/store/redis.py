"""The event store on a Redis Stream, with appends as one Lua script per batch.

An append is one ``EVALSHA`` of :data:`APPEND_SCRIPT` over one partition's keys (``log``,
``ids``, ``entities``, ``history``; see :mod:`services.store.keys`). The script first checks
every event of the batch against the stored state plus the batch's own earlier events, and
returns the first problem without writing anything; only then does it write, so a batch is
all-or-nothing and no other client sees half of it. The rules are those of
:mod:`services.store.memory`, which also builds the error messages of both stores.

The batch travels as one MessagePack argument (unpacked by the script with ``cmsgpack``),
not as ten arguments per event: packing a command's arguments one by one was most of the
client's time. The script reads and writes each index hash with one command per 1,000
fields, so the only per-event commands are the ``XADD`` s. What an entry holds is exactly
:func:`events.to_fields` of the event's stored form.

Reads are plain stream commands: ``XRANGE`` with an exclusive start, ``XREVRANGE`` for the
head, ``XLEN``; an entity's events are found through its ``history`` field and fetched with
one pipelined ``XRANGE pos pos`` per position (one round trip).

Redis errors become :class:`~services.store.base.StoreUnavailableError`: the connection
failed, timed out, or the server answered with an error (loading, out of memory, read-only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, ParamSpec, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from events import (
    EVENT_TYPES,
    AnyEvent,
    CodecError,
    IncidentMerged,
    Position,
    Recorded,
    encode,
    from_fields,
    recorded_at_of,
)

from .base import Appended, EntityState, StoreError, StoreUnavailableError
from .keys import Keys
from .memory import START, conflict, op_of, rejection, stored_form

__all__ = ["APPEND_SCRIPT", "RedisEventStore", "connect"]

SOCKET_TIMEOUT = 1.0
"""Seconds a command or a connection attempt may take before the store gives up."""

_pack = msgspec.msgpack.Encoder().encode
_TAGS: dict[type, str] = {cls: tag for tag, cls in EVENT_TYPES.items()}
_VERSIONS: dict[type, str] = {cls: str(cls.SCHEMA_VERSION) for cls in EVENT_TYPES.values()}

APPEND_SCRIPT = """
-- KEYS: log, ids, entities, history of one partition.
-- ARGV[1]: a MessagePack array with one array per event: type, event_id, v, data, entity,
--   expected_version ('' for none), op (create|revise|retract|merge|redact), into entity
--   ('' unless a merge), into id, sealed (the sealed private text, '' for none: the entry
--   then has no sealed field). One argument for the whole batch keeps the client's command
--   packing to one string; the index hashes are read and written with one command per
--   hash (in chunks), so the per-event commands are the XADDs alone.
-- Returns {'ok', flags, pos1, pos2, ...} with flags one letter per event (a: appended,
-- d: duplicate), or the first problem with nothing written:
--   {'conflict', index, entity, current_version, 'version'|'exists'}
--   {'rejected', index, 'self'|'into', status, merged_into}
local log, ids, entities, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch = cmsgpack.unpack(ARGV[1])
local n = #batch
local CHUNK = 1000

-- HMGET of many fields, CHUNK at a time (unpack has a stack limit)
local function hmget(key, fields)
  local values = {}
  for first = 1, #fields, CHUNK do
    local last = math.min(first + CHUNK - 1, #fields)
    local got = redis.call('HMGET', key, unpack(fields, first, last))
    for j = 1, #got do
      values[first + j - 1] = got[j]
    end
  end
  return values
end

-- HSET of many field/value pairs (a flat list), CHUNK pairs at a time
local function hset(key, pairs)
  for first = 1, #pairs, 2 * CHUNK do
    local last = math.min(first + 2 * CHUNK - 1, #pairs)
    redis.call('HSET', key, unpack(pairs, first, last))
  end
end

-- what the hashes know already: every id, and every entity named (merge targets too)
local id_list = {}
local names = {}
local named = {}
local function name(entity)
  if not named[entity] then
    named[entity] = true
    names[#names + 1] = entity
  end
end
for i = 1, n do
  local e = batch[i]
  id_list[i] = e[2]
  name(e[5])
  if e[7] == 'merge' then
    name(e[8])
  end
end
local known_ids = hmget(ids, id_list)
local stored = hmget(entities, names)
local states = {}
for j = 1, #names do
  local raw = stored[j]
  local s
  if raw then
    local version, rest = string.match(raw, '^(%d+)|(.*)$')
    local bar = string.find(rest, '|', 1, true)
    if bar then
      s = {tonumber(version), string.sub(rest, 1, bar - 1), string.sub(rest, bar + 1)}
    else
      s = {tonumber(version), rest, ''}
    end
  else
    s = {0, 'missing', ''}
  end
  states[names[j]] = s
end

-- first pass: check everything, write nothing
local seen = {}
local dup = {}
local dirty = {}
local dirty_order = {}
for i = 1, n do
  local e = batch[i]
  local id = e[2]
  if seen[id] then
    dup[i] = seen[id]
  elseif known_ids[i] then
    dup[i] = known_ids[i]
  else
    seen[id] = i
    local entity, expected, op = e[5], e[6], e[7]
    local s = states[entity]
    if expected ~= '' and tonumber(expected) ~= s[1] then
      return {'conflict', i - 1, entity, s[1], 'version'}
    end
    if op == 'create' then
      if s[2] ~= 'missing' then
        return {'conflict', i - 1, entity, s[1], 'exists'}
      end
      s[2] = 'live'
    elseif op == 'redact' and s[2] ~= 'missing' then
      -- erasure reaches an incident whatever its status, and keeps the status
    else
      if s[2] ~= 'live' then
        return {'rejected', i - 1, 'self', s[2], s[3]}
      end
      if op == 'merge' then
        local into = e[8]
        if into == entity then
          return {'rejected', i - 1, 'into', 'self', ''}
        end
        local t = states[into]
        if t[2] ~= 'live' then
          return {'rejected', i - 1, 'into', t[2], t[3]}
        end
        s[2] = 'merged'
        s[3] = e[9]
      elseif op == 'retract' then
        s[2] = 'retracted'
      end
    end
    s[1] = s[1] + 1
    if not dirty[entity] then
      dirty[entity] = true
      dirty_order[#dirty_order + 1] = entity
    end
  end
end

-- second pass: write
local result = {'ok', ''}
local flags = {}
local positions = {}
local new_ids = {}
local touched = {}
local order = {}
local function remember(entity, pos)
  local list = touched[entity]
  if list == nil then
    list = {}
    touched[entity] = list
    order[#order + 1] = entity
  end
  list[#list + 1] = pos
end
for i = 1, n do
  local e = batch[i]
  local d = dup[i]
  local pos
  if d == nil then
    if e[10] == '' then
      pos = redis.call('XADD', log, '*', 'type', e[1], 'event_id', e[2], 'v', e[3],
        'data', e[4])
    else
      pos = redis.call('XADD', log, '*', 'type', e[1], 'event_id', e[2], 'v', e[3],
        'data', e[4], 'sealed', e[10])
    end
    new_ids[#new_ids + 1] = e[2]
    new_ids[#new_ids + 1] = pos
    remember(e[5], pos)
    if e[7] == 'merge' then
      remember(e[8], pos)
    end
    flags[i] = 'a'
  else
    if type(d) == 'number' then
      pos = positions[d]
    else
      pos = d
    end
    flags[i] = 'd'
  end
  positions[i] = pos
  result[i + 2] = pos
end
result[2] = table.concat(flags)
hset(ids, new_ids)
local changed = {}
for _, entity in ipairs(dirty_order) do
  local s = states[entity]
  local value = s[1] .. '|' .. s[2]
  if s[3] ~= '' then
    value = value .. '|' .. s[3]
  end
  changed[#changed + 1] = entity
  changed[#changed + 1] = value
end
hset(entities, changed)
if #order > 0 then
  local old = hmget(history, order)
  local lists = {}
  for j, entity in ipairs(order) do
    local joined = table.concat(touched[entity], ' ')
    if old[j] then
      joined = old[j] .. ' ' .. joined
    end
    lists[#lists + 1] = entity
    lists[#lists + 1] = joined
  end
  hset(history, lists)
end
return result
"""

_P = ParamSpec("_P")
_T = TypeVar("_T")

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError)


def connect(url: str, **options: Any) -> aioredis.Redis:
    """A client for the service: 1 s socket and connect timeouts, one quick reconnect.

    A closed port or a dead server then fails within about a second (and the store answers
    :class:`StoreUnavailableError`) instead of hanging; a connection the server dropped is
    replaced once, without a backoff. Timeouts are not retried. Nothing connects until the
    first command. ``options`` override the defaults (any ``redis.asyncio.Redis`` argument).
    """
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
        "retry": Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,)),
        "health_check_interval": 30,
    }
    settings.update(options)
    return aioredis.Redis.from_url(url, **settings)


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unavailable(exc: rexc.RedisError) -> StoreUnavailableError:
    return StoreUnavailableError(f"redis: {type(exc).__name__}: {exc}")


class RedisEventStore:
    """An :class:`~services.store.base.EventStore` on Redis Streams.

    ``client`` is any ``redis.asyncio.Redis`` (with or without ``decode_responses``); the
    service makes it with :func:`connect`. Only ``partitions=1`` is served for now.
    """

    def __init__(
        self, client: aioredis.Redis, *, prefix: str = "ledger", partitions: int = 1
    ) -> None:
        if partitions != 1:
            raise StoreError(f"only one log partition is supported yet, not {partitions}")
        self.client = client
        self.keys = Keys(prefix, partitions)
        self._append = client.register_script(APPEND_SCRIPT)

    async def _call(
        self, fn: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    # --- append ------------------------------------------------------------------------

    @staticmethod
    def _batch(
        events: Sequence[AnyEvent], sealed: Sequence[str | None] | None = None
    ) -> tuple[bytes, list[str]]:
        """The script's one argument (see :data:`APPEND_SCRIPT`) and the events' ids.

        The four entry fields are those of :func:`events.to_fields` of the stored form.
        """
        rows: list[tuple[str, ...]] = []
        event_ids: list[str] = []
        blobs = sealed if sealed is not None else [None] * len(events)
        for event, blob in zip(events, blobs, strict=True):
            stored = stored_form(event)
            event_id = str(stored.event_id)
            event_ids.append(event_id)
            expected = event.expected_version
            if isinstance(event, IncidentMerged):
                into_entity, into = event.into_entity, event.into
            else:
                into_entity = into = ""
            cls = type(stored)
            rows.append(
                (
                    _TAGS[cls],
                    event_id,
                    _VERSIONS[cls],
                    encode(stored).decode(),
                    event.entity,
                    "" if expected is None else str(expected),
                    op_of(event),
                    into_entity,
                    into,
                    blob or "",
                )
            )
        return _pack(rows), event_ids

    async def append(
        self, events: Sequence[AnyEvent], *, sealed: Sequence[str | None] | None = None
    ) -> list[Appended]:
        """Append a batch atomically, in one script call (see the module docstring).

        ``sealed`` gives per event the sealed private text its entry keeps in the field
        ``sealed`` (see :mod:`services.sealing`); ``None`` for none.
        """
        if sealed is not None and len(sealed) != len(events):
            raise ValueError(f"{len(sealed)} sealed blobs for {len(events)} events")
        if not events:
            return []
        keys = self.keys
        packed, event_ids = self._batch(events, sealed)
        reply = await self._call(
            self._append,
            keys=[keys.log, keys.ids, keys.entities, keys.history],
            args=[packed],
        )
        head = _str(reply[0])
        if head == "ok":
            flags = _str(reply[1])
            return [
                Appended(
                    event_id,
                    Position(pos.decode() if isinstance(pos, bytes) else pos),
                    "appended" if flag == "a" else "duplicate",
                )
                for event_id, flag, pos in zip(event_ids, flags, reply[2:], strict=True)
            ]
        index = int(reply[1])
        event = events[index]
        if head == "conflict":
            reason = cast("Literal['version', 'exists']", _str(reply[4]))
            raise conflict(index, event, int(reply[3]), reason)
        which = cast("Literal['self', 'into']", _str(reply[2]))
        into = _str(reply[4]) or None
        raise rejection(index, event, which, _str(reply[3]), into)

    # --- reads -------------------------------------------------------------------------

    @staticmethod
    def _recorded(entry: Any) -> Recorded:
        """Decode one ``(id, fields)`` stream entry."""
        position = Position(_str(entry[0]))
        fields = entry[1]
        try:
            event = from_fields(fields)
        except CodecError as exc:
            raise CodecError(f"log entry {position}: {exc}") from exc
        blob = fields.get(b"sealed") or fields.get("sealed")
        return Recorded(position, recorded_at_of(position), event, _str(blob) if blob else None)

    async def read(self, after: Position = START, count: int = 1000) -> list[Recorded]:
        """Up to ``count`` events strictly after ``after``, in log order."""
        if count < 1:
            return []
        entries = await self._call(
            self.client.xrange, self.keys.log, min=f"({after}", max="+", count=count
        )
        return [self._recorded(entry) for entry in entries or ()]

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity``, in log order (a merge under both incidents)."""
        raw = await self._call(self.client.hget, self.keys.history, entity)
        if not raw:
            return []
        positions = _str(raw).split()
        pipe = self.client.pipeline(transaction=False)
        for position in positions:
            pipe.xrange(self.keys.log, min=position, max=position)
        replies = await self._call(pipe.execute)
        return [self._recorded(entry) for reply in replies for entry in reply]

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status, or ``None`` when no event created it."""
        raw = await self._call(self.client.hget, self.keys.entities, entity)
        if raw is None:
            return None
        version, status, *into = _str(raw).split("|", 2)
        return EntityState(
            int(version),
            cast("Literal['live', 'retracted', 'merged']", status),
            into[0] if into else None,
        )

    async def head(self) -> Position | None:
        """The last position of the log, or ``None`` while it is empty."""
        entries = await self._call(self.client.xrevrange, self.keys.log, "+", "-", count=1)
        if not entries:
            return None
        last: Any = entries[0]
        return Position(_str(last[0]))

    async def length(self) -> int:
        """How many events the log holds."""
        return int(await self._call(self.client.xlen, self.keys.log))
