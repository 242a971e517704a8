"""The Redis inbox against a real Redis: consume, append, reject, defer, reclaim, describe."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator, Awaitable
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from events import Event, encode
from services.ingest.inbox import GROUP, Inbox, asyncapi_json, build_inbox
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, retracted, revised
from tests.support.waiting import until

DEADLINE = 10.0
"""Seconds a condition may take to become true before a test fails."""


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    """Settings of one test: its own prefix, two allowed feeds, a quick reclaim."""
    return Settings(key_prefix=key_prefix, inbox_feeds=("sohr", "un-watch"), claim_idle_ms=200)


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """The key names of this test."""
    return Keys(settings.key_prefix)


@pytest.fixture
async def inbox(
    settings: Settings, redis_store: RedisEventStore, redis_url: str
) -> AsyncIterator[Inbox]:
    """An inbox on this test's keys, not yet started; stopped after the test if it was."""
    box = build_inbox(
        settings, redis_store, redis_url, consumer=f"test-{uuid.uuid4().hex[:8]}", poll_ms=50
    )
    yield box
    if box.broker.running:
        await box.stop()


async def submit(
    client: aioredis.Redis, keys: Keys, event: Event | bytes, feed: str = "sohr"
) -> bytes:
    """XADD one submission to the inbox the way a Redis-native feed does."""
    data = event if isinstance(event, bytes) else encode(event)
    entry_id: Any = await client.xadd(keys.inbox, {"feed": feed, "event": data})
    return bytes(entry_id)


async def pending(client: aioredis.Redis, keys: Keys) -> int:
    """How many inbox entries the group holds unacknowledged."""
    summary = await client.xpending(keys.inbox, GROUP)
    return int(summary["pending"])


async def rejected(client: aioredis.Redis, keys: Keys) -> list[dict[bytes, bytes]]:
    """The rejected stream's entries, oldest first."""
    entries: Any = await client.xrange(keys.inbox_rejected)
    return [fields for _, fields in entries]


def problems_of(entry: dict[bytes, bytes]) -> list[tuple[str, str]]:
    """The (field, message) pairs of a rejected entry."""
    return [(p["field"], p["message"]) for p in json.loads(entry[b"errors"])]


class TestConsuming:
    async def test_a_valid_submission_is_appended_and_acknowledged(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """An event XADDed by an allowed feed reaches the log; the entry is acked."""
        await inbox.start()
        event = reported("i-1")
        await submit(redis_client, keys, event)

        async def appended() -> bool:
            return await redis_store.length() == 1

        await until(appended, "the append", every=0.02)
        [recorded] = await redis_store.read()
        assert recorded.event.event_id == event.event_id
        await until(lambda: _zero(pending(redis_client, keys)), "the ack", every=0.02)
        assert await rejected(redis_client, keys) == []

    async def test_entries_written_before_the_first_start_are_consumed(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """The group starts at id 0, so a backlog on a fresh stream is not skipped."""
        events = [reported(f"i-{n}") for n in range(5)]
        for event in events:
            await submit(redis_client, keys, event)
        await inbox.start()

        async def all_appended() -> bool:
            return await redis_store.length() == len(events)

        await until(all_appended, "the backlog", every=0.02)
        assert [r.event.event_id for r in await redis_store.read()] == [e.event_id for e in events]

    async def test_a_batch_keeps_submission_order_within_one_append(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A report and its revision read in one batch are appended in that order."""
        await submit(redis_client, keys, reported("i-1", best=3))
        await submit(redis_client, keys, revised("i-1", best=7))
        await inbox.start()

        async def both() -> bool:
            return await redis_store.length() == 2

        await until(both, "both events", every=0.02)
        state = await redis_store.entity("incident:i-1")
        assert state is not None
        assert (state.version, state.status) == (2, "live")

    async def test_a_resubmitted_event_is_a_duplicate_and_is_acknowledged(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """Submitting the same event twice writes it once and leaves nothing pending."""
        event = reported("i-1")
        await submit(redis_client, keys, event)
        await submit(redis_client, keys, event)
        await inbox.start()

        async def settled() -> bool:
            return inbox.stats.appended + inbox.stats.duplicates == 2

        await until(settled, "both entries handled", every=0.02)
        assert (inbox.stats.appended, inbox.stats.duplicates) == (1, 1)
        assert await redis_store.length() == 1
        await until(lambda: _zero(pending(redis_client, keys)), "the acks", every=0.02)


class TestRejecting:
    async def _rejected_once(
        self, inbox: Inbox, client: aioredis.Redis, keys: Keys
    ) -> dict[bytes, bytes]:
        """Start the inbox, wait for exactly one rejected record and the ack; return it."""
        await inbox.start()

        async def one() -> bool:
            return len(await rejected(client, keys)) == 1

        await until(one, "the rejected entry", every=0.02)
        await until(lambda: _zero(pending(client, keys)), "the ack", every=0.02)
        [entry] = await rejected(client, keys)
        return entry

    async def test_malformed_json_is_rejected_with_its_problem_and_original_fields(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """The rejected entry names the problem, repeats the fields and the inbox id."""
        entry_id = await submit(redis_client, keys, b'{"type": "incident.reported",')
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"inbox_id"] == entry_id
        assert entry[b"kind"] == b"invalid"
        [(field, message)] = problems_of(entry)
        assert field == "event"
        assert "malformed JSON" in message
        assert entry[b"orig.feed"] == b"sohr"
        assert entry[b"orig.event"] == b'{"type": "incident.reported",'
        assert await redis_store.length() == 0

    async def test_every_schema_problem_is_listed(
        self, inbox: Inbox, redis_client: aioredis.Redis, keys: Keys
    ) -> None:
        """An event breaking a domain rule is rejected naming the field at fault."""
        bad = msgspec.structs.replace(reported("i-1"), occurred_end=dt.date(1999, 1, 1))
        await submit(redis_client, keys, bad)
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert [f for f, _ in problems_of(entry)] == ["occurred_end"]

    async def test_a_feed_outside_the_allow_list_is_rejected(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A feed not in settings.inbox_feeds cannot append, even with a valid event."""
        event = reported("i-1", source="intruder")
        await submit(redis_client, keys, event, feed="intruder")
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert [f for f, _ in problems_of(entry)] == ["feed"]
        assert await redis_store.length() == 0

    async def test_a_source_other_than_the_entry_feed_is_rejected(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """An allowed feed cannot submit an event in another feed's name."""
        await submit(redis_client, keys, reported("i-1", source="sohr"), feed="un-watch")
        entry = await self._rejected_once(inbox, redis_client, keys)
        [(field, message)] = problems_of(entry)
        assert field == "source"
        assert "un-watch" in message
        assert await redis_store.length() == 0

    async def test_an_entry_with_missing_fields_and_raw_bytes_is_rejected_not_stuck(
        self, inbox: Inbox, redis_client: aioredis.Redis, keys: Keys
    ) -> None:
        """Bytes that are not UTF-8 and missing fields end on the rejected stream as they were."""
        await redis_client.xadd(keys.inbox, {"payload": b"\xff\xfe"})
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert sorted(f for f, _ in problems_of(entry)) == ["event", "feed"]
        assert entry[b"orig.payload"] == b"\xff\xfe"

    async def test_a_store_rejection_is_written_to_the_rejected_stream(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A revision of an unknown incident is refused by the store and recorded as such."""
        await submit(redis_client, keys, revised("nope"))
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"kind"] == b"rejected"
        assert len(problems_of(entry)) == 1
        assert await redis_store.length() == 0

    async def test_a_conflict_is_written_to_the_rejected_stream(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A second report of an existing incident (new event id) is a conflict."""
        await redis_store.append([reported("i-1")])
        await submit(redis_client, keys, reported("i-1"))
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"kind"] == b"conflict"
        [(_, message)] = problems_of(entry)
        assert "incident:i-1" in message
        assert await redis_store.length() == 1

    async def test_another_feed_s_change_is_rejected_as_forbidden(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """un-watch retracting sohr's incident is refused by the store, naming the owner."""
        await redis_store.append([reported("i-1")])
        gone = retracted("i-1", source="un-watch")
        await submit(redis_client, keys, gone, feed="un-watch")
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"kind"] == b"forbidden"
        [(field, message)] = problems_of(entry)
        assert (field, "'sohr'" in message) == ("source", True)
        assert await redis_store.length() == 1

    async def test_an_id_resent_with_another_body_is_rejected_as_id_reused(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """The same event id with more dead is refused, not answered duplicate."""
        event = reported("i-1", best=5)
        await redis_store.append([event])
        await submit(redis_client, keys, reported("i-1", best=50, event_id=event.event_id))
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"kind"] == b"id_reused"
        assert [f for f, _ in problems_of(entry)] == ["event_id"]

    async def test_a_refused_event_does_not_hold_back_the_rest_of_its_batch(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """Events before and after a refused one in the same batch are appended."""
        first, last = reported("i-1"), reported("i-2")
        await submit(redis_client, keys, first)
        await submit(redis_client, keys, revised("nope"))
        await submit(redis_client, keys, last)
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert entry[b"kind"] == b"rejected"

        async def both() -> bool:
            return await redis_store.length() == 2

        await until(both, "the two valid events", every=0.02)
        assert [r.event.event_id for r in await redis_store.read()] == [
            first.event_id,
            last.event_id,
        ]


class TestRecovery:
    async def test_an_unavailable_store_leaves_the_entry_pending_until_it_recovers(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A store error defers the entry (not acked, not rejected); once back, it is appended."""
        await redis_client.set(keys.ids, "not a hash")  # the append script now fails: WRONGTYPE
        await inbox.start()
        await submit(redis_client, keys, reported("i-1"))

        async def deferred() -> bool:
            return inbox.stats.deferred >= 1

        await until(deferred, "the deferral", every=0.02)
        assert await pending(redis_client, keys) == 1
        assert await rejected(redis_client, keys) == []
        assert await redis_store.length() == 0

        await redis_client.delete(keys.ids)

        async def appended() -> bool:
            return await redis_store.length() == 1

        await until(appended, "the reclaimed append", every=0.02)
        await until(lambda: _zero(pending(redis_client, keys)), "the ack after reclaim", every=0.02)
        assert await rejected(redis_client, keys) == []

    async def test_entries_submitted_during_an_outage_keep_their_order(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """A revision submitted while its report waits for the store is not appended first."""
        await redis_client.set(keys.ids, "not a hash")
        await inbox.start()
        await submit(redis_client, keys, reported("i-1", best=3))

        async def deferred() -> bool:
            return inbox.stats.deferred >= 1

        await until(deferred, "the deferral", every=0.02)
        await submit(redis_client, keys, revised("i-1", best=9))
        await redis_client.delete(keys.ids)

        async def both() -> bool:
            return await redis_store.length() == 2

        await until(both, "both appends", every=0.02)
        assert [r.event.type for r in await redis_store.read()] == [
            "incident.reported",
            "incident.casualties_revised",
        ]
        assert await rejected(redis_client, keys) == []

    async def test_an_inbox_stopped_during_an_outage_leaves_its_entries_to_a_successor(
        self,
        settings: Settings,
        redis_store: RedisEventStore,
        redis_url: str,
        redis_client: aioredis.Redis,
        keys: Keys,
    ) -> None:
        """Stopping mid-outage acks nothing; another consumer reclaims and appends later."""
        await redis_client.set(keys.ids, "not a hash")
        first = build_inbox(settings, redis_store, redis_url, consumer="first", poll_ms=50)
        await first.start()
        await submit(redis_client, keys, reported("i-1"))

        async def deferred() -> bool:
            return first.stats.deferred >= 1

        await until(deferred, "the deferral", every=0.02)
        await first.stop()
        assert await pending(redis_client, keys) == 1
        assert await rejected(redis_client, keys) == []

        await redis_client.delete(keys.ids)
        second = build_inbox(settings, redis_store, redis_url, consumer="second", poll_ms=50)
        await second.start()
        try:

            async def appended() -> bool:
                return await redis_store.length() == 1

            await until(appended, "the reclaimed append", every=0.02)
            await until(
                lambda: _zero(pending(redis_client, keys)), "the ack after reclaim", every=0.02
            )
        finally:
            await second.stop()

    async def test_a_failed_rejected_write_leaves_the_entry_pending(
        self, inbox: Inbox, redis_client: aioredis.Redis, keys: Keys
    ) -> None:
        """An invalid entry is acked only once its rejected record is written."""
        await redis_client.set(keys.inbox_rejected, "not a stream")
        await inbox.start()
        await submit(redis_client, keys, b"not json")

        async def deferred() -> bool:
            return inbox.stats.deferred >= 1

        await until(deferred, "the deferral", every=0.02)
        assert await pending(redis_client, keys) == 1

        await redis_client.delete(keys.inbox_rejected)

        async def written() -> bool:
            return len(await rejected(redis_client, keys)) == 1

        await until(written, "the rejected record after reclaim", every=0.02)
        await until(lambda: _zero(pending(redis_client, keys)), "the ack after reclaim", every=0.02)

    async def test_entries_a_dead_consumer_left_pending_are_reclaimed(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """Another consumer read but never acked: after the idle time this inbox takes over."""
        await inbox.ensure_group()
        event = reported("i-1")
        await submit(redis_client, keys, event)
        taken: Any = await redis_client.xreadgroup(GROUP, "dead", {keys.inbox: ">"}, count=10)
        assert len(taken[0][1]) == 1
        await inbox.start()

        async def appended() -> bool:
            return await redis_store.length() == 1

        await until(appended, "the reclaimed append", every=0.02)
        await until(lambda: _zero(pending(redis_client, keys)), "the ack", every=0.02)
        [recorded] = await redis_store.read()
        assert recorded.event.event_id == event.event_id

    async def test_starting_twice_on_an_existing_group_keeps_its_position(
        self,
        settings: Settings,
        redis_store: RedisEventStore,
        redis_url: str,
        redis_client: aioredis.Redis,
        keys: Keys,
    ) -> None:
        """A restarted inbox consumes only what came after; nothing is appended twice."""
        first = build_inbox(settings, redis_store, redis_url, consumer="one", poll_ms=50)
        await first.start()
        await submit(redis_client, keys, reported("i-1"))

        async def one() -> bool:
            return first.stats.appended == 1

        await until(one, "the first append", every=0.02)
        await first.stop()
        await submit(redis_client, keys, reported("i-2"))
        second = build_inbox(settings, redis_store, redis_url, consumer="two", poll_ms=50)
        await second.start()
        try:

            async def two() -> bool:
                return second.stats.appended == 1

            await until(two, "the second append", every=0.02)
            assert second.stats.duplicates == 0
            assert await redis_store.length() == 2
        finally:
            await second.stop()


class TestSchema:
    def test_asyncapi_documents_the_inbox_stream_and_its_payload(
        self, inbox: Inbox, keys: Keys
    ) -> None:
        """The document names the stream, the group and the feed/event payload."""
        doc = asyncapi_json(inbox)
        assert doc["asyncapi"].startswith("3.")
        channel = doc["channels"]["inbox"]
        assert channel["address"] == keys.inbox
        assert channel["bindings"]["redis"]["groupName"] == GROUP
        schemas = doc["components"]["schemas"]
        assert set(schemas["InboxSubmission"]["properties"]) == {"feed", "event"}

    def test_asyncapi_documents_the_rejected_stream_but_not_the_reclaimer(
        self, inbox: Inbox, keys: Keys
    ) -> None:
        """Two channels: the inbox and the rejected stream; the reclaimer is internal."""
        doc = asyncapi_json(inbox)
        addresses = sorted(c["address"] for c in doc["channels"].values())
        assert addresses == sorted([keys.inbox, keys.inbox_rejected])
        assert set(doc["components"]["schemas"]["RejectedEntry"]["properties"]) == {
            "inbox_id",
            "kind",
            "errors",
        }

    def test_asyncapi_never_shows_a_redis_password(
        self, settings: Settings, redis_store: RedisEventStore
    ) -> None:
        """The server address in the document carries no credentials."""
        box = build_inbox(settings, redis_store, "redis://:s3cret-pass@127.0.0.1:6399/0")
        assert "s3cret-pass" not in json.dumps(asyncapi_json(box))


async def _zero(count: Awaitable[int]) -> bool:
    return await count == 0
