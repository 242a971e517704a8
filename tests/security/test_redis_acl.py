"""Redis itself authenticates inbox writers: each feed's user may XADD to its own stream only.

Black box, on the embedded default's redis-server (its ACL file, :mod:`services.runtime.acl`):
a feed's password from ``redis-feeds`` or from ``ledger feeds add``, used as an attacker
holding it would, meets ``NOPERM`` everywhere but its own inbox stream; the service's own
user is no superuser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import msgspec
import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions
from faststream.redis import RedisBroker
from typer.testing import CliRunner

from events import encode
from services.cli import main
from services.files import read_private
from services.protection.limits import FeedQuota, LimitedError, RateLimiter
from services.runtime.embedded import ACL_FILE, FEEDS_FILE, REDIS_DIR, EmbeddedRedis
from services.settings import Settings, Token
from services.store.budgets import RedisBudgets
from services.store.keys import Keys
from tests.support.builders import reported
from tests.support.service import serve_defaults
from tests.support.waiting import until

KEYS = Keys("ledger")
TOKENS = (
    Token(role="feed", secret="feed-sohr-token-0123456789", feed="sohr"),
    Token(role="feed", secret="feed-acled-token-0123456789", feed="acled"),
    Token(role="reader", secret="reader-token-0123456789"),
)


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """The embedded Redis with the users of two feeds, sohr and acled."""
    with EmbeddedRedis(Settings(data_dir=tmp_path, tokens=TOKENS)) as server:
        yield server


def as_user(server: EmbeddedRedis, user: str, password: str) -> redis.Redis:
    """A client of ``server`` as ``user``."""
    return redis.Redis(host="127.0.0.1", port=server.process.port, username=user, password=password)


def feed_password(data_dir: Path, feed: str) -> str:
    """A configured feed's password, as the embedded default generated it."""
    lines = read_private(data_dir / FEEDS_FILE).splitlines()
    return dict(line.split("=", 1) for line in lines)[feed]


def refused(call: object) -> None:
    """``call`` (a zero-argument callable) is answered NOPERM."""
    with pytest.raises(redis.exceptions.NoPermissionError):
        call()  # type: ignore[operator]


class TestFeedUser:
    def test_a_feed_writes_its_own_inbox_and_nothing_else(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """sohr's user XADDs to its stream; another feed's inbox, the keyring, the log, the
        audit stream and any other command are NOPERM."""
        with (
            as_user(embedded, "feed-sohr", feed_password(tmp_path, "sohr")) as sohr,
            redis.Redis.from_url(embedded.url) as service,
        ):
            service.hset(KEYS.keyring, "incident:i-1", "key material")
            service.xadd(KEYS.log, {"type": "incident.reported", "data": "{}"})
            assert sohr.xadd(KEYS.inbox_of("sohr"), {"event": "{}"})
            refused(lambda: sohr.xadd(KEYS.inbox_of("acled"), {"event": "{}"}))
            refused(lambda: sohr.xadd(KEYS.inbox, {"feed": "acled", "event": "{}"}))
            refused(lambda: sohr.hgetall(KEYS.keyring))
            refused(lambda: sohr.xrange(KEYS.log))
            refused(lambda: sohr.xrange(KEYS.inbox_of("sohr")))
            refused(lambda: sohr.xadd(KEYS.log, {"type": "x"}))
            refused(lambda: sohr.delete(KEYS.audit))
            refused(sohr.flushall)
            assert service.hget(KEYS.keyring, "incident:i-1") == b"key material"

    async def test_a_feed_publishes_with_faststream_as_its_own_user(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """FastStream's RedisBroker needs nothing beyond XADD on the feed's stream."""
        password = quote(feed_password(tmp_path, "sohr"), safe="")
        url = f"redis://feed-sohr:{password}@127.0.0.1:{embedded.process.port}/0"
        async with RedisBroker(url) as broker:
            await broker.publish({"type": "incident.reported"}, stream=KEYS.inbox_of("sohr"))
        with redis.Redis.from_url(embedded.url) as service:
            assert service.xlen(KEYS.inbox_of("sohr")) == 1


class TestAsDeployed:
    async def test_a_feed_user_publishing_with_faststream_reaches_the_log(
        self, tmp_path: Path
    ) -> None:
        """``ledger serve`` on the embedded default: the local feed's Redis user publishes with
        FastStream, the service (as its own, restricted user) appends the event."""
        data_dir = tmp_path / "var"
        async with serve_defaults(data_dir) as (service, _):
            assert service.embedded is not None
            port = service.embedded.process.port
            password = quote(feed_password(data_dir, "local"), safe="")
            url = f"redis://feed-local:{password}@127.0.0.1:{port}/0"
            event = msgspec.json.decode(encode(reported("i-acl", source="local")))
            async with RedisBroker(url) as broker:
                await broker.publish(event, stream=KEYS.inbox_of("local"))

            async def appended() -> bool:
                return await service.store.length() == 1

            await until(appended, "the feed's event in the log", within=15)


class TestServiceUser:
    def test_the_service_user_is_no_superuser(self, embedded: EmbeddedRedis) -> None:
        """Keys outside its prefix, FLUSHALL, KEYS, CONFIG SET and ACL are NOPERM to it."""
        with redis.Redis.from_url(embedded.url) as service:
            refused(lambda: service.set("elsewhere", "1"))
            refused(service.flushall)
            refused(lambda: service.keys("*"))
            refused(lambda: service.config_set("appendonly", "no"))
            refused(lambda: service.acl_setuser("intruder", enabled=True))
            assert service.config_get("maxmemory-policy")  # the start-up check still reads it
            assert service.info("persistence")


class TestLimitsUnderTheAcl:
    async def test_the_service_counts_limits_and_a_feed_cannot_reset_its_own(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """As the service's user the rate and quota scripts run (no NOPERM) and spend the
        budget; as the feed's user, deleting or rewriting its own bucket or count is
        NOPERM."""
        client = aioredis.Redis.from_url(embedded.url)
        try:
            budgets = RedisBudgets(client)
            rate = RateLimiter({"feed": (1, 1)}, budgets, KEYS)
            quota = FeedQuota(5, budgets, KEYS)
            await rate.take_feed("sohr")
            with pytest.raises(LimitedError):
                await rate.take_feed("sohr")
            await quota.take("sohr", 5)
        finally:
            await client.aclose()
        feed = as_user(embedded, "feed-sohr", feed_password(tmp_path, "sohr"))
        bucket = KEYS.rate_bucket("feed:sohr")
        refused(lambda: feed.delete(bucket))
        refused(lambda: feed.hset(bucket, "t", "50"))
        refused(lambda: feed.eval("return redis.call('DEL', KEYS[1])", 1, bucket))


class TestFeedsAdd:
    def test_feeds_add_creates_a_user_prints_its_password_once_and_registers_it(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """``ledger feeds add new-feed``: its user writes only its stream, survives a restart,
        and the ACL file keeps a hash, never the password."""
        env = {"LEDGER_DATA_DIR": str(tmp_path), "LEDGER_REDIS_URL": "", "LEDGER_TOKENS": ""}
        result = CliRunner().invoke(main, ["feeds", "add", "new-feed"], env=env)
        assert result.exit_code == 0, result.output
        found = re.search(r"password \(shown once[^)]*\): (\S+)", result.output)
        assert found is not None
        password = found.group(1)
        with as_user(embedded, "feed-new-feed", password) as feed:
            assert feed.xadd(KEYS.inbox_of("new-feed"), {"event": "{}"})
            refused(lambda: feed.xadd(KEYS.inbox_of("sohr"), {"event": "{}"}))
            refused(lambda: feed.hgetall(KEYS.keyring))
        with redis.Redis.from_url(embedded.url) as service:
            assert service.smembers(KEYS.inbox_feeds) == {b"new-feed"}
        acl = read_private(tmp_path / REDIS_DIR / ACL_FILE)
        assert "user feed-new-feed" in acl
        assert password not in acl
        embedded.stop()
        embedded.start()
        with as_user(embedded, "feed-new-feed", password) as feed:
            assert feed.xadd(KEYS.inbox_of("new-feed"), {"event": "{}"})

    def test_feeds_add_gives_a_configured_feed_a_new_password_that_lasts(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """Run for sohr, the printed password replaces the generated one, across a restart."""
        old = feed_password(tmp_path, "sohr")
        env = {"LEDGER_DATA_DIR": str(tmp_path), "LEDGER_REDIS_URL": "", "LEDGER_TOKENS": ""}
        result = CliRunner().invoke(main, ["feeds", "add", "sohr"], env=env)
        assert result.exit_code == 0, result.output
        found = re.search(r"password \(shown once[^)]*\): (\S+)", result.output)
        assert found is not None
        embedded.stop()
        embedded.start()
        with as_user(embedded, "feed-sohr", found.group(1)) as feed:
            assert feed.xadd(KEYS.inbox_of("sohr"), {"event": "{}"})
        with as_user(embedded, "feed-sohr", old) as stale, pytest.raises(redis.RedisError):
            stale.ping()

    def test_a_bad_or_reserved_name_is_refused_with_status_2(
        self, embedded: EmbeddedRedis, tmp_path: Path
    ) -> None:
        """``Bad Name``, ``rejected`` and ``ledger-operator`` create nothing."""
        env = {"LEDGER_DATA_DIR": str(tmp_path), "LEDGER_REDIS_URL": "", "LEDGER_TOKENS": ""}
        for name in ("Bad Name", "rejected", "ledger-operator"):
            result = CliRunner().invoke(main, ["feeds", "add", name], env=env)
            assert result.exit_code == 2, (name, result.output)
        with redis.Redis.from_url(embedded.url) as service:
            assert service.smembers(KEYS.inbox_feeds) == set()
