"""Writing to the Redis inbox as feeds do, and reading what it did, in tests."""

from __future__ import annotations

import json
from typing import Any

import redis.asyncio as aioredis

from events import Event, encode
from services.ingest.inbox import GROUP
from services.store.keys import Keys

__all__ = ["none_pending", "pending", "problems_of", "rejected", "submit"]


async def submit(
    client: aioredis.Redis, keys: Keys, event: Event | bytes, feed: str = "sohr"
) -> bytes:
    """XADD one raw submission to the feed's inbox stream the way a Redis-native feed does."""
    data = event if isinstance(event, bytes) else encode(event)
    entry_id: Any = await client.xadd(keys.inbox_of(feed), {"event": data})
    return bytes(entry_id)


async def pending(client: aioredis.Redis, keys: Keys, feed: str = "sohr") -> int:
    """How many entries of the feed's inbox stream the group holds unacknowledged."""
    summary = await client.xpending(keys.inbox_of(feed), GROUP)
    return int(summary["pending"])


async def rejected(client: aioredis.Redis, keys: Keys) -> list[dict[bytes, bytes]]:
    """The rejected stream's entries, oldest first."""
    entries: Any = await client.xrange(keys.inbox_rejected)
    return [fields for _, fields in entries]


def problems_of(entry: dict[bytes, bytes]) -> list[tuple[str, str]]:
    """The (field, message) pairs of a rejected entry."""
    return [(p["field"], p["message"]) for p in json.loads(entry[b"errors"])]


async def none_pending(client: aioredis.Redis, keys: Keys, feed: str = "sohr") -> bool:
    """Whether the feed's inbox stream has nothing pending: a condition for ``until``."""
    return await pending(client, keys, feed) == 0
