"""The Redis inbox against a real Redis: defer, reclaim, restart.

Each feed writes to its own stream (``<prefix>:inbox:<feed>``), raw or through FastStream."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import redis.asyncio as aioredis

from services.ingest.inbox import GROUP, REPLY_MARGIN, Inbox, build_inbox
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, revised
from tests.support.inbox import none_pending, pending, rejected, submit
from tests.support.proxy import SilentProxy
from tests.support.waiting import until


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
        await until(lambda: none_pending(redis_client, keys), "the ack after reclaim", every=0.02)
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
                lambda: none_pending(redis_client, keys),
                "the ack after reclaim",
                every=0.02,
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
        await until(lambda: none_pending(redis_client, keys), "the ack after reclaim", every=0.02)

    async def test_entries_a_dead_consumer_left_pending_are_reclaimed(
        self, inbox: Inbox, redis_client: aioredis.Redis, redis_store: RedisEventStore, keys: Keys
    ) -> None:
        """Another consumer read but never acked: after the idle time this inbox takes over."""
        await inbox.ensure_group("sohr")
        event = reported("i-1")
        await submit(redis_client, keys, event)
        taken: Any = await redis_client.xreadgroup(
            GROUP, "dead", {keys.inbox_of("sohr"): ">"}, count=10
        )
        assert len(taken[0][1]) == 1
        await inbox.start()

        async def appended() -> bool:
            return await redis_store.length() == 1

        await until(appended, "the reclaimed append", every=0.02)
        await until(lambda: none_pending(redis_client, keys), "the ack", every=0.02)
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

    async def test_connections_gone_silent_delay_the_inbox_by_one_reply_margin(
        self,
        settings: Settings,
        redis_store: RedisEventStore,
        redis_url: str,
        redis_client: aioredis.Redis,
        keys: Keys,
    ) -> None:
        """Every connection the inbox holds stops answering (half-open) while the feed's read
        waits on one of them. That read times out and is tried again at once on a new
        connection, and the silent connections idle in the pool are renewed before their next
        use, so an entry submitted meanwhile is appended within one reply margin and a bit:
        not after FastStream's pause, nor one margin per silent connection met."""
        target = urlsplit(redis_url)
        read = (b"XREADGROUP", keys.inbox_of("sohr").encode())
        async with SilentProxy(target.hostname or "127.0.0.1", target.port or 6379) as proxy:
            box = build_inbox(settings, redis_store, proxy.url, poll_ms=50)
            await box.start()
            try:
                await until(lambda: proxy.awaiting(*read) > 0, "the read in flight", every=0.002)
                silenced = proxy.silence()  # no await since the check: the read is in flight
                # its block ends empty, into the silence: the entry waits for the next read
                await until(lambda: proxy.lost(*read) > 0, "the read's lost reply")
                await submit(redis_client, keys, reported("i-1"))

                async def appended() -> bool:
                    return await redis_store.length() == 1

                await until(appended, "the append after the reconnect", within=1.5 * REPLY_MARGIN)
                assert proxy.opened > silenced  # it came through a new connection
            finally:
                await box.stop()
            # no read loop outlives the stop, not even one cancelled amid a retried read
            assert [t for t in asyncio.all_tasks() if "_consume" in repr(t.get_coro())] == []
