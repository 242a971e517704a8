"""What tools other people wrote make of our documents: Prometheus, OpenAPI, AsyncAPI clients.

The wired service (inbox and projectors) answers; ``promtool check metrics`` reads
``/metrics``, ``openapi-python-client`` generates a client from ``/openapi.json`` (into the
test's directory) that publishes and reads, and ``asyncapi validate`` checks
``/asyncapi.json``.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from events import encode
from services.reference import MONITOR_FEED
from tests.support.builders import reported
from tests.support.doc_tools import asyncapi_cli, openapi_python_client, promtool
from tests.support.service import FEED_TOKENS, METRICS, READER, serving
from tests.support.waiting import until

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@pytest.fixture
async def service_url(redis_url: str, key_prefix: str) -> AsyncIterator[str]:
    """The wired service on this test's prefix."""
    async with serving(redis_url, key_prefix) as url:
        yield url


async def run(args: list[str], *more: str, **options: Any) -> subprocess.CompletedProcess[Any]:
    """``subprocess.run(args + more)`` off the event loop (which serves the service)."""

    def go() -> subprocess.CompletedProcess[Any]:
        return subprocess.run([*args, *more], capture_output=True, check=False, **options)

    return await asyncio.to_thread(go)


def bearer(token: str) -> dict[str, str]:
    """The header Prometheus' ``authorization`` setting (and every client) sends."""
    return {"Authorization": f"Bearer {token}"}


async def get(url: str, path: str, token: str | None = None) -> httpx.Response:
    """``GET path`` of the service, with ``token`` when given."""
    async with httpx.AsyncClient(base_url=url) as http:
        return await http.get(path, headers=bearer(token) if token else {})


class TestMetrics:
    async def test_a_metrics_token_reads_the_text_format_with_one_charset(
        self, service_url: str, redis_url: str, key_prefix: str
    ) -> None:
        """200, ``text/plain; version=0.0.4; charset=utf-8`` once, with the per-view lag in
        entries and seconds and the inbox counters."""
        answer = await get(service_url, "/metrics", METRICS)
        assert answer.status_code == 200
        assert answer.headers.get_list("content-type") == [PROMETHEUS_TEXT]
        text = answer.text
        assert 'ledger_projection_lag{projection="incidents"}' in text
        assert 'ledger_projection_lag_seconds{projection="incidents"}' in text
        assert "# TYPE ledger_inbox_entries_total counter" in text

    async def test_only_metrics_and_operator_roles_may_read_them(self, service_url: str) -> None:
        """A reader or feed token is 403, no token 401."""
        assert (await get(service_url, "/metrics", READER)).status_code == 403
        assert (await get(service_url, "/metrics", FEED_TOKENS[MONITOR_FEED])).status_code == 403
        assert (await get(service_url, "/metrics")).status_code == 401

    async def test_the_output_passes_promtool(self, service_url: str) -> None:
        """``promtool check metrics`` finds no problem in what a scrape reads."""
        tool = promtool()
        body = (await get(service_url, "/metrics", METRICS)).content
        checked = await run([tool, "check", "metrics"], input=body)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert checked.stdout.strip() == b""  # no lint finding either


class TestOpenAPI:
    async def test_every_route_but_the_probes_requires_the_bearer_scheme(
        self, service_url: str
    ) -> None:
        """The scheme is declared and named by each operation; /healthz and /readyz need none."""
        doc = (await get(service_url, "/openapi.json")).json()
        assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                expected: list[Any] = (
                    [] if path in ("/healthz", "/readyz") else [{"bearerAuth": []}]
                )
                assert operation["security"] == expected, f"{method} {path}"

    async def test_metrics_is_documented(self, service_url: str) -> None:
        """``GET /metrics`` is in the document, its answer the Prometheus text format."""
        doc = (await get(service_url, "/openapi.json")).json()
        operation = doc["paths"]["/metrics"]["get"]
        assert "metrics" in operation["description"]
        assert "text/plain; version=0.0.4" in operation["responses"]["200"]["content"]

    async def test_a_generated_client_publishes_and_reads(
        self, service_url: str, tmp_path: Path
    ) -> None:
        """openapi-python-client's client of /openapi.json publishes an event with a feed
        token and reads the incident back with a reader token."""
        spec = tmp_path / "openapi.json"
        spec.write_bytes((await get(service_url, "/openapi.json")).content)
        out = str(tmp_path / "ledger_api")
        generated = await run(
            [openapi_python_client(), "generate", "--path", str(spec), "--meta", "none"],
            "--output-path",
            out,
        )
        assert generated.returncode == 0, generated.stdout + generated.stderr
        assert (tmp_path / "ledger_api" / "client.py").exists()
        with imported(tmp_path, "ledger_api") as api:
            incident = f"oa-{uuid.uuid4().hex[:8]}"
            event = msgspec.json.decode(encode(reported(incident, source=MONITOR_FEED)))
            feed = api["client"].AuthenticatedClient(service_url, token=FEED_TOKENS[MONITOR_FEED])
            submit = api["api.ingest.v1_events_submit_events"]
            body = api["models"].IncidentReported.from_dict(event)
            sent = await submit.asyncio_detailed(client=feed, body=body)
            assert sent.status_code == 202, sent.content
            assert [r.status for r in sent.parsed.results] == ["appended"]
            reader = api["client"].AuthenticatedClient(service_url, token=READER)
            read = api["api.read.v1_incidents_incident_id_get_incident"]

            async def visible() -> bool:
                answer = await read.asyncio_detailed(incident, client=reader)
                return int(answer.status_code) == 200

            await until(visible, "the incident read by the generated client", within=15)
            answer = await read.asyncio_detailed(incident, client=reader)
            assert answer.parsed.incident.feed == MONITOR_FEED


class imported:  # noqa: N801  # used as a context manager, like contextlib's
    """The generated package ``name`` under ``root`` imported (its modules by dotted
    suffix), removed from ``sys.modules`` and ``sys.path`` afterwards."""

    def __init__(self, root: Path, name: str) -> None:
        self.root, self.name = str(root), name

    def __enter__(self) -> dict[str, Any]:
        sys.path.insert(0, self.root)
        suffixes = (
            "client",
            "models",
            "api.ingest.v1_events_submit_events",
            "api.read.v1_incidents_incident_id_get_incident",
        )
        return {s: importlib.import_module(f"{self.name}.{s}") for s in suffixes}

    def __exit__(self, *_: object) -> None:
        sys.path.remove(self.root)
        for module in [m for m in sys.modules if m.split(".")[0] == self.name]:
            del sys.modules[module]


async def validate_asyncapi(
    document: dict[str, Any], home: Path
) -> subprocess.CompletedProcess[Any]:
    """``asyncapi validate`` of ``document`` (written under ``home``, also the CLI's home)."""
    path = home / "asyncapi.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    environment = {"HOME": str(home), "PATH": "/usr/bin:/bin", "ASYNCAPI_METRICS": "false"}
    return await run(
        [asyncapi_cli(), "validate", str(path)], text=True, env=environment, timeout=120
    )


class TestAsyncAPI:
    async def test_the_document_needs_a_token_and_names_no_server(
        self, service_url: str, redis_url: str
    ) -> None:
        """401 without a token; with any token, a document without Redis's host or port."""
        assert (await get(service_url, "/asyncapi.json")).status_code == 401
        answer = await get(service_url, "/asyncapi.json", FEED_TOKENS[MONITOR_FEED])
        assert answer.status_code == 200
        doc = answer.json()
        assert "servers" not in doc
        port = str(httpx.URL(redis_url).port)
        assert f":{port}" not in answer.text
        assert doc["channels"]["feedInbox"]["address"].endswith(":inbox:{feed}")

    async def test_the_page_is_served_from_the_package(self, service_url: str) -> None:
        """``/asyncapi`` is an HTML page whose only script is this service's own."""
        page = await get(service_url, "/asyncapi")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert '<script src="/static/asyncapi.js"' in page.text
        assert "http://" not in page.text
        assert "https://" not in page.text
        assert (await get(service_url, "/static/asyncapi.js")).status_code == 200

    async def test_the_document_passes_the_asyncapi_validator(
        self, service_url: str, tmp_path: Path
    ) -> None:
        """``asyncapi validate`` accepts it, and refuses a copy with a broken reference."""
        doc = (await get(service_url, "/asyncapi.json", READER)).json()
        valid = await validate_asyncapi(doc, tmp_path)
        assert valid.returncode == 0, valid.stdout + valid.stderr
        broken = json.loads(json.dumps(doc))
        broken["operations"]["receiveSubmission"]["action"] = "consume"
        invalid = await validate_asyncapi(broken, tmp_path)
        assert invalid.returncode != 0
