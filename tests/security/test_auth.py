"""Who may publish what over HTTP, and that no token ever reaches a log line."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import msgspec
import pytest
import structlog
from structlog.testing import capture_logs

import events
from services.bootstrap import http_app
from services.logging import configure_logging
from services.settings import Settings, Token
from services.store.memory import InMemoryEventStore
from tests.support.builders import reported
from tests.support.http import client_of

SOHR = "feed-sohr-secret-0123456789abcdef"
ACLED = "feed-acled-secret-0123456789abcde"
READER = "reader-secret-0123456789abcdefgh"
OPERATOR = "operator-secret-0123456789abcdef"
METRICS = "metrics-secret-0123456789abcdefg"
UNKNOWN = "unknown-secret-0123456789abcdefg"
TOKENS = (
    Token(role="feed", secret=SOHR, feed="sohr"),
    Token(role="feed", secret=ACLED, feed="acled"),
    Token(role="reader", secret=READER),
    Token(role="operator", secret=OPERATOR),
    Token(role="metrics", secret=METRICS),
)
SECRETS = (SOHR, ACLED, READER, OPERATOR, METRICS, UNKNOWN)


@pytest.fixture
async def client(memory_store: InMemoryEventStore) -> AsyncIterator[httpx.AsyncClient]:
    """A client of the API over an in-memory store (authorisation does not need Redis)."""
    app = http_app(Settings(tokens=TOKENS), store=memory_store)
    async with client_of(app) as http:
        yield http


async def publish(client: httpx.AsyncClient, token: str | None, *batch: Any) -> httpx.Response:
    headers = {"content-type": "application/json"}
    if token is not None:
        headers["authorization"] = f"Bearer {token}"
    return await client.post(
        "/v1/events", content=msgspec.json.encode(list(batch)), headers=headers
    )


class TestAuthentication:
    async def test_missing_token_answers_401_with_bearer_challenge(
        self, client: httpx.AsyncClient
    ) -> None:
        """No Authorization header: 401 and WWW-Authenticate: Bearer."""
        response = await publish(client, None, reported())
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"] == "unauthorized"

    async def test_unknown_token_answers_401(self, client: httpx.AsyncClient) -> None:
        """A token nobody configured is refused."""
        response = await publish(client, UNKNOWN, reported())
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    @pytest.mark.parametrize("header", [f"Basic {SOHR}", SOHR, "Bearer", "Bearer  "])
    async def test_malformed_authorization_answers_401(
        self, client: httpx.AsyncClient, header: str
    ) -> None:
        """Only ``Bearer <token>`` is understood; a bare or Basic secret is not accepted."""
        response = await client.post(
            "/v1/events",
            content=events.encode(reported()),
            headers={"authorization": header, "content-type": "application/json"},
        )
        assert response.status_code == 401

    async def test_401_comes_before_looking_at_the_body(self, client: httpx.AsyncClient) -> None:
        """Without a token even a broken body answers 401, not 422 or 415."""
        response = await client.post("/v1/events", content=b"{oops", headers={})
        assert response.status_code == 401


class TestAuthorization:
    async def test_feed_token_publishes_its_own_feed(
        self, client: httpx.AsyncClient, memory_store: InMemoryEventStore
    ) -> None:
        """A feed token may publish events whose source is its feed."""
        response = await publish(client, SOHR, reported("i-1"), reported("i-2"))
        assert response.status_code == 202
        assert await memory_store.length() == 2

    async def test_feed_token_for_another_source_answers_403_naming_the_index(
        self, client: httpx.AsyncClient, memory_store: InMemoryEventStore
    ) -> None:
        """An event of another feed in a batch refuses the whole batch, naming that event."""
        response = await publish(client, SOHR, reported("i-1"), reported("i-2", source="acled"))
        assert response.status_code == 403
        answer = response.json()
        assert (answer["error"], answer["index"]) == ("forbidden", 1)
        assert "acled" in answer["message"]
        assert await memory_store.length() == 0

    @pytest.mark.parametrize("token", [READER, OPERATOR], ids=["reader", "operator"])
    async def test_reader_and_operator_tokens_cannot_publish(
        self, client: httpx.AsyncClient, memory_store: InMemoryEventStore, token: str
    ) -> None:
        """Only feed tokens publish: every event is attributable to one feed."""
        response = await publish(client, token, reported())
        assert response.status_code == 403
        assert await memory_store.length() == 0

    @pytest.mark.parametrize("token", [METRICS, OPERATOR], ids=["metrics", "operator"])
    async def test_metrics_and_operator_tokens_read_metrics(
        self, client: httpx.AsyncClient, token: str
    ) -> None:
        """Metrics are for the metrics role (what Prometheus scrapes with) and operators."""
        response = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 200

    @pytest.mark.parametrize("token", [READER, SOHR], ids=["reader", "feed"])
    async def test_reader_and_feed_tokens_may_not_read_metrics(
        self, client: httpx.AsyncClient, token: str
    ) -> None:
        """A reader or feed token is refused: metrics have a role of their own."""
        response = await client.get("/metrics", headers={"authorization": f"Bearer {token}"})
        assert response.status_code == 403


class TestLogsNeverHoldTokens:
    async def test_no_secret_in_structured_logs_of_failures_and_successes(
        self, client: httpx.AsyncClient
    ) -> None:
        """Across accepted, refused and unauthenticated requests no log entry holds a token."""
        with capture_logs() as entries:
            await publish(client, SOHR, reported("i-1"))
            await publish(client, SOHR, reported("i-2", source="acled"))
            await publish(client, ACLED, reported("i-3", source="acled"))
            await publish(client, READER, reported("i-4"))
            await publish(client, OPERATOR, reported("i-5"))
            await publish(client, UNKNOWN, reported("i-6"))
            await publish(client, None, reported("i-7"))
            await client.post("/v1/events", content=b"{", headers={"authorization": SOHR})
            await client.get("/metrics", headers={"authorization": f"Bearer {METRICS}"})
            await client.get("/metrics", headers={"authorization": f"Bearer {UNKNOWN}"})
        assert len(entries) >= 10  # the requests were logged at all
        text = repr(entries)
        for secret in SECRETS:
            assert secret not in text

    def test_rendered_lines_redact_bearer_values_and_configured_secrets(
        self, configured_logging: io.StringIO
    ) -> None:
        """Whatever a caller passes, the rendered line holds no token."""
        log = structlog.get_logger("test")
        log.info("login", authorization=f"Bearer {SOHR}", note=f"saw {READER} in a header")
        log.info(f"header was Bearer {UNKNOWN}", nested={"token": OPERATOR, "ok": "visible"})
        logging.getLogger("uvicorn.error").warning("stdlib says %s", ACLED)
        output = configured_logging.getvalue()
        for secret in SECRETS:
            assert secret not in output
        lines = [json.loads(line) for line in output.splitlines()]
        assert lines[0]["event"] == "login"
        assert lines[1]["nested"]["ok"] == "visible"
        assert lines[2]["logger"] == "uvicorn.error"
        assert "<redacted>" in lines[2]["event"]


@pytest.fixture
def configured_logging() -> Iterator[io.StringIO]:
    """The real logging set-up (JSON), writing into a buffer; restored afterwards."""
    buffer = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    configure_logging(json=True, secrets=[SOHR, ACLED, READER, OPERATOR])
    ours = next(h for h in root.handlers if h.get_name() == "ledger")
    assert isinstance(ours, logging.StreamHandler)
    ours.setStream(buffer)
    try:
        yield buffer
    finally:
        root.handlers, level = saved
        root.setLevel(level)
        structlog.reset_defaults()
