"""The event store on Redis Streams: appends as one Lua script per batch and partition.

An append is one ``EVALSHA`` of :data:`~services.store.append.APPEND_SCRIPT` over one
partition's keys: all-or-nothing, idempotent by event id, version-checked, with the rules of
:mod:`services.store.rules` (see :mod:`services.store.append`). Reads are plain stream
commands through the log's one reader (:class:`~services.store.log.LogReader`): ``XRANGE``
with an exclusive start, ``XREVRANGE`` for the head, ``XLEN``; an entity's events are found
through its state (the first event's position) and its ``history`` field (the later ones;
none for an entity of one event), and fetched with one pipelined ``XRANGE pos pos`` per
position (one round trip).

Redis errors become :class:`~services.store.base.StoreUnavailableError`: the connection
failed, timed out, or the server answered with an error (loading, out of memory, read-only).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NamedTuple, ParamSpec, TypeVar

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster

from events import AnyEvent, IncidentMerged, Position, Recorded, id_texts, position_key
from services.resp import text
from services.store.append import APPEND_SCRIPT, Part, answers, pack, pack_batch
from services.store.base import Appended, BatchError, EntityState, StoreUnavailableError
from services.store.connection import UNAVAILABLE, unavailable
from services.store.keys import Keys
from services.store.log import RAW, LogReader, recorded_of, xrange_args
from services.store.positions import START
from services.store.rules import (
    OPERATOR_FEED,
    created_at,
    named_incidents,
    parse_state,
    reused,
    state_after,
    state_text,
)

__all__ = ["RedisEventStore"]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class _Blobs(NamedTuple):
    """What a batch's entries keep beside the events: sealed text, its keyed digest, and
    the events' ids as text."""

    sealed: list[str | None]
    private: list[str]
    ids: list[str]


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
        self._logs = [LogReader(client, self.keys, p) for p in range(partitions)]
        self._node_clients: dict[str, aioredis.Redis] = {}

    async def _call(
        self, fn: Callable[_P, Awaitable[_T]], *args: _P.args, **kwargs: _P.kwargs
    ) -> _T:
        try:
            return await fn(*args, **kwargs)
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc

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

    async def append(
        self,
        events: Sequence[AnyEvent],
        *,
        sealed: Sequence[str | None] | None = None,
        private: Sequence[str] | None = None,
    ) -> list[Appended]:
        """Append a batch: atomically on one partition (see the class docstring for more).

        ``sealed`` gives per event the sealed private text its entry keeps in the field
        ``sealed`` (see :mod:`services.store.sealing`); ``None`` for none. ``private`` gives
        per event the keyed digest of its private text, compared when its id comes again
        ('' for none; see :mod:`services.store.rules`).
        """
        if sealed is not None and len(sealed) != len(events):
            raise ValueError(f"{len(sealed)} sealed blobs for {len(events)} events")
        if private is not None and len(private) != len(events):
            raise ValueError(f"{len(private)} private digests for {len(events)} events")
        if not events:
            return []
        blobs = _Blobs(
            list(sealed) if sealed is not None else [None] * len(events),
            list(private) if private is not None else [""] * len(events),
            id_texts(events),
        )
        if self.partitions == 1:
            part = Part(0, list(range(len(events))))
            reply = await self._write(part, events, blobs)
            return answers(part, events, reply, blobs.ids)
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
            _raise_reuse_across(parts, replies, events, blobs.ids)
            self._raise_first_refusal(parts, replies, events, blobs.ids, [])
        results: list[Appended | None] = [None] * len(events)
        first = [part for part in parts if part.first]
        for wave in (first, [part for part in parts if not part.first]):
            replies = await asyncio.gather(*(self._write(part, events, blobs) for part in wave))
            for part, reply in zip(wave, replies, strict=True):
                if text(reply[0]) == "ok":
                    for index, answer in zip(
                        part.indexes, answers(part, events, reply, blobs.ids), strict=True
                    ):
                        results[index] = answer
            self._raise_first_refusal(wave, replies, events, blobs.ids, results)
        return [r for r in results if r is not None]

    def _raise_first_refusal(
        self,
        parts: Sequence[Part],
        replies: Sequence[Any],
        events: Sequence[AnyEvent],
        ids: Sequence[str],
        results: Sequence[Appended | None],
    ) -> None:
        """Raise the refusal of the earliest event among the parts' replies, if any, with the
        events appended so far (``results``) as its ``written``."""
        refused = [
            (part.indexes[int(reply[1])], part, reply)
            for part, reply in zip(parts, replies, strict=True)
            if text(reply[0]) != "ok"
        ]
        if not refused:
            return
        _, part, reply = min(refused, key=lambda one: one[0])  # as on one partition
        try:
            answers(part, events, reply, ids)
        except BatchError as exc:
            exc.written = tuple(r for r in results if r is not None)
            raise

    async def _parts(self, events: Sequence[AnyEvent]) -> list[Part]:
        """The batch split by partition, with the states of merge targets held elsewhere and
        whether the incidents statements name there were reported.

        Parts come in the order of their first event; a part creating a merge target of
        another part is marked ``first`` (written before the others, which go at once). A
        report is never undone, so a named incident found reported stays so until the
        write.
        """
        by_partition: dict[int, Part] = {}
        targets: dict[int, tuple[str, int]] = {}  # merge index → (target, place in part from 1)
        cited: dict[int, list[str]] = {}  # statement index → named incidents held elsewhere
        for index, event in enumerate(events):
            partition = self.partition_of(event)
            part = by_partition.get(partition)
            if part is None:
                part = by_partition[partition] = Part(partition, [])
            part.indexes.append(index)
            if isinstance(event, IncidentMerged):
                held = self.keys.partition_of(event.into_entity)
                if held != partition:
                    targets[index] = (event.into_entity, len(part.indexes))
            away = [e for e in named_incidents(event) if self.keys.partition_of(e) != partition]
            if away:
                cited[index] = away
        parts = list(by_partition.values())
        if not targets and not cited:
            return parts
        names = sorted(
            {entity for entity, _ in targets.values()} | {e for one in cited.values() for e in one}
        )
        pipe = self.client.pipeline(transaction=False)
        for entity in names:
            self._read_state(pipe, entity)
        replies = _states(await self._call(pipe.execute))
        stored = dict(zip(names, map(parse_state, replies), strict=True))
        states = dict(stored)
        created_in: set[int] = set()
        for index, event in enumerate(events):  # the batch's own earlier events count
            part = by_partition[self.partition_of(event)]
            target = targets.get(index)
            if target is not None:
                part.foreign[target[1]] = state_text(states[target[0]])
            if index in cited:
                place = part.indexes.index(index)
                part.elsewhere[place] = {e: states[e] is not None for e in cited[index]}
            if event.entity in states:
                before = states[event.entity]
                states[event.entity] = state_after(before, event)
                if before is None and states[event.entity] is not None:
                    created_in.add(self.partition_of(event))
        for part in parts:
            part.first = part.partition in created_in
        return parts

    def _script_call(
        self,
        client: Any,
        part: Part,
        events: Sequence[AnyEvent],
        blobs: _Blobs,
        *,
        check_only: bool = False,
    ) -> Any:
        packed = pack_batch(
            [events[i] for i in part.indexes],
            [blobs.sealed[i] for i in part.indexes],
            [blobs.private[i] for i in part.indexes],
            [blobs.ids[i] for i in part.indexes],
            part.elsewhere,
        )
        args: list[bytes | str] = [
            packed,
            pack(part.foreign) if part.foreign else "",
            "1" if check_only else "0",
            OPERATOR_FEED,
        ]
        return self._append(keys=self._part_keys(part.partition), args=args, client=client)

    async def _write(self, part: Part, events: Sequence[AnyEvent], blobs: _Blobs) -> Any:
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
        if text(reply[0]) == "ok" and int(replicas) < self.wait_replicas:
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

    # --- reads -------------------------------------------------------------------------

    async def read(
        self, after: Position = START, count: int = 1000, *, partition: int = 0
    ) -> list[Recorded]:
        """Up to ``count`` events of ``partition`` strictly after ``after``, in log order."""
        if count < 1:
            return []
        return await self._call(self._logs[partition].recorded, after, count)

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity``, in log order (a merge under both incidents).

        A merge into an incident of another partition is recorded in the history of the
        duplicate's partition, so on several partitions every partition's history is read;
        events of different partitions come in the order of their positions.
        """
        keys = self.keys
        spots = range(self.partitions)
        home = keys.partition_of(entity)
        pipe = self.client.pipeline(transaction=False)
        for partition in spots:
            pipe.hget(keys.history_of(partition), entity)
        self._read_state(pipe, entity)
        *lists, bucketed, older = await self._call(pipe.execute)
        (state,) = _states([bucketed, older])
        created = created_at(state)
        pipe = self.client.pipeline(transaction=False)
        wanted = 0
        for partition, raw in zip(spots, lists, strict=True):
            held = text(raw).split() if raw else []
            if created is not None and partition == home:
                held.insert(0, created)  # the first event's position is kept in its state
            for position in held:
                pipe.execute_command(
                    *xrange_args(keys.log_of(partition), position, position), **RAW
                )
                wanted += 1
        if not wanted:
            return []
        replies = await self._call(pipe.execute)
        found = [recorded_of(*entry) for reply in replies for entry in reply]
        if self.partitions > 1:
            found.sort(key=lambda one: position_key(one.position))
        return found

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status, or ``None`` when no event created it."""
        pipe = self.client.pipeline(transaction=False)
        self._read_state(pipe, entity)
        (raw,) = _states(await self._call(pipe.execute))
        return parse_state(raw)

    def _read_state(self, pipe: Any, entity: str) -> None:
        """Queue the reads of ``entity``'s stored state: in its bucket, and in the hash of
        the entities recorded before buckets (:func:`_states` takes the one found)."""
        partition = self.keys.partition_of(entity)
        pipe.hget(self.keys.entity_bucket_of(partition, entity), entity)
        pipe.hget(self.keys.entities_of(partition), entity)

    async def head(self, *, partition: int = 0) -> Position | None:
        """The last position of ``partition``, or ``None`` while it is empty."""
        return await self._call(self._logs[partition].head)

    async def heads(self) -> list[Position | None]:
        """The last position of every partition, in partition order."""
        pipe = self.client.pipeline(transaction=False)
        for log in self.keys.logs:
            pipe.execute_command("XREVRANGE", log, "+", "-", "COUNT", 1, **RAW)
        return [
            Position(text(entries[0][0])) if entries else None
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


def _raise_reuse_across(
    parts: Sequence[Part], replies: Sequence[Any], events: Sequence[AnyEvent], ids: Sequence[str]
) -> None:
    """Raise ``id_reused`` for an event id used again in another part of the batch (another
    entity, so another body), unless a part refuses an earlier event first."""
    part_of = {index: part.partition for part in parts for index in part.indexes}
    first: dict[str, int] = {}
    for index, (event, event_id) in enumerate(zip(events, ids, strict=True)):
        earlier = first.setdefault(event_id, index)
        if part_of[earlier] == part_of[index]:
            continue
        refused = [
            part.indexes[int(reply[1])]
            for part, reply in zip(parts, replies, strict=True)
            if text(reply[0]) != "ok"
        ]
        if not refused or index < min(refused):
            raise reused(index, event, "id_reused", earlier=earlier)
        return


def _states(replies: Sequence[Any]) -> list[Any]:
    """Per entity the stored state :meth:`RedisEventStore._read_state` found (replies in
    pairs: its bucket, then the hash of before buckets)."""
    return [
        bucketed if bucketed is not None else older
        for bucketed, older in zip(replies[::2], replies[1::2], strict=True)
    ]
