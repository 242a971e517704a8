"""Start-up checks against Redis servers of the test's own (never the shared one).

Each test starts its own ``redis-server`` (``RedisProcess``) and may reconfigure it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

from services.cli.processes import project
from services.runtime.checks import EvictionPolicyError, check_redis, redis_setup
from services.runtime.redis_server import RedisProcess
from services.settings import Settings


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone, without persistence, as the embedded one is set up."""
    with RedisProcess(data_dir=tmp_path / "redis", appendonly=False, password="pw-0123456789") as s:
        yield s


@pytest.fixture
async def client(server: RedisProcess) -> AsyncIterator[aioredis.Redis]:
    """A client of the test's own server."""
    redis = aioredis.Redis.from_url(server.url)
    try:
        yield redis
    finally:
        await redis.aclose()


class TestEvictionPolicy:
    """A Redis that may evict keys is refused; noeviction passes."""

    async def test_our_redis_servers_are_configured_noeviction(
        self, client: aioredis.Redis
    ) -> None:
        """RedisProcess (the embedded Redis) sets maxmemory-policy noeviction explicitly."""
        setup = await check_redis(client)
        assert setup.maxmemory_policy == "noeviction"

    async def test_allkeys_lru_is_refused_with_the_remedy(self, client: aioredis.Redis) -> None:
        """An evicting policy raises, naming the policy and how to fix it."""
        await client.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(EvictionPolicyError, match=r"allkeys-lru.*noeviction"):
            await check_redis(client)

    async def test_without_config_the_policy_is_read_from_info(
        self, client: aioredis.Redis, server: RedisProcess
    ) -> None:
        """A user not allowed CONFIG still gets checked, through INFO memory."""
        await client.config_set("maxmemory-policy", "volatile-lru")
        await client.execute_command(
            "ACL", "SETUSER", "limited", "on", ">limited-pw-123", "~*", "&*", "+@all", "-config"
        )
        limited = aioredis.Redis(
            host="127.0.0.1", port=server.port, username="limited", password="limited-pw-123"
        )
        try:
            setup = await redis_setup(limited)
            assert (setup.source, setup.maxmemory_policy) == ("info", "volatile-lru")
            with pytest.raises(EvictionPolicyError):
                await check_redis(limited)
        finally:
            await limited.aclose()

    async def test_ledger_project_refuses_an_evicting_redis(
        self, client: aioredis.Redis, server: RedisProcess
    ) -> None:
        """The projector process stops before starting any work."""
        await client.config_set("maxmemory-policy", "allkeys-random")
        settings = Settings(key_prefix="checks", claim_idle_ms=1000)
        with pytest.raises(EvictionPolicyError):
            await project(
                settings, redis_url=server.url, consumer="checks", lease_ms=1000, batch_size=10
            )
        assert await client.keys("checks:*") == []


class TestPersistence:
    """A server that does not persist is accepted with a loud warning."""

    async def test_no_aof_and_no_save_points_warns(self, client: aioredis.Redis) -> None:
        """No AOF and no RDB save points: a warning that a restart loses every event."""
        with capture_logs() as logs:
            setup = await check_redis(client)
        assert setup.persistent is False
        assert [e["event"] for e in logs if e["log_level"] == "warning"] == [
            "redis.persistence_off"
        ]

    async def test_aof_on_does_not_warn(self, tmp_path: Path) -> None:
        """With the append-only file on (the embedded Redis's setting), nothing is logged."""
        with RedisProcess(data_dir=tmp_path / "aof", appendonly=True) as server:
            client = aioredis.Redis.from_url(server.url)
            try:
                with capture_logs() as logs:
                    setup = await check_redis(client)
            finally:
                await client.aclose()
        assert (setup.appendonly, setup.persistent) == (True, True)
        assert [e for e in logs if e["log_level"] == "warning"] == []

    async def test_save_points_alone_count_as_persistence(self, client: aioredis.Redis) -> None:
        """RDB save points without AOF persist too (coarsely): no warning."""
        await client.config_set("save", "3600 1")
        with capture_logs() as logs:
            setup = await check_redis(client)
        assert setup.persistent is True
        assert [e for e in logs if e["log_level"] == "warning"] == []
