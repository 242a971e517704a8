"""The log's pages as rebuilds share them: each read and decoded once, however far apart the
rebuilds fold, and never more than ``keep`` of them held."""

from __future__ import annotations

import asyncio

import redis.asyncio as aioredis

from events import AnyEvent, Position
from services.projector.replay_pages import Pages
from services.store.log import LogReader
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.waiting import until

SIZE = 100
"""Entries a page."""
DEADLINE = 30.0


async def seeded(store: RedisEventStore, n: int) -> Position:
    """``n`` reports appended; the log's head."""
    events: list[AnyEvent] = [f.reported(f"i-{i}", 1 + i % 7) for i in range(n)]
    for start in range(0, n, 100):
        await store.append(events[start : start + 100])
    head = await LogReader(store.client, store.keys).head()
    assert head is not None
    return head


async def read_all(
    pages: Pages,
    head: Position,
    reader: object,
    *,
    between: int = 0,
    client: aioredis.Redis | None = None,
    held: list[int] | None = None,
) -> list[Position]:
    """Every position of the log as ``reader`` takes it page by page, making ``between``
    round trips to Redis after each page (a slower fold), noting how many pages were held."""
    seen: list[Position] = []
    after: Position | None = None
    try:
        while True:
            raw, decoded = await pages.page(0, after, head, SIZE, reader=reader)
            assert [p for p, _ in raw] == [p for p, _, _ in decoded]
            if held is not None:
                held.append(pages.held)
            seen += [p for p, _ in raw]
            if len(raw) < SIZE or raw[-1][0] == head:
                return seen
            after = raw[-1][0]
            for _ in range(between):
                assert client is not None
                await client.ping()
    finally:
        pages.leave(reader)


class TestSharedPages:
    async def test_rebuilds_folding_at_different_speeds_read_each_page_once(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Given a log of 20 pages and three readers, one making ten round trips after each
        page and one forty, when they take every page side by side with room for 3 pages,
        then every reader sees the whole log in order, the log is read 20 times in all (each
        page once, where dropping the oldest page re-read it for the slow readers), and no
        more than 3 pages were ever held."""
        head = await seeded(redis_store, 20 * SIZE)
        pages = Pages(redis_client, key_prefix, keep=3)
        held: list[int] = []
        async with asyncio.timeout(DEADLINE):
            found = await asyncio.gather(
                read_all(pages, head, "fast", held=held),
                read_all(pages, head, "slow", between=10, client=redis_client, held=held),
                read_all(pages, head, "slower", between=40, client=redis_client, held=held),
            )
        log = [p for p, _ in await LogReader(redis_client, key_prefix).raw(count=10_000)]
        assert len(log) == 20 * SIZE
        assert list(found) == [log, log, log]
        assert pages.reads == 20
        assert max(held) <= 3
        assert pages.held == 0

    async def test_one_reader_alone_never_waits_and_keeps_a_page_ahead(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A rebuild alone reads each page once, with the next one read ahead (two held),
        and leaves nothing held when it is done."""
        head = await seeded(redis_store, 5 * SIZE + 7)
        pages = Pages(redis_client, key_prefix, keep=2)
        held: list[int] = []
        async with asyncio.timeout(DEADLINE):
            seen = await read_all(pages, head, "alone", held=held)
        assert len(seen) == 5 * SIZE + 7
        assert pages.reads == 6
        assert held[:5] == [2] * 5
        assert pages.held == 0

    async def test_a_reader_that_leaves_no_longer_holds_back_the_others(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Given a reader that took the first page and stopped (its rebuild failed), a reader
        far ahead waits for it; once it leaves, the one ahead goes on to the end and the first
        page is dropped."""
        head = await seeded(redis_store, 8 * SIZE)
        pages = Pages(redis_client, key_prefix, keep=2)
        await pages.page(0, None, head, SIZE, reader="stopped")
        ahead = asyncio.create_task(read_all(pages, head, "ahead"))
        await until(lambda: pages.waiting == 1, "the reader ahead held back")
        assert not ahead.done()
        assert pages.reads == 2  # the first page and the one read ahead, nothing more
        pages.leave("stopped")
        async with asyncio.timeout(DEADLINE):
            seen = await ahead
        assert len(seen) == 8 * SIZE
        assert pages.reads == 8
        assert pages.held == 0
