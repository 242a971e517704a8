"""Erasure in an append-only log, end to end over a real Redis.

Events with distinctive private text (notes, a source url, a speaker's name) are ingested
through the HTTP API into the sealing store; projectors fold them; the API shows the text.
Then the incident is erased through ``POST /v1/admin/erase`` and the statement through
``ledger erase``: every key under the test's prefix is read back (strings, hashes, sets,
lists, sorted sets, streams field by field, and each key's ``DUMP``) and the plaintext
appears nowhere, before and after; the API, the export and a replay show ``"[erased]"``; the
log grew by exactly one redaction per erasure.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import ERASED, CodecError, Source, Speaker, entry_data
from projections import PROJECTIONS
from services.bootstrap import http_app
from services.ingest.inbox import build_inbox
from services.ops.transfer import export_events
from services.projector.replay import Replay
from services.settings import Settings
from services.store.keyring import RedisKeyring
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.store.sealing import SealingStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import FEED, OPERATOR, READER, TOKENS

DEADLINE = 20.0
ROOT = Path(__file__).resolve().parents[2]

NOTES = "Witness Zebulon Quartermaine-Example saw the second strike"
URL = "https://example.org/people/zebulon-quartermaine-example"
NAME = "Envoy Ottoline Fairweather-Example"
SECRETS = [NOTES, URL, NAME, "Quartermaine", "Fairweather"]
"""The plaintext (and distinctive parts of it) that must never rest in Redis."""

TIMELINE = "/v1/projections/country-stance/FRA/timeline"


def _auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def _events() -> list[Any]:
    report = f.reported(
        "i-1",
        notes=NOTES,
        sources=[Source(publisher="SOHR", url=URL), Source(publisher="Local radio")],
    )
    statement = f.statement(
        "s-1",
        speakers=[Speaker(country="FRA", name=NAME)],
        sources=[Source(publisher="France Diplomatie", url=URL)],
        incident_ids=["i-1"],
    )
    return [report, statement]


@pytest.fixture
def sealing(redis_client: aioredis.Redis, key_prefix: str) -> SealingStore:
    """The sealing store over this test's Redis store and Redis keyring."""
    return SealingStore(
        RedisEventStore(redis_client, prefix=key_prefix), RedisKeyring(redis_client, key_prefix)
    )


@pytest.fixture
async def http(
    sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of the whole API (ingest, read, operator routes) over the sealing store."""
    settings = Settings(tokens=TOKENS, key_prefix=key_prefix)
    app = http_app(settings, store=sealing, client=redis_client, sealing=sealing)
    async with client_of(app) as client:
        yield client


async def ingest(http: httpx.AsyncClient) -> None:
    """Publish the events through POST /v1/events as the feed ``sohr``."""
    body = msgspec.json.encode(_events())
    answer = await http.post(
        "/v1/events",
        content=body,
        headers={**_auth(FEED), "content-type": "application/json"},
    )
    assert answer.status_code == 202, answer.text


async def everything_in_redis(client: aioredis.Redis, prefix: str) -> bytes:
    """Every key under ``prefix`` with every value it holds, and its DUMP, as one blob."""
    chunks: list[bytes] = []

    def add(value: Any) -> None:
        if isinstance(value, bytes):
            chunks.append(value)
        elif isinstance(value, str):
            chunks.append(value.encode())
        elif isinstance(value, dict):
            for k, v in value.items():
                add(k)
                add(v)
        elif isinstance(value, list | tuple | set):
            for item in value:
                add(item)
        elif value is not None:
            chunks.append(str(value).encode())

    keys = [k async for k in client.scan_iter(match=f"{prefix}*", count=1000)]
    assert keys, "the test wrote nothing under its prefix"
    for key in keys:
        add(key)
        raw_kind = await client.type(key)
        kind = raw_kind.decode() if isinstance(raw_kind, bytes) else str(raw_kind)
        if kind == "string":
            add(await client.get(key))
        elif kind == "hash":
            add(await client.hgetall(key))
        elif kind == "list":
            add(await client.lrange(key, 0, -1))
        elif kind == "set":
            add(await client.smembers(key))
        elif kind == "zset":
            add(await client.zrange(key, 0, -1, withscores=True))
        elif kind == "stream":
            entries: Any = await client.xrange(key, "-", "+")
            add(entries)
            for _, fields in entries:  # compressed entries: their events' JSON too
                with contextlib.suppress(CodecError):
                    add(entry_data(fields))
        else:
            pytest.fail(f"unexpected key type {kind} of {key!r}")
        add(await client.dump(key))
    return b"\n".join(chunks)


async def assert_no_plaintext(client: aioredis.Redis, prefix: str) -> None:
    """No copy of the private text rests anywhere under ``prefix``."""
    blob = await everything_in_redis(client, prefix)
    for secret in SECRETS:
        assert secret.encode() not in blob, f"{secret!r} rests in Redis"


async def export(client: aioredis.Redis, prefix: str) -> list[dict[str, Any]]:
    """The export of the log (with the keyring), as parsed lines."""
    out = io.BytesIO()
    await export_events(client, prefix, out, keyring=RedisKeyring(client, prefix))
    return [json.loads(line) for line in out.getvalue().splitlines()]


def erase_with_cli(redis_url: str, prefix: str, kind: str, ident: str) -> str:
    """Run ``ledger erase`` in a child process; its stderr."""
    env = {
        **os.environ,
        "LEDGER_REDIS_URL": redis_url,
        "LEDGER_KEY_PREFIX": prefix,
        "LEDGER_TOKENS": "",
        "LEDGER_KEYRING": "redis",  # the keyring of the test's sealing store
    }
    done = subprocess.run(
        [sys.executable, "-m", "services.cli", "erase", kind, ident, "--reason", "request"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stderr


class TestErasure:
    """Before and after an erasure: API, views, export, replay, and every byte in Redis."""

    async def test_erasure_leaves_no_plaintext_and_shows_erased_everywhere(
        self,
        http: httpx.AsyncClient,
        sealing: SealingStore,
        redis_client: aioredis.Redis,
        redis_url: str,
        key_prefix: str,
    ) -> None:
        """The whole story: sealed at rest, shown to readers, then erased for good."""
        await ingest(http)
        await catch_up(redis_client, key_prefix, within=DEADLINE)

        # before: readers see the text; Redis holds none of it
        incident = (await http.get("/v1/incidents/i-1", headers=_auth(READER))).json()
        assert incident["incident"]["notes"] == NOTES
        assert incident["incident"]["sources"][0]["url"] == URL
        assert incident["incident"]["erased"] is False
        timeline = (await http.get(TIMELINE, headers=_auth(READER))).json()
        assert [e["speaker"] for e in timeline["entries"]] == [NAME]
        exported = await export(redis_client, key_prefix)
        assert exported[0]["event"]["notes"] == NOTES
        assert exported[1]["event"]["speakers"][0]["name"] == NAME
        await assert_no_plaintext(redis_client, key_prefix)
        length = await sealing.length()

        # erase: the incident through the operator API, the statement through the CLI
        answer = await http.post(
            "/v1/admin/erase/incident/i-1",
            json={"reason": "erasure request"},
            headers=_auth(OPERATOR),
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["key_destroyed"] is True
        assert await sealing.length() == length + 1
        assert "data key destroyed" in erase_with_cli(redis_url, key_prefix, "statement", "s-1")
        assert await sealing.length() == length + 2
        await catch_up(redis_client, key_prefix, within=DEADLINE)

        # after: the API shows [erased] where the text was
        view = (await http.get("/v1/incidents/i-1", headers=_auth(READER))).json()["incident"]
        assert view["notes"] == ERASED
        assert view["sources"][0]["url"] == ERASED
        assert view["sources"][1].get("url") is None
        assert view["erased"] is True
        assert view["history"][-1]["type"] == "incident.redacted"
        assert view["fatalities"]["best"] == 10  # figures stay
        timeline = (await http.get(TIMELINE, headers=_auth(READER))).json()
        assert [(e["speaker"], e["erased"]) for e in timeline["entries"]] == [(ERASED, True)]
        as_of = dt.datetime.now(dt.UTC).isoformat()
        past_answer = await http.get(TIMELINE, params={"as_of": as_of}, headers=_auth(READER))
        assert past_answer.status_code == 200, past_answer.text
        past = past_answer.json()
        assert [e["speaker"] for e in past["entries"]] == [ERASED]

        # export after erasure
        exported = await export(redis_client, key_prefix)
        assert len(exported) == length + 2
        assert exported[0]["event"]["notes"] == ERASED
        assert "url" not in exported[0]["event"]["sources"][0]
        assert exported[1]["event"]["speakers"][0]["name"] == ERASED
        assert [line["type"] for line in exported[-2:]] == [
            "incident.redacted",
            "statement.redacted",
        ]
        assert not any(s in json.dumps(exported) for s in SECRETS)

        # replay after erasure rebuilds the views without the text
        for name in ("incidents", "country-stance"):
            record = await Replay(redis_client, PROJECTIONS[name], prefix=key_prefix).run()
            assert record.state == "done"
        view = (await http.get("/v1/incidents/i-1", headers=_auth(READER))).json()["incident"]
        assert view["notes"] == ERASED
        assert view["erased"] is True

        # and no copy of the plaintext survives anywhere under the prefix
        await assert_no_plaintext(redis_client, key_prefix)


class TestEraseRoute:
    """POST /v1/admin/erase: who may, and what it answers."""

    async def test_a_reader_may_not_erase(self, http: httpx.AsyncClient) -> None:
        """403 for a reader token; nothing is appended."""
        await ingest(http)
        answer = await http.post(
            "/v1/admin/erase/incident/i-1", json={"reason": "r"}, headers=_auth(READER)
        )
        assert answer.status_code == 403

    async def test_an_unknown_incident_is_404(
        self, http: httpx.AsyncClient, sealing: SealingStore
    ) -> None:
        """Erasing what was never recorded answers 404 and writes nothing."""
        answer = await http.post(
            "/v1/admin/erase/incident/nope", json={"reason": "r"}, headers=_auth(OPERATOR)
        )
        assert answer.status_code == 404
        assert await sealing.length() == 0

    @pytest.mark.parametrize(
        ("path", "body"),
        [
            ("/v1/admin/erase/place/i-1", {"reason": "r"}),
            ("/v1/admin/erase/incident/i-1", {}),
            ("/v1/admin/erase/incident/i-1", {"reason": ""}),
        ],
    )
    async def test_a_bad_kind_or_reason_is_422(
        self, http: httpx.AsyncClient, path: str, body: dict[str, str]
    ) -> None:
        """An unknown kind, a missing or empty reason: 422."""
        await ingest(http)
        answer = await http.post(path, json=body, headers=_auth(OPERATOR))
        assert answer.status_code == 422

    async def test_a_feed_cannot_publish_a_redaction(self, http: httpx.AsyncClient) -> None:
        """A redaction from a feed is refused (422): only erasure appends one."""
        await ingest(http)
        forged = {
            "type": "incident.redacted",
            "event_id": "6c1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e01",
            "source": "sohr",
            "incident_id": "i-1",
            "reason": "not an operator",
        }
        answer = await http.post(
            "/v1/events",
            content=json.dumps(forged),
            headers={**_auth(FEED), "content-type": "application/json"},
        )
        assert answer.status_code == 422
        assert answer.json()["errors"][0]["field"] == "type"


class TestInboxLeavesNoText:
    """The inbox deletes a handled submission: its raw text does not rest in the stream."""

    async def test_acknowledged_entries_are_deleted(
        self, redis_client: aioredis.Redis, redis_url: str, key_prefix: str, sealing: SealingStore
    ) -> None:
        """After the ack of a handled entry, the inbox stream no longer holds it."""
        keys = Keys(key_prefix)
        settings = Settings(key_prefix=key_prefix, inbox_feeds=("sohr",))
        inbox = build_inbox(settings, sealing, redis_url)
        try:
            await inbox.ensure_group("sohr")
            stream = keys.inbox_of("sohr")
            entry = await redis_client.xadd(stream, {"event": NOTES})
            await inbox.outcomes.ack(
                stream, [entry if isinstance(entry, bytes) else entry.encode()]
            )  # the step every handled entry ends with
            assert await redis_client.xlen(stream) == 0
        finally:
            await inbox._client.aclose()
