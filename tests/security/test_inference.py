"""An attacker's session against withheld figures, through HTTP as a reader and a feed.

The issue's cases: one incident of 2 dead with a druze line of 2 — a reader who sees the
line withheld beside ``incidents 1`` and a total of 2 knows it is 2; and a feed that pads
the cell above the threshold, reads, and retracts the pad. Here the reader gets neither the
total, nor the incidents count, nor the line's name, in JSON or CSV, nor the incidents
behind it by name; the pad shows the cell for as long as it stands (suppression protects
each moment), and the retraction soon after is listed to operators by ``ledger audit
--pads`` with the feed that did it.
"""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis
from typer.testing import CliRunner

from events import VictimLine
from services.bootstrap import http_app
from services.settings import Settings
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import FEED, READER, TOKENS

VICTIMS = "/v1/projections/community-victims"
BEHIND = "/v1/projections/community-victims/incidents"


def druze(n: int) -> list[VictimLine]:
    """One druze civilian line of ``n``."""
    return [VictimLine(community="druze", status="civilian", low=n, best=n, high=n)]


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis
) -> AsyncIterator[httpx.AsyncClient]:
    """The whole API over this test's Redis; each call names its token."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix, suppression_k=5)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as client:
        yield client


async def publish(http: httpx.AsyncClient, *events: Any) -> None:
    """POST the events as the feed ``sohr``."""
    answer = await http.post(
        "/v1/events",
        content=msgspec.json.encode(list(events)),
        headers={"authorization": f"Bearer {FEED}", "content-type": "application/json"},
    )
    assert answer.status_code == 202, answer.text


async def read(http: httpx.AsyncClient, url: str, **params: str) -> httpx.Response:
    """GET as the reader."""
    answer = await http.get(url, params=params, headers={"authorization": f"Bearer {READER}"})
    assert answer.status_code == 200, answer.text
    return answer


class TestInferenceFromAnAnswer:
    async def test_a_lone_small_line_leaves_no_total_count_or_name_to_infer_from(
        self, http: httpx.AsyncClient, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Total 2 over 1 incident beside one withheld druze line would give the line: the
        reader's JSON and CSV carry neither the total, the count, nor the name."""
        await publish(http, f.reported("i-1", best=2, victims=druze(2)))
        await catch_up(redis_client, key_prefix)
        body = (await read(http, VICTIMS)).json()
        assert (body["total"], body["incidents"], body["total_suppressed"]) == (None, None, True)
        assert body["unattributed"] is None
        assert [row["suppressed"] for row in body["communities"]] == [True]
        assert "druze" not in (await read(http, VICTIMS)).text
        table = (await read(http, VICTIMS, format="csv")).text
        assert "druze" not in table
        rows = list(csv.reader(io.StringIO(table)))
        header, total = rows[1], dict(zip(rows[1], rows[2], strict=True))
        assert "best" in header
        assert (total["line"], total["best"], total["incidents"]) == ("total", "", "")
        behind = (await read(http, BEHIND, community="druze")).json()
        assert (behind["suppressed"], behind["incident_ids"], behind["total_count"]) == (
            True,
            [],
            None,
        )


class TestPadThenRetract:
    async def test_a_pad_taken_back_soon_is_listed_to_operators_with_its_feed(
        self,
        http: httpx.AsyncClient,
        redis_client: aioredis.Redis,
        key_prefix: str,
        redis_url: str,
    ) -> None:
        """The feed pads druze to 12, the reader sees it, the feed retracts the pad:
        ``ledger audit --pads`` names the incident, the feed and how soon."""
        await publish(http, f.reported("i-1", best=2, victims=druze(2)))
        await publish(http, f.reported("pad", best=10, victims=druze(10)))
        await catch_up(redis_client, key_prefix)
        padded = (await read(http, VICTIMS)).json()
        assert [(r["community"], r["best"]) for r in padded["communities"]] == [("druze", 12)]
        await publish(http, f.retracted("pad"))
        await catch_up(redis_client, key_prefix)
        assert (await read(http, VICTIMS)).json()["total"] is None  # withheld again

        from services.cli import main

        env = {"LEDGER_REDIS_URL": redis_url, "LEDGER_KEY_PREFIX": key_prefix}
        runner = CliRunner()
        done = await asyncio.to_thread(runner.invoke, main, ["audit", "--pads", "--json"], env=env)
        assert done.exit_code == 0, done.output
        (listed,) = [msgspec.json.decode(line) for line in done.stdout.splitlines() if line]
        assert (listed["incident_id"], listed["feed"], listed["kind"]) == (
            "pad",
            "sohr",
            "retracted",
        )
        assert (listed["best_before"], listed["best_after"]) == (10, 0)
        assert 0 <= listed["seconds"] < 60


class TestQuickWithdrawals:
    """The pure report behind ``ledger audit --pads``: what counts, and the window."""

    def _recorded(self, events: list[Any], seconds: list[int]) -> list[Any]:
        import datetime as dt

        from events import Position, Recorded

        start = dt.datetime(2025, 3, 10, tzinfo=dt.UTC)
        return [
            Recorded(Position(f"{i + 1}-0"), start + dt.timedelta(seconds=s), event)
            for i, (event, s) in enumerate(zip(events, seconds, strict=True))
        ]

    def test_only_what_is_lowered_within_the_window_is_listed(self) -> None:
        """A revision down 10 min after a raise is listed; a retraction two hours after its
        report is not; a revision up never is."""
        import datetime as dt

        from services.ops.pads import quick_withdrawals

        records = self._recorded(
            [
                f.reported("a", best=3),
                f.revised("a", best=9),
                f.revised("a", best=3),
                f.reported("b", best=8),
                f.retracted("b"),
            ],
            [0, 60, 660, 0, 7200],
        )
        found = quick_withdrawals(records, dt.timedelta(hours=1))
        assert [(w.incident_id, w.kind, w.best_before, w.best_after) for w in found] == [
            ("a", "revised_down", 9, 3)
        ]
        assert len(quick_withdrawals(records, dt.timedelta(hours=3))) == 2
