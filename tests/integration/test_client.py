"""The Python client against the real HTTP app and a real Redis-backed store."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import time
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
import uvicorn
from litestar import Litestar

from events import AnyEvent
from services.bootstrap import http_app
from services.client import (
    LedgerClient,
    PublishAuthError,
    PublishConflictError,
    PublishIdReusedError,
    PublishNotOwnerError,
    PublishRejectedError,
    ServiceUnavailableError,
)
from services.metrics import IngestMetrics
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, retracted, revised

SOHR = "sohr-feed-token-0123456789"
UN_WATCH = "un-watch-token-0123456789"
READER = "reader-token-0123456789ab"
BASE = "http://ledger.test"
DEADLINE = 10.0


@pytest.fixture
def metrics() -> IngestMetrics:
    """The app's own metrics registry, to see what the server answered."""
    return IngestMetrics()


@pytest.fixture
def app(redis_store: RedisEventStore, redis_client: Any, metrics: IngestMetrics) -> Litestar:
    """The HTTP API over this test's Redis store, with two feed tokens and a reader."""
    tokens = (
        Token(role="feed", secret=SOHR, feed="sohr"),
        Token(role="feed", secret=UN_WATCH, feed="un-watch"),
        Token(role="reader", secret=READER),
    )
    settings = Settings(tokens=tokens, key_prefix=redis_store.keys.prefix)
    return http_app(settings, store=redis_store, client=redis_client, metrics=metrics)


def client_of(
    app: Litestar, token: str = SOHR, *, retries: int = 3, max_wait: float = 0.05
) -> LedgerClient:
    """A client talking to ``app`` in process, with quick retries."""
    return LedgerClient(
        BASE,
        token,
        transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
        retries=retries,
        backoff=0.01,
        max_wait=max_wait,
    )


def answers(metrics: IngestMetrics, status: int) -> float:
    """How many times the server answered ``status`` to a submission."""
    value = metrics.registry.get_sample_value("ledger_submissions_total", {"status": str(status)})
    return value or 0.0


class TestPublishing:
    async def test_published_events_are_appended_in_order(
        self, app: Litestar, redis_store: RedisEventStore
    ) -> None:
        """One result per event, in order, and the log holds them in that order."""
        events: list[AnyEvent] = [reported("i-1"), revised("i-1"), reported("i-2")]
        async with client_of(app) as ledger:
            results = await ledger.publish(events)
        assert [r.event_id for r in results] == [str(e.event_id) for e in events]
        assert {r.status for r in results} == {"appended"}
        assert [r.event.event_id for r in await redis_store.read()] == [e.event_id for e in events]

    async def test_publishing_again_answers_duplicates_at_the_same_positions(
        self, app: Litestar, redis_store: RedisEventStore
    ) -> None:
        """Re-publishing is safe: nothing new is written."""
        events = [reported("i-1"), reported("i-2")]
        async with client_of(app) as ledger:
            first = await ledger.publish(events)
            second = await ledger.publish(events)
        assert [r.status for r in second] == ["duplicate", "duplicate"]
        assert [r.position for r in second] == [r.position for r in first]
        assert await redis_store.length() == 2

    async def test_events_are_sent_batch_by_batch(
        self, app: Litestar, metrics: IngestMetrics, redis_store: RedisEventStore
    ) -> None:
        """Five events with batch_size 2 are three accepted requests and five results."""
        events = [reported(f"i-{n}") for n in range(5)]
        async with client_of(app) as ledger:
            results = await ledger.publish(events, batch_size=2)
        assert len(results) == 5
        assert answers(metrics, 202) == 3
        assert await redis_store.length() == 5

    async def test_nothing_to_publish_sends_nothing(
        self, app: Litestar, metrics: IngestMetrics
    ) -> None:
        """An empty list returns no results and makes no request."""
        async with client_of(app) as ledger:
            assert await ledger.publish([]) == []
        assert answers(metrics, 202) == 0

    async def test_publishing_over_a_real_socket(
        self, app: Litestar, redis_store: RedisEventStore
    ) -> None:
        """The client talks to the app served by uvicorn on a free port."""
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
        )
        task = asyncio.create_task(server.serve())
        try:
            deadline = time.monotonic() + DEADLINE
            while not server.started:
                assert time.monotonic() < deadline, "uvicorn did not start"
                assert not task.done(), "uvicorn stopped"
                await asyncio.sleep(0.02)
            port = server.servers[0].sockets[0].getsockname()[1]
            async with LedgerClient(f"http://127.0.0.1:{port}", SOHR) as ledger:
                [result] = await ledger.publish([reported("i-1")])
            assert result.status == "appended"
            assert await redis_store.length() == 1
        finally:
            server.should_exit = True
            await task


class TestErrors:
    async def test_an_invalid_event_raises_rejected_with_the_field_at_fault(
        self, app: Litestar, redis_store: RedisEventStore
    ) -> None:
        """A 422 becomes PublishRejectedError naming index and field; nothing is written."""
        bad = msgspec.structs.replace(reported("i-2"), occurred_end=dt.date(1999, 1, 1))
        async with client_of(app) as ledger:
            with pytest.raises(PublishRejectedError) as caught:
                await ledger.publish([reported("i-1"), bad])
        assert [(e.index, e.field) for e in caught.value.errors] == [(1, "occurred_end")]
        assert await redis_store.length() == 0

    async def test_error_indexes_count_from_the_start_of_the_whole_call(
        self, app: Litestar, redis_store: RedisEventStore
    ) -> None:
        """With batches of two, a bad fourth event is index 3; the first batch stays written."""
        bad = revised("nope")  # the store refuses a revision of an unknown incident
        events: list[AnyEvent] = [reported("i-1"), reported("i-2"), reported("i-3"), bad]
        async with client_of(app) as ledger:
            with pytest.raises(PublishRejectedError) as caught:
                await ledger.publish(events, batch_size=2)
        assert [e.index for e in caught.value.errors] == [3]
        assert [r.event_id for r in caught.value.published] == [
            str(events[0].event_id),
            str(events[1].event_id),
        ]
        assert await redis_store.length() == 2

    async def test_a_version_conflict_raises_conflict(self, app: Litestar) -> None:
        """A 409 becomes PublishConflictError with the entity and its current version."""
        async with client_of(app) as ledger:
            await ledger.publish([reported("i-1")])
            with pytest.raises(PublishConflictError) as caught:
                await ledger.publish([revised("i-1", expected_version=5)])
        assert (caught.value.index, caught.value.entity) == (0, "incident:i-1")
        assert caught.value.current_version == 1

    async def test_another_feed_s_incident_raises_not_owner(self, app: Litestar) -> None:
        """Given sohr's incident, un-watch's retraction raises PublishNotOwnerError naming
        sohr, a PublishAuthError of status 403."""
        async with client_of(app) as ledger:
            await ledger.publish([reported("i-1")])
        async with client_of(app, token=UN_WATCH) as ledger:
            with pytest.raises(PublishNotOwnerError) as caught:
                await ledger.publish([retracted("i-1", source="un-watch")])
        assert (caught.value.status, caught.value.owner, caught.value.index) == (403, "sohr", 0)

    async def test_an_id_resent_with_another_body_raises_id_reused(self, app: Litestar) -> None:
        """The same event id with another toll is never retried: PublishIdReusedError with
        the original position."""
        event = reported("i-1", best=5)
        async with client_of(app) as ledger:
            (first,) = await ledger.publish([event])
            with pytest.raises(PublishIdReusedError) as caught:
                await ledger.publish([reported("i-1", best=50, event_id=event.event_id)])
        assert (caught.value.reason, caught.value.position) == ("id_reused", first.position)

    async def test_an_unknown_token_raises_auth_401(self, app: Litestar) -> None:
        """A token the server does not know is a PublishAuthError with status 401."""
        async with client_of(app, token="not-a-known-token-at-all") as ledger:
            with pytest.raises(PublishAuthError) as caught:
                await ledger.publish([reported("i-1")])
        assert caught.value.status == 401

    async def test_publishing_for_another_feed_raises_auth_403(self, app: Litestar) -> None:
        """A feed token cannot publish events of another feed: status 403."""
        async with client_of(app, token=UN_WATCH) as ledger:
            with pytest.raises(PublishAuthError) as caught:
                await ledger.publish([reported("i-1")])
        assert caught.value.status == 403

    def test_the_token_never_shows_in_the_client_repr(self, app: Litestar) -> None:
        """repr of a client carries the base URL, not the token."""
        assert SOHR not in repr(client_of(app))


class TestRetries:
    async def test_a_store_outage_is_retried_with_the_same_events_until_it_ends(
        self,
        app: Litestar,
        metrics: IngestMetrics,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """503 answers are retried after Retry-After; once the store is back, it is written."""
        keys = Keys(key_prefix)
        await redis_client.set(keys.ids, "not a hash")  # the append script now fails: WRONGTYPE

        async def heal_after_first_503() -> None:
            deadline = time.monotonic() + DEADLINE
            while answers(metrics, 503) < 1:
                assert time.monotonic() < deadline, "no 503 seen"
                await asyncio.sleep(0.01)
            await redis_client.delete(keys.ids)

        healer = asyncio.create_task(heal_after_first_503())
        events = [reported("i-1"), reported("i-2")]
        async with client_of(app, retries=20, max_wait=2.0) as ledger:
            results = await ledger.publish(events)
        await healer
        assert answers(metrics, 503) >= 1
        assert [r.status for r in results] == ["appended", "appended"]
        assert await redis_store.length() == 2

    async def test_a_lasting_outage_raises_unavailable_after_the_retries(
        self,
        app: Litestar,
        metrics: IngestMetrics,
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """With two retries, three 503 answers end in ServiceUnavailableError."""
        await redis_client.set(Keys(key_prefix).ids, "not a hash")
        async with client_of(app, retries=2) as ledger:
            with pytest.raises(ServiceUnavailableError) as caught:
                await ledger.publish([reported("i-1")])
        assert caught.value.attempts == 3
        assert answers(metrics, 503) == 3

    async def test_an_unreachable_server_raises_unavailable_after_the_retries(self) -> None:
        """Connection refused on every attempt ends in ServiceUnavailableError."""
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again when the block ends
        ledger = LedgerClient(f"http://127.0.0.1:{port}", SOHR, retries=1, backoff=0.01)
        async with ledger:
            with pytest.raises(ServiceUnavailableError) as caught:
                await ledger.publish([reported("i-1")])
        assert caught.value.attempts == 2
        assert "ConnectError" in str(caught.value)
