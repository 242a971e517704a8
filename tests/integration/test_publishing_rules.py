"""Publishing over HTTP under the trust rules: who may change an incident, event ids keyed by
(feed, event id), statements citing reported incidents, and the domain rules wired to 422s
naming the field and the expected value."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest

import events
from events import AnyEvent
from services.bootstrap import http_app
from services.settings import Settings, Token
from services.store.base import EntityState
from services.store.redis import RedisEventStore
from services.store.rules import OPERATOR_FEED
from tests.support.builders import disputed, reported, retracted, revised, statement
from tests.support.http import client_of
from tests.support.tokens import FEED, OPERATOR, READER

ACLED = "feed-acled-token-0123456789abcdef"
TOKENS = (
    Token(role="feed", secret=FEED, feed="sohr"),
    Token(role="feed", secret=ACLED, feed="acled"),
    Token(role="reader", secret=READER),
    Token(role="operator", secret=OPERATOR),
)

Client = httpx.AsyncClient


@pytest.fixture
async def client(redis_store: RedisEventStore, redis_client: Any) -> AsyncIterator[Client]:
    """A test client of the API over this test's Redis store."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as test_client:
        yield test_client


async def post(client: Client, token: str, *batch: AnyEvent | dict[str, Any]) -> httpx.Response:
    """``batch`` published with ``token``."""
    items = [e if isinstance(e, dict) else msgspec.json.decode(events.encode(e)) for e in batch]
    content = msgspec.json.encode(items)
    return await client.post(
        "/v1/events",
        content=content,
        headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
    )


def raw(event: AnyEvent, **changes: Any) -> dict[str, Any]:
    """An event as a plain dict with fields changed."""
    doc: dict[str, Any] = msgspec.json.decode(events.encode(event))
    doc.update(changes)
    return doc


class TestWhoMayChangeAnIncident:
    async def test_another_feed_s_retraction_is_403_naming_the_owner(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Given sohr's incident, when acled retracts it ("I don't like it"), then the answer
        is 403 not_owner naming sohr, and nothing is written."""
        await post(client, FEED, reported("i-1"))
        response = await post(
            client, ACLED, retracted("i-1", source="acled", reason="I don't like it")
        )
        assert response.status_code == 403
        assert response.json() | {"message": ""} == {
            "error": "not_owner",
            "index": 0,
            "entity": "incident:i-1",
            "owner": "sohr",
            "message": "",
        }
        assert "'sohr'" in response.json()["message"]
        assert await redis_store.length() == 1

    async def test_another_feed_files_a_dispute_instead(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """acled's dispute of sohr's incident is accepted and leaves its version."""
        await post(client, FEED, reported("i-1"))
        response = await post(client, ACLED, disputed("i-1", feed="acled"))
        assert response.status_code == 202
        assert await redis_store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")

    async def test_an_operator_token_revises_any_feed_s_incident_as_ledger_operator(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Given sohr's incident, when an operator token sends a revision from
        ledger-operator, then it is appended; sent as sohr or as a report it is 403."""
        await post(client, FEED, reported("i-1"))
        fixed = revised("i-1", best=3, source=OPERATOR_FEED)
        assert (await post(client, OPERATOR, fixed)).status_code == 202
        assert (await post(client, OPERATOR, revised("i-1"))).status_code == 403
        report = reported("i-2", source=OPERATOR_FEED)
        refused = await post(client, OPERATOR, report)
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        assert await redis_store.entity("incident:i-1") == EntityState(2, "live", owner="sohr")

    async def test_a_reader_still_may_not_publish(self, client: Client) -> None:
        """Only feed and operator tokens publish."""
        assert (await post(client, READER, reported("i-1"))).status_code == 403


class TestEventIdsPerFeed:
    async def test_an_id_resent_with_another_body_is_409_id_reused(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Given sohr's report of 10, when sohr sends that id again with 0 dead, then 409
        id_reused names the original position and the log keeps the first body."""
        event = reported("i-1")
        first = (await post(client, FEED, event)).json()["results"][0]
        response = await post(client, FEED, raw(event, fatalities={"low": 0, "best": 0, "high": 0}))
        assert response.status_code == 409
        answer = response.json()
        assert (answer["error"], answer["index"], answer["position"]) == (
            "id_reused",
            0,
            first["position"],
        )
        assert answer["event_id"] == str(event.event_id)
        assert [r.event for r in await redis_store.read()] == [event]

    async def test_a_squatted_id_is_409_id_taken_never_a_silent_duplicate(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Given acled published an id first, when sohr's real report comes with it, then
        409 id_taken (the report can be sent with a new id); acled's position is not told."""
        squat = reported("i-9", source="acled")
        await post(client, ACLED, squat)
        response = await post(client, FEED, reported("i-1", event_id=squat.event_id))
        assert response.status_code == 409
        assert (response.json()["error"], response.json()["position"]) == ("id_taken", None)
        assert await redis_store.length() == 1

    async def test_the_same_body_again_stays_a_duplicate(self, client: Client) -> None:
        """A retry of the same event answers 202 duplicate."""
        event = reported("i-1")
        await post(client, FEED, event)
        again = await post(client, FEED, event)
        assert (again.status_code, again.json()["results"][0]["status"]) == (202, "duplicate")


class TestDomainRulesAnswer422:
    async def test_a_statement_citing_unreported_incidents_lists_them(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Given i-1 reported, a statement naming i-1 and ghost-1 is 422 on incident_ids
        listing ghost-1; nothing is written."""
        await post(client, FEED, reported("i-1"))
        response = await post(client, FEED, statement("s-1", incident_ids=["i-1", "ghost-1"]))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert (error["index"], error["field"]) == (0, "incident_ids")
        assert error["message"].endswith("ghost-1")
        assert await redis_store.length() == 1

    async def test_an_incident_dated_2099_is_refused(self, client: Client) -> None:
        """occurred_start after the service's clock (plus the allowed skew) is 422."""
        response = await post(client, FEED, reported("i-1", occurred_start=dt.date(2099, 1, 1)))
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["occurred_start"]

    async def test_a_statement_issued_in_a_minute_passes_in_an_hour_fails(
        self, client: Client
    ) -> None:
        """A feed's clock a minute ahead is tolerated; an hour ahead is not."""
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1)
        assert (await post(client, FEED, statement("s-1", issued_at=soon))).status_code == 202
        later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        response = await post(client, FEED, statement("s-2", issued_at=later))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "issued_at"

    async def test_a_goldstein_other_than_gdelt_s_names_the_expected_value(
        self, client: Client
    ) -> None:
        """CAMEO 111 sent with goldstein 9.0: 422 on goldstein saying -2.0."""
        response = await post(client, FEED, raw(statement("s-1"), goldstein=9.0))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "goldstein"
        assert "must be -2.0 for CAMEO 111" in error["message"]

    async def test_a_stance_its_cameo_root_contradicts_is_refused(self, client: Client) -> None:
        """CAMEO 051 (praise) coded as a warning: 422 on stance naming the root."""
        response = await post(
            client, FEED, raw(statement("s-1"), cameo_code="051", stance="warn", goldstein=None)
        )
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert error["field"] == "stance"
        assert "CAMEO 051" in error["message"]
