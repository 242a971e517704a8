"""The Redis inbox against a real Redis: consume, append, reject.

Each feed writes to its own stream (``<prefix>:inbox:<feed>``), raw or through FastStream."""

from __future__ import annotations

import datetime as dt

import msgspec
import redis.asyncio as aioredis

from events import encode
from services.ingest.inbox import Inbox
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, retracted, revised
from tests.support.inbox import none_pending, problems_of, rejected, submit
from tests.support.waiting import until


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
        await until(lambda: none_pending(redis_client, keys), "the ack", every=0.02)
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
        await until(lambda: none_pending(redis_client, keys), "the acks", every=0.02)


class TestRejecting:
    async def _rejected_once(
        self, inbox: Inbox, client: aioredis.Redis, keys: Keys
    ) -> dict[bytes, bytes]:
        """Start the inbox, wait for exactly one rejected record and the ack; return it."""
        await inbox.start()

        async def one() -> bool:
            return len(await rejected(client, keys)) == 1

        await until(one, "the rejected entry", every=0.02)
        await until(lambda: none_pending(client, keys), "the ack", every=0.02)
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
        assert entry[b"feed"] == b"sohr"
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

    async def test_an_entry_on_the_retired_shared_stream_is_rejected_naming_the_new_one(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """``<prefix>:inbox`` takes nothing any more, whatever feed field the entry claims."""
        event = encode(reported("i-1"))
        await redis_client.xadd(keys.inbox, {"feed": "sohr", "event": event})
        await inbox.start()

        async def one() -> bool:
            return len(await rejected(redis_client, keys)) == 1

        await until(one, "the rejected entry", every=0.02)
        [entry] = await rejected(redis_client, keys)
        [(field, message)] = problems_of(entry)
        assert (field, entry[b"kind"], entry[b"feed"]) == ("feed", b"invalid", b"")
        assert "<prefix>:inbox:<feed>" in message
        assert await redis_store.length() == 0
        assert await redis_client.xlen(keys.inbox) == 0

    async def test_a_source_other_than_the_stream_s_feed_is_rejected(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """An allowed feed cannot submit an event in another feed's name on its stream."""
        await submit(redis_client, keys, reported("i-1", source="sohr"), feed="un-watch")
        await inbox.start()

        async def one() -> bool:
            return len(await rejected(redis_client, keys)) == 1

        await until(one, "the rejected entry", every=0.02)
        [entry] = await rejected(redis_client, keys)
        [(field, message)] = problems_of(entry)
        assert (field, entry[b"feed"]) == ("source", b"un-watch")
        assert "un-watch" in message
        assert await redis_store.length() == 0

    async def test_a_feed_field_does_not_change_the_feed(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """An entry on sohr's stream claiming feed un-watch is sohr's, appended as such."""
        event = reported("i-1", source="sohr")
        await redis_client.xadd(keys.inbox_of("sohr"), {"feed": "un-watch", "event": encode(event)})
        await inbox.start()

        async def appended() -> bool:
            return await redis_store.length() == 1

        await until(appended, "the append", every=0.02)
        state = await redis_store.entity("incident:i-1")
        assert state is not None
        assert state.owner == "sohr"

    async def test_an_entry_with_no_body_field_and_raw_bytes_is_rejected_not_stuck(
        self, inbox: Inbox, redis_client: aioredis.Redis, keys: Keys
    ) -> None:
        """Bytes that are not UTF-8 and no body field end on the rejected stream as they were."""
        await redis_client.xadd(keys.inbox_of("sohr"), {"payload": b"\xff\xfe"})
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert [f for f, _ in problems_of(entry)] == ["event"]
        assert entry[b"orig.payload"] == b"\xff\xfe"

    async def test_one_invalid_event_rejects_its_whole_list(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """An entry is one unit: a list with one bad event writes none of its events."""
        bad = msgspec.structs.replace(reported("i-2"), occurred_end=dt.date(1999, 1, 1))
        body = msgspec.json.encode([msgspec.json.decode(encode(e)) for e in (reported("i-1"), bad)])
        await submit(redis_client, keys, body)
        entry = await self._rejected_once(inbox, redis_client, keys)
        assert [f for f, _ in problems_of(entry)] == ["[1].occurred_end"]
        assert await redis_store.length() == 0

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
