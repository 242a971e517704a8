"""Named, audited access: every token may carry a name, and the audit trail shows it.

An analyst named ``alice`` reads exact figures; a reader reads an incident's decrypted notes;
an operator named ``ops-1`` reads dead letters over HTTP and exports the log with ``ledger
export`` (its token in ``LEDGER_OPERATOR_TOKEN``): each leaves an audit entry naming the
token, and the export file is readable by its owner only.
"""

from __future__ import annotations

import asyncio
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from events import VictimLine
from services.bootstrap import http_app
from services.protection.audit import read_audit
from services.settings import Settings, parse_tokens
from services.store.keyring import RedisKeyring
from services.store.redis import RedisEventStore
from services.store.sealing import SealingStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up

ALICE = "analyst-alice-0123456789abcdef"
OPS = "operator-ops-1-0123456789abcdef"
READER = "reader-plain-0123456789abcdef0"
FEED = "feed-sohr-named-0123456789abcd"
TOKENS_ENV = f"analyst:alice={ALICE},operator:ops-1={OPS},reader={READER},feed:sohr={FEED}"
NOTES = "Witness Cordelia Example-Name saw it"


@pytest.fixture
def sealing(redis_client: aioredis.Redis, key_prefix: str) -> SealingStore:
    """The sealing store with the Redis keyring, as the CLI below is told to use."""
    return SealingStore(
        RedisEventStore(redis_client, prefix=key_prefix), RedisKeyring(redis_client, key_prefix)
    )


@pytest.fixture
async def http(
    sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[httpx.AsyncClient]:
    """The API with named tokens, the incident published and folded."""
    settings = Settings(tokens=parse_tokens(TOKENS_ENV), key_prefix=key_prefix)
    app = http_app(settings, store=sealing, client=redis_client, sealing=sealing)
    async with client_of(app) as client:
        victims = [VictimLine(community="druze", status="civilian", low=9, best=9, high=9)]
        body = msgspec.json.encode([f.reported("i-1", best=9, victims=victims, notes=NOTES)])
        headers = {"authorization": f"Bearer {FEED}", "content-type": "application/json"}
        assert (await client.post("/v1/events", content=body, headers=headers)).status_code == 202
        await catch_up(redis_client, key_prefix)
        yield client


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class TestNamedAudit:
    async def test_reads_of_exact_figures_text_and_dead_letters_name_the_token(
        self, http: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """alice's exact figures, the reader's decrypted notes and ops-1's dead letters are
        each recorded under the token's name."""
        victims = await http.get("/v1/projections/community-victims", headers=auth(ALICE))
        assert victims.status_code == 200
        incident = await http.get("/v1/incidents/i-1", headers=auth(READER))
        assert incident.json()["incident"]["notes"] == NOTES
        assert (await http.get("/v1/admin/dlq", headers=auth(OPS))).status_code == 200
        trail = [(e.token, e.endpoint) for e in await read_audit(redis_client, key_prefix)]
        assert trail == [
            ("analyst:alice", "GET /v1/projections/community-victims"),
            ("reader", "GET /v1/incidents/{incident_id}"),
            ("operator:ops-1", "GET /v1/admin/dlq"),
        ]

    async def test_an_export_leaves_an_entry_naming_the_token_and_a_0600_file(
        self,
        http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        redis_url: str,
        key_prefix: str,
        tmp_path: Path,
    ) -> None:
        """ledger export with LEDGER_OPERATOR_TOKEN: the entry names operator:ops-1; the file
        holds the decrypted notes and is mode 0600; a token that is not an operator's is
        refused and nothing is exported."""
        from services.cli import main

        out = tmp_path / "events.jsonl"
        env = {
            "LEDGER_REDIS_URL": redis_url,
            "LEDGER_KEY_PREFIX": key_prefix,
            "LEDGER_TOKENS": TOKENS_ENV,
            "LEDGER_KEYRING": "redis",
            "LEDGER_OPERATOR_TOKEN": OPS,
        }
        runner = CliRunner()
        done = await asyncio.to_thread(runner.invoke, main, ["export", "--out", str(out)], env=env)
        assert done.exit_code == 0, done.output
        assert NOTES in out.read_text()
        assert stat.S_IMODE(out.stat().st_mode) == 0o600
        (entry,) = await read_audit(redis_client, key_prefix)
        assert (entry.token, entry.endpoint, entry.filters["out"]) == (
            "operator:ops-1",
            "ledger export",
            str(out),
        )
        other = tmp_path / "other.jsonl"
        refused = await asyncio.to_thread(
            runner.invoke,
            main,
            ["export", "--out", str(other)],
            env={**env, "LEDGER_OPERATOR_TOKEN": READER},
        )
        assert refused.exit_code != 0
        assert not other.exists()
        assert len(await read_audit(redis_client, key_prefix)) == 1

    async def test_a_dead_letter_listing_on_the_command_line_is_audited(
        self,
        http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        redis_url: str,
        key_prefix: str,
    ) -> None:
        """ledger dlq list leaves an entry naming LEDGER_OPERATOR_TOKEN's token, or, without
        it, the OS user as cli:<user>."""
        from services.cli import main

        env = {
            "LEDGER_REDIS_URL": redis_url,
            "LEDGER_KEY_PREFIX": key_prefix,
            "LEDGER_TOKENS": TOKENS_ENV,
            "LEDGER_OPERATOR_TOKEN": OPS,
        }
        runner = CliRunner()
        named = await asyncio.to_thread(runner.invoke, main, ["dlq", "list"], env=env)
        assert named.exit_code == 0, named.output
        plain = await asyncio.to_thread(
            runner.invoke, main, ["dlq", "list"], env={**env, "LEDGER_OPERATOR_TOKEN": ""}
        )
        assert plain.exit_code == 0, plain.output
        first, second = await read_audit(redis_client, key_prefix)
        assert (first.token, first.endpoint) == ("operator:ops-1", "ledger dlq list")
        assert second.token.startswith("cli:")
