"""How fresh a stored view is: its checkpoint and the log entries not yet applied to it.

``lag`` counts the log entries after the view's checkpoint. It is read cheaply from the
projection's consumer group (``XINFO GROUPS``): the group's ``lag`` (entries never
delivered) plus the entries delivered but not yet committed, i.e. pending above the
checkpoint (``XPENDING`` over ``(checkpoint, +]``, at most one batch). Only when the group
cannot tell (no group yet, a log with deleted entries, a group behind the checkpoint) are
the entries after the checkpoint counted with ``XRANGE``. A view with no checkpoint yet lags
by the whole log.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from events import Position, position_key
from projections import Projection
from services.store.keys import Keys
from services.views.stored import load_checkpoint, split, view_keys

__all__ = ["Freshness", "count_after", "freshness", "lag_after"]

_COUNT_PAGE: Final = 10_000


class Freshness(msgspec.Struct, frozen=True):
    """A view's checkpoint and how many log entries it has yet to apply."""

    position: Position | None
    lag: int


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def count_after(client: aioredis.Redis, log_key: str, after: Position | None) -> int:
    """The log entries after ``after`` (all of them for ``None``), counted with ``XRANGE``."""
    if after is None:
        return int(await client.xlen(log_key))
    count, start = 0, f"({after}"
    while True:
        page = await client.xrange(log_key, min=start, max="+", count=_COUNT_PAGE) or []
        count += len(page)
        if len(page) < _COUNT_PAGE:
            return count
        start = f"({_text(page[-1][0])}"


async def _group(client: aioredis.Redis, log_key: str, name: str) -> Mapping[str, Any] | None:
    with contextlib.suppress(rexc.ResponseError):  # no log yet
        for group in await client.xinfo_groups(log_key):
            if _text(group["name"]) == name:
                info: Mapping[str, Any] = group
                return info
    return None


async def lag_after(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, checkpoint: Position | None
) -> int:
    """The log entries after ``checkpoint`` (see the module docstring for how).

    On several partitions ``checkpoint`` is one per partition (:func:`services.views.stored.joined`)
    and the lag is the sum of the partitions' lags.
    """
    keys = Keys.of(prefix)
    group_name = view_keys(keys, projection).group
    lags = await asyncio.gather(
        *(
            _lag_of(client, keys.log_of(partition), group_name, mine)
            for partition, mine in enumerate(split(checkpoint, keys.partitions))
        )
    )
    return sum(lags)


async def _lag_of(
    client: aioredis.Redis, log_key: str, group_name: str, checkpoint: Position | None
) -> int:
    if checkpoint is None:
        return await count_after(client, log_key, None)
    info = await _group(client, log_key, group_name)
    undelivered = None if info is None else info.get("lag")
    delivered = None if info is None else info.get("last-delivered-id")
    if (
        info is None
        or undelivered is None
        or delivered is None
        or position_key(_text(delivered)) < position_key(checkpoint)
    ):
        return await count_after(client, log_key, checkpoint)
    pending = int(info.get("pending") or 0)
    above = 0
    if pending:
        entries = await client.xpending_range(log_key, group_name, f"({checkpoint}", "+", pending)
        above = len(entries)
    return int(undelivered) + above


async def freshness(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> Freshness:
    """The view's checkpoint and lag, read now."""
    checkpoint = await load_checkpoint(client, prefix, projection)
    return Freshness(checkpoint, await lag_after(client, prefix, projection, checkpoint))
