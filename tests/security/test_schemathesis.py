"""Generated requests against the service's own OpenAPI document (schemathesis).

The wired app (:func:`services.bootstrap.api`, on the test Redis under a prefix of its own)
runs under uvicorn in a thread; its ``/openapi.json`` is loaded with
``schemathesis.openapi.from_url`` and every operation is called with generated requests,
both valid by the schema (positive) and invalid (negative), with the token its role needs:
a feed token for ``POST /v1/events`` (generated events get that feed as their ``source``
so that valid ones reach the store), the operator token under ``/v1/admin`` and for
``/metrics``, and the reader
token elsewhere. Every response must not be a server error and must conform to the
documented responses (status code and body schema).

``GET /v1/live/{projection}`` is left out: for a real projection it is an endless stream.
CI: at least 1,000 requests; ``LEDGER_SOAK=1`` multiplies the examples by ten.
"""

from __future__ import annotations

import asyncio
import os
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis
import schemathesis
import uvicorn
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance, status_code_conformance

from services import bootstrap
from services.http.server import Server, bind
from services.settings import Settings, Token

SOAK = os.environ.get("LEDGER_SOAK") == "1"
SCALE = 10 if SOAK else 1
MIN_REQUESTS = 1000 * SCALE

FEED = "feed-sohr-token-0123456789abcdef"
READER = "reader-token-0123456789abcdef012"
OPERATOR = "operator-token-0123456789abcdef0"
TOKENS = (
    Token(role="feed", secret=FEED, feed="sohr"),
    Token(role="reader", secret=READER),
    Token(role="operator", secret=OPERATOR),
)
SKIPPED = {("GET", "/v1/live/{projection}")}

EXAMPLES: dict[str, tuple[int, int]] = {
    # operation → (positive, negative) examples; everything else gets DEFAULT_EXAMPLES
    "POST /v1/events": (300, 150),
}
DEFAULT_EXAMPLES = (40, 30)


class ThreadedServer:
    """The wired app under uvicorn in a thread with its own event loop."""

    def __init__(self, redis_url: str, prefix: str) -> None:
        self.redis_url, self.prefix = redis_url, prefix
        self.sock = bind("127.0.0.1", 0)
        self.port: int = self.sock.getsockname()[1]
        self.server: Server | None = None
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, name="api-under-test", daemon=True)
        self.error: BaseException | None = None

    @property
    def base_url(self) -> str:
        """Where the API answers."""
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc
            self.ready.set()

    async def _serve(self) -> None:
        settings = Settings(
            redis_url=self.redis_url, tokens=TOKENS, key_prefix=self.prefix, projectors=False
        )
        service = bootstrap.api(settings, projectors=False)
        config = uvicorn.Config(service.app, log_config=None, access_log=False, lifespan="on")
        self.server = Server(config)
        serving = asyncio.create_task(self.server.serve(sockets=[self.sock]))
        listening = asyncio.create_task(self.server.listening.wait())
        await asyncio.wait((listening, serving), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        self.ready.set()
        try:
            await serving
        finally:
            await service.client.aclose()

    def start(self) -> None:
        """Start serving; return once uvicorn listens."""
        self.thread.start()
        if not self.ready.wait(30) or self.error is not None:
            raise RuntimeError(f"the API did not start: {self.error!r}")

    def stop(self) -> None:
        """Stop uvicorn and wait for the thread."""
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture
def api(redis_url: str) -> Iterator[ThreadedServer]:
    """The API on the test Redis under a fresh prefix; the prefix's keys deleted after."""
    prefix = f"t-{uuid.uuid4().hex[:16]}"
    server = ThreadedServer(redis_url, prefix)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        with redis.Redis.from_url(redis_url) as client:
            keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.unlink(*keys[start : start + 500])


def token_for(method: str, path: str) -> str:
    """The token whose role the operation needs."""
    if method == "POST" and path == "/v1/events":
        return FEED
    if path.startswith("/v1/admin") or path == "/metrics":
        return OPERATOR
    return READER


def own_feed(body: Any) -> Any:
    """A generated body with every event's ``source`` set to the token's feed."""
    if isinstance(body, dict) and "source" in body:
        return {**body, "source": "sohr"}
    if isinstance(body, list):
        return [own_feed(item) for item in body]
    return body


class Tally:
    """Requests made per operation and responses per status."""

    def __init__(self) -> None:
        self.calls: dict[str, int] = {}
        self.statuses: dict[int, int] = {}


def exercise(
    operation: Any,
    *,
    mode: GenerationMode,
    examples: int,
    base_url: str,
    headers: dict[str, str],
    tally: Tally,
) -> None:
    """Call ``operation`` with ``examples`` generated requests and check every answer."""
    name = f"{operation.method.upper()} {operation.path}"
    checks = [not_a_server_error, status_code_conformance, response_schema_conformance]

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: Any) -> None:
        if name == "POST /v1/events" and mode is GenerationMode.POSITIVE:
            case.body = own_feed(case.body)
        response = case.call(base_url=base_url, headers=headers, timeout=10)
        tally.calls[name] = tally.calls.get(name, 0) + 1
        tally.statuses[response.status_code] = tally.statuses.get(response.status_code, 0) + 1
        case.validate_response(response, checks=checks)

    try:
        run()
    except Unsatisfiable:
        if mode is GenerationMode.POSITIVE:
            raise
        # nothing to break: an operation without parameters or body has no negative case


class TestGeneratedRequests:
    """Schemathesis finds no server error and no undocumented answer."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 600)
    def test_no_server_error_and_every_response_conforms(self, api: ThreadedServer) -> None:
        """≥ 1,000 generated requests over every operation: no 5xx, every answer documented."""
        schema = schemathesis.openapi.from_url(f"{api.base_url}/openapi.json")
        tally = Tally()
        operations = 0
        for result in schema.get_all_operations():
            operation = result.ok()  # type: ignore[union-attr]  # an Err raises here as it should
            method, path = operation.method.upper(), operation.path
            if (method, path) in SKIPPED:
                continue
            operations += 1
            name = f"{method} {path}"
            headers = {"Authorization": f"Bearer {token_for(method, path)}"}
            positive, negative = EXAMPLES.get(name, DEFAULT_EXAMPLES)
            for mode, examples in (
                (GenerationMode.POSITIVE, positive),
                (GenerationMode.NEGATIVE, negative),
            ):
                exercise(
                    operation,
                    mode=mode,
                    examples=examples * SCALE,
                    base_url=api.base_url,
                    headers=headers,
                    tally=tally,
                )
        calls, statuses = tally.calls, tally.statuses
        total = sum(calls.values())
        print(  # what was exercised, for the CI log
            f"\nschemathesis: operations={operations} requests={total} "
            f"statuses={sorted(statuses.items())}"
        )
        assert operations >= 10
        assert total >= MIN_REQUESTS
        assert not any(status >= 500 for status in statuses)
