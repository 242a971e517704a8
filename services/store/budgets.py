"""Counters the limits keep: token buckets and windowed counts, in Redis or in memory.

:class:`Budgets` is the small Protocol :mod:`services.protection.limits` counts through. On
Redis (:class:`RedisBudgets`) each bucket and each count is one key (names in
:mod:`services.store.keys`) changed by one Lua script, so every API process and the inbox
share one budget per token or feed, atomically; each key expires once it no longer matters (a
bucket when it would be full again, a count after its window). In memory
(:class:`MemoryBudgets`) the same arithmetic, for a process with no Redis behind it (the
in-memory store, tests). One contract suite runs against both (``tests/contract``).

The caller passes the time (``now``, seconds): the arithmetic is the same everywhere and a
test can move the clock. Clocks of several processes are assumed close (NTP); a stamp later
than ``now`` counts as no time elapsed, so a process behind the others never refills early.
"""

from __future__ import annotations

import asyncio
import math
from typing import Any, Final, Protocol

import redis.asyncio as aioredis

__all__ = [
    "BUCKET_SCRIPT",
    "CONCURRENCY",
    "COUNT_SCRIPT",
    "Budgets",
    "MemoryBudgets",
    "RedisBudgets",
]

CONCURRENCY: Final = 16
"""Most scripts one :class:`RedisBudgets` runs at once (of the client pool's 100)."""

BUCKET_SCRIPT: Final = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local now, cost = tonumber(ARGV[3]), tonumber(ARGV[4])
local state = redis.call('HMGET', KEYS[1], 't', 's')
local tokens = tonumber(state[1]) or burst
local stamp = tonumber(state[2]) or now
if now > stamp then
  tokens = math.min(burst, tokens + (now - stamp) * rate)
  stamp = now
end
if tokens < cost then
  return tostring((cost - tokens) / rate)
end
tokens = tokens - cost
redis.call('HSET', KEYS[1], 't', string.format('%.17g', tokens), 's', string.format('%.17g', stamp))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
return '0'
"""
"""KEYS: the bucket. ARGV: rate per second, burst, now, cost. Returns the seconds until
``cost`` would be there (a string; ``'0'``: taken)."""

COUNT_SCRIPT: Final = """
local limit, cost = tonumber(ARGV[1]), tonumber(ARGV[2])
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
if used + cost > limit then
  return {0, used}
end
redis.call('INCRBY', KEYS[1], cost)
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return {1, used}
"""
"""KEYS: the count. ARGV: limit, cost, milliseconds to keep it. Returns ``{taken, used
before}``."""


class Budgets(Protocol):
    """Token buckets and windowed counts, shared by everyone counting in the same place."""

    async def take_bucket(
        self, key: str, *, rate: float, burst: int, now: float, cost: int = 1
    ) -> float:
        """Take ``cost`` from the bucket ``key`` (full at ``burst``, refilled at ``rate`` per
        second): ``0.0`` when taken, else the seconds until it could be (nothing taken)."""
        ...

    async def take_count(self, key: str, *, limit: int, cost: int, keep: float) -> tuple[bool, int]:
        """Add ``cost`` to the count ``key`` unless that passes ``limit`` (kept ``keep``
        seconds from now): whether it was added, and the count before."""
        ...


class _Bucket:
    __slots__ = ("stamp", "tokens")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens, self.stamp = tokens, stamp


class MemoryBudgets:
    """:class:`Budgets` in this process's memory (no expiry: a count's key names its window)."""

    def __init__(self) -> None:
        self._buckets: dict[str, _Bucket] = {}
        self._counts: dict[str, int] = {}

    async def take_bucket(
        self, key: str, *, rate: float, burst: int, now: float, cost: int = 1
    ) -> float:
        bucket = self._buckets.setdefault(key, _Bucket(float(burst), now))
        if now > bucket.stamp:
            bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * rate)
            bucket.stamp = now
        if bucket.tokens < cost:
            return (cost - bucket.tokens) / rate
        bucket.tokens -= cost
        return 0.0

    async def take_count(self, key: str, *, limit: int, cost: int, keep: float) -> tuple[bool, int]:
        used = self._counts.get(key, 0)
        if used + cost > limit:
            return False, used
        self._counts[key] = used + cost
        return True, used


class RedisBudgets:
    """:class:`Budgets` in Redis: one key per bucket or count, one script per change.

    At most ``concurrency`` scripts run at once from one instance; the rest wait their turn,
    so a burst of requests cannot take every connection of the client's pool (redis-py
    refuses a command past its pool rather than waiting).
    """

    def __init__(self, client: aioredis.Redis | Any, concurrency: int = CONCURRENCY) -> None:
        self._bucket = client.register_script(BUCKET_SCRIPT)
        self._count = client.register_script(COUNT_SCRIPT)
        self._turns = asyncio.Semaphore(concurrency)

    async def take_bucket(
        self, key: str, *, rate: float, burst: int, now: float, cost: int = 1
    ) -> float:
        async with self._turns:
            wait = await self._bucket(keys=[key], args=[repr(rate), burst, repr(now), cost])
        return float(wait.decode() if isinstance(wait, bytes) else wait)

    async def take_count(self, key: str, *, limit: int, cost: int, keep: float) -> tuple[bool, int]:
        ms = max(1, math.ceil(keep * 1000))
        async with self._turns:
            taken, used = await self._count(keys=[key], args=[limit, cost, ms])
        return bool(taken), int(used)
