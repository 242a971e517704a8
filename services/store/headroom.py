"""Room left in Redis's memory, so ingest refuses a write before Redis does.

With ``maxmemory-policy noeviction`` a full Redis answers every write with ``OOM command not
allowed``: appends, but also the projectors' commits and the audit trail. :class:`Headroom`
lets ingest stop earlier, at a share of ``maxmemory`` (``LEDGER_INGEST_MEMORY_PERCENT``,
default 90), with a reason the publisher can act on (507), leaving the rest for the views to
catch up and for reads to be audited. It reads ``INFO memory`` at most once a second. A
server without ``maxmemory`` (0) has no limit to keep to; on a cluster each node has its own
and this check is off.
"""

from __future__ import annotations

import time
from typing import Any, Final

import redis.asyncio as aioredis
import redis.exceptions as rexc

from services.store.base import StoreError

__all__ = ["Headroom", "MemoryFullError"]

_EVERY: Final = 1.0


class MemoryFullError(StoreError):
    """Raised when Redis's memory use is past the share of ``maxmemory`` ingest keeps to:
    nothing is appended (507) until memory is freed or ``maxmemory`` raised."""


class Headroom:
    """Checks Redis's ``used_memory`` against ``percent`` of its ``maxmemory``."""

    def __init__(self, client: aioredis.Redis, percent: int = 90) -> None:
        self.client = client
        self.percent = percent
        self._checked = -_EVERY
        self._memory: dict[str, Any] = {}

    async def check(self) -> None:
        """:class:`MemoryFullError` when used memory is past the limit (from a reading at
        most a second old); a Redis that cannot answer is left to the append to report."""
        now = time.monotonic()
        if now - self._checked >= _EVERY:
            try:
                self._memory = await self.client.info("memory")
            except rexc.RedisError:
                return
            self._checked = now
        limit = int(self._memory.get("maxmemory", 0))
        used = int(self._memory.get("used_memory", 0))
        if limit and used * 100 >= limit * self.percent:
            raise MemoryFullError(
                f"Redis holds {used} bytes of its maxmemory {limit}: past {self.percent}%, "
                "ingest stops so the views and the audit trail can still be written; free "
                "memory or raise maxmemory"
            )
