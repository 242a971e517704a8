"""``ledger status``: where every view stands, the log, and the Redis server's setup.

Per (projection, partition) view its version, active generation, checkpoint, lag in entries
and seconds (computed as the read side does: :mod:`services.views.freshness`), pending
entries, consumers, lease holder, dead letters and the state of its latest rebuild; the
log's length and ends; the Redis server's memory and persistence settings. It reads the
stored state only: no projector pool is built to ask.

**Partitions.** On several partitions (or a cluster) status has one row per (projection,
partition) and ``--max-lag`` looks at each projection's lag summed over its partitions.
"""

from __future__ import annotations

import contextlib

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from events import Position
from projections import PROJECTIONS, Projection
from services.ops.dead_letters import dlq_list
from services.projector.replay_records import replay_status
from services.resp import text
from services.runtime.checks import redis_setup
from services.store.keys import Keys
from services.store.log import LogReader
from services.store.positions import joined
from services.views.freshness import view_state

__all__ = ["LedgerStatus", "LogStatus", "RedisStatus", "ViewStatus", "ledger_status"]


class ViewStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projection's stored view stands."""

    name: str
    version: int
    generation: int
    position: str | None
    lag: int
    pending: int
    consumers: list[str]
    holder: str | None
    dead_letters: int
    rebuild: str | None
    """The state of the latest rebuild (``building``, ``swapping``, ``done``), if any."""
    partition: int = 0
    """The log partition the view folds (0 on one partition)."""
    lag_seconds: float = 0.0
    """How long ago the oldest entry not yet in the view was recorded."""


class LogStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The event log: how many events and where it begins and ends.

    On several partitions ``length`` counts every partition and ``first``/``last`` are the
    partitions' ends joined (:func:`services.store.positions.joined`).
    """

    length: int
    first: str | None
    last: str | None
    partitions: int = 1


class RedisStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The Redis server's memory and persistence settings (``None``: it would not say)."""

    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None
    appendonly: bool | None
    appendfsync: str | None
    save: str | None


class LedgerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``ledger status`` shows."""

    projections: list[ViewStatus]
    log: LogStatus
    redis: RedisStatus

    def lags(self) -> dict[tuple[str, int], int]:
        """Per projection (name, version) its lag summed over the partitions."""
        summed: dict[tuple[str, int], int] = {}
        for row in self.projections:
            key = (row.name, row.version)
            summed[key] = summed.get(key, 0) + row.lag
        return summed

    def max_lag(self) -> int:
        """The largest lag of any projection (summed over its partitions)."""
        return max(self.lags().values(), default=0)


async def _dead_letter_counts(
    client: aioredis.Redis, prefix: Keys | str
) -> dict[tuple[str, str, int], int]:
    counts: dict[tuple[str, str, int], int] = {}
    for letter in await dlq_list(client, prefix, count=None):
        key = (letter.projection, str(letter.version), letter.partition)
        counts[key] = counts.get(key, 0) + 1
    return counts


async def ledger_status(
    client: aioredis.Redis, prefix: Keys | str, projections: list[Projection] | None = None
) -> LedgerStatus:
    """Status of every (projection, partition) view, of the log and of the Redis server."""
    keys = Keys.of(prefix)
    chosen = list(PROJECTIONS.values()) if projections is None else projections
    dead = await _dead_letter_counts(client, keys)
    views = []
    for projection in chosen:
        rebuild = await replay_status(client, keys, projection)
        for partition in range(keys.partitions):
            row = await view_state(client, keys, projection, partition=partition)
            group = keys.group(projection.name, projection.version)
            consumers: list[str] = []
            with contextlib.suppress(rexc.ResponseError):  # no log or no group yet
                consumers = [
                    text(c["name"])
                    for c in await client.xinfo_consumers(keys.log_of(partition), group)
                ]
            views.append(
                ViewStatus(
                    name=row.name,
                    version=row.version,
                    generation=row.generation,
                    position=row.position,
                    lag=row.lag,
                    lag_seconds=row.lag_seconds,
                    pending=row.pending,
                    consumers=consumers,
                    holder=row.holder,
                    dead_letters=dead.get((row.name, str(row.version), row.partition), 0),
                    rebuild=None if rebuild is None else rebuild.state,
                    partition=row.partition,
                )
            )
    firsts: list[Position | None] = []
    lasts: list[Position | None] = []
    length = 0
    for partition in range(keys.partitions):
        log = LogReader(client, keys, partition)
        firsts.append(await log.first())
        lasts.append(await log.head())
        length += await log.length()
    setup = await redis_setup(client)
    return LedgerStatus(
        projections=views,
        log=LogStatus(
            length=length,
            first=joined(firsts),
            last=joined(lasts),
            partitions=keys.partitions,
        ),
        redis=RedisStatus(
            used_memory=setup.used_memory,
            maxmemory=setup.maxmemory,
            maxmemory_policy=setup.maxmemory_policy,
            appendonly=setup.appendonly,
            appendfsync=setup.appendfsync,
            save=setup.save,
        ),
    )
