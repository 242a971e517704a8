"""The event store on a Redis Stream, with appends as one Lua script per batch.

An append is one ``EVALSHA`` of :data:`APPEND_SCRIPT` over one partition's keys (``log``,
``ids``, ``entities``, ``history``; see :mod:`services.store.keys`). The script first checks
every event of the batch against the stored state plus the batch's own earlier events, and
returns the first problem without writing anything; only then does it write, so a batch is
all-or-nothing and no other client sees half of it. The rules are those of
:mod:`services.store.memory`, which also builds the error messages of both stores.

Reads are plain stream commands: ``XRANGE`` with an exclusive start, ``XREVRANGE`` for the
head, ``XLEN``; an entity's events are found through its ``history`` field and fetched with
one pipelined ``XRANGE pos pos`` per position (one round trip).

Redis errors become :class:`~services.store.base.StoreUnavailableError`: the connection
failed, timed out, or the server answered with an error (loading, out of memory, read-only).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, ParamSpec, TypeVar, cast

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from events import (
    AnyEvent,
    CodecError,
    IncidentMerged,
    Position,
    Recorded,
    from_fields,
    recorded_at_of,
    to_fields,
)

from .base import Appended, EntityState, StoreError, StoreUnavailableError
from .keys import Keys
from .memory import START, conflict, op_of, rejection, stored_form

__all__ = ["APPEND_SCRIPT", "RedisEventStore", "connect"]

SOCKET_TIMEOUT = 1.0
"""Seconds a command or a connection attempt may take before the store gives up."""

_ARGS_PER_EVENT = 10

APPEND_SCRIPT = """
-- KEYS: log, ids, entities, history of one partition.
-- ARGV, 10 per event: type, event_id, v, data, entity, expected_version ('' for none),
--   op (create|revise|retract|merge|redact), into entity ('' unless a merge), into id,
--   sealed (the sealed private text, '' for none: the entry then has no sealed field).
-- Returns {'ok', flags, pos1, pos2, ...} with flags one letter per event (a: appended,
-- d: duplicate), or the first problem with nothing written:
--   {'conflict', index, entity, current_version, 'version'|'exists'}
--   {'rejected', index, 'self'|'into', status, merged_into}
local log, ids, entities, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local W = 10
local n = #ARGV / W
local states = {}

local function state_of(entity)
  local s = states[entity]
  if s == nil then
    local raw = redis.call('HGET', entities, entity)
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
    states[entity] = s
  end
  return s
end

-- first pass: check everything, write nothing
local seen = {}
local dup = {}
local dirty = {}
for i = 1, n do
  local b = (i - 1) * W
  local id = ARGV[b + 2]
  if seen[id] then
    dup[i] = seen[id]
  else
    local known = redis.call('HGET', ids, id)
    if known then
      dup[i] = known
    else
      seen[id] = i
      local entity, expected, op = ARGV[b + 5], ARGV[b + 6], ARGV[b + 7]
      local s = state_of(entity)
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
          local into = ARGV[b + 8]
          if into == entity then
            return {'rejected', i - 1, 'into', 'self', ''}
          end
          local t = state_of(into)
          if t[2] ~= 'live' then
            return {'rejected', i - 1, 'into', t[2], t[3]}
          end
          s[2] = 'merged'
          s[3] = ARGV[b + 9]
        elseif op == 'retract' then
          s[2] = 'retracted'
        end
      end
      s[1] = s[1] + 1
      dirty[entity] = true
    end
  end
end

-- second pass: write
local result = {'ok', ''}
local flags = {}
local positions = {}
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
  local b = (i - 1) * W
  local d = dup[i]
  local pos
  if d == nil then
    if ARGV[b + 10] == '' then
      pos = redis.call('XADD', log, '*', 'type', ARGV[b + 1], 'event_id', ARGV[b + 2],
        'v', ARGV[b + 3], 'data', ARGV[b + 4])
    else
      pos = redis.call('XADD', log, '*', 'type', ARGV[b + 1], 'event_id', ARGV[b + 2],
        'v', ARGV[b + 3], 'data', ARGV[b + 4], 'sealed', ARGV[b + 10])
    end
    redis.call('HSET', ids, ARGV[b + 2], pos)
    remember(ARGV[b + 5], pos)
    if ARGV[b + 7] == 'merge' then
      remember(ARGV[b + 8], pos)
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
for entity, _ in pairs(dirty) do
  local s = states[entity]
  local value = s[1] .. '|' .. s[2]
  if s[3] ~= '' then
    value = value .. '|' .. s[3]
  end
  redis.call('HSET', entities, entity, value)
end
for _, entity in ipairs(order) do
  local joined = table.concat(touched[entity], ' ')
  local old = redis.call('HGET', history, entity)
  if old then
    joined = old .. ' ' .. joined
  end
  redis.call('HSET', history, entity, joined)
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
    def _args(
        events: Sequence[AnyEvent], sealed: Sequence[str | None] | None = None
    ) -> list[str | bytes]:
        args: list[str | bytes] = []
        blobs = sealed if sealed is not None else [None] * len(events)
        for event, blob in zip(events, blobs, strict=True):
            fields = to_fields(stored_form(event))
            expected = event.expected_version
            if isinstance(event, IncidentMerged):
                into_entity, into = event.into_entity, event.into
            else:
                into_entity = into = ""
            args += [
                fields["type"],
                fields["event_id"],
                fields["v"],
                fields["data"],
                event.entity,
                "" if expected is None else str(expected),
                op_of(event),
                into_entity,
                into,
                blob or "",
            ]
        return args

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
        reply = await self._call(
            self._append,
            keys=[keys.log, keys.ids, keys.entities, keys.history],
            args=self._args(events, sealed),
        )
        head = _str(reply[0])
        if head == "ok":
            flags = _str(reply[1])
            return [
                Appended(
                    str(event.event_id),
                    Position(_str(pos)),
                    "appended" if flag == "a" else "duplicate",
                )
                for event, flag, pos in zip(events, flags, reply[2:], strict=True)
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
