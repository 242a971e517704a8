"""An incident's history in pages: the answer carries the latest 50, a route pages the rest.

One incident reported and revised 60 times (61 entries): ``GET /v1/incidents/{id}`` holds
the latest 50 in log order with ``history_total`` 61; ``/history`` pages them all in the
same shape, refuses a limit past 500 and an unknown incident.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from services.bootstrap import http_app
from services.settings import Settings
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import READER, TOKENS

REVISIONS = 60


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A reader's client over one incident with 61 history entries."""
    await redis_store.append(
        [f.reported("i-1", best=1), *(f.revised("i-1", best=n + 2) for n in range(REVISIONS))]
    )
    await catch_up(redis_client, key_prefix)
    settings = Settings(tokens=TOKENS, key_prefix=key_prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app, headers={"authorization": f"Bearer {READER}"}) as client:
        yield client


def bests(entries: list[dict[str, Any]]) -> list[int]:
    return [e["fatalities"]["best"] for e in entries]


class TestIncidentHistoryPages:
    async def test_the_answer_holds_the_latest_50_and_counts_all(
        self, http: httpx.AsyncClient
    ) -> None:
        """history: revisions 12..61 in order; history_total 61."""
        incident = (await http.get("/v1/incidents/i-1")).json()["incident"]
        assert incident["history_total"] == REVISIONS + 1
        assert bests(incident["history"]) == list(range(12, REVISIONS + 2))

    async def test_pages_cover_the_whole_history_in_the_same_shape(
        self, http: httpx.AsyncClient
    ) -> None:
        """offset 0 limit 10 starts with the report; pages of 25 join to all 61 entries,
        each shaped as in the incident answer."""
        first = (await http.get("/v1/incidents/i-1/history", params={"limit": 10})).json()
        assert (first["offset"], first["limit"], first["history_total"]) == (0, 10, 61)
        assert first["history"][0]["type"] == "incident.reported"
        joined: list[dict[str, Any]] = []
        for offset in range(0, 75, 25):
            page = await http.get(
                "/v1/incidents/i-1/history", params={"offset": offset, "limit": 25}
            )
            joined += page.json()["history"]
        assert bests(joined) == list(range(1, REVISIONS + 2))
        latest = (await http.get("/v1/incidents/i-1")).json()["incident"]["history"]
        assert joined[-50:] == latest

    async def test_a_limit_past_500_and_an_unknown_incident_are_refused(
        self, http: httpx.AsyncClient
    ) -> None:
        """422 for limit 501 or a negative offset; 404 for an incident never reported."""
        too_many = await http.get("/v1/incidents/i-1/history", params={"limit": 501})
        assert too_many.status_code == 422
        assert "limit" in too_many.text
        negative = await http.get("/v1/incidents/i-1/history", params={"offset": -1})
        assert negative.status_code == 422
        assert (await http.get("/v1/incidents/nope/history")).status_code == 404
