"""One append script per batch and partition: what it is given and what its answer means.

:data:`APPEND_SCRIPT` runs over one partition's keys (``log``, ``ids``, ``entities``,
``history``; see :mod:`services.store.keys`). It first checks every event of the batch
against the stored state plus the batch's own earlier events, and returns the first problem
without writing anything; only then does it write, so a batch is all-or-nothing and no other
client sees half of it. The rules are those of :mod:`services.store.rules`, which also builds
the errors its answers turn into (:func:`answers`).

The batch travels as one MessagePack argument (:func:`pack_batch`, unpacked by the script
with ``cmsgpack``), not as ten arguments per event: packing a command's arguments one by one
was most of the client's time. The script reads and writes each index hash with one command
per 1,000 fields, so the only per-event commands are the ``XADD`` s. What an entry holds is
exactly :func:`events.to_fields` of the event's stored form.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal, cast

import msgspec

from events import EVENT_TYPES, AnyEvent, IncidentMerged, Position, encode
from services.resp import text
from services.store.base import Appended
from services.store.rules import conflict, op_of, rejection, stored_form

__all__ = ["APPEND_SCRIPT", "Part", "answers", "pack", "pack_batch"]

pack = msgspec.msgpack.Encoder().encode
"""MessagePack, as the script's ``cmsgpack.unpack`` reads it."""

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
-- ARGV[2] (optional): a MessagePack map from the batch index of a merge into an incident
--   held by another partition to that incident's state at that point ('version|status
--   [|into]', '' for missing), read by the client before the call; the merge is checked
--   against it, and the other partition's keys are never touched here.
-- ARGV[3] (optional): '1' to check only: answer as below but write nothing.
-- Returns {'ok', flags, pos1, pos2, ...} with flags one letter per event (a: appended,
-- d: duplicate), or the first problem with nothing written:
--   {'conflict', index, entity, current_version, 'version'|'exists'}
--   {'rejected', index, 'self'|'into', status, merged_into}
local log, ids, entities, history = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local batch = cmsgpack.unpack(ARGV[1])
local n = #batch
local foreign = {}
if ARGV[2] and ARGV[2] ~= '' then
  foreign = cmsgpack.unpack(ARGV[2])
end
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
  if e[7] == 'merge' and foreign[i] == nil then
    name(e[8])
  end
end
local known_ids = hmget(ids, id_list)
local stored = hmget(entities, names)
local function parsed(raw)
  if not raw or raw == '' then
    return {0, 'missing', ''}
  end
  local version, rest = string.match(raw, '^(%d+)|(.*)$')
  local bar = string.find(rest, '|', 1, true)
  if bar then
    return {tonumber(version), string.sub(rest, 1, bar - 1), string.sub(rest, bar + 1)}
  end
  return {tonumber(version), rest, ''}
end
local states = {}
for j = 1, #names do
  states[names[j]] = parsed(stored[j])
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
        if foreign[i] ~= nil then
          t = parsed(foreign[i])
        end
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

if ARGV[3] == '1' then
  return {'ok', ''}
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


class Part(msgspec.Struct):
    """The events of one batch that go to one partition, with their batch indexes."""

    partition: int
    indexes: list[int]
    first: bool = False
    """Whether the part creates a merge target of another part: it is written first."""
    foreign: dict[int, str] = msgspec.field(default_factory=dict)
    """Index in the part (from 1) of a merge into an incident of another partition → that
    incident's state when the merge is checked."""


def pack_batch(
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
    return pack(rows), event_ids


def answers(part: Part, events: Sequence[AnyEvent], reply: Any) -> list[Appended]:
    """The script's answer for ``part``, or its first problem raised with batch indexes."""
    head = text(reply[0])
    if head == "ok":
        flags = text(reply[1])
        return [
            Appended(
                str(events[index].event_id),
                Position(text(pos)),
                "appended" if flag == "a" else "duplicate",
                part.partition,
            )
            for index, flag, pos in zip(part.indexes, flags, reply[2:], strict=True)
        ]
    index = part.indexes[int(reply[1])]
    event = events[index]
    if head == "conflict":
        reason = cast("Literal['version', 'exists']", text(reply[4]))
        raise conflict(index, event, int(reply[3]), reason)
    which = cast("Literal['self', 'into']", text(reply[2]))
    into = text(reply[4]) or None
    raise rejection(index, event, which, text(reply[3]), into)
