"""The ingest API over a real Redis: answers, positions, duplicates, errors, limits, probes."""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import msgspec
import pytest

import events
from events import AnyEvent, Position, Recorded, position_key
from services.bootstrap import http_app
from services.http import MAX_BODY_BYTES
from services.settings import Settings, Token
from services.store.base import Appended, EntityState
from services.store.connection import connect
from services.store.redis import RedisEventStore
from tests.support.builders import reported, revised
from tests.support.http import client_of
from tests.support.tokens import FEED, METRICS, READER

START = Position("0-0")
TOKENS = (
    Token(role="feed", secret=FEED, feed="sohr"),
    Token(role="reader", secret=READER),
    Token(role="metrics", secret=METRICS),
)
AUTH = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}

Client = httpx.AsyncClient


def body(*items: AnyEvent | dict[str, Any]) -> bytes:
    """A JSON array of events (Structs) or raw dicts."""
    return msgspec.json.encode(list(items))


def raw(event: AnyEvent, **changes: Any) -> dict[str, Any]:
    """An event as a plain dict, with fields changed (``None`` removes a field)."""
    doc: dict[str, Any] = msgspec.json.decode(events.encode(event))
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    return doc


def closed_port() -> int:
    """A local TCP port nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
async def client(redis_store: RedisEventStore, redis_client: Any) -> AsyncIterator[Client]:
    """A test client of the API over this test's Redis store."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as test_client:
        yield test_client


async def post(client: Client, content: bytes, headers: dict[str, str] | None = None) -> Any:
    return await client.post(
        "/v1/events", content=content, headers=AUTH if headers is None else headers
    )


class TestAccepted:
    async def test_single_event_answers_202_with_its_position(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """One event object is appended and answered with its log position."""
        event = reported("i-1")
        response = await post(client, events.encode(event))
        assert response.status_code == 202
        (result,) = response.json()["results"]
        assert result["event_id"] == str(event.event_id)
        assert result["status"] == "appended"
        assert re.fullmatch(r"\d+-\d+", result["position"])
        assert await redis_store.length() == 1

    async def test_batch_answers_one_result_per_event_in_log_order(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A batch may report and revise in one go; positions increase in batch order."""
        batch: list[AnyEvent] = [reported("i-1"), revised("i-1", best=20), reported("i-2")]
        response = await post(client, body(*batch))
        assert response.status_code == 202
        results = response.json()["results"]
        assert [r["event_id"] for r in results] == [str(e.event_id) for e in batch]
        positions = [r["position"] for r in results]
        assert positions == sorted(positions, key=position_key)
        assert len(set(positions)) == 3
        logged = await redis_store.read()
        assert [r.position for r in logged] == positions

    async def test_resubmitted_event_is_a_duplicate_with_its_original_position(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Sending an event id again writes nothing and answers the first position."""
        event = reported("i-1")
        first = (await post(client, body(event))).json()["results"][0]
        again = await post(client, body(event, reported("i-2")))
        assert again.status_code == 202
        duplicate, fresh = again.json()["results"]
        assert duplicate == {**first, "status": "duplicate"}
        assert fresh["status"] == "appended"
        assert await redis_store.length() == 2

    async def test_expected_version_that_matches_is_accepted(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A revision naming the entity's current version is appended and bumps it."""
        await post(client, body(reported("i-1")))
        response = await post(client, body(revised("i-1", expected_version=1)))
        assert response.status_code == 202
        assert await redis_store.entity("incident:i-1") == EntityState(2, "live", owner="sohr")

    async def test_response_carries_a_request_id(self, client: Client) -> None:
        """Every answer names its request id, the one given by the caller when valid."""
        headers = {**AUTH, "x-request-id": "req-42"}
        response = await post(client, body(reported("i-1")), headers)
        assert response.headers["x-request-id"] == "req-42"


class TestInvalid:
    async def test_missing_field_answers_422_naming_index_and_field(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A batch with one event lacking a field is refused whole, naming that field."""
        response = await post(client, body(reported("i-1"), raw(reported("i-2"), country=None)))
        assert response.status_code == 422
        answer = response.json()
        assert answer["error"] == "invalid"
        assert [(e["index"], e["field"]) for e in answer["errors"]] == [(1, "country")]
        assert await redis_store.length() == 0

    async def test_every_invalid_event_is_named(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Problems of several events are all listed, each under its own index."""
        bad_country = raw(reported("i-1"), country="XXX")
        bad_figures = raw(reported("i-2"), fatalities={"low": 9, "best": 5, "high": 7})
        response = await post(client, body(bad_country, reported("i-3"), bad_figures))
        assert response.status_code == 422
        named = {(e["index"], e["field"]) for e in response.json()["errors"]}
        assert named == {(0, "country"), (2, "fatalities")}
        assert await redis_store.length() == 0

    async def test_wrong_type_of_a_field_is_named(self, client: Client) -> None:
        """A field of the wrong JSON type answers 422 with its dotted path."""
        response = await post(client, body(raw(reported("i-1"), geo_precision="two")))
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "geo_precision"

    @pytest.mark.parametrize(
        ("content", "field"),
        [
            pytest.param(b"{not json", "body", id="malformed"),
            pytest.param(b"[]", "body", id="empty-array"),
            pytest.param(b"", "body", id="empty-body"),
            pytest.param(b"42", "body", id="not-an-object"),
        ],
    )
    async def test_unusable_body_answers_422(
        self, client: Client, redis_store: RedisEventStore, content: bytes, field: str
    ) -> None:
        """A body that is not an event or an array of events is a 422, never a 500."""
        response = await post(client, content)
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == field
        assert await redis_store.length() == 0

    async def test_more_than_5000_events_answers_422(self, client: Client) -> None:
        """A batch over the limit is refused before any event is examined."""
        response = await post(client, b"[" + b",".join([b"{}"] * 5001) + b"]")
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "body"

    async def test_revision_of_unknown_incident_answers_422_naming_incident_id(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A rule that depends on the log (the store's rejection) answers 422 too."""
        response = await post(client, body(reported("i-1"), revised("i-404")))
        assert response.status_code == 422
        (error,) = response.json()["errors"]
        assert (error["index"], error["field"]) == (1, "incident_id")
        assert await redis_store.length() == 0


class TestConflict:
    async def test_expected_version_mismatch_answers_409_with_current_version(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A stale expected_version is refused with the entity's version now."""
        await post(client, body(reported("i-1"), revised("i-1")))
        response = await post(client, body(revised("i-1", best=30, expected_version=1)))
        assert response.status_code == 409
        answer = response.json()
        assert answer["error"] == "conflict"
        assert answer["index"] == 0
        assert answer["entity"] == "incident:i-1"
        assert answer["current_version"] == 2
        assert answer["message"]
        assert await redis_store.length() == 2

    async def test_second_report_of_an_incident_answers_409(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Reporting an existing incident again is a conflict, naming the event's index."""
        await post(client, body(reported("i-1")))
        response = await post(client, body(reported("i-2"), reported("i-1")))
        assert response.status_code == 409
        assert (response.json()["index"], response.json()["current_version"]) == (1, 1)
        assert await redis_store.length() == 1


class TestLimits:
    async def test_body_over_5_mib_answers_413(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """A body announced larger than 5 MiB is refused with JSON, nothing written."""
        response = await post(client, b" " * (MAX_BODY_BYTES + 1))
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"
        assert await redis_store.length() == 0

    async def test_streamed_body_over_5_mib_answers_413(self, client: Client) -> None:
        """A body sent without Content-Length is counted as it is read."""

        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(6):
                yield b" " * (1024 * 1024)

        response = await client.post("/v1/events", content=chunks(), headers=AUTH)
        assert response.status_code == 413

    @pytest.mark.parametrize(
        "content_type", ["text/plain", "application/x-www-form-urlencoded", ""]
    )
    async def test_other_content_type_answers_415(
        self, client: Client, redis_store: RedisEventStore, content_type: str
    ) -> None:
        """Only application/json is accepted."""
        headers = {"authorization": f"Bearer {FEED}", "content-type": content_type}
        response = await post(client, body(reported("i-1")), headers)
        assert response.status_code == 415
        assert response.json()["error"] == "unsupported_media_type"
        assert await redis_store.length() == 0

    async def test_json_with_charset_is_accepted(self, client: Client) -> None:
        """Parameters of the media type do not matter."""
        headers = {**AUTH, "content-type": "application/json; charset=utf-8"}
        response = await post(client, body(reported("i-1")), headers)
        assert response.status_code == 202


class _HangingStore:
    """An event store whose appends never finish (to prove the handler's own deadline)."""

    def __init__(self) -> None:
        self.never = asyncio.Event()

    async def append(self, batch: Sequence[AnyEvent]) -> list[Appended]:
        await self.never.wait()
        raise AssertionError("unreachable")

    async def read(self, after: Position = START, count: int = 1000) -> list[Recorded]:
        return []

    async def read_entity(self, entity: str) -> list[Recorded]:
        return []

    async def entity(self, entity: str) -> EntityState | None:
        return None

    async def head(self) -> Position | None:
        return None

    async def length(self) -> int:
        return 0


class TestUnavailable:
    async def test_closed_port_answers_503_with_retry_after(self) -> None:
        """A Redis that refuses connections gives 503 + Retry-After: 1, not a hang."""
        redis = connect(f"redis://127.0.0.1:{closed_port()}/0")
        store = RedisEventStore(redis, prefix="t-unreachable")
        app = http_app(
            Settings(tokens=TOKENS, key_prefix="t-unreachable"), store=store, client=redis
        )
        try:
            async with client_of(app) as test_client, asyncio.timeout(5):  # hang guard
                response = await post(test_client, body(reported("i-1")))
                ready = await test_client.get("/readyz")
        finally:
            await redis.aclose()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"] == "unavailable"
        assert ready.status_code == 503

    async def test_silent_redis_answers_503(self) -> None:
        """A server that accepts but never answers is given up on by the 1 s timeouts."""

        async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await reader.read()  # until the client hangs up; never answers
            writer.close()

        server = await asyncio.start_server(swallow, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        redis = connect(f"redis://127.0.0.1:{port}/0")
        store = RedisEventStore(redis, prefix="t-silent")
        app = http_app(Settings(tokens=TOKENS, key_prefix="t-silent"), store=store, client=redis)
        try:
            async with client_of(app) as test_client, asyncio.timeout(10):  # hang guard
                response = await post(test_client, body(reported("i-1")))
        finally:
            await redis.aclose()
            server.close()
            await server.wait_closed()
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"

    async def test_append_past_the_deadline_answers_503(self) -> None:
        """The handler's own deadline answers 503 even if the store never returns."""
        app = http_app(Settings(tokens=TOKENS), store=_HangingStore(), append_timeout=0.05)
        async with client_of(app) as test_client, asyncio.timeout(5):  # hang guard
            response = await post(test_client, body(reported("i-1")))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "1"


class TestProbes:
    async def test_healthz_answers_200(self, client: Client) -> None:
        """Liveness needs no token and no Redis."""
        response = await client.get("/healthz")
        assert (response.status_code, response.json()) == (200, {"status": "ok"})

    async def test_readyz_answers_200_when_redis_answers(self, client: Client) -> None:
        """Readiness pings the store's Redis (and says every view's lag: none, on an empty
        log)."""
        response = await client.get("/readyz")
        assert response.status_code == 200
        answer = response.json()
        assert answer["status"] == "ready"
        assert {one["entries"] for one in answer["lag"].values()} == {0}


class TestMetrics:
    async def test_ingested_events_are_counted_by_type_and_result(self, client: Client) -> None:
        """After an append and a duplicate, the counters say so."""
        event = reported("i-1")
        await post(client, body(event))
        await post(client, body(event))
        response = await client.get("/metrics", headers={"authorization": f"Bearer {METRICS}"})
        assert response.status_code == 200
        text = response.text
        assert (
            'ledger_events_ingested_total{result="appended",type="incident.reported"} 1.0' in text
        )
        assert (
            'ledger_events_ingested_total{result="duplicate",type="incident.reported"} 1.0' in text
        )
        assert 'ledger_submissions_total{status="202"} 2.0' in text
        assert "ledger_append_seconds_count 2.0" in text

    async def test_metrics_need_a_metrics_or_operator_token(self, client: Client) -> None:
        """Without a token 401; a feed or a reader token 403."""
        assert (await client.get("/metrics")).status_code == 401
        for token in (FEED, READER):
            refused = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
            assert refused.status_code == 403


class TestDocuments:
    async def test_openapi_describes_the_ingest_body_and_answers(self, client: Client) -> None:
        """/openapi.json documents POST /v1/events with the event schemas and error answers."""
        response = await client.get("/openapi.json")
        assert response.status_code == 200
        document = response.json()
        operation = document["paths"]["/v1/events"]["post"]
        assert {"202", "401", "403", "409", "413", "415", "422", "503"} <= set(
            operation["responses"]
        )
        schema = operation["requestBody"]["content"]["application/json"]["schema"]
        assert "anyOf" in schema
        assert {"IncidentReported", "StatementIssued"} <= set(document["components"]["schemas"])

    async def test_unknown_path_and_method_answer_json(self, client: Client) -> None:
        """Routing errors are JSON with an error code, like every other error."""
        missing = await client.get("/v1/nothing")
        assert (missing.status_code, missing.json()["error"]) == (404, "not_found")
        wrong = await client.get("/v1/events")
        assert (wrong.status_code, wrong.json()["error"]) == (405, "method_not_allowed")
