"""How fresh a stored view is: its checkpoint, and the log entries not yet applied to it.

This is the one place lag is computed; answers, live notices, ``/metrics``, ``/readyz``,
``ledger status`` and the projectors' status all ask :func:`lag_after` or :func:`view_state`.

**Lag in entries** is computed from facts that are as durable as the view itself, never from
a counter a crash, an AOF rewrite or a failover can skew (a consumer group's ``entries-read``
is such a counter). Beside its checkpoint every view's meta hash holds the checkpoint's
*ordinal*: how many entries of the log partition are at or before it. Every writer of a
checkpoint writes the ordinal in the same script (the projector's commits, its catch-up, a
rebuild's flushes; a dead-letter retry leaves both as they are), so the two are exactly as
durable as each other, and the log is append-only (never trimmed), so the lag is
``XLEN(log) - ordinal``. It is 0 exactly when no entry follows the checkpoint: that is
checked directly (``XRANGE (checkpoint + COUNT 1``), and an ordinal that disagrees with the
log is not trusted: the entries after the checkpoint are counted instead. A view written
before ordinals existed has none until its projector's next term stores one
(:func:`ordinal_at`); until then its lag is counted the same way. On several partitions the
lag is the sum of the partitions' lags.

**Lag in seconds** is the age of the oldest entry not yet applied: now minus the time the
first entry after the checkpoint was recorded (its id's milliseconds), 0 when there is none.
On several partitions, the largest of the partitions'.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position
from projections import Projection
from services.resp import text
from services.store.keys import Keys
from services.store.log import LogReader
from services.store.positions import above, split
from services.views.generations import (
    CHECKPOINT_FIELD,
    ORDINAL_FIELD,
    Generation,
    ViewKeys,
    current_view_keys,
    view_keys,
)

__all__ = [
    "NO_LAG",
    "ORDINAL_SCRIPT",
    "Lag",
    "ViewState",
    "checked_ordinal",
    "group_info",
    "lag_after",
    "measure",
    "ordinal_at",
    "total",
    "view_state",
]

log = structlog.get_logger(__name__)

ORDINAL_SCRIPT: Final = """
-- KEYS: a view's meta hash. ARGV: its checkpoint, that checkpoint's ordinal.
-- Stores the ordinal while the checkpoint is still the one it was counted for.
if redis.call('HGET', KEYS[1], 'position') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'ordinal', ARGV[2])
return 1
"""


class Lag(msgspec.Struct, frozen=True, kw_only=True):
    """How far a view is behind its log (see the module docstring)."""

    entries: int
    """Log entries after the view's checkpoint, not yet in the view."""
    seconds: float
    """How long ago the oldest of them was recorded (0 when there is none)."""


NO_LAG = Lag(entries=0, seconds=0.0)
"""A view with nothing left to apply."""


def total(lags: Iterable[Lag]) -> Lag:
    """The lag of several partition views as one: entries summed, the oldest entry's age."""
    found = list(lags)
    return Lag(
        entries=sum(one.entries for one in found),
        seconds=max((one.seconds for one in found), default=0.0),
    )


class ViewState(msgspec.Struct, frozen=True, kw_only=True):
    """Where one (partition) view stands: checkpoint, lag, its group, its lease."""

    name: str
    version: int
    generation: int
    position: Position | None
    """The view's checkpoint: the last log position it includes."""
    lag: int
    """Log entries after the checkpoint, not yet in the view."""
    pending: int
    """Entries delivered to the projection's consumer group and not yet acked."""
    holder: str | None
    """The consumer holding the projection's lease, if any."""
    partition: int = 0
    """The log partition the view folds (0 on one partition)."""
    lag_seconds: float = 0.0
    """How long ago the oldest entry not yet in the view was recorded."""


async def group_info(client: aioredis.Redis, log_key: str, name: str) -> Mapping[str, Any] | None:
    """``XINFO GROUPS`` of one consumer group of ``log_key`` (``None``: no group, no log)."""
    with contextlib.suppress(rexc.ResponseError):  # no log yet
        for group in await client.xinfo_groups(log_key):
            if text(group["name"]) == name:
                info: Mapping[str, Any] = group
                return info
    return None


async def ordinal_at(log: LogReader, checkpoint: Position | None) -> int:
    """The entries of ``log`` at or before ``checkpoint``, counted now.

    The log's length and head are read in one step, then the entries after the checkpoint
    up to that head are counted, so the cost is the backlog's, not the whole log's.
    """
    if checkpoint is None:
        return 0
    length, head = await log.length_and_head()
    if head is None or not above(head, checkpoint):
        return length
    return length - await log.count_after(checkpoint, until=head)


async def checked_ordinal(
    client: aioredis.Redis, view: ViewKeys, checkpoint: Position | None
) -> int:
    """The ordinal of the view's ``checkpoint``, for its projector when a term starts.

    The stored one when the log agrees with it (at most the log's length, and equal to it
    exactly when the checkpoint is the log's last entry); otherwise, or when the view has
    none yet (written before ordinals existed), it is counted (:func:`ordinal_at`) and
    stored beside the checkpoint.
    """
    if checkpoint is None:
        return 0
    reader = LogReader.at(client, view.log)
    raw = await client.hget(view.meta, ORDINAL_FIELD)
    length, head = await reader.length_and_head()
    stored = None if raw is None else int(text(raw))
    if stored is not None and 0 < stored <= length and (stored == length) == (head == checkpoint):
        return stored
    counted = await ordinal_at(reader, checkpoint)
    if stored is not None:
        log.warning("freshness.ordinal_repaired", view=view.meta, stored=stored, counted=counted)
    await client.register_script(ORDINAL_SCRIPT)(keys=[view.meta], args=[checkpoint, counted])
    return counted


async def _ordinal_for(
    log: LogReader, checkpoint: Position, stored: Position | None, ordinal: int | None
) -> int | None:
    """The ordinal of ``checkpoint`` from the one stored with ``stored`` (the view's
    checkpoint now, which may have moved since the answer's was read)."""
    if stored is None or ordinal is None:
        return None
    if stored == checkpoint:
        return ordinal
    if above(stored, checkpoint):
        return ordinal - await log.count_after(checkpoint, until=stored)
    return ordinal + await log.count_after(stored, until=checkpoint)


async def measure(client: aioredis.Redis, view: ViewKeys, checkpoint: Position | None) -> Lag:
    """The lag of the partition view ``view`` at ``checkpoint`` (see the module docstring).

    ``checkpoint`` is the one the caller's answer was read at; the ordinal stored in the
    view's meta hash is that of the view's checkpoint now, and is carried back or forth.
    """
    async with client.pipeline(transaction=False) as pipe:
        pipe.hmget(view.meta, [CHECKPOINT_FIELD, ORDINAL_FIELD])
        pipe.xlen(view.log)
        pipe.xrange(view.log, "-" if checkpoint is None else f"({checkpoint}", "+", count=1)
        (stored, ordinal), length, following = await pipe.execute()
    if not following:
        return NO_LAG
    first = text(following[0][0])
    seconds = max(0.0, time.time() - int(first.split("-")[0]) / 1000)
    if checkpoint is None:
        return Lag(entries=max(1, int(length)), seconds=seconds)
    reader = LogReader.at(client, view.log)
    known = await _ordinal_for(
        reader,
        checkpoint,
        None if stored is None else Position(text(stored)),
        None if ordinal is None else int(ordinal),
    )
    if known is not None and 0 <= known < int(length):
        return Lag(entries=int(length) - known, seconds=seconds)
    if known is not None:
        log.warning("freshness.ordinal_disagrees", view=view.meta, ordinal=known, length=length)
    return Lag(entries=max(1, await reader.count_after(checkpoint)), seconds=seconds)


async def lag_after(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    checkpoint: Position | None,
    *,
    generations: Sequence[Generation] | None = None,
) -> Lag:
    """The lag of ``projection``'s view at ``checkpoint`` (see the module docstring).

    On several partitions ``checkpoint`` is one per partition (joined) and the lag is
    their :func:`total`. ``generations`` (one per partition), when the caller read
    ``checkpoint`` from them, spare reading which generation is active: a generation
    replaced since leaves no ordinal to carry, and the entries are then counted.
    """
    keys = Keys.of(prefix)

    async def one(partition: int, mine: Position | None) -> Lag:
        if generations is None:
            view = await current_view_keys(client, keys, projection, partition=partition)
        else:
            view = view_keys(keys, projection, generations[partition], partition=partition)
        return await measure(client, view, mine)

    parts = split(checkpoint, keys.partitions)
    return total(await asyncio.gather(*(one(p, mine) for p, mine in enumerate(parts))))


async def view_state(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> ViewState:
    """Checkpoint, lag, pending count and lease holder of one partition view, read now."""
    keys = await current_view_keys(client, prefix, projection, partition=partition)
    info = await group_info(client, keys.log, keys.group)
    raw = await client.hget(keys.meta, CHECKPOINT_FIELD)
    checkpoint = None if raw is None else Position(text(raw))
    holder = await client.get(keys.lease)
    lag = await measure(client, keys, checkpoint)
    return ViewState(
        name=projection.name,
        version=projection.version,
        generation=int(keys.generation),
        position=checkpoint,
        lag=lag.entries,
        lag_seconds=lag.seconds,
        pending=int(info["pending"]) if info else 0,
        holder=None if holder is None else text(holder),
        partition=partition,
    )
