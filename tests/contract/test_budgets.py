"""One contract for the limits' counters: in memory and on Redis (a real server).

The rate limiter and the hourly quota (:mod:`services.protection.limits`) count through a
:class:`~services.store.budgets.Budgets`; both kinds must keep the same arithmetic, with the
clock moved by the test. What only Redis gives (one budget shared by several processes, keys
that expire) is tested below the contract, on Redis alone.
"""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from services.protection.limits import FeedQuota, LimitedError, RateLimiter
from services.settings import Token
from services.store.budgets import Budgets, MemoryBudgets, RedisBudgets
from services.store.keys import Keys

READER = Token(role="reader", secret="r" * 20)
OTHER_READER = Token(role="reader", secret="o" * 20)
FEED = Token(role="feed", secret="f" * 20, feed="sohr")


class Clock:
    """A clock the test moves."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["memory", "redis"])
def budgets(request: pytest.FixtureRequest, redis_client: aioredis.Redis) -> Budgets:
    """Each kind of budgets in turn (the Redis one on the session's server)."""
    return MemoryBudgets() if request.param == "memory" else RedisBudgets(redis_client)


class TestRateContract:
    """A token bucket per token: the burst, then the rate."""

    async def test_a_bucket_refills_at_its_rate(self, budgets: Budgets, key_prefix: str) -> None:
        """Burst spent: refused, told to wait 0.1 s at 10/s; a tenth of a second later one more
        passes, and the next is refused again."""
        clock = Clock(1_000.0)
        limiter = RateLimiter({"reader": (10, 2)}, budgets, Keys(key_prefix), clock)
        await limiter.take(READER)
        await limiter.take(READER)
        with pytest.raises(LimitedError) as raised:
            await limiter.take(READER)
        assert raised.value.limit == "rate"
        assert raised.value.retry_after == pytest.approx(0.1)
        clock.now += 0.1
        await limiter.take(READER)
        with pytest.raises(LimitedError):
            await limiter.take(READER)

    async def test_a_full_bucket_holds_no_more_than_its_burst(
        self, budgets: Budgets, key_prefix: str
    ) -> None:
        """An hour idle refills to the burst, not beyond: 3 pass, the 4th is refused."""
        clock = Clock(5_000.0)
        limiter = RateLimiter({"reader": (1, 3)}, budgets, Keys(key_prefix), clock)
        await limiter.take(READER)
        clock.now += 3_600
        for _ in range(3):
            await limiter.take(READER)
        with pytest.raises(LimitedError):
            await limiter.take(READER)

    async def test_tokens_have_their_own_buckets_and_a_feeds_is_its_feeds(
        self, budgets: Budgets, key_prefix: str
    ) -> None:
        """Another reader is not limited by the first one's spending; a feed token and the
        inbox's entries of that feed (take_feed) spend one bucket; operators are never
        limited."""
        clock = Clock(0.0)
        limiter = RateLimiter({"reader": (1, 1), "feed": (1, 2)}, budgets, Keys(key_prefix), clock)
        await limiter.take(READER)
        await limiter.take(OTHER_READER)
        await limiter.take(FEED)
        await limiter.take_feed("sohr")
        with pytest.raises(LimitedError):
            await limiter.take(FEED)
        await limiter.take_feed("acled")
        for _ in range(10):
            await limiter.take(Token(role="operator", secret="p" * 20))

    async def test_a_burst_of_concurrent_takes_passes_exactly_the_burst(
        self, budgets: Budgets, key_prefix: str
    ) -> None:
        """200 takes at once at a frozen clock: exactly the 50 of the burst pass."""
        limiter = RateLimiter({"reader": (5, 50)}, budgets, Keys(key_prefix), Clock(10.0))

        async def one() -> bool:
            try:
                await limiter.take(READER)
            except LimitedError:
                return False
            return True

        passed = await asyncio.gather(*(one() for _ in range(200)))
        assert passed.count(True) == 50


class TestQuotaContract:
    """At most so many events per feed in each clock hour."""

    async def test_a_batch_past_the_quota_is_refused_and_not_counted(
        self, budgets: Budgets, key_prefix: str
    ) -> None:
        """Quota 3: 2 pass; 2 more are refused (naming the use so far, Retry-After to the
        hour's end) and not counted, so 1 still passes."""
        clock = Clock(7_200.0 + 600)
        quota = FeedQuota(3, budgets, Keys(key_prefix), clock)
        await quota.take("sohr", 2)
        with pytest.raises(LimitedError) as raised:
            await quota.take("sohr", 2)
        assert raised.value.limit == "quota"
        assert "2 this hour" in str(raised.value)
        assert raised.value.retry_after == pytest.approx(3_000)
        await quota.take("sohr", 1)

    async def test_the_quota_is_per_feed_and_starts_again_each_hour(
        self, budgets: Budgets, key_prefix: str
    ) -> None:
        """What one feed used does not count for another, nor in the next hour."""
        clock = Clock(7_200.0)
        quota = FeedQuota(3, budgets, Keys(key_prefix), clock)
        await quota.take("sohr", 3)
        with pytest.raises(LimitedError):
            await quota.take("sohr", 1)
        await quota.take("acled", 3)
        clock.now = 10_800.0
        await quota.take("sohr", 3)

    async def test_zero_turns_the_quota_off(self, budgets: Budgets, key_prefix: str) -> None:
        """per_hour 0: any number passes."""
        quota = FeedQuota(0, budgets, Keys(key_prefix), Clock(0.0))
        await quota.take("sohr", 10**9)


class TestOnRedisAlone:
    """What the Redis budgets add: one budget for every process, keys that go away."""

    async def test_two_processes_share_one_bucket_and_one_quota(
        self, redis_url: str, key_prefix: str
    ) -> None:
        """Two limiters on two connections (two API processes): a burst of 10 allows 10 in
        all, not 10 each; a quota of 5 is 5 in all."""
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
        try:
            clock = Clock(50.0)
            limiters = [
                RateLimiter({"reader": (1, 10)}, RedisBudgets(c), Keys(key_prefix), clock)
                for c in clients
            ]
            quotas = [FeedQuota(5, RedisBudgets(c), Keys(key_prefix), clock) for c in clients]
            passed = 0
            for n in range(16):
                try:
                    await limiters[n % 2].take(READER)
                    passed += 1
                except LimitedError:
                    pass
            assert passed == 10
            await quotas[0].take("sohr", 3)
            await quotas[1].take("sohr", 2)
            with pytest.raises(LimitedError):
                await quotas[1].take("sohr", 1)
        finally:
            for client in clients:
                await client.aclose()

    async def test_keys_expire_and_never_name_the_secret(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A bucket expires within the time it takes to refill (plus a second), the hour's
        count within two hours; no key holds the token's secret."""
        keys = Keys(key_prefix)
        budgets = RedisBudgets(redis_client)
        await RateLimiter({"reader": (10, 20)}, budgets, keys, Clock(1.0)).take(READER)
        await FeedQuota(100, budgets, keys, Clock(3_600.0 * 5 + 1)).take("sohr", 7)
        found = [k.decode() async for k in redis_client.scan_iter(match=f"{key_prefix}:*")]
        assert sorted(k.split(":")[2] for k in found) == ["quota", "rate"]
        assert all(READER.secret not in k for k in found)
        for key in found:
            ttl = await redis_client.pttl(key)
            limit = 1_000 + 100 if ":rate:" in key else 2 * 3_600_000
            assert 0 < ttl <= limit
        assert await redis_client.get(keys.quota_count("sohr", 5)) == b"7"
