"""Live updates over Server-Sent Events, through a real HTTP server (uvicorn) and Redis.

The stream has to be read while it is open, which an in-process ASGI transport cannot do,
so these tests serve the app with uvicorn on a free local port. Waiting is always for an
event or a condition, bounded by a deadline.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from projections import PROJECTIONS
from services.bootstrap import http_app
from services.http.live import LiveHub
from services.http.side import ReadSide
from services.settings import Settings, Token
from services.store.redis import RedisEventStore
from services.views.redis import RedisViewStore, load_checkpoint
from tests.support import builders as f
from tests.support.http import served as serve_app
from tests.support.runner import catch_up
from tests.support.tokens import FEED, METRICS, READER
from tests.support.waiting import until

TOKENS = (
    Token(role="reader", secret=READER),
    Token(role="feed", secret=FEED, feed="sohr"),
    Token(role="metrics", secret=METRICS),
)
AUTH = {"authorization": f"Bearer {READER}"}
SCRAPE = {"authorization": f"Bearer {METRICS}"}
DEADLINE = 10.0


class Sse(msgspec.Struct):
    """One server-sent event as a client sees it."""

    event: str | None = None
    id: str | None = None
    data: str = ""


class Stream:
    """Reads server-sent events off an open response."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self.lines = response.aiter_lines()

    async def next_event(self) -> Sse:
        """The next event with a name (comments and the retry hint are skipped)."""
        async with asyncio.timeout(DEADLINE):
            current = Sse()
            async for line in self.lines:
                if line == "":
                    if current.event is not None:
                        return current
                    current = Sse()
                elif line.startswith("event: "):
                    current.event = line[len("event: ") :]
                elif line.startswith("id: "):
                    current.id = line[len("id: ") :]
                elif line.startswith("data: "):
                    current.data += line[len("data: ") :]
        raise AssertionError("the stream ended")


class Served:
    """The app served on a local port, with its read side."""

    def __init__(self, url: str, side: ReadSide) -> None:
        self.url, self.side = url, side


@pytest.fixture
async def served(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[Served]:
    """The API served by uvicorn on a free port, polling checkpoints every 50 ms."""
    views = RedisViewStore(redis_client, key_prefix)
    hub = LiveHub(views, PROJECTIONS.values(), interval=0.05, min_gap=0.05)
    settings = Settings(tokens=TOKENS, key_prefix=key_prefix)
    app = http_app(settings, store=redis_store, client=redis_client, live=hub)
    side: ReadSide = app.state.read
    try:
        async with serve_app(app, lifespan="off", on_stop=side.live.close) as url:
            yield Served(url, side)
    finally:
        await side.live.aclose()


def notice(event: Sse) -> dict[str, Any]:
    data: dict[str, Any] = msgspec.json.decode(event.data)
    return data


class TestNotices:
    async def test_a_moved_checkpoint_is_announced_with_its_position(
        self, served: Served, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Connected first, the client gets a ``view`` event once the pool applies an event,
        with the view's lag at that position (none left: the pool caught up)."""
        async with (
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as http,
            http.stream("GET", "/v1/live/community-victims") as response,
        ):
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            stream = Stream(response)
            await until(lambda: served.side.live.clients == 1, "the client to be counted")
            await redis_store.append([f.reported("i-1")])
            await catch_up(redis_client, key_prefix, within=DEADLINE)
            event = await stream.next_event()
        checkpoint = await load_checkpoint(
            redis_client, key_prefix, PROJECTIONS["community-victims"]
        )
        assert event.event == "view"
        assert event.id == checkpoint
        assert notice(event) == {
            "projection": "community-victims",
            "position": checkpoint,
            "lag": 0,
            "lag_seconds": 0.0,
        }

    async def test_each_move_is_announced_in_order(
        self, served: Served, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Two separate moves give two events with increasing positions."""
        async with (
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as http,
            http.stream("GET", "/v1/live/incidents") as response,
        ):
            stream = Stream(response)
            await until(lambda: served.side.live.clients == 1, "the client to be counted")
            await redis_store.append([f.reported("i-1")])
            await catch_up(redis_client, key_prefix, within=DEADLINE)
            first = await stream.next_event()
            await redis_store.append([f.revised("i-1")])
            await catch_up(redis_client, key_prefix, within=DEADLINE)
            second = await stream.next_event()
        assert first.id is not None
        assert second.id == await redis_store.head()
        assert first.id != second.id

    async def test_resume_with_an_older_id_gets_one_notice_at_once(
        self, served: Served, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """A client back with ``Last-Event-ID`` of an older position learns the new one."""
        await redis_store.append([f.reported("i-1")])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        old = await redis_store.head()
        await redis_store.append([f.reported("i-2")])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        async with (
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as http,
            http.stream("GET", "/v1/live/alignment", headers={"last-event-id": str(old)}) as r,
        ):
            event = await Stream(r).next_event()
        assert event.id == await redis_store.head()

    async def test_resume_with_the_current_id_waits_for_the_next_move(
        self, served: Served, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Resuming at the current position, the first event is the next move, not a repeat."""
        await redis_store.append([f.reported("i-1")])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        current = str(await redis_store.head())
        async with (
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as http,
            http.stream("GET", "/v1/live/country-stance", headers={"last-event-id": current}) as r,
        ):
            stream = Stream(r)
            await until(lambda: served.side.live.clients == 1, "the client to be counted")
            await redis_store.append([f.statement("s-1")])
            await catch_up(redis_client, key_prefix, within=DEADLINE)
            event = await stream.next_event()
        assert event.id == await redis_store.head()
        assert event.id != current


class TestClients:
    async def test_gauge_counts_connected_clients(self, served: Served) -> None:
        """``ledger_sse_clients`` follows connections and disconnections."""
        async with httpx.AsyncClient(base_url=served.url, headers=AUTH) as http:
            async with (
                http.stream("GET", "/v1/live/incidents"),
                http.stream("GET", "/v1/live/alignment"),
            ):
                await until(lambda: served.side.live.clients == 2, "two clients")
                metrics = (await http.get("/metrics", headers=SCRAPE)).text
                assert "ledger_sse_clients 2.0" in metrics
            await until(lambda: served.side.live.clients == 0, "the clients to leave")
            assert "ledger_sse_clients 0.0" in (await http.get("/metrics", headers=SCRAPE)).text

    async def test_unknown_projection_is_404(self, served: Served) -> None:
        """A projection that does not exist answers 404 before any stream starts."""
        async with httpx.AsyncClient(base_url=served.url, headers=AUTH) as http:
            response = await http.get("/v1/live/nope")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"

    async def test_stream_needs_a_reader_token(self, served: Served) -> None:
        """No token answers 401, a feed token 403."""
        async with httpx.AsyncClient(base_url=served.url) as http:
            anonymous = await http.get("/v1/live/incidents")
            feed = await http.get("/v1/live/incidents", headers={"authorization": f"Bearer {FEED}"})
        assert (anonymous.status_code, feed.status_code) == (401, 403)

    async def test_closing_the_hub_ends_open_streams(self, served: Served) -> None:
        """When the service stops, open streams end instead of holding up the shutdown."""
        async with (
            httpx.AsyncClient(base_url=served.url, headers=AUTH) as http,
            http.stream("GET", "/v1/live/incidents") as response,
        ):
            await until(lambda: served.side.live.clients == 1, "the client to be counted")
            served.side.live.close()
            async with asyncio.timeout(DEADLINE):
                rest = [line async for line in response.aiter_lines()]
        assert "event: view" not in rest
        assert served.side.live.clients == 0
