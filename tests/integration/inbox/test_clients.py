"""Feeds publishing as their clients do: FastStream's RedisBroker, lists, new feeds, counts."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from faststream.redis import RedisBroker

from events import Event, encode
from services.ingest.inbox import Inbox, build_inbox
from services.metrics import IngestMetrics
from services.reference import MONITOR_FEED
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, revised
from tests.support.inbox import none_pending, rejected, submit
from tests.support.service import READER, serving
from tests.support.waiting import until


def as_json(event: Event) -> Any:
    """The event as the JSON value a publisher hands FastStream (a dict)."""
    return msgspec.json.decode(encode(event))


async def fast_publish(redis_url: str, stream: str, body: Any) -> None:
    """Publish ``body`` with FastStream's RedisBroker and its default envelope."""
    async with RedisBroker(redis_url) as broker:
        await broker.publish(body, stream=stream)


async def length_is(store: RedisEventStore, n: int) -> bool:
    """Whether the log holds ``n`` events: a condition for ``until``."""
    return await store.length() == n


class TestFastStream:
    async def test_one_event_published_with_faststream_is_appended(
        self,
        inbox: Inbox,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """RedisBroker.publish(event, stream=<prefix>:inbox:sohr) is accepted like raw XADD."""
        await inbox.start()
        event = reported("i-1")
        await fast_publish(redis_url, keys.inbox_of("sohr"), as_json(event))
        await until(lambda: length_is(redis_store, 1), "the append", every=0.02)
        [recorded] = await redis_store.read()
        assert recorded.event.event_id == event.event_id
        await until(lambda: none_pending(redis_client, keys), "the ack", every=0.02)
        assert await rejected(redis_client, keys) == []
        assert await redis_client.xlen(keys.inbox_of("sohr")) == 0

    async def test_a_list_published_with_faststream_is_appended_in_order(
        self, inbox: Inbox, redis_url: str, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A list body is one entry whose events are appended in their order."""
        await inbox.start()
        events = [reported("i-1", best=3), revised("i-1", best=9)]
        await fast_publish(redis_url, keys.inbox_of("sohr"), [as_json(e) for e in events])
        await until(lambda: length_is(redis_store, 2), "both events", every=0.02)
        assert [r.event.event_id for r in await redis_store.read()] == [e.event_id for e in events]

    async def test_the_older_json_envelope_is_read_too(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """``__data__`` holding {"data": body, "headers": …} (FastStream before 0.6) works."""
        envelope = json.dumps(
            {"data": encode(reported("i-1")).decode(), "headers": {"correlation_id": "c-1"}}
        )
        await redis_client.xadd(keys.inbox_of("sohr"), {"__data__": envelope})
        await inbox.start()
        await until(lambda: length_is(redis_store, 1), "the append", every=0.02)

    async def test_a_store_refusal_rejects_the_whole_list_and_spares_other_entries(
        self,
        inbox: Inbox,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """A list with a revision of an unknown incident writes nothing; the next entry is
        appended."""
        stream = keys.inbox_of("sohr")
        await fast_publish(redis_url, stream, [as_json(reported("i-1")), as_json(revised("no"))])
        later = reported("i-2")
        await fast_publish(redis_url, stream, as_json(later))
        await inbox.start()
        await until(lambda: length_is(redis_store, 1), "the later entry", every=0.02)
        [entry] = await rejected(redis_client, keys)
        assert (entry[b"kind"], entry[b"feed"]) == (b"rejected", b"sohr")
        assert b"orig.__data__" in entry
        [recorded] = await redis_store.read()
        assert recorded.event.event_id == later.event_id


class TestFeeds:
    async def test_a_feed_registered_while_running_is_read_without_a_restart(
        self,
        settings: Settings,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """SADD <prefix>:feeds NAME (what ``ledger feeds add`` does) opens its stream."""
        box = build_inbox(settings, redis_store, redis_url, poll_ms=50, feeds_every=0.05)
        await box.start()
        try:
            await redis_client.sadd(keys.inbox_feeds, "new-feed")
            await submit(redis_client, keys, reported("i-1", source="new-feed"), feed="new-feed")
            await until(lambda: length_is(redis_store, 1), "the new feed's entry", every=0.02)
            assert keys.inbox_of("new-feed") in box.streams
        finally:
            await box.stop()

    def test_the_rejected_stream_is_no_feed_s_inbox(self, keys: Keys) -> None:
        """A feed named ``rejected`` would write to the inbox's own stream: refused."""
        with pytest.raises(ValueError, match="rejected"):
            keys.inbox_of("rejected")


class TestCounting:
    async def test_entries_are_counted_by_feed_and_result(
        self,
        settings: Settings,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        keys: Keys,
    ) -> None:
        """One accepted, one invalid and one refused entry move their own counters."""
        metrics = IngestMetrics()
        box = build_inbox(settings, redis_store, redis_url, poll_ms=50, metrics=metrics)
        await submit(redis_client, keys, reported("i-1"))
        await submit(redis_client, keys, b"not json")
        await submit(redis_client, keys, revised("nope", source="un-watch"), feed="un-watch")
        await box.start()
        try:
            await until(lambda: _all_counted(metrics, 3), "three entries counted", every=0.02)
        finally:
            await box.stop()
        text = metrics.render().decode()
        assert 'ledger_inbox_entries_total{feed="sohr",result="accepted"} 1.0' in text
        assert 'ledger_inbox_entries_total{feed="sohr",result="invalid"} 1.0' in text
        assert 'ledger_inbox_entries_total{feed="un-watch",result="rejected"} 1.0' in text


async def _all_counted(metrics: IngestMetrics, n: int) -> bool:
    [metric] = list(metrics.inbox.collect())
    return sum(int(s.value) for s in metric.samples if s.name.endswith("_total")) == n


@pytest.fixture
async def service_url(redis_url: str, key_prefix: str) -> AsyncIterator[str]:
    """The wired service (inbox and projectors) on this test's prefix."""
    async with serving(redis_url, key_prefix) as url:
        yield url


async def test_faststream_publish_is_visible_in_a_view(
    service_url: str, redis_url: str, key_prefix: str
) -> None:
    """End to end: published with FastStream, accepted by the inbox, read from a view."""
    incident = f"fs-{uuid.uuid4().hex[:8]}"
    event = reported(incident, source=MONITOR_FEED)
    await fast_publish(redis_url, Keys(key_prefix).inbox_of(MONITOR_FEED), [as_json(event)])
    headers = {"Authorization": f"Bearer {READER}"}
    async with httpx.AsyncClient(base_url=service_url, headers=headers) as http:

        async def visible() -> bool:
            answer = await http.get(f"/v1/incidents/{incident}")
            return answer.status_code == 200

        await until(visible, "the incident in the incidents view", within=15, every=0.05)
        answer = (await http.get(f"/v1/incidents/{incident}")).json()
        assert answer["incident"]["feed"] == MONITOR_FEED
