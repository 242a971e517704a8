"""Hostile and sloppy input to ``POST /v1/events``: a clear 4xx naming the field, nothing written.

Complements ``tests/integration/test_http_ingest.py`` (which covers a missing field, a wrong
type, an empty or non-JSON body, ``{}`` times 5,001, a 5 MiB + 1 body and plain content types)
with the cases it leaves out. Every case checks the log's length (``XLEN``) before and after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

import events
from events import MAX_BATCH, AnyEvent
from services.bootstrap import http_app
from services.http import MAX_BODY_BYTES
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support.builders import reported, revised, statement
from tests.support.http import client_of

FEED = "feed-sohr-token-0123456789abcdef"
AUTH = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}


def doc(event: AnyEvent, **changes: Any) -> dict[str, Any]:
    """An event as a plain dict with ``changes`` applied (``a__b`` sets the nested ``a.b``)."""
    raw: dict[str, Any] = msgspec.json.decode(events.encode(event))
    for path, value in changes.items():
        *parents, last = path.split("__")
        target: Any = raw
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[last] = value
    return raw


def encode(items: Any) -> bytes:
    """JSON of ``items`` (dicts and Structs), big integers kept exact."""
    return msgspec.json.encode(items)


@pytest.fixture
async def client(
    redis_store: RedisEventStore, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API over this test's Redis store."""
    tokens = (Token(role="feed", secret=FEED, feed="sohr"),)
    settings = Settings(tokens=tokens, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as http:
        # one event in the log, so "unchanged" is not just "empty"
        assert (await http.post("/v1/events", content=encode([reported("seed")]),
                                headers=AUTH)).status_code == 202  # fmt: skip
        yield http


async def xlen(redis_client: aioredis.Redis, key_prefix: str) -> int:
    """The log's length."""
    return int(await redis_client.xlen(Keys(key_prefix).log))


async def refused(
    client: httpx.AsyncClient,
    redis_client: aioredis.Redis,
    key_prefix: str,
    content: bytes,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """POST ``content`` and check that nothing was written; the response."""
    before = await xlen(redis_client, key_prefix)
    response = await client.post("/v1/events", content=content, headers=headers or AUTH)
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]
    assert await xlen(redis_client, key_prefix) == before
    return response


def fields_of(response: httpx.Response) -> set[tuple[int, str]]:
    """The (index, field) pairs a 422 names."""
    assert response.status_code == 422, response.text
    return {(e["index"], e["field"]) for e in response.json()["errors"]}


INCIDENT = reported("i-1")
STATEMENT = statement("s-1")
BIG = 2**64 + 1

# (id, body, (index, field) that must be named)
FIELD_CASES: list[Any] = [
    pytest.param([doc(INCIDENT, fatalities__best=BIG)], (0, "fatalities.best"), id="int>64bit"),
    pytest.param([doc(INCIDENT, geo_precision=-(2**70))], (0, "geo_precision"), id="int<-64bit"),
    pytest.param(
        [doc(INCIDENT, expected_version=2**63)], (0, "expected_version"), id="version>2^53"
    ),
    pytest.param([doc(INCIDENT, fatalities__low=-1)], (0, "fatalities.low"), id="negative-count"),
    pytest.param(
        [doc(INCIDENT, injured={"low": -5, "best": 0, "high": 0})],
        (0, "injured.low"),
        id="negative-injured",
    ),
    pytest.param(
        [doc(INCIDENT, fatalities={"low": 9, "best": 5, "high": 9})],
        (0, "fatalities"),
        id="low>best",
    ),
    pytest.param(
        [doc(INCIDENT, victims=[{"low": 3, "best": 2, "high": 4, "community": "kurd"}])],
        (0, "victims[0]"),
        id="victim-low>best",
    ),
    pytest.param(
        [
            doc(
                INCIDENT,
                fatalities={"low": 2, "best": 2, "high": 2},
                victims=[
                    {"low": 2, "best": 2, "high": 2, "community": "kurd"},
                    {"low": 1, "best": 1, "high": 1, "community": "arab"},
                ],
            )
        ],
        (0, "victims.best"),
        id="lines-exceed-total",
    ),
    pytest.param(
        [doc(INCIDENT, occurred_start="01/03/2024")], (0, "occurred_start"), id="date-dd/mm/yyyy"
    ),
    pytest.param(
        [doc(INCIDENT, occurred_start="2024-13-01")], (0, "occurred_start"), id="date-month-13"
    ),
    pytest.param(
        [doc(INCIDENT, occurred_start="2024-03-01T00:00:00Z")],
        (0, "occurred_start"),
        id="date-as-datetime",
    ),
    pytest.param(
        [doc(STATEMENT, issued_at="2024-03-02T10:00:00")],
        (0, "issued_at"),
        id="datetime-without-zone",
    ),
    pytest.param([doc(STATEMENT, issued_at="2024-03-02")], (0, "issued_at"), id="datetime-as-date"),
    pytest.param([doc(INCIDENT, colour="red")], (0, "colour"), id="unknown-top-field"),
    pytest.param([doc(INCIDENT, place__extra="x")], (0, "place.extra"), id="unknown-nested"),
    pytest.param([doc(INCIDENT, type="incident.exploded")], (0, "type"), id="unknown-type"),
    pytest.param([doc(INCIDENT, event_id="not-a-uuid")], (0, "event_id"), id="bad-uuid"),
    pytest.param([doc(INCIDENT, incident_id="a b")], (0, "incident_id"), id="bad-id"),
    pytest.param([doc(INCIDENT, incident_id="syr-1\n")], (0, "incident_id"), id="id-newline"),
    pytest.param([doc(INCIDENT, fatalities__best=1.5)], (0, "fatalities.best"), id="float-count"),
    pytest.param([doc(INCIDENT, fatalities__best="7")], (0, "fatalities.best"), id="string-count"),
    pytest.param([doc(INCIDENT, place__lat=91.0, place__lon=0.0)], (0, "place.lat"), id="lat>90"),
    pytest.param([doc(INCIDENT, country="XXX")], (0, "country"), id="unknown-country"),
    pytest.param([doc(INCIDENT, schema_version=99)], (0, "schema_version"), id="future-version"),
    pytest.param([doc(INCIDENT, notes="x" * 4001)], (0, "notes"), id="notes-too-long"),
]


class TestFieldsNamed:
    """Each bad field is refused with 422 naming the event's index and the field."""

    @pytest.mark.parametrize(("body", "named"), FIELD_CASES)
    async def test_bad_field_answers_422_naming_it_and_writes_nothing(
        self,
        client: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        key_prefix: str,
        body: list[Any],
        named: tuple[int, str],
    ) -> None:
        """The answer names exactly where the problem is; the log is unchanged."""
        response = await refused(client, redis_client, key_prefix, encode(body))
        assert named in fields_of(response), response.json()

    async def test_one_bad_event_among_good_ones_writes_nothing(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A batch of 200 with one bad event in the middle is refused whole, naming it."""
        batch: list[Any] = [reported(f"g-{n}") for n in range(200)]
        batch[117] = doc(reported("bad"), occurred_start="yesterday")
        response = await refused(client, redis_client, key_prefix, encode(batch))
        assert fields_of(response) == {(117, "occurred_start")}

    async def test_a_store_rule_broken_late_in_a_batch_writes_nothing(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Valid events followed by a revision of an unknown incident: 422 and nothing written."""
        batch: list[Any] = [reported(f"g-{n}") for n in range(50)] + [revised("nowhere")]
        response = await refused(client, redis_client, key_prefix, encode(batch))
        assert fields_of(response) == {(50, "incident_id")}

    async def test_5001_valid_events_are_refused_before_any_is_written(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """One event over the batch limit refuses the batch, naming the limit."""
        one = events.encode(reported("i-x"))
        content = b"[" + b",".join([one] * (MAX_BATCH + 1)) + b"]"
        response = await refused(client, redis_client, key_prefix, content)
        errors = response.json()["errors"]
        assert errors[0]["field"] == "body"
        assert str(MAX_BATCH) in errors[0]["message"]


class TestMalformedBodies:
    """Bodies that are not JSON events are refused with 4xx, never 500."""

    @pytest.mark.parametrize(
        "content",
        [
            pytest.param(b'[{"type": "incident.reported"', id="truncated-array"),
            pytest.param(b"[" + events.encode(INCIDENT) + b",]", id="trailing-comma"),
            pytest.param(b"\xff\xfe{\x00}", id="invalid-utf8"),
            pytest.param(b'{"type": "incident.reported", "type": 1}', id="duplicate-key"),
            pytest.param(
                b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]",
                id="nested-arrays",
            ),
            pytest.param(b"[" * 100_000, id="deep-nesting"),
            pytest.param(b'"a string"', id="json-string"),
            pytest.param(b"null", id="json-null"),
            pytest.param(b"[null, 1, true]", id="array-of-scalars"),
            pytest.param(b'{"fatalities": NaN}', id="nan"),
        ],
    )
    async def test_malformed_body_answers_422_naming_body_or_field(
        self,
        client: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        key_prefix: str,
        content: bytes,
    ) -> None:
        """Malformed JSON answers 422 with a named field or ``body``; nothing is written."""
        response = await refused(client, redis_client, key_prefix, content)
        assert response.status_code == 422
        assert all(e["field"] for e in response.json()["errors"])

    async def test_six_mib_body_answers_413(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A 6 MiB array of events is refused as too large, and nothing of it is written."""
        one = events.encode(reported("i-big", notes="n" * 3900))
        count = 6 * 1024 * 1024 // len(one) + 1
        content = b"[" + b",".join([one] * count) + b"]"
        assert len(content) > 6 * 1024 * 1024 > MAX_BODY_BYTES
        response = await refused(client, redis_client, key_prefix, content)
        assert response.status_code == 413
        assert response.json()["error"] == "too_large"

    @pytest.mark.parametrize(
        "content_type",
        ["application/jsonl", "application/json-seq", "text/json", "multipart/form-data",
         "application/xml"],
    )  # fmt: skip
    async def test_wrong_content_type_answers_415(
        self,
        client: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        key_prefix: str,
        content_type: str,
    ) -> None:
        """A body of valid JSON under another media type is refused with 415."""
        headers = {**AUTH, "content-type": content_type}
        content = encode([reported("i-ct")])
        response = await refused(client, redis_client, key_prefix, content, headers)
        assert response.status_code == 415

    async def test_a_naive_datetime_in_a_source_is_named(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A nested datetime without zone names its full path."""
        body = [doc(INCIDENT, sources=[{"publisher": "x", "published_at": "2024-03-01T10:00"}])]
        response = await refused(client, redis_client, key_prefix, encode(body))
        assert (0, "sources[0].published_at") in fields_of(response)

    async def test_a_zoned_datetime_is_accepted(
        self, client: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """The same datetime with a zone is fine (the refusals above are about the zone)."""
        stamp = dt.datetime(2024, 3, 2, 10, 0, tzinfo=dt.timezone(dt.timedelta(hours=3)))
        body = [doc(statement("s-zoned"), issued_at=stamp.isoformat())]
        response = await client.post("/v1/events", content=encode(body), headers=AUTH)
        assert response.status_code == 202, response.text
