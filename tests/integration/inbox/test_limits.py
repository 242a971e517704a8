"""The Redis inbox keeps a feed's limits, counted with the API's on a real Redis.

A feed cannot go around its hourly quota or its rate by writing to its inbox stream instead
of posting: the quota an HTTP post spent is spent for the inbox too, an entry past it is
rejected whole (``rate_limited``, naming the quota) and counted as ``rejected``; entries past
the feed's rate wait for their turn and are all appended.
"""

from __future__ import annotations

import time

import msgspec
import pytest
import redis.asyncio as aioredis

from services.bootstrap import http_app
from services.ingest.inbox import build_inbox
from services.metrics import IngestMetrics
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported
from tests.support.http import client_of
from tests.support.inbox import none_pending, problems_of, rejected, submit
from tests.support.tokens import FEED, TOKENS
from tests.support.waiting import until


@pytest.fixture
def limited(settings: Settings) -> Settings:
    """The inbox tests' settings with the feed token of ``sohr``, a quota of 3 events an
    hour and the default rates."""
    return msgspec.structs.replace(
        settings, tokens=TOKENS, feed_events_per_hour=3, feed_rate=20, feed_burst=50
    )


class TestInboxQuota:
    async def test_an_entry_past_the_quota_the_api_spent_is_rejected_whole(
        self,
        limited: Settings,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """2 events posted over HTTP, then an inbox entry of 2: refused (rate_limited, field
        quota, the hourly quota named), nothing of it written, counted as rejected; an entry
        of 1 still fits and is appended."""
        app = http_app(limited, store=redis_store, client=redis_client)
        headers = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}
        async with client_of(app) as http:
            body = msgspec.json.encode([reported("h-1"), reported("h-2")])
            posted = await http.post("/v1/events", content=body, headers=headers)
        assert posted.status_code == 202
        over = msgspec.json.encode([reported("i-1"), reported("i-2")])
        await submit(redis_client, keys, over)
        await submit(redis_client, keys, reported("i-3"))
        metrics = IngestMetrics()
        box = build_inbox(limited, redis_store, redis_url, poll_ms=50, metrics=metrics)
        await box.start()
        try:

            async def handled() -> bool:
                return await redis_store.length() == 3 and await none_pending(redis_client, keys)

            await until(handled, "the entry that fits appended, the other rejected", every=0.02)
        finally:
            await box.stop()
        [entry] = await rejected(redis_client, keys)
        assert (entry[b"kind"], entry[b"feed"]) == (b"rate_limited", b"sohr")
        assert entry[b"orig.event"] == over
        [(field, message)] = problems_of(entry)
        assert field == "quota"
        assert "3 events an hour; 2 this hour" in message
        assert "retry after" in message
        ids = [getattr(r.event, "incident_id", None) for r in await redis_store.read()]
        assert ids == ["h-1", "h-2", "i-3"]
        text = metrics.render().decode()
        assert 'ledger_inbox_entries_total{feed="sohr",result="rejected"} 1.0' in text
        assert 'ledger_inbox_entries_total{feed="sohr",result="accepted"} 1.0' in text


class TestInboxRate:
    async def test_entries_past_the_feed_rate_wait_their_turn_and_are_all_appended(
        self,
        limited: Settings,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """Rate 5 entries/s with bursts of 2: 6 entries are all appended, none rejected, and
        not sooner than the rate allows (the 4 past the burst need 0.8 s)."""
        paced = msgspec.structs.replace(
            limited, feed_rate=5, feed_burst=2, feed_events_per_hour=1_000, claim_idle_ms=5_000
        )
        for n in range(6):
            await submit(redis_client, keys, reported(f"i-{n}"))
        box = build_inbox(paced, redis_store, redis_url, poll_ms=50)
        started = time.monotonic()
        await box.start()
        try:

            async def all_appended() -> bool:
                return await redis_store.length() == 6

            await until(all_appended, "six entries appended", every=0.02)
            elapsed = time.monotonic() - started
        finally:
            await box.stop()
        assert elapsed >= 0.75
        assert box.stats.paced >= 4
        assert await rejected(redis_client, keys) == []
