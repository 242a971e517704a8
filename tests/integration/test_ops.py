"""Operator tools against a real Redis: status, verify, dead letters, over the CLI and HTTP.

Each test works under its own key prefix; the CLI is run in a worker thread (it runs its own
event loop) with the test's Redis URL and prefix in its environment.
"""

from __future__ import annotations

import asyncio
import gc
import json
import time
from collections.abc import AsyncIterator
from typing import cast

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from projections import PROJECTIONS, fold
from projections.common import docs_of
from projections.incident_docs import ROW_NAMES, IncidentView
from services.bootstrap import http_app
from services.ops.dead_letters import (
    DeadLetterError,
    DeadLetterNotFoundError,
    DeadLetterStillFailsError,
    dlq_drop,
    dlq_list,
    dlq_retry,
    dlq_show,
)
from services.ops.status import ledger_status
from services.ops.verify import verify
from services.projector.collector import COLLECTOR_THRESHOLDS
from services.projector.pool import ProjectorPool
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.codec import decode_doc, packed_doc
from services.views.generations import DAY_PART, span_of, view_keys
from services.views.redis import RedisViewStore, load_view
from tests.support import builders as f
from tests.support.cli import ledger
from tests.support.http import client_of
from tests.support.runner import FAST, read_log, skipped_letter
from tests.support.streams import added
from tests.support.streams import entries as stream_entries

DEADLINE = 30.0
INCIDENTS = PROJECTIONS["incidents"]
OPERATOR = "operator-token-0123456789"
READER = "reader-token-0123456789ab"


async def caught_up(client: aioredis.Redis, prefix: str) -> None:
    """Run the incidents projector until its view reaches the log's head."""
    pool = ProjectorPool(client, prefix=prefix, projections=[INCIDENTS], **FAST)
    async with asyncio.timeout(DEADLINE):
        await pool.run_until_caught_up()


class TestStatus:
    """``ledger status`` tells where every view, the log and Redis stand."""

    async def test_status_reports_views_log_and_redis(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """After a catch-up every view's lag is 0 and the log's ends are its first and last."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2"), f.revised("i-1")])
        await caught_up(redis_client, key_prefix)
        status = await ledger_status(redis_client, key_prefix, [INCIDENTS])
        log = await read_log(redis_client, key_prefix)
        (row,) = status.projections
        assert (row.name, row.generation, row.position, row.lag, row.pending) == (
            "incidents",
            0,
            log[-1].position,
            0,
            0,
        )
        assert len(row.consumers) == 1
        assert (status.log.length, status.log.first, status.log.last) == (
            3,
            log[0].position,
            log[-1].position,
        )
        assert status.redis.maxmemory_policy == "noeviction"
        assert status.redis.used_memory

    async def test_status_json_exits_2_when_a_lag_exceeds_max_lag(
        self, redis_url: str, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """With events and no projector the lag is the log's length: --max-lag 1 exits 2."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2"), f.reported("i-3")])
        result = await asyncio.to_thread(
            ledger, redis_url, key_prefix, "status", "--json", "--max-lag", "1"
        )
        assert result.exit_code == 2, result.output
        document = json.loads(result.stdout.splitlines()[0])
        lags = {p["name"]: p["lag"] for p in document["projections"]}
        assert lags == dict.fromkeys(PROJECTIONS, 3)
        assert document["log"]["length"] == 3
        ok = await asyncio.to_thread(ledger, redis_url, key_prefix, "status", "--max-lag", "3")
        assert ok.exit_code == 0, ok.output


class TestVerify:
    """``ledger verify`` compares a stored view with the pure fold up to its checkpoint."""

    async def test_verify_passes_on_a_view_the_runner_wrote(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A runner-built view equals the fold: no differences."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2"), f.merged("i-2", "i-1")])
        await caught_up(redis_client, key_prefix)
        result = await verify(redis_client, key_prefix, INCIDENTS)
        assert result.ok
        assert result.events == 3

    async def test_verify_catches_a_tampered_view_and_the_cli_exits_1(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """A document changed by hand is named with its stored and expected documents, both
        as JSON."""
        await redis_store.append([f.reported("i-1", 10), f.reported("i-2", 3)])
        await caught_up(redis_client, key_prefix)
        kind_key = view_keys(key_prefix, INCIDENTS).kinds["incident"]
        raw = cast("bytes", await redis_client.hget(kind_key, "i-1"))
        stored = msgspec.msgpack.decode(packed_doc(decode_doc(INCIDENTS, "incident", raw)))
        tampered = {**stored, ROW_NAMES["notes"]: "edited by hand"}
        await redis_client.hset(kind_key, "i-1", msgspec.msgpack.encode(tampered))

        result = await verify(redis_client, key_prefix, INCIDENTS)
        assert [(d.kind, d.id) for d in result.differences] == [("incident", "i-1")]
        difference = result.differences[0]
        assert difference.stored is not None
        assert difference.expected is not None
        assert json.loads(difference.stored) == tampered
        assert json.loads(difference.expected) == stored

        run = await asyncio.to_thread(ledger, redis_url, key_prefix, "verify", "incidents")
        assert run.exit_code == 1, run.output
        assert "incident/i-1" in run.stdout

    async def test_verify_catches_a_deleted_document(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A document missing from the view is a difference with nothing stored."""
        await redis_store.append([f.reported("i-1")])
        await caught_up(redis_client, key_prefix)
        await redis_client.hdel(view_keys(key_prefix, INCIDENTS).kinds["incident"], "i-1")
        result = await verify(redis_client, key_prefix, INCIDENTS)
        assert [(d.id, d.stored) for d in result.differences] == [("i-1", None)]

    async def test_verify_catches_a_listing_index_that_lost_an_id(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """An id taken out of its listing index by hand is named, with where it belongs, and
        the day whose count no longer matches its ids."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2")])
        await caught_up(redis_client, key_prefix)
        assert (await verify(redis_client, key_prefix, INCIDENTS)).ok
        state, _ = await RedisViewStore(redis_client, key_prefix).load(INCIDENTS)
        row = docs_of(state, "incident", IncidentView)["i-1"]
        place = INCIDENTS.listed["incident"](row)
        ix = f"{view_keys(key_prefix, INCIDENTS).kinds['incident']}:ix:{place.group}"
        await redis_client.zrem(f"{ix}:{place.day}:{DAY_PART}", "i-1")  # a span of 0

        result = await verify(redis_client, key_prefix, INCIDENTS)
        lost, count = result.differences
        assert (lost.kind, lost.id, lost.stored) == ("incident:ix", "i-1", None)
        assert lost.expected == f"{place.group} {place.day} {span_of(place)}"
        assert count.id == "*"
        assert "counts 2, lists 1" in (count.stored or "")


class TestFoldingCommands:
    """The commands that fold the whole log run with the projectors' collector thresholds."""

    @pytest.mark.parametrize("command", [["verify", "all"], ["replay", "alignment"]])
    async def test_a_folding_command_tunes_the_collector(
        self,
        redis_url: str,
        redis_store: RedisEventStore,
        key_prefix: str,
        command: list[str],
    ) -> None:
        """``ledger verify`` and ``ledger replay`` set :data:`COLLECTOR_THRESHOLDS` (the
        default young threshold of 700 cost a rebuild about a seventh of its CPU)."""
        await redis_store.append([f.reported("i-1"), f.statement("s-1")])
        before = gc.get_threshold()
        gc.set_threshold(700, 10, 10)
        try:
            run = await asyncio.to_thread(ledger, redis_url, key_prefix, *command)
            assert run.exit_code == 0, run.output
            assert gc.get_threshold() == COLLECTOR_THRESHOLDS
        finally:
            gc.set_threshold(*before)


class TestDeadLetters:
    """Dead letters are listed, retried into the live view, or dropped with a record."""

    async def test_retry_applies_the_entry_to_the_live_view_and_logs_it(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """While the projector runs, a retry adds the skipped event; later events still apply."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2")])
        await caught_up(redis_client, key_prefix)
        _, ident = await skipped_letter(redis_client, redis_store, key_prefix, "i-late")
        assert [letter.id for letter in await dlq_list(redis_client, key_prefix)] == [ident]
        assert not (await verify(redis_client, key_prefix, INCIDENTS)).ok

        pool = ProjectorPool(redis_client, prefix=key_prefix, projections=[INCIDENTS], **FAST)
        await pool.start()
        try:
            letter = await dlq_retry(redis_client, key_prefix, ident, by="test")
            assert letter.position
            await redis_store.append([f.reported("i-3"), f.revised("i-late", 9)])
            async with asyncio.timeout(DEADLINE):
                await pool.run_until_caught_up()
        finally:
            await pool.stop()

        assert await dlq_list(redis_client, key_prefix) == []
        (logged,) = await stream_entries(redis_client, Keys(key_prefix).dlq_log)
        fields = {k.decode(): v.decode() for k, v in logged[1].items()}
        assert (fields["action"], fields["dlq_id"], fields["by"]) == ("retry", ident, "test")
        docs, _ = await load_view(redis_client, key_prefix, INCIDENTS)
        assert docs == fold(INCIDENTS, await read_log(redis_client, key_prefix))
        assert (await verify(redis_client, key_prefix, INCIDENTS)).ok

    async def test_retry_of_an_entry_that_still_fails_changes_nothing(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """An entry that does not decode stays a dead letter, and the view stays as it was."""
        ident = await added(
            redis_client,
            Keys(key_prefix).dlq,
            {
                "projection": INCIDENTS.name,
                "version": str(INCIDENTS.version),
                "position": "1-0",
                "error_type": "CodecError",
                "error": "garbage",
                "deliveries": "3",
                "consumer": "c",
                "entry.type": "incident.reported",
                "entry.data": "{not json",
            },
        )
        with pytest.raises(DeadLetterStillFailsError):
            await dlq_retry(redis_client, key_prefix, ident.decode())
        assert len(await dlq_list(redis_client, key_prefix)) == 1
        assert not await redis_client.exists(Keys(key_prefix).dlq_log)

    async def test_drop_records_the_reason_and_removes_the_letter(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """A drop leaves a record with its reason and the entry; the letter is gone."""
        _, ident = await skipped_letter(redis_client, redis_store, key_prefix, "i-9")
        with pytest.raises(DeadLetterError):
            await dlq_drop(redis_client, key_prefix, ident, reason="  ")
        dropped = await dlq_drop(redis_client, key_prefix, ident, reason="duplicate of i-1")
        assert dropped.id == ident
        with pytest.raises(DeadLetterNotFoundError):
            await dlq_show(redis_client, key_prefix, ident)
        (logged,) = await stream_entries(redis_client, Keys(key_prefix).dlq_log)
        fields = {k.decode(): v.decode() for k, v in logged[1].items()}
        assert (fields["action"], fields["reason"], fields["position"]) == (
            "drop",
            "duplicate of i-1",
            dropped.position,
        )
        assert "entry.data" in fields

    async def test_cli_lists_shows_and_drops(
        self,
        redis_url: str,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """``ledger dlq list/show/drop`` work on the letters; an unknown id exits 1."""
        _, ident = await skipped_letter(redis_client, redis_store, key_prefix, "i-5")
        listed = await asyncio.to_thread(ledger, redis_url, key_prefix, "dlq", "list", "--json")
        assert [d["id"] for d in json.loads(listed.stdout)] == [ident]
        shown = await asyncio.to_thread(ledger, redis_url, key_prefix, "dlq", "show", ident)
        assert json.loads(shown.stdout)["entry"]["type"] == "incident.reported"
        dropped = await asyncio.to_thread(
            ledger, redis_url, key_prefix, "dlq", "drop", ident, "--reason", "test data"
        )
        assert dropped.exit_code == 0, dropped.output
        missing = await asyncio.to_thread(ledger, redis_url, key_prefix, "dlq", "retry", ident)
        assert missing.exit_code == 1


# --- HTTP --------------------------------------------------------------------------------------


@pytest.fixture
async def admin_http(
    redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client of an app with the operator routes, on the test's prefix."""
    tokens = (Token(role="operator", secret=OPERATOR), Token(role="reader", secret=READER))
    settings = Settings(tokens=tokens, key_prefix=key_prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as client:
        yield client


def _as(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class TestAdminHttp:
    """The operator routes answer operators only."""

    async def test_reader_token_is_refused(self, admin_http: httpx.AsyncClient) -> None:
        """A reader token gets 403 on an operator route; no token 401."""
        assert (await admin_http.get("/v1/admin/status", headers=_as(READER))).status_code == 403
        assert (await admin_http.get("/v1/admin/status")).status_code == 401

    async def test_status_and_background_replay(
        self,
        admin_http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """POST replay answers 202 and the rebuild ends done; status shows the new generation."""
        await redis_store.append([f.reported("i-1"), f.reported("i-2")])
        started = await admin_http.post("/v1/admin/replay/incidents", headers=_as(OPERATOR))
        assert started.status_code == 202, started.text
        deadline = time.monotonic() + DEADLINE
        while True:
            answer = await admin_http.get("/v1/admin/replay/incidents", headers=_as(OPERATOR))
            (row,) = answer.json()["replays"]
            if row["status"] == "done":
                break
            assert time.monotonic() < deadline, row
            await asyncio.sleep(0.01)
        assert row["record"]["generation"] == 1
        status = (await admin_http.get("/v1/admin/status", headers=_as(OPERATOR))).json()
        generations = {p["name"]: p["generation"] for p in status["projections"]}
        assert generations["incidents"] == 1
        unknown = await admin_http.post("/v1/admin/replay/nope", headers=_as(OPERATOR))
        assert unknown.status_code == 404

    async def test_dead_letters_over_http(
        self,
        admin_http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
    ) -> None:
        """List, retry, then drop (with and without a reason) dead letters over HTTP."""
        await redis_store.append([f.reported("i-1")])
        await caught_up(redis_client, key_prefix)
        _, first = await skipped_letter(redis_client, redis_store, key_prefix, "i-7")
        _, second = await skipped_letter(redis_client, redis_store, key_prefix, "i-8")
        listed = (await admin_http.get("/v1/admin/dlq", headers=_as(OPERATOR))).json()
        assert [d["id"] for d in listed["dead_letters"]] == [first, second]
        retried = await admin_http.post(f"/v1/admin/dlq/{first}/retry", headers=_as(OPERATOR))
        assert retried.status_code == 200, retried.text
        no_reason = await admin_http.post(
            f"/v1/admin/dlq/{second}/drop", headers=_as(OPERATOR), content=b"{}"
        )
        assert no_reason.status_code == 422
        dropped = await admin_http.post(
            f"/v1/admin/dlq/{second}/drop", headers=_as(OPERATOR), json={"reason": "test"}
        )
        assert dropped.status_code == 200, dropped.text
        gone = await admin_http.post(f"/v1/admin/dlq/{first}/retry", headers=_as(OPERATOR))
        assert gone.status_code == 404
        assert await dlq_list(redis_client, key_prefix) == []
