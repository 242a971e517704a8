"""Limits per token and per feed: request rates, events per hour, open live streams.

- **Rates** (:class:`RateLimiter`): a token bucket per token. Readers and analysts
  (``LEDGER_READ_RATE`` requests/s, bursts of ``LEDGER_READ_BURST``; 50 and 100), feeds
  (``LEDGER_FEED_RATE`` batches/s, bursts of ``LEDGER_FEED_BURST``; 20 and 50); operators
  are never limited. A request over the rate is answered ``429`` with ``Retry-After``
  (:mod:`services.http.limits`), before anything else is done for it.
- **Quota** (:class:`FeedQuota`): at most ``LEDGER_FEED_EVENTS_PER_HOUR`` events per feed in
  each clock hour (a batch that would pass it is refused whole: 429, ``Retry-After`` the
  seconds to the next hour).
- **Live streams** (:class:`StreamCounter`): at most ``LEDGER_LIVE_STREAMS_PER_TOKEN`` open
  Server-Sent-Events streams per token (the next one is refused with 429).

A rate or count of 0 turns that limit off. Every count is kept in the memory of the API
process: with several API processes behind a balancer each enforces its own.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import Final

import msgspec

from services.errors import LedgerError
from services.settings import Role, Settings, Token

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


class _Bucket(msgspec.Struct):
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per token: ``rates[role] = (per second, burst)``; a role not in it is
    not limited."""

    def __init__(
        self, rates: Mapping[Role, tuple[float, int]], clock: Clock = time.monotonic
    ) -> None:
        self.rates = {role: rate for role, rate in rates.items() if rate[0] > 0 and rate[1] > 0}
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, token: Token) -> None:
        """Count one request of ``token``; :class:`LimitedError` when over its rate."""
        rate = self.rates.get(token.role)
        if rate is None:
            return
        per_second, burst = rate
        now = self.clock()
        bucket = self._buckets.setdefault(token.secret, _Bucket(float(burst), now))
        bucket.tokens = min(float(burst), bucket.tokens + (now - bucket.stamp) * per_second)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return
        wait = (1.0 - bucket.tokens) / per_second
        raise LimitedError(
            "rate",
            f"{token.name} is over its rate of {per_second:g} requests/s "
            f"(bursts of {burst}); retry after {wait:.2f} s",
            wait,
        )


class FeedQuota:
    """At most ``per_hour`` events per feed in each clock hour (0: no quota)."""

    def __init__(self, per_hour: int, clock: Clock = time.time) -> None:
        self.per_hour = per_hour
        self.clock = clock
        self._used: dict[str, tuple[int, int]] = {}  # feed -> (hour, events)

    def take(self, feed: str, events: int) -> None:
        """Count ``events`` of ``feed``; :class:`LimitedError` (nothing counted) when the
        batch would pass the quota of this hour."""
        if self.per_hour <= 0:
            return
        now = self.clock()
        hour = int(now // _HOUR)
        seen, used = self._used.get(feed, (hour, 0))
        used = used if seen == hour else 0
        if used + events > self.per_hour:
            raise LimitedError(
                "quota",
                f"feed {feed} may publish {self.per_hour} events an hour; {used} this hour, "
                f"and this batch has {events}",
                (hour + 1) * _HOUR - now,
            )
        self._used[feed] = (hour, used + events)


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
    """The limits of one API process."""

    rate: RateLimiter
    quota: FeedQuota
    streams: StreamCounter


def limits_of(settings: Settings) -> Limits:
    """The limits ``settings`` configure (every one off when its setting is 0)."""
    read = (settings.read_rate, settings.read_burst)
    return Limits(
        rate=RateLimiter(
            {"reader": read, "analyst": read, "feed": (settings.feed_rate, settings.feed_burst)}
        ),
        quota=FeedQuota(settings.feed_events_per_hour),
        streams=StreamCounter(settings.live_streams_per_token),
    )
