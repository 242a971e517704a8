"""The projectors in tests: views caught up, the log read back, projections that count.

:func:`catch_up` runs a pool until every view reaches the head of the log; :func:`read_log`
reads the log back as the projectors see it, to fold it by hand, and
:func:`assert_views_match_fold` compares every stored view with that fold. :func:`counting`
makes a projection that records how often each position was applied, so a double apply
cannot hide. :class:`Pools` makes the pools of one test and aborts them all at its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import msgspec
import redis.asyncio as aioredis

from events import CodecError, Position, Recorded, from_fields, recorded_at_of, to_fields
from projections import PROJECTIONS, Projection, State, fold
from projections.docs import Docs
from services.projector.pool import ProjectorPool, Step, StepHook
from services.resp import text
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import current_view_keys
from services.views.redis import load_view
from services.views.snapshots import own_kinds
from tests.support.builders import reported
from tests.support.streams import added
from tests.support.waiting import DEADLINE

__all__ = [
    "COUNTING",
    "EVERY",
    "FAST",
    "Count",
    "PoisonedError",
    "Pools",
    "Seen",
    "SimulatedCrashError",
    "as_of_fold",
    "assert_views_match_fold",
    "catch_up",
    "counting",
    "crash",
    "crash_at",
    "read_log",
    "skipped_letter",
]


FAST: dict[str, Any] = {"claim_idle_ms": 200, "lease_ms": 1000, "block_ms": 50}
"""Pool settings that keep the tests quick: short blocks, short leases."""


async def catch_up(
    client: aioredis.Redis, prefix: Keys | str, *, within: float = DEADLINE, **options: Any
) -> None:
    """Apply everything appended so far to every view (``options``: of the pool)."""
    async with asyncio.timeout(within):
        pool = ProjectorPool(client, prefix=prefix, **{"block_ms": 50, **options})
        await pool.run_until_caught_up()


async def read_log(
    client: aioredis.Redis, prefix: Keys | str, *, decodable: bool = False
) -> list[Recorded]:
    """Every event of the log (partition 0), in order; with ``decodable`` the entries that do
    not decode are left out (else they raise)."""
    found: list[Recorded] = []
    entries: Any = await client.xrange(Keys.of(prefix).log)
    for ident, fields in entries:
        position = Position(text(ident))
        try:
            event = from_fields(fields)
        except CodecError:
            if decodable:
                continue
            raise
        found.append(Recorded(position, recorded_at_of(position), event))
    return found


class Pools:
    """Makes pools on one prefix, each with ``defaults`` under its own options (a ``client``
    option replaces the client); :meth:`abort` ends every pool made."""

    def __init__(self, client: aioredis.Redis, prefix: Keys | str, **defaults: Any) -> None:
        self._client = client
        self._prefix = prefix
        self._defaults = defaults
        self._made: list[ProjectorPool] = []

    def __call__(self, **options: Any) -> ProjectorPool:
        settings: dict[str, Any] = {**self._defaults, **options}
        client = settings.pop("client", self._client)
        pool = ProjectorPool(client, prefix=self._prefix, **settings)
        self._made.append(pool)
        return pool

    async def abort(self) -> None:
        """Abort every pool made, in the order made."""
        for pool in self._made:
            await pool.abort()


async def crash(pool: ProjectorPool, *, within: float = DEADLINE) -> None:
    """Start the pool, wait until its step hook has made a worker fail and abort the pool at
    once: a projector process dying at that point (the hook of :func:`crash_at`). The worker,
    which would start a new term after its back-off, is cancelled while it waits."""
    pool.faulted.clear()
    await pool.start()
    async with asyncio.timeout(within):
        await pool.faulted.wait()
    await pool.abort()


class Count(msgspec.Struct, frozen=True):
    """How many events a counting projection applied."""

    n: int


class Seen(msgspec.Struct, frozen=True):
    """How many times one log position was applied."""

    times: int


class PoisonedError(Exception):
    """Raised by a counting projection that refuses events of the feed ``poison``."""


def counting(name: str, *, count: bool = True, poison: bool = False) -> Projection:
    """A projection ``name`` that records how many times each position was applied (kind
    ``seen``) and, with ``count``, how many events it applied in all (kind ``count``). With
    ``poison`` it refuses events of the feed ``poison``, after writing (so an undo is
    exercised too)."""

    def apply(state: State, recorded: Recorded) -> State:
        seen = state.get("seen", recorded.position)
        assert seen is None or isinstance(seen, Seen)
        state.put("seen", recorded.position, Seen(1 if seen is None else seen.times + 1))
        if count:
            total = state.get("count", "all")
            assert total is None or isinstance(total, Count)
            state.put("count", "all", Count(1 if total is None else total.n + 1))
        if poison and recorded.event.source == "poison":
            raise PoisonedError(f"cannot apply {recorded.event.event_id}")
        return state

    kinds: dict[str, type[msgspec.Struct]] = {"seen": Seen}
    if count:
        kinds["count"] = Count
    return Projection(name=name, version=1, doc_types=kinds, initial=Docs, apply=apply)


COUNTING = counting("test-counting")
"""Counts every applied event and every time a position was applied."""

EVERY = (*PROJECTIONS.values(), COUNTING)
"""Every projection of the service, and :data:`COUNTING`."""


async def assert_views_match_fold(
    client: aioredis.Redis, prefix: str, projections: Sequence[Projection] = EVERY
) -> None:
    """Every stored view equals the pure fold of the decodable log, and its checkpoint is the
    log's last position (none on an empty log)."""
    log = await read_log(client, prefix, decodable=True)
    for projection in projections:
        docs, checkpoint = await load_view(client, prefix, projection)
        assert docs == fold(projection, log), projection.name
        assert checkpoint == (log[-1].position if log else None), projection.name


class SimulatedCrashError(Exception):
    """Raised by a step hook to simulate the process dying at that point."""


def crash_at(step: Step, projection: str = COUNTING.name, nth: int = 1) -> StepHook:
    """A step hook raising :class:`SimulatedCrashError` at the ``nth`` ``step`` of a projection."""
    seen = 0

    async def hook(name: str, at: Step) -> None:
        nonlocal seen
        if name == projection and at == step:
            seen += 1
            if seen == nth:
                raise SimulatedCrashError(f"{step} #{nth}")

    return hook


async def skipped_letter(
    client: aioredis.Redis, store: RedisEventStore, prefix: Keys | str, incident: str
) -> tuple[int, str]:
    """Append a report the incidents view of its partition then skips, as the runner does
    with a dead letter: the view's checkpoint moves past the entry and a letter with the
    entry's fields is written to the partition's dead-letter stream; returns the partition
    and the letter's entry id."""
    keys = Keys.of(prefix)
    event = reported(incident, 4)
    (appended,) = await store.append([event])
    partition = appended.partition
    view = await current_view_keys(client, keys, PROJECTIONS["incidents"], partition=partition)
    await client.hset(view.meta, "position", appended.position)
    letter: dict[str, Any] = {
        "projection": "incidents",
        "version": str(PROJECTIONS["incidents"].version),
        "position": appended.position,
        "error_type": "InconsistentStateError",
        "error": "a count would fall below zero",
        "deliveries": "3",
        "consumer": "host-1-abc",
    }
    for name, value in to_fields(event).items():
        letter[f"entry.{name}"] = value
    ident = await added(client, keys.dlq_of(partition), letter)
    return partition, text(ident)


def as_of_fold(projection: Projection, recorded: Sequence[Recorded]) -> State:
    """The pure fold of ``recorded`` as an as-of read answers it: without the kinds snapshots
    leave out (:func:`~services.views.snapshots.own_kinds`)."""
    omit = own_kinds(projection)
    kinds = fold(projection, recorded).kinds()
    return Docs({kind: docs for kind, docs in kinds.items() if kind not in omit})
