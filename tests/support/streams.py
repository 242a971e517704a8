"""Redis streams read raw in tests, typed as a client without decoded responses answers them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

import redis.asyncio as aioredis

__all__ = ["Entry", "added", "entries"]

Entry = tuple[bytes, dict[bytes, bytes]]
"""A stream entry as it comes: its id and its fields, bytes all."""


async def entries(
    client: aioredis.Redis, key: str, low: str = "-", high: str = "+", count: int | None = None
) -> list[Entry]:
    """The entries of the stream ``key`` from ``low`` to ``high`` (one ``XRANGE``, at most
    ``count``)."""
    return cast("list[Entry]", await client.xrange(key, low, high, count=count) or [])


async def added(client: aioredis.Redis, key: str, fields: Mapping[str, Any]) -> bytes:
    """``XADD`` ``fields`` to ``key``; the new entry's id."""
    return cast("bytes", await client.xadd(key, dict(fields)))  # type: ignore[arg-type]
