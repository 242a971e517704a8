"""Limits per token and per feed: request rates, events per hour, open live streams.

- **Rates** (:class:`RateLimiter`): a token bucket per token (per feed for feed tokens, the
  Redis inbox taking one per entry from it: :mod:`services.ingest.inbox`). Readers and analysts
  (``LEDGER_READ_RATE`` requests/s, bursts of ``LEDGER_READ_BURST``; 50 and 100), feeds
  (``LEDGER_FEED_RATE`` batches/s, bursts of ``LEDGER_FEED_BURST``; 20 and 50); operators
  are never limited. A request over the rate is answered ``429`` with ``Retry-After``
  (:mod:`services.http.limits`), before anything else is done for it.
- **Quota** (:class:`FeedQuota`): at most ``LEDGER_FEED_EVENTS_PER_HOUR`` events per feed in
  each clock hour, over HTTP and the Redis inbox together (a batch or an inbox entry that
  would pass it is refused whole: 429, ``Retry-After`` the seconds to the next hour; the
  inbox's rejected stream).
- **Live streams** (:class:`StreamCounter`): at most ``LEDGER_LIVE_STREAMS_PER_TOKEN`` open
  Server-Sent-Events streams per token (the next one is refused with 429).

A rate or count of 0 turns that limit off. Rates and quotas are counted in Redis
(:class:`~services.store.budgets.RedisBudgets`: one budget per token or feed, shared by every
API process and the inbox), or in memory where there is no Redis behind the process;
when Redis does not answer they let the request pass (its handler then answers 503). Open
live streams are counted per process: a stream is held by the process serving it.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from services.errors import LedgerError
from services.settings import Role, Settings, Token
from services.store.budgets import Budgets, MemoryBudgets, RedisBudgets
from services.store.keys import Keys

__all__ = [
    "FeedQuota",
    "LimitedError",
    "Limits",
    "RateLimiter",
    "StreamCounter",
    "limits_of",
]

Clock = Callable[[], float]
_HOUR: Final = 3600.0
_log = structlog.get_logger(__name__)


class LimitedError(LedgerError):
    """Raised when a token or feed went over one of its limits (rate, hourly quota, open
    live streams): answered 429, ``retry_after`` seconds (at least 1) until it may try
    again, and which limit (``limit``)."""

    def __init__(self, limit: str, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.limit = limit
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """``Retry-After`` in whole seconds, at least 1."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimiter:
    """A token bucket per token: ``rates[role] = (per second, burst)``; a role not in it is
    not limited. A feed token's bucket is its feed's (``feed:<name>``), which the Redis inbox
    takes from too (:meth:`take_feed`); any other token's is its own (a digest of its
    secret)."""

    def __init__(
        self,
        rates: Mapping[Role, tuple[float, int]],
        budgets: Budgets,
        keys: Keys,
        clock: Clock = time.time,
    ) -> None:
        self.rates = {role: rate for role, rate in rates.items() if rate[0] > 0 and rate[1] > 0}
        self.budgets, self.keys, self.clock = budgets, keys, clock

    async def take(self, token: Token) -> None:
        """Count one request of ``token``; :class:`LimitedError` when over its rate."""
        if token.feed is not None:
            await self.take_feed(token.feed)
        else:
            digest = hashlib.blake2b(token.secret.encode(), digest_size=12).hexdigest()
            await self._take(token.role, f"token:{digest}", token.name, "requests")

    async def take_feed(self, feed: str) -> None:
        """Count one batch (an HTTP request, or an inbox entry) of ``feed``;
        :class:`LimitedError` when over the feed rate."""
        await self._take("feed", f"feed:{feed}", f"feed:{feed}", "batches")

    async def _take(self, role: Role, subject: str, name: str, unit: str) -> None:
        rate = self.rates.get(role)
        if rate is None:
            return
        per_second, burst = rate
        key = self.keys.rate_bucket(subject)
        try:
            wait = await self.budgets.take_bucket(
                key, rate=per_second, burst=burst, now=self.clock()
            )
        except (rexc.RedisError, OSError) as exc:
            _log.warning("rate unchecked", token=name, error=str(exc))
            return  # Redis down: the handler meets it too, and answers 503
        if wait > 0:
            raise LimitedError(
                "rate",
                f"{name} is over its rate of {per_second:g} {unit}/s "
                f"(bursts of {burst}); retry after {wait:.2f} s",
                wait,
            )


class FeedQuota:
    """At most ``per_hour`` events per feed in each clock hour (0: no quota)."""

    def __init__(
        self, per_hour: int, budgets: Budgets, keys: Keys, clock: Clock = time.time
    ) -> None:
        self.per_hour = per_hour
        self.budgets, self.keys, self.clock = budgets, keys, clock

    async def take(self, feed: str, events: int) -> None:
        """Count ``events`` of ``feed``; :class:`LimitedError` (nothing counted) when they
        would pass the quota of this hour."""
        if self.per_hour <= 0:
            return
        now = self.clock()
        hour = int(now // _HOUR)
        left = (hour + 1) * _HOUR - now
        try:
            taken, used = await self.budgets.take_count(
                self.keys.quota_count(feed, hour),
                limit=self.per_hour,
                cost=events,
                keep=left + _HOUR,
            )
        except (rexc.RedisError, OSError) as exc:
            _log.warning("quota unchecked", feed=feed, error=str(exc))
            return  # Redis down: the append meets it too, and answers 503
        if not taken:
            raise LimitedError(
                "quota",
                f"feed {feed} may publish {self.per_hour} events an hour; {used} this hour, "
                f"and this batch has {events}",
                left,
            )


class StreamCounter:
    """Open live streams per token, at most ``per_token`` (0: no limit)."""

    def __init__(self, per_token: int) -> None:
        self.per_token = per_token
        self._open: dict[str, int] = {}

    def count(self, token: Token) -> int:
        """How many streams ``token`` holds open."""
        return self._open.get(token.secret, 0)

    def open(self, token: Token) -> Callable[[], None]:
        """Count one more open stream of ``token``; the function that closes it (once, however
        often it is called). :class:`LimitedError` when it holds its limit already."""
        held = self.count(token)
        if self.per_token > 0 and held >= self.per_token:
            raise LimitedError(
                "streams",
                f"{token.name} holds {held} live streams open, its limit; close one first",
                1.0,
            )
        self._open[token.secret] = held + 1
        closed = False

        def close() -> None:
            nonlocal closed
            if closed:
                return
            closed = True
            left = self._open[token.secret] - 1
            if left:
                self._open[token.secret] = left
            else:
                del self._open[token.secret]

        return close


class Limits(msgspec.Struct, frozen=True):
    """The limits of one process (the rate and quota counted in its :class:`Budgets`)."""

    rate: RateLimiter
    quota: FeedQuota
    streams: StreamCounter


def limits_of(settings: Settings, client: aioredis.Redis | Any | None = None) -> Limits:
    """The limits ``settings`` configure (every one off when its setting is 0), counted in
    the Redis of ``client`` (shared by every process using it) or, without one, in memory."""
    read = (settings.read_rate, settings.read_burst)
    budgets = MemoryBudgets() if client is None else RedisBudgets(client)
    keys = settings.keys
    return Limits(
        rate=RateLimiter(
            {"reader": read, "analyst": read, "feed": (settings.feed_rate, settings.feed_burst)},
            budgets,
            keys,
        ),
        quota=FeedQuota(settings.feed_events_per_hour, budgets, keys),
        streams=StreamCounter(settings.live_streams_per_token),
    )
