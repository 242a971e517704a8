"""How fresh a stored view is: its checkpoint, the log entries not yet applied, its group.

``lag`` counts the log entries after the view's checkpoint, and this is the one place it is
computed (answers, gauges, ``ledger status``, the projectors' status). It is read cheaply
from the projection's consumer group (``XINFO GROUPS``): the group's ``lag`` (entries never
delivered) plus the entries delivered but not yet committed, i.e. pending above the
checkpoint (``XPENDING`` over ``(checkpoint, +]``, at most one batch). Only when the group
cannot tell (no group yet, a log with deleted entries, a group behind the checkpoint) are the
entries after the checkpoint counted through the log's reader. A view with no checkpoint yet
lags by the whole log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from events import Position, position_key
from projections import Projection
from services.resp import text
from services.store.keys import Keys
from services.store.log import LogReader
from services.store.positions import split
from services.views.generations import CHECKPOINT_FIELD, current_view_keys

__all__ = ["ViewState", "group_info", "lag_after", "lag_of", "view_state"]


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


async def group_info(client: aioredis.Redis, log_key: str, name: str) -> Mapping[str, Any] | None:
    """``XINFO GROUPS`` of one consumer group of ``log_key`` (``None``: no group, no log)."""
    with contextlib.suppress(rexc.ResponseError):  # no log yet
        for group in await client.xinfo_groups(log_key):
            if text(group["name"]) == name:
                info: Mapping[str, Any] = group
                return info
    return None


async def lag_of(
    client: aioredis.Redis,
    log: LogReader,
    group: str,
    checkpoint: Position | None,
    info: Mapping[str, Any] | None = None,
) -> int:
    """The entries of ``log`` after ``checkpoint`` (see the module docstring for how).

    ``info`` is the group's ``XINFO GROUPS`` entry when the caller read it already.
    """
    if checkpoint is None:
        return await log.count_after(None)
    if info is None:
        info = await group_info(client, log.key, group)
    undelivered = None if info is None else info.get("lag")
    delivered = None if info is None else info.get("last-delivered-id")
    if (
        info is None
        or undelivered is None
        or delivered is None
        or position_key(text(delivered)) < position_key(checkpoint)
    ):
        return await log.count_after(checkpoint)
    pending = int(info.get("pending") or 0)
    above = 0
    if pending:
        entries = await client.xpending_range(log.key, group, f"({checkpoint}", "+", pending)
        above = len(entries)
    return int(undelivered) + above


async def lag_after(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, checkpoint: Position | None
) -> int:
    """The log entries after ``checkpoint`` (see the module docstring for how).

    On several partitions ``checkpoint`` is one per partition (joined) and the lag is the sum
    of the partitions' lags.
    """
    keys = Keys.of(prefix)
    group = keys.group(projection.name, projection.version)
    lags = await asyncio.gather(
        *(
            lag_of(client, LogReader(client, keys, partition), group, mine)
            for partition, mine in enumerate(split(checkpoint, keys.partitions))
        )
    )
    return sum(lags)


async def view_state(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> ViewState:
    """Checkpoint, lag, pending count and lease holder of one partition view, read now."""
    keys = await current_view_keys(client, prefix, projection, partition=partition)
    info = await group_info(client, keys.log, keys.group)
    raw = await client.hget(keys.meta, CHECKPOINT_FIELD)
    checkpoint = None if raw is None else Position(text(raw))
    holder = await client.get(keys.lease)
    log = LogReader(client, prefix, partition)
    return ViewState(
        name=projection.name,
        version=projection.version,
        generation=int(keys.generation),
        position=checkpoint,
        lag=await lag_of(client, log, keys.group, checkpoint, info),
        pending=int(info["pending"]) if info else 0,
        holder=None if holder is None else text(holder),
        partition=partition,
    )
