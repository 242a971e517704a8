"""Eight concurrent revisers of one incident over HTTP, each with ``expected_version``.

Every reviser reads the incident's version, then sends its revision with that version as the
precondition; on 409 it takes the version the answer names and tries again. Each version
must be won by exactly one reviser, no revision may be lost, and the incident's history
must hold the eight revisions in version order.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import position_key
from services.bootstrap import http_app
from services.settings import Settings, Token
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import served

REVISERS = 8
FEED = "feed-sohr-token-0123456789abcdef"
HEADERS = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}
MAX_ATTEMPTS = 100
"""A reviser that has not landed after this many 409s means the precondition is broken."""


@pytest.fixture
async def base_url(
    redis_client: aioredis.Redis, redis_store: RedisEventStore
) -> AsyncIterator[str]:
    """The API served by uvicorn on a free local port, in this event loop."""
    tokens = (Token(role="feed", secret=FEED, feed="sohr"),)
    settings = Settings(tokens=tokens, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with served(app) as url:
        yield url


class Outcome(msgspec.Struct):
    """What one reviser went through."""

    won: int = 0
    """The version its revision produced."""
    position: str = ""
    conflicts: list[tuple[int, int]] = []
    """Each refused attempt: (the expected version sent, the current version answered)."""


async def revise(http: httpx.AsyncClient, n: int, seen: int, start: asyncio.Event) -> Outcome:
    """Send one revision with ``expected_version``, re-reading from 409s until it lands."""
    event = f.revised("i-1", 100 + n, reason=f"reviser {n}")
    outcome = Outcome(conflicts=[])
    expected = seen
    await start.wait()
    for _ in range(MAX_ATTEMPTS):
        body = msgspec.json.encode(msgspec.structs.replace(event, expected_version=expected))
        response = await http.post("/v1/events", content=body)
        if response.status_code == 202:
            (result,) = response.json()["results"]
            assert result["status"] == "appended"
            outcome.won, outcome.position = expected + 1, result["position"]
            return outcome
        assert response.status_code == 409, response.text
        answer: dict[str, Any] = response.json()
        assert answer["entity"] == "incident:i-1"
        outcome.conflicts.append((expected, answer["current_version"]))
        expected = answer["current_version"]
    pytest.fail(f"reviser {n} did not land in {MAX_ATTEMPTS} attempts")


class TestConcurrentRevisers:
    """Optimistic concurrency over HTTP: no lost update, every version won once."""

    async def test_eight_revisers_each_win_exactly_one_version(
        self, base_url: str, redis_store: RedisEventStore
    ) -> None:
        """All eight land; versions 2..9 are won once each; losers saw 409 with the version."""
        async with httpx.AsyncClient(base_url=base_url, headers=HEADERS, timeout=10) as http:
            created = await http.post("/v1/events", content=msgspec.json.encode(f.reported("i-1")))
            assert created.status_code == 202
            state = await redis_store.entity("incident:i-1")
            assert state is not None
            start = asyncio.Event()
            tasks = [
                asyncio.create_task(revise(http, n, state.version, start)) for n in range(REVISERS)
            ]
            start.set()  # all read version 1 before any of them wrote
            outcomes = await asyncio.gather(*tasks)

        assert sorted(o.won for o in outcomes) == list(range(2, 2 + REVISERS))
        first_round = [o for o in outcomes if not o.conflicts]
        assert len(first_round) == 1  # all sent expected_version 1: exactly one could win it
        for outcome in outcomes:
            for sent, current in outcome.conflicts:
                assert current > sent  # a 409 always names a newer version than the stale one
        assert sum(len(o.conflicts) for o in outcomes) >= REVISERS - 1

        final = await redis_store.entity("incident:i-1")
        assert final is not None
        assert (final.version, final.status) == (1 + REVISERS, "live")
        history = await redis_store.read_entity("incident:i-1")
        assert [r.event.type for r in history] == [
            "incident.reported",
            *["incident.casualties_revised"] * REVISERS,
        ]
        by_version = sorted(outcomes, key=lambda o: o.won)
        assert [r.position for r in history[1:]] == [o.position for o in by_version]
        positions = [r.position for r in history]
        assert positions == sorted(positions, key=position_key)
        assert await redis_store.length() == 1 + REVISERS
