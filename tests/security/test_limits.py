"""Limits with clear answers: 429 under a burst, a feed's hourly quota, the 21st live stream.

Through HTTP, as an attacker would meet them: a reader token bursting past its 100, a feed
token past its 50 batches, a feed past its events of the hour (nothing of the refused batch
written), both counted in Redis so two API processes share one budget, and a reader
holding 20 live streams open whose 21st is refused until one closes
(served by uvicorn: a stream has to stay open). Operators are never limited. The client
library waits out a rate limit and publishes everything.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from services.bootstrap import http_app
from services.client import LedgerClient, PublishLimitedError
from services.http.side import ReadSide
from services.settings import Settings
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import client_of, served
from tests.support.tokens import FEED, OPERATOR, READER, TOKENS
from tests.support.waiting import until

VICTIMS = "/v1/projections/community-victims"
LIMITED = Settings(
    tokens=TOKENS,
    read_rate=50,
    read_burst=100,
    feed_rate=20,
    feed_burst=50,
    feed_events_per_hour=1_000,
    live_streams_per_token=20,
)


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the default limits over this test's Redis."""
    settings = msgspec.structs.replace(LIMITED, key_prefix=key_prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as client:
        yield client


class TestRates:
    async def test_a_reader_bursting_past_its_limit_gets_429_with_retry_after(
        self, http: httpx.AsyncClient
    ) -> None:
        """150 requests at once: the burst of 100 (and what refilled) pass, the rest get 429
        naming the limit, with Retry-After; an operator's 150 all pass."""
        answers = await asyncio.gather(
            *(http.get(VICTIMS, headers=auth(READER)) for _ in range(150))
        )
        codes = [a.status_code for a in answers]
        assert 100 <= codes.count(200) < 150
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["retry-after"] == "1"
        body = refused.json()
        assert (body["error"], body["limit"]) == ("rate_limited", "rate")
        assert 0 < body["retry_after"] <= 1
        operator = await asyncio.gather(
            *(http.get(VICTIMS, headers=auth(OPERATOR)) for _ in range(150))
        )
        assert {a.status_code for a in operator} == {200}

    async def test_a_feed_bursting_past_50_batches_gets_429(
        self, http: httpx.AsyncClient, redis_store: RedisEventStore
    ) -> None:
        """60 one-event batches at once: at least the 50 of the burst are written, and every
        batch refused with 429 wrote nothing (the log holds exactly the accepted ones)."""
        batches = [msgspec.json.encode([f.reported(f"i-{n}")]) for n in range(60)]
        headers = {**auth(FEED), "content-type": "application/json"}
        answers = await asyncio.gather(
            *(http.post("/v1/events", content=body, headers=headers) for body in batches)
        )
        codes = [a.status_code for a in answers]
        assert codes.count(202) >= 50
        assert codes.count(429) >= 1
        assert set(codes) == {202, 429}
        assert await redis_store.length() == codes.count(202)


class TestSharedAcrossProcesses:
    async def test_two_api_processes_share_a_readers_burst_and_a_feeds_quota(
        self, redis_store: RedisEventStore, redis_url: str, key_prefix: str
    ) -> None:
        """Two API apps on their own connections to one Redis (two processes behind a
        balancer): a reader's 150 requests spread over both pass about its burst of 100 in
        all, not 100 on each; a feed's quota of 3 is spent by 2 events on one and 2 on the
        other (429 quota, nothing of it written)."""
        settings = msgspec.structs.replace(LIMITED, key_prefix=key_prefix, feed_events_per_hour=3)
        clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
        headers = {**auth(FEED), "content-type": "application/json"}
        try:
            async with contextlib.AsyncExitStack() as stack:
                apis = [
                    await stack.enter_async_context(
                        client_of(http_app(settings, store=redis_store, client=c))
                    )
                    for c in clients
                ]
                answers = await asyncio.gather(
                    *(apis[n % 2].get(VICTIMS, headers=auth(READER)) for n in range(150))
                )
                first = msgspec.json.encode([f.reported("a"), f.reported("b")])
                second = msgspec.json.encode([f.reported("c"), f.reported("d")])
                accepted = await apis[0].post("/v1/events", content=first, headers=headers)
                refused = await apis[1].post("/v1/events", content=second, headers=headers)
        finally:
            for client in clients:
                await client.aclose()
        codes = [a.status_code for a in answers]
        assert 100 <= codes.count(200) < 110  # the burst and what refilled meanwhile
        assert set(codes) == {200, 429}
        assert accepted.status_code == 202
        assert (refused.status_code, refused.json()["limit"]) == (429, "quota")
        assert await redis_store.length() == 2


class TestFeedQuota:
    async def test_a_batch_past_the_hourly_quota_is_refused_whole(
        self,
        redis_store: RedisEventStore,
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """Quota 3: two events pass, a batch of two more is refused (429 quota, Retry-After
        until the next hour, nothing written); the client raises PublishLimitedError."""
        settings = msgspec.structs.replace(LIMITED, key_prefix=key_prefix, feed_events_per_hour=3)
        app = http_app(settings, store=redis_store, client=redis_client)
        headers = {**auth(FEED), "content-type": "application/json"}
        async with client_of(app) as http:
            first = msgspec.json.encode([f.reported("a"), f.reported("b")])
            assert (await http.post("/v1/events", content=first, headers=headers)).status_code
            more = msgspec.json.encode([f.reported("c"), f.reported("d")])
            refused = await http.post("/v1/events", content=more, headers=headers)
        assert refused.status_code == 429
        assert refused.json()["limit"] == "quota"
        assert 1 <= int(refused.headers["retry-after"]) <= 3600
        assert await redis_store.length() == 2
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        # max_wait=0: a client that would wait out a short Retry-After (the default 30 s)
        # publishes in the next hour when this runs just before one begins
        async with LedgerClient("http://ledger", FEED, transport=transport, max_wait=0) as client:
            with pytest.raises(PublishLimitedError) as raised:
                await client.publish([f.reported("c"), f.reported("d")])
        assert raised.value.retry_after >= 1


class TestTheClientWaitsOutARateLimit:
    async def test_publishing_past_the_burst_completes(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A feed limited to 5 batches/s (burst 5) publishes 12 one-event batches: the client
        waits out each 429 and every event is written once."""
        settings = msgspec.structs.replace(
            LIMITED, key_prefix=key_prefix, feed_rate=5, feed_burst=5
        )
        app = http_app(settings, store=redis_store, client=redis_client)
        transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
        events = [f.reported(f"i-{n}") for n in range(12)]
        async with LedgerClient("http://ledger", FEED, transport=transport) as client:
            results = await client.publish(events, batch_size=1)
        assert len(results) == 12
        assert await redis_store.length() == 12


class TestLiveStreams:
    async def test_the_21st_open_stream_of_a_token_is_refused(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """20 streams open: the 21st gets 429 (limit streams); once one closes, a new one
        opens; another token is not affected."""
        settings = msgspec.structs.replace(LIMITED, key_prefix=key_prefix, read_burst=1000)
        app = http_app(settings, store=redis_store, client=redis_client)
        side: ReadSide = app.state.read
        try:
            async with (
                served(app, lifespan="off", on_stop=side.live.close) as url,
                httpx.AsyncClient(base_url=url, headers=auth(READER), timeout=10) as http,
                contextlib.AsyncExitStack() as streams,
            ):
                opened: list[Any] = []
                for _ in range(20):
                    response = await streams.enter_async_context(
                        http.stream("GET", "/v1/live/community-victims")
                    )
                    assert response.status_code == 200
                    opened.append(response)
                await until(lambda: side.live.clients == 20, "20 streams to be open")
                refused = await http.get("/v1/live/community-victims")
                assert refused.status_code == 429
                assert refused.json()["limit"] == "streams"
                other = await http.get(VICTIMS, headers=auth(OPERATOR))
                assert other.status_code == 200
                await opened[0].aclose()
                await until(lambda: side.live.clients == 19, "a stream to close")

                async def one_more() -> bool:
                    async with http.stream("GET", "/v1/live/community-victims") as again:
                        return again.status_code == 200

                await until(one_more, "a new stream once one closed", within=10, every=0.1)
        finally:
            await side.live.aclose()


class TestRedisMemory:
    async def test_ingest_answers_507_before_redis_refuses_writes(self, tmp_path: Any) -> None:
        """A Redis with maxmemory 64 MB (noeviction): under 90% ingest appends; with the
        share set below what is used, ingest answers 507 with the reason and writes nothing,
        while Redis itself would still accept writes."""
        from services.runtime.redis_server import RedisProcess

        with RedisProcess(data_dir=tmp_path / "redis", maxmemory=64 * 1024**2) as server:
            client = aioredis.Redis.from_url(server.url)
            try:
                assert await client.config_get("maxmemory") == {"maxmemory": str(64 * 1024**2)}
                store = RedisEventStore(client, prefix="mem")
                body = msgspec.json.encode([f.reported("i-1")])
                headers = {**auth(FEED), "content-type": "application/json"}
                for percent, expected in ((90, 202), (1, 507)):
                    settings = Settings(
                        tokens=TOKENS, key_prefix="mem", ingest_memory_percent=percent
                    )
                    app = http_app(settings, store=store, client=client)
                    async with client_of(app) as http:
                        answer = await http.post("/v1/events", content=body, headers=headers)
                    assert answer.status_code == expected, answer.text
                full = answer.json()
                assert full["error"] == "insufficient_storage"
                assert "maxmemory" in full["message"]
                assert await store.length() == 1
                assert await client.set("mem:still-writable", "1")
            finally:
                await client.aclose()
