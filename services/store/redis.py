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

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal, ParamSpec, TypeVar, cast

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
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
    position_key,
    recorded_at_of,
)
from services.store.base import Appended, BatchError, EntityState, StoreUnavailableError
from services.store.keys import Keys
from services.store.memory import START, conflict, op_of, rejection, stored_form

__all__ = ["APPEND_SCRIPT", "BULK_SOCKET_TIMEOUT", "RedisEventStore", "connect", "learn_slots"]

SOCKET_TIMEOUT = 1.0
"""Seconds a command or a connection attempt may take before the store gives up."""

BULK_SOCKET_TIMEOUT = 60.0
"""Seconds a bulk read may take (a projector loading its whole view in pages): on a big log
a page runs to megabytes and must not fail on the hot path's timeout."""

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

_P = ParamSpec("_P")
_T = TypeVar("_T")

_UNAVAILABLE = (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError)


def connect(url: str, *, cluster: bool = False, **options: Any) -> aioredis.Redis:
    """A client for the service: 1 s socket and connect timeouts, one quick reconnect.

    A closed port or a dead server then fails within about a second (and the store answers
    :class:`StoreUnavailableError`) instead of hanging; a connection the server dropped is
    replaced once, without a backoff. Timeouts are not retried. Nothing connects until the
    first command. ``options`` override the defaults (any ``redis.asyncio.Redis`` argument).

    With ``cluster``, ``url`` names any node of a Redis Cluster and the client is redis-py's
    cluster client (typed as a plain client: the ledger uses only commands both serve),
    which follows the slots to their masters and refreshes them after a failover.
    """
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    if not cluster:
        settings["retry"] = Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,))
        settings["health_check_interval"] = 30
    settings.update(options)
    if cluster:
        return cast("aioredis.Redis", RedisCluster.from_url(url, **settings))
    return aioredis.Redis.from_url(url, **settings)


async def learn_slots(client: aioredis.Redis) -> None:
    """Have a cluster client learn which master serves which slot (nothing on one node)."""
    cluster: Any = client
    if isinstance(cluster, RedisCluster):
        try:
            await cluster.initialize()
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _unavailable(exc: rexc.RedisError) -> StoreUnavailableError:
    return StoreUnavailableError(f"redis: {type(exc).__name__}: {exc}")


def _state_text(state: EntityState | None) -> str:
    """An entity state as the ``entities`` hash holds it ('' for none)."""
    if state is None:
        return ""
    text = f"{state.version}|{state.status}"
    return f"{text}|{state.merged_into}" if state.merged_into else text


def _parse_state(raw: Any) -> EntityState | None:
    if not raw:
        return None
    version, status, *into = _str(raw).split("|", 2)
    return EntityState(
        int(version),
        cast("Literal['live', 'retracted', 'merged']", status),
        into[0] if into else None,
    )


def _after(state: EntityState | None, event: AnyEvent) -> EntityState | None:
    """``state`` after ``event`` when the event is valid (the rules are checked elsewhere)."""
    op = op_of(event)
    version = 0 if state is None else state.version
    if op == "create":
        return EntityState(1, "live") if state is None else state
    if state is None:
        return None
    if op == "retract":
        return EntityState(version + 1, "retracted")
    if op == "merge" and isinstance(event, IncidentMerged):
        return EntityState(version + 1, "merged", event.into)
    return msgspec.structs.replace(state, version=version + 1)


class _Part(msgspec.Struct):
    """The events of one batch that go to one partition, with their batch indexes."""

    partition: int
    indexes: list[int]
    first: bool = False
    """Whether the part creates a merge target of another part: it is written first."""
    foreign: dict[int, str] = msgspec.field(default_factory=dict)
    """Index in the part (from 1) of a merge into an incident of another partition → that
    incident's state when the merge is checked."""


class RedisEventStore:
    """An :class:`~services.store.base.EventStore` on Redis Streams, on one node or a cluster.

    ``client`` is any ``redis.asyncio.Redis`` or cluster client (with or without
    ``decode_responses``); the service makes it with :func:`connect`. ``partitions`` splits
    the log (see :mod:`services.store.keys`); ``cluster`` uses the cluster key layout even
    with one partition. ``wait_replicas`` (strict mode) acknowledges an append only once that
    many replicas have it (``WAIT``, within ``wait_timeout_ms``); otherwise the append raises
    :class:`StoreUnavailableError` and the publisher retries (idempotently).

    **Batches over several partitions** are split into one part per partition. Merges into
    an incident of another partition are checked against its state read just before (with
    the batch's own earlier events applied), passed to the script. Every part is first
    checked without writing; only when all pass are they written, one atomic script each,
    concurrently (the parts creating merge targets of other parts first). A part can still
    be refused at write time when a concurrent append changed its entities in between: the
    error then lists the events of the parts written (``written``); resubmitting the batch
    is safe.
    """

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        prefix: str = "ledger",
        partitions: int = 1,
        cluster: bool = False,
        wait_replicas: int = 0,
        wait_timeout_ms: int = 500,
    ) -> None:
        if wait_replicas < 0 or wait_timeout_ms < 1:
            raise ValueError("wait_replicas must be >= 0 and wait_timeout_ms >= 1")
        self.client = client
        self.keys = Keys(prefix, partitions, cluster)
        self.partitions = partitions
        self.wait_replicas, self.wait_timeout_ms = wait_replicas, wait_timeout_ms
        self._append = client.register_script(APPEND_SCRIPT)
        self._node_clients: dict[str, aioredis.Redis] = {}

    async def _call(
        self, fn: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        try:
            return await fn(*args, **kwargs)
        except _UNAVAILABLE as exc:
            raise _unavailable(exc) from exc

    def partition_of(self, event: AnyEvent) -> int:
        """The log partition of ``event``: that of its entity (a merge: the duplicate's)."""
        return self.keys.partition_of(event.entity)

    def _part_keys(self, partition: int) -> list[str]:
        keys = self.keys
        return [
            keys.log_of(partition),
            keys.ids_of(partition),
            keys.entities_of(partition),
            keys.history_of(partition),
        ]

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
        """Append a batch: atomically on one partition (see the class docstring for more).

        ``sealed`` gives per event the sealed private text its entry keeps in the field
        ``sealed`` (see :mod:`services.store.sealing`); ``None`` for none.
        """
        if sealed is not None and len(sealed) != len(events):
            raise ValueError(f"{len(sealed)} sealed blobs for {len(events)} events")
        if not events:
            return []
        blobs = list(sealed) if sealed is not None else [None] * len(events)
        if self.partitions == 1:
            part = _Part(0, list(range(len(events))))
            reply = await self._write(part, events, blobs)
            return self._answers(part, events, reply)
        parts = await self._parts(events)
        if len(parts) > 1:  # check every part before writing any (at once: no script
            # in a cluster pipeline)
            replies = await self._call(
                asyncio.gather,
                *(
                    self._script_call(self.client, part, events, blobs, check_only=True)
                    for part in parts
                ),
            )
            self._raise_first_refusal(parts, replies, events, [])
        results: list[Appended | None] = [None] * len(events)
        first = [part for part in parts if part.first]
        for wave in (first, [part for part in parts if not part.first]):
            replies = await asyncio.gather(*(self._write(part, events, blobs) for part in wave))
            for part, reply in zip(wave, replies, strict=True):
                if _str(reply[0]) == "ok":
                    for index, answer in zip(
                        part.indexes, self._answers(part, events, reply), strict=True
                    ):
                        results[index] = answer
            self._raise_first_refusal(wave, replies, events, results)
        return [r for r in results if r is not None]

    def _raise_first_refusal(
        self,
        parts: Sequence[_Part],
        replies: Sequence[Any],
        events: Sequence[AnyEvent],
        results: Sequence[Appended | None],
    ) -> None:
        """Raise the refusal of the earliest event among the parts' replies, if any, with the
        events appended so far (``results``) as its ``written``."""
        refused = [
            (part.indexes[int(reply[1])], part, reply)
            for part, reply in zip(parts, replies, strict=True)
            if _str(reply[0]) != "ok"
        ]
        if not refused:
            return
        _, part, reply = min(refused, key=lambda one: one[0])  # as on one partition
        try:
            self._answers(part, events, reply)
        except BatchError as exc:
            exc.written = tuple(r for r in results if r is not None)
            raise

    async def _parts(self, events: Sequence[AnyEvent]) -> list[_Part]:
        """The batch split by partition, with the states of merge targets held elsewhere.

        Parts come in the order of their first event; a part creating a merge target of
        another part is marked ``first`` (written before the others, which go at once).
        """
        by_partition: dict[int, _Part] = {}
        targets: dict[int, tuple[str, int]] = {}  # merge index → (target, place in part from 1)
        for index, event in enumerate(events):
            partition = self.partition_of(event)
            part = by_partition.get(partition)
            if part is None:
                part = by_partition[partition] = _Part(partition, [])
            part.indexes.append(index)
            if isinstance(event, IncidentMerged):
                held = self.keys.partition_of(event.into_entity)
                if held != partition:
                    targets[index] = (event.into_entity, len(part.indexes))
        parts = list(by_partition.values())
        if not targets:
            return parts
        names = sorted({entity for entity, _ in targets.values()})
        pipe = self.client.pipeline(transaction=False)
        for entity in names:
            pipe.hget(self.keys.entities_of(self.keys.partition_of(entity)), entity)
        stored = dict(zip(names, map(_parse_state, await self._call(pipe.execute)), strict=True))
        states = dict(stored)
        created_in: set[int] = set()
        for index, event in enumerate(events):  # the batch's own earlier events count
            target = targets.get(index)
            if target is not None:
                part = by_partition[self.partition_of(event)]
                part.foreign[target[1]] = _state_text(states[target[0]])
            if event.entity in states:
                before = states[event.entity]
                states[event.entity] = _after(before, event)
                if before is None and states[event.entity] is not None:
                    created_in.add(self.partition_of(event))
        for part in parts:
            part.first = part.partition in created_in
        return parts

    def _script_call(
        self,
        client: Any,
        part: _Part,
        events: Sequence[AnyEvent],
        blobs: Sequence[str | None],
        *,
        check_only: bool = False,
    ) -> Any:
        packed, _ = self._batch([events[i] for i in part.indexes], [blobs[i] for i in part.indexes])
        args: list[bytes | str] = [packed]
        if part.foreign or check_only:
            args += [_pack(part.foreign) if part.foreign else "", "1" if check_only else "0"]
        return self._append(keys=self._part_keys(part.partition), args=args, client=client)

    async def _write(
        self, part: _Part, events: Sequence[AnyEvent], blobs: Sequence[str | None]
    ) -> Any:
        """Run one part's script; in strict mode wait for the replicas on its connection."""
        if not self.wait_replicas:
            return await self._call(self._script_call, self.client, part, events, blobs)
        node = self._node_client(self.keys.log_of(part.partition))
        pipe = node.pipeline(transaction=False)
        await self._script_call(pipe, part, events, blobs)
        pipe.execute_command("WAIT", self.wait_replicas, self.wait_timeout_ms)
        try:
            reply, replicas = await self._call(pipe.execute)
        except StoreUnavailableError:
            await self._refresh_topology()
            raise
        if _str(reply[0]) == "ok" and int(replicas) < self.wait_replicas:
            raise StoreUnavailableError(
                f"written but held by {replicas} of {self.wait_replicas} replicas within "
                f"{self.wait_timeout_ms} ms; not acknowledged: retry with the same event ids"
            )
        return reply

    def _node_client(self, key: str) -> aioredis.Redis:
        """A client on the master holding ``key``: one connection for the script and WAIT."""
        cluster: Any = self.client
        if not isinstance(cluster, RedisCluster):
            return self.client
        node = cluster.get_node_from_key(key)
        if node is None:
            raise StoreUnavailableError(f"no cluster node serves the slot of {key}")
        found = self._node_clients.get(node.name)
        if found is None:
            options = {
                name: node.connection_kwargs[name]
                for name in ("username", "password", "socket_timeout", "socket_connect_timeout")
                if name in node.connection_kwargs
            }
            found = aioredis.Redis(host=node.host, port=int(node.port), **options)
            self._node_clients[node.name] = found
        return found

    async def _refresh_topology(self) -> None:
        """After a failed strict write on a cluster: learn the slots' masters again."""
        cluster: Any = self.client
        if isinstance(cluster, RedisCluster):
            with contextlib.suppress(rexc.RedisError, OSError):
                await cluster.nodes_manager.initialize()

    def _answers(self, part: _Part, events: Sequence[AnyEvent], reply: Any) -> list[Appended]:
        """The script's answer for ``part``, or its first problem raised with batch indexes."""
        head = _str(reply[0])
        if head == "ok":
            flags = _str(reply[1])
            partition = part.partition
            return [
                Appended(
                    str(events[index].event_id),
                    Position(pos.decode() if isinstance(pos, bytes) else pos),
                    "appended" if flag == "a" else "duplicate",
                    partition,
                )
                for index, flag, pos in zip(part.indexes, flags, reply[2:], strict=True)
            ]
        index = part.indexes[int(reply[1])]
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

    async def read(
        self, after: Position = START, count: int = 1000, *, partition: int = 0
    ) -> list[Recorded]:
        """Up to ``count`` events of ``partition`` strictly after ``after``, in log order."""
        if count < 1:
            return []
        entries = await self._call(
            self.client.xrange, self.keys.log_of(partition), min=f"({after}", max="+", count=count
        )
        return [self._recorded(entry) for entry in entries or ()]

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity``, in log order (a merge under both incidents).

        A merge into an incident of another partition is recorded in the history of the
        duplicate's partition, so on several partitions every partition's history is read;
        events of different partitions come in the order of their positions.
        """
        keys = self.keys
        spots = range(self.partitions)
        pipe = self.client.pipeline(transaction=False)
        for partition in spots:
            pipe.hget(keys.history_of(partition), entity)
        lists = await self._call(pipe.execute)
        pipe = self.client.pipeline(transaction=False)
        wanted = 0
        for partition, raw in zip(spots, lists, strict=True):
            for position in _str(raw).split() if raw else ():
                pipe.xrange(keys.log_of(partition), min=position, max=position)
                wanted += 1
        if not wanted:
            return []
        replies = await self._call(pipe.execute)
        found = [self._recorded(entry) for reply in replies for entry in reply]
        if self.partitions > 1:
            found.sort(key=lambda one: position_key(one.position))
        return found

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status, or ``None`` when no event created it."""
        raw = await self._call(
            self.client.hget, self.keys.entities_of(self.keys.partition_of(entity)), entity
        )
        return _parse_state(raw)

    async def head(self, *, partition: int = 0) -> Position | None:
        """The last position of ``partition``, or ``None`` while it is empty."""
        entries = await self._call(
            self.client.xrevrange, self.keys.log_of(partition), "+", "-", count=1
        )
        if not entries:
            return None
        last: Any = entries[0]
        return Position(_str(last[0]))

    async def heads(self) -> list[Position | None]:
        """The last position of every partition, in partition order."""
        pipe = self.client.pipeline(transaction=False)
        for log in self.keys.logs:
            pipe.xrevrange(log, "+", "-", count=1)
        return [
            Position(_str(entries[0][0])) if entries else None
            for entries in await self._call(pipe.execute)
        ]

    async def length(self) -> int:
        """How many events the log holds (every partition)."""
        if self.partitions == 1:
            return int(await self._call(self.client.xlen, self.keys.log))
        pipe = self.client.pipeline(transaction=False)
        for log in self.keys.logs:
            pipe.xlen(log)
        return sum(int(n) for n in await self._call(pipe.execute))
