"""Redis unreachable: ingest answers 503 quickly, readiness says so, background work resumes.

Each test starts its own redis-server and makes it unreachable in one of two ways: killed
(connections are refused at once) or frozen with SIGSTOP (connections hang: only the
client's timeouts end them). The projector pool and the inbox consumer run in this process
and must pick up again, without a restart, once Redis is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from structlog.testing import capture_logs

import events
from projections import PROJECTIONS
from services.bootstrap import http_app
from services.http.ingest import APPEND_TIMEOUT
from services.ingest.inbox import build_inbox
from services.projector.pool import ProjectorPool
from services.runtime.redis_server import RedisProcess
from services.settings import Settings, Token
from services.store.connection import SOCKET_TIMEOUT, connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.redis import load_checkpoint
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.tokens import FEED, READER
from tests.support.waiting import until

DEADLINE = 30.0
"""Seconds a condition may take to become true before a test fails."""
ANSWER_BOUND = 1.5 * max(APPEND_TIMEOUT, SOCKET_TIMEOUT)
"""While Redis is away an answer comes after at most the service's own timeout (the append's,
the readiness ping's, the socket's: 1 s) and some slack; the bound follows the setting."""

TOKENS = (Token(role="feed", secret=FEED, feed="sohr"), Token(role="reader", secret=READER))
HEADERS = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}

Outage = Literal["killed", "frozen"]


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A redis-server of this test alone (stopped, and thawed if frozen, afterwards)."""
    server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
    server.start()
    try:
        yield server
    finally:
        pid = server.pid
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        server.stop()


@contextlib.contextmanager
def outage(server: RedisProcess, how: Outage) -> Iterator[None]:
    """Make ``server`` unreachable for the block: SIGKILL (then restart) or SIGSTOP/SIGCONT."""
    if how == "killed":
        server.kill()
        try:
            yield
        finally:
            server.start()
        return
    pid = server.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


@pytest.fixture
async def service(redis_server: RedisProcess) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """The HTTP app over the service's own Redis client (1 s timeouts), and that client."""
    client = connect(redis_server.url)
    store = RedisEventStore(client, prefix="unreach")
    app = http_app(Settings(tokens=TOKENS, key_prefix="unreach"), store=store, client=client)
    async with client_of(app) as http:
        await http.post("/v1/events", content=events.encode(f.reported("warm")), headers=HEADERS)
        yield http, client
    await client.aclose()


class TestIngestWhileUnreachable:
    """While Redis is away, a publisher is told so quickly and can retry safely."""

    @pytest.mark.parametrize("how", ["killed", "frozen"])
    async def test_ingest_answers_503_with_retry_after_within_a_second(
        self,
        service: tuple[httpx.AsyncClient, aioredis.Redis],
        redis_server: RedisProcess,
        how: Outage,
    ) -> None:
        """Refused or hanging connections both give 503 + Retry-After in about a second."""
        http, _ = service
        event = f.reported("i-1")
        with outage(redis_server, how):
            started = time.monotonic()
            response = await http.post("/v1/events", content=events.encode(event), headers=HEADERS)
            elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "unavailable"
        assert elapsed < ANSWER_BOUND, f"answered after {elapsed:.2f} s"

    @pytest.mark.parametrize("how", ["killed", "frozen"])
    async def test_readyz_is_503_while_away_and_200_once_back(
        self,
        service: tuple[httpx.AsyncClient, aioredis.Redis],
        redis_server: RedisProcess,
        how: Outage,
    ) -> None:
        """Readiness follows Redis: not ready during the outage, ready again after it."""
        http, _ = service
        with outage(redis_server, how):
            started = time.monotonic()
            away = await http.get("/readyz")
            elapsed = time.monotonic() - started
        assert (away.status_code, away.json()) == (503, {"status": "unavailable"})
        assert elapsed < ANSWER_BOUND, f"answered after {elapsed:.2f} s"

        async def ready() -> bool:
            return (await http.get("/readyz")).status_code == 200

        await until(ready, "readiness after the outage", within=DEADLINE, every=0.02)

    @pytest.mark.parametrize("how", ["killed", "frozen"])
    async def test_a_retry_with_the_same_event_ids_after_the_outage_writes_once(
        self,
        service: tuple[httpx.AsyncClient, aioredis.Redis],
        redis_server: RedisProcess,
        how: Outage,
    ) -> None:
        """The batch refused during the outage is accepted after it; its ids are logged once."""
        http, client = service
        batch = msgspec.json.encode([f.reported("i-1"), f.revised("i-1")])
        with outage(redis_server, how):
            refused = await http.post("/v1/events", content=batch, headers=HEADERS)
        assert refused.status_code == 503

        async def accepted() -> bool:
            response = await http.post("/v1/events", content=batch, headers=HEADERS)
            return response.status_code == 202

        await until(accepted, "the retried batch to be accepted", within=DEADLINE, every=0.02)
        again = await http.post("/v1/events", content=batch, headers=HEADERS)
        assert [r["status"] for r in again.json()["results"]] == ["duplicate", "duplicate"]
        assert await client.xlen(Keys("unreach").log) == 3  # the warm-up event and the batch


class TestBackgroundWorkResumes:
    """The projector pool and the inbox consumer reconnect by themselves after an outage."""

    @pytest.mark.parametrize("how", ["killed", "frozen"])
    async def test_projectors_and_inbox_resume_without_a_restart(
        self, redis_server: RedisProcess, how: Outage
    ) -> None:
        """After Redis returns, an append reaches every view and an inbox entry the log."""
        prefix = f"resume-{uuid.uuid4().hex[:8]}"
        keys = Keys(prefix)
        client = connect(redis_server.url)
        store = RedisEventStore(client, prefix=prefix)
        settings = Settings(key_prefix=prefix, inbox_feeds=("sohr",), claim_idle_ms=500)
        inbox = build_inbox(settings, store, redis_server.url, consumer="c-1", poll_ms=50)
        pool = ProjectorPool(client, prefix=prefix, claim_idle_ms=500, lease_ms=2000, block_ms=50)
        feeder = connect(redis_server.url)
        try:
            await store.append([f.reported("i-1", 3)])
            await inbox.start()
            await pool.start()
            async with asyncio.timeout(DEADLINE):
                await pool.run_until_caught_up()
            await feeder.xadd(keys.inbox_of("sohr"), {"event": events.encode(
                f.reported("i-2", 4))})  # fmt: skip
            await until(
                lambda: _logged(client, keys, 2),
                "the first inbox entry",
                within=DEADLINE,
                every=0.02,
            )

            with capture_logs() as seen, outage(redis_server, how):
                # the outage lasts until every projector has met it (and logged so)
                await until(
                    lambda: _noticed(seen),
                    "the projectors to notice the outage",
                    within=DEADLINE,
                    every=0.02,
                )

            head = (await store.append([f.revised("i-1", 9)]))[0].position
            await feeder.xadd(keys.inbox_of("sohr"), {"event": events.encode(
                f.revised("i-2", 8))})  # fmt: skip
            await until(
                lambda: _logged(client, keys, 4),
                "the inbox after the outage",
                within=DEADLINE,
                every=0.02,
            )

            async def views_reach_head() -> bool:
                for projection in PROJECTIONS.values():
                    checkpoint = await load_checkpoint(client, prefix, projection)
                    if checkpoint is None or events.position_key(checkpoint) < events.position_key(
                        head
                    ):
                        return False
                return True

            await until(
                views_reach_head,
                "the views to include the append after the outage",
                within=DEADLINE,
                every=0.02,
            )
            assert pool.running
            assert pool.failure() is None
            assert inbox.broker.running
            entity = await store.entity("incident:i-2")
            assert entity is not None
            assert entity.version == 2
        finally:
            await pool.stop()
            if inbox.broker.running:
                await inbox.stop()
            await feeder.aclose()
            with contextlib.suppress(Exception):
                async for key in client.scan_iter(match=f"{prefix}:*"):
                    await client.unlink(key)
            await client.aclose()


async def _logged(client: aioredis.Redis, keys: Keys, n: int) -> bool:
    with contextlib.suppress(Exception):
        return int(await client.xlen(keys.log)) >= n
    return False


async def _noticed(logged: Sequence[Mapping[str, Any]]) -> bool:
    """Whether every projection's worker logged that Redis is unreachable."""
    down = {e.get("projection") for e in logged if e["event"] == "projector.redis_unreachable"}
    return down >= {p.name for p in PROJECTIONS.values()}
