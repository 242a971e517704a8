"""What an incident's answer takes from beyond its latest 50 entries: every dispute, and
``said`` of the whole history, now that the entries are documents of their own.

One incident reported (its source's time 1 March), disputed by another feed, then revised
60 times (source times 2 March 00:00 onwards, one hour apart): 62 entries, the dispute and
the report older than the latest 50.
"""

from __future__ import annotations

import datetime as dt
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
REPORTED_AT = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
FIRST_REVISION = dt.datetime(2025, 3, 2, tzinfo=dt.UTC)


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """A reader's client over the incident with 62 entries."""
    await redis_store.append(
        [
            f.reported("i-1", best=1, source_time=REPORTED_AT),
            f.disputed("i-1", feed="acled"),
            *(
                f.revised("i-1", best=n + 2, source_time=FIRST_REVISION + dt.timedelta(hours=n))
                for n in range(REVISIONS)
            ),
        ]
    )
    await catch_up(redis_client, key_prefix)
    settings = Settings(tokens=TOKENS, key_prefix=key_prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app, headers={"authorization": f"Bearer {READER}"}) as client:
        yield client


async def entry(http: httpx.AsyncClient, offset: int) -> dict[str, Any]:
    """One entry as the history route answers it."""
    page = await http.get("/v1/incidents/i-1/history", params={"offset": offset, "limit": 1})
    found: dict[str, Any] = page.json()["history"][0]
    return found


class TestBeyondTheLatestPage:
    async def test_a_dispute_older_than_the_latest_50_is_listed(
        self, http: httpx.AsyncClient
    ) -> None:
        """Given the dispute as entry 2 of 62, then the answer lists it under ``disputes``
        (as the history route shows it) while ``history`` holds the latest 50 revisions."""
        incident = (await http.get("/v1/incidents/i-1")).json()["incident"]
        assert (incident["history_total"], len(incident["history"])) == (62, 50)
        assert {h["type"] for h in incident["history"]} == {"incident.casualties_revised"}
        assert incident["disputed"] is True
        (dispute,) = incident["disputes"]
        shown = await entry(http, 1)
        assert shown["type"] == "incident.disputed"
        assert (dispute["feed"], dispute["event_id"], dispute["sources"]) == (
            "acled",
            shown["event_id"],
            shown["sources"],
        )

    @pytest.mark.parametrize(
        ("moment", "offset"),
        [
            ("2025-03-01T12:00:00Z", 0),  # the report
            ("2025-03-02T05:30:00Z", 7),  # the sixth revision (source time 05:00)
            ("2025-03-02T09:00:00Z", 11),  # the tenth, the last before the latest 50
        ],
    )
    async def test_said_is_taken_from_the_whole_history(
        self, http: httpx.AsyncClient, moment: str, offset: int
    ) -> None:
        """Given ``source_as_of`` before or within the older entries, then ``said`` is the
        entry in force then, as the history route shows it, and ``history`` is unchanged."""
        answer = (await http.get("/v1/incidents/i-1", params={"source_as_of": moment})).json()
        assert answer["said"] == await entry(http, offset)
        plain = (await http.get("/v1/incidents/i-1")).json()
        assert answer["incident"]["history"] == plain["incident"]["history"]
