"""The reference scenario end to end over HTTP: published with each reference feed's own
token, folded by the projectors, read back as an analyst would read it."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

import events
from services import reference
from services.bootstrap import http_app
from services.cli.seeding import batches
from services.reference import (
    DUPLICATE_INCIDENT,
    MAIN_INCIDENT,
    REFERENCE_FEEDS,
    SUBJECT,
    SUBJECT_EXTREMISM,
    UNVERIFIED_INCIDENT,
    scenario,
)
from services.settings import Settings, Token
from services.store.redis import RedisEventStore
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import READER

DEADLINE = 20.0
FEEDS = {feed: f"feed-{feed}-token-0123456789abcdef" for feed in REFERENCE_FEEDS}
TOKENS = (
    Token(role="reader", secret=READER),
    *(Token(role="feed", secret=secret, feed=feed) for feed, secret in FEEDS.items()),
)


@pytest.fixture
async def http(redis_store: RedisEventStore, redis_client: aioredis.Redis) -> AsyncIterator[Any]:
    """A client of the API over this test's Redis."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as client:
        yield client


async def publish(http: Any) -> list[str]:
    """The scenario published run by run, each with its feed's token; the statuses."""
    statuses: list[str] = []
    for token, run in batches(scenario(), FEEDS):
        body = msgspec.json.encode([msgspec.json.decode(events.encode(e)) for e in run])
        response = await http.post(
            "/v1/events",
            content=body,
            headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert response.status_code == 202, response.text
        statuses += [r["status"] for r in response.json()["results"]]
    return statuses


async def read(http: Any, url: str, **params: Any) -> Any:
    """A reader's JSON answer."""
    response = await http.get(url, params=params, headers={"authorization": f"Bearer {READER}"})
    assert response.status_code == 200, response.text
    return response.json()


@pytest.fixture
async def published(http: Any, redis_client: aioredis.Redis, key_prefix: str) -> None:
    """The scenario, published and applied."""
    assert set(await publish(http)) == {"appended"}
    await catch_up(redis_client, key_prefix, within=DEADLINE)


class TestReferenceScenarioOverHttp:
    async def test_usa_condemns_and_demands_accountability_on_the_coastal_violence(
        self, http: Any, published: None
    ) -> None:
        """Given the Secretary of State's condemnation and demand for accountability, the
        joint request with Russia and the intelligence director's warning, then the USA's
        stance on the coastal violence is critical, by its foreign minister, resting on his
        two statements."""
        rows = {
            r["country"]: r
            for r in (await read(http, "/v1/projections/country-stance", subject=SUBJECT))[
                "countries"
            ]
        }
        usa = rows["USA"]
        assert usa["stance"] in ("condemn", "demand_accountability")
        assert (usa["family"], usa["stances"], usa["role"]) == (
            "critical",
            ["condemn", "demand_accountability"],
            "foreign_minister",
        )
        assert [b["statement_id"] for b in usa["basis"]] == [
            reference.STATEMENT_RUBIO,
            reference.STATEMENT_RUBIO_ACCOUNTABILITY,
        ]
        assert {(b["title"], b["cameo_code"]) for b in usa["basis"]} == {
            ("Secretary of State", "111")
        }
        assert rows["RUS"]["stance"] == "call_for_meeting"

    async def test_the_intelligence_director_s_warning_stands_on_its_own_subject(
        self, http: Any, published: None
    ) -> None:
        """Her warning about the risks of Assad's removal is a subject of its own, dated
        within a range, so no reaction latency is computed."""
        (usa,) = (await read(http, "/v1/projections/country-stance", subject=SUBJECT_EXTREMISM))[
            "countries"
        ]
        assert (usa["country"], usa["stance"], usa["role"]) == ("USA", "warn", "other_official")
        assert usa["reaction_latency_hours"] is None
        assert usa["basis"][0]["issued_precision"] == "range"

    async def test_totals_are_marked_at_least(self, http: Any, published: None) -> None:
        """The monitor's toll is "at least" 1,476: the total and what no line accounts for
        say so, in JSON and in CSV."""
        victims = await read(http, "/v1/projections/community-victims")
        at_least = {"low": 1476, "best": 1476, "high": 1476, "at_least": True}
        assert (victims["total"], victims["unattributed"]) == (at_least, at_least)
        assert (victims["incidents"], victims["communities"]) == (1, [])
        response = await http.get(
            "/v1/projections/community-victims",
            params={"format": "csv"},
            headers={"authorization": f"Bearer {READER}"},
        )
        _, header, total, _ = list(csv.reader(io.StringIO(response.text)))
        assert dict(zip(header, total, strict=True))["at_least"] == "true"

    async def test_alignment_is_full_but_thin(self, http: Any, published: None) -> None:
        """Russia and the USA co-signed one request: 1.0 on one shared subject, thin."""
        pairs = (await read(http, "/v1/projections/alignment"))["pairs"]
        assert pairs == [{"a": "RUS", "b": "USA", "score": 1.0, "shared_subjects": 1, "thin": True}]

    async def test_the_listing_shows_the_live_incident_and_the_rest_on_request(
        self, http: Any, published: None
    ) -> None:
        """Live by default: summing the listing's best gives the toll, not 2,676."""
        live = (await read(http, "/v1/incidents"))["data"]
        assert [(r["incident_id"], r["fatalities"]["best"]) for r in live] == [
            (MAIN_INCIDENT, 1476)
        ]
        every = (await read(http, "/v1/incidents", status="all"))["data"]
        assert {r["incident_id"]: r["status"] for r in every} == {
            MAIN_INCIDENT: "live",
            DUPLICATE_INCIDENT: "merged",
            UNVERIFIED_INCIDENT: "retracted",
        }
        main = (await read(http, f"/v1/incidents/{MAIN_INCIDENT}"))["incident"]
        assert main["duplicates"] == [DUPLICATE_INCIDENT]
        assert [h["fatalities"]["best"] for h in main["history"] if h["fatalities"]] == [
            1311,
            1383,
            1476,
        ]
        assert all(h["sources"] for h in main["history"] if h["type"] != "incident.merged")

    async def test_seeding_twice_writes_nothing_new(self, http: Any, published: None) -> None:
        """Every event of a second run answers duplicate (same ids, same bodies)."""
        assert set(await publish(http)) == {"duplicate"}
