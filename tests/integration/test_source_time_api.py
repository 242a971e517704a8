"""``GET /v1/incidents/{id}?source_as_of=T``: what the source itself had said at ``T`` (by
ACLED's row timestamps), beside what the ledger recorded and when."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import ERASED
from services.bootstrap import http_app
from services.ops.acled_import import plan_acled
from services.ops.importer import publish, read_text
from services.protection.erasure import erase
from services.settings import Settings, Token
from services.store.keyring import RedisKeyring
from services.store.redis import RedisEventStore
from services.store.sealing import SealingStore
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import OPERATOR

DATA = Path(__file__).parent.parent / "data"
TOKENS = (Token(role="operator", secret=OPERATOR),)
URL = "/v1/incidents/acled:SYR351004"
AUTH = {"authorization": f"Bearer {OPERATOR}"}


@pytest.fixture
def sealing(redis_client: aioredis.Redis, key_prefix: str) -> SealingStore:
    """The sealing store (notes sealed in the log) over this test's Redis."""
    return SealingStore(
        RedisEventStore(redis_client, prefix=key_prefix), RedisKeyring(redis_client, key_prefix)
    )


@pytest.fixture
async def http(
    sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[Any]:
    """The export, then the revised file (SYR351004: 60 at 17 March, 72 at 22 March)."""
    for name in ("acled_syria_2025_03.csv", "acled_syria_2025_03_revised.csv"):
        plan = await plan_acled(sealing, read_text(DATA / name), "acled")
        await publish(sealing, plan)
    await catch_up(redis_client, key_prefix, within=20.0)
    settings = Settings(tokens=TOKENS, key_prefix=key_prefix)
    app = http_app(settings, store=sealing, client=redis_client, sealing=sealing)
    async with client_of(app) as client:
        yield client


class TestSourceTime:
    @pytest.mark.parametrize(
        ("moment", "best"),
        [
            ("2025-03-16T00:00:00Z", None),
            ("2025-03-18T00:00:00Z", 60),
            ("2025-03-25T00:00:00Z", 72),
        ],
    )
    async def test_said_is_the_figure_in_force_at_the_sources_time(
        self, http: Any, moment: str, best: int | None
    ) -> None:
        """Before ACLED's first version nothing; between the versions 60; after, 72."""
        answer = await http.get(URL, params={"source_as_of": moment}, headers=AUTH)
        assert answer.status_code == 200, answer.text
        said = answer.json()["said"]
        assert (None if said is None else said["fatalities"]["best"]) == best

    async def test_the_incident_and_its_history_carry_the_source_time(self, http: Any) -> None:
        """The incident's source_time is the revision's; its history names the changed fields."""
        body = (await http.get(URL, headers=AUTH)).json()
        incident = body["incident"]
        assert incident["source_time"].startswith("2025-03-22")
        assert incident["fatalities"]["best"] == 72
        assert "at least 60" in incident["notes"]
        assert "notes" in incident["history"][-1]["changed"]
        assert body["said"] is None

    async def test_a_revisions_notes_are_erased_with_the_incidents(
        self, http: Any, sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """The revised notes are sealed text like a report's: erasure makes them [erased]."""
        await erase(sealing, "incident", "acled:SYR351004", "erasure request")
        await catch_up(redis_client, key_prefix, within=20.0)
        incident = (await http.get(URL, headers=AUTH)).json()["incident"]
        assert incident["notes"] == ERASED

    async def test_a_malformed_moment_is_refused_naming_the_parameter(self, http: Any) -> None:
        """422 naming source_as_of."""
        answer = await http.get(URL, params={"source_as_of": "yesterday"}, headers=AUTH)
        assert answer.status_code == 422
        assert "source_as_of" in answer.text
