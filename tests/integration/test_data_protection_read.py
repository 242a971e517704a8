"""Data protection on the read side, through HTTP on a real Redis: who sees what, and the audit.

A reader gets community figures with small counts withheld (current and as-of answers) and
incidents without their community lines; an analyst or operator gets exact figures, and each
such answer is recorded in the audit stream first (``ledger audit`` lists it).

The data: ``i-1`` (Idlib, 2024-W10, confirmed) killed 60: alawite civilians 40, druze
civilians 2, druze combatants 10; ``i-2`` (Aleppo, 2024-W11, weak) killed 9: christian
civilians 8. The druze civilian cell (2) is the one to protect.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import Place, VictimLine, recorded_at_of
from projections.suppression import WITHHELD_NAME
from services.bootstrap import http_app
from services.protection.audit import read_audit
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.cli import ledger
from tests.support.http import client_of
from tests.support.runner import catch_up

SECRETS = {
    "reader": "reader-token-dp-0123456789abcdef",
    "analyst": "analyst-token-dp-0123456789abcde",
    "operator": "operator-token-dp-0123456789abcd",
    "feed": "feed-sohr-token-dp-0123456789abc",
}
TOKENS = (
    Token(role="reader", secret=SECRETS["reader"]),
    Token(role="analyst", secret=SECRETS["analyst"]),
    Token(role="operator", secret=SECRETS["operator"]),
    Token(role="feed", secret=SECRETS["feed"], feed="sohr"),
)
K = 5
DEADLINE = 20.0
VICTIMS = "/v1/projections/community-victims"
WITHHELD = {
    "community": WITHHELD_NAME,
    "low": None,
    "best": None,
    "high": None,
    "incidents": None,
    "at_least": None,
    "suppressed": True,
}
"""The druze line withheld: no figure, no qualifier, no link to its incidents, and, as the
only line withheld, no name."""


def lines(*given: tuple[str, str, int]) -> list[VictimLine]:
    """Victim lines with low = best = high."""
    return [
        VictimLine(community=c, status=s, low=n, best=n, high=n)  # type: ignore[arg-type]
        for c, s, n in given
    ]


FIRST = f.reported(
    "i-1",
    best=60,
    occurred_start=dt.date(2024, 3, 4),
    grading="confirmed",
    victims=lines(
        ("alawite", "civilian", 40), ("druze", "civilian", 2), ("druze", "combatant", 10)
    ),
)
SECOND = f.reported(
    "i-2",
    best=9,
    occurred_start=dt.date(2024, 3, 12),
    place=Place(adm1="Aleppo"),
    grading="weak",
    victims=lines(("christian", "civilian", 8)),
)


@pytest.fixture
async def http(redis_store: RedisEventStore, redis_client: aioredis.Redis) -> AsyncIterator[Any]:
    """An HTTP client of the API over this test's Redis (no token: each call names its role)."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix, suppression_k=K)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app) as client:
        yield client


@pytest.fixture
async def seeded(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> dt.datetime:
    """Both incidents, applied; returns a moment after ``i-1`` and before ``i-2``."""
    (first,) = await redis_store.append([FIRST])
    first_ms = int(first.position.split("-")[0])
    async with asyncio.timeout(DEADLINE):  # the next entry must get a later millisecond
        while True:
            seconds, micros = await redis_client.time()
            if seconds * 1000 + micros // 1000 > first_ms:
                break
    await redis_store.append([SECOND])
    await catch_up(redis_client, key_prefix, within=DEADLINE)
    return recorded_at_of(first.position)


async def ask(http: Any, role: str, url: str, **params: Any) -> Any:
    """GET ``url`` with ``role``'s token; the JSON of a 200 answer."""
    response = await http.get(
        url, params=params, headers={"authorization": f"Bearer {SECRETS[role]}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


def exact(community: str, n: int, incidents: int = 1) -> dict[str, Any]:
    """A shown line of ``n`` dead (low = best = high), without its ``behind`` link."""
    return {
        "community": community,
        "low": n,
        "best": n,
        "high": n,
        "incidents": incidents,
        "at_least": False,
    }


def numbers(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Community lines without their ``behind`` links."""
    return [{k: v for k, v in row.items() if k != "behind"} for row in rows]


def figures(n: int) -> dict[str, Any]:
    """Exact figures of ``n`` (low = best = high)."""
    return {"low": n, "best": n, "high": n, "at_least": False}


def druze(answer: Any) -> Any:
    """The druze line of an answer (without its ``behind`` link): by name, or the one line
    withheld without a name."""
    named = ("druze", WITHHELD_NAME)
    (row,) = numbers([r for r in answer["communities"] if r["community"] in named])
    return row


class TestReaderGetsSuppressedFigures:
    async def test_small_line_and_unattributed_are_withheld(
        self, http: Any, seeded: dt.datetime
    ) -> None:
        """Druze (12 in all, a cell of 2 in it) is withheld, last and unnamed; unattributed,
        the total and its incidents too."""
        answer = await ask(http, "reader", VICTIMS)
        assert numbers(answer["communities"]) == [
            exact("alawite", 40),
            exact("christian", 8),
            WITHHELD,
        ]
        assert answer["unattributed"] is None
        assert answer["unattributed_suppressed"] is True
        assert (answer["total"], answer["incidents"], answer["total_suppressed"]) == (
            None,
            None,
            True,
        )
        assert "druze" not in json.dumps(answer)
        assert answer["suppression_k"] == K

    @pytest.mark.parametrize(
        "params",
        [
            {},
            {"country": "SYR"},
            {"adm1": "Idlib"},
            {"week": "2024-W10"},
            {"status": "civilian"},
            {"min_grading": "confirmed"},
            {"country": "SYR", "adm1": "Idlib", "week": "2024-W10", "min_grading": "confirmed"},
            {"from": "2024-03-04", "to": "2024-03-04"},
        ],
        ids=["none", "country", "adm1", "week", "civilian", "grading", "all", "one-day"],
    )
    async def test_druze_stays_withheld_under_every_filter_that_selects_the_small_cell(
        self, http: Any, seeded: dt.datetime, params: dict[str, str]
    ) -> None:
        """No filter selecting the druze civilian cell shows a druze figure or unattributed."""
        answer = await ask(http, "reader", VICTIMS, **params)
        assert druze(answer) == WITHHELD
        assert answer["unattributed"] is None

    async def test_subtracting_across_statuses_recovers_nothing(
        self, http: Any, seeded: dt.datetime
    ) -> None:
        """Combatants (10) are shown, but neither all statuses nor civilians are: no 12 - 10;
        a status total is its lines' own, so nothing of it is unattributed."""
        every = await ask(http, "reader", VICTIMS)
        combatants = await ask(http, "reader", VICTIMS, status="combatant")
        civilians = await ask(http, "reader", VICTIMS, status="civilian")
        assert druze(combatants)["best"] == 10
        assert druze(every) == druze(civilians) == WITHHELD
        assert every["unattributed"] is None
        assert civilians["unattributed"] is None
        assert combatants["unattributed"] == figures(0)
        assert combatants["total"] == figures(10)
        assert (civilians["total"], civilians["total_suppressed"]) == (None, True)

    async def test_a_query_leaving_the_small_cell_out_is_exact(
        self, http: Any, seeded: dt.datetime
    ) -> None:
        """Aleppo holds no small cell: the christian line and unattributed are exact."""
        answer = await ask(http, "reader", VICTIMS, adm1="Aleppo")
        assert numbers(answer["communities"]) == [exact("christian", 8)]
        assert answer["unattributed"] == figures(1)
        assert answer["unattributed_suppressed"] is False

    async def test_as_of_answers_are_suppressed_too(self, http: Any, seeded: dt.datetime) -> None:
        """As of before ``i-2``: alawite shown, druze and unattributed withheld."""
        answer = await ask(http, "reader", VICTIMS, as_of=seeded.isoformat())
        assert [r["community"] for r in answer["communities"]] == ["alawite", WITHHELD_NAME]
        assert druze(answer) == WITHHELD
        assert answer["unattributed"] is None
        assert answer["total"] is None
        assert answer["suppression_k"] == K

    async def test_incident_detail_leaves_out_community_lines(
        self, http: Any, seeded: dt.datetime
    ) -> None:
        """A reader sees the incident and its toll, not its victims by community."""
        answer = await ask(http, "reader", "/v1/incidents/i-1")
        assert answer["victims_suppressed"] is True
        assert answer["incident"]["victims"] == []
        assert answer["incident"]["fatalities"]["best"] == 60
        assert [h.get("victims") for h in answer["incident"]["history"]] == [None]
        assert "druze" not in json.dumps(answer)

    async def test_reader_answers_are_not_audited(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Suppressed answers carry no exact figures, so they leave no audit entry."""
        await ask(http, "reader", VICTIMS)
        await ask(http, "reader", "/v1/incidents/i-1")
        assert await read_audit(redis_client, key_prefix) == []


class TestClearedRolesGetExactFigures:
    @pytest.mark.parametrize("role", ["analyst", "operator"])
    async def test_exact_lines_and_unattributed(
        self, http: Any, seeded: dt.datetime, role: str
    ) -> None:
        """Druze 12 (2 + 10) and unattributed 9, with no threshold named."""
        answer = await ask(http, role, VICTIMS)
        assert druze(answer) == exact("druze", 12)
        assert answer["unattributed"] == figures(9)
        assert answer["unattributed_suppressed"] is False
        assert answer["suppression_k"] is None

    @pytest.mark.parametrize("role", ["analyst", "operator"])
    async def test_exact_as_of_and_civilian_figures(
        self, http: Any, seeded: dt.datetime, role: str
    ) -> None:
        """As of before ``i-2``, civilians only: druze 2 exactly."""
        answer = await ask(http, role, VICTIMS, as_of=seeded.isoformat(), status="civilian")
        assert druze(answer)["best"] == 2

    @pytest.mark.parametrize("role", ["analyst", "operator"])
    async def test_incident_detail_keeps_community_lines(
        self, http: Any, seeded: dt.datetime, role: str
    ) -> None:
        """A cleared role sees every victim line of the incident and its history."""
        answer = await ask(http, role, "/v1/incidents/i-1")
        assert answer["victims_suppressed"] is False
        assert len(answer["incident"]["victims"]) == 3
        assert len(answer["incident"]["history"][0]["victims"]) == 3

    async def test_feed_token_may_not_read(self, http: Any, seeded: dt.datetime) -> None:
        """A feed token is refused the community figures (403)."""
        response = await http.get(VICTIMS, headers={"authorization": f"Bearer {SECRETS['feed']}"})
        assert response.status_code == 403


class TestAuditTrail:
    async def test_each_exact_answer_is_recorded_with_who_what_and_when(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Token name, endpoint, filters and position of every answer, in order."""
        before = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=1)
        first = await ask(http, "analyst", VICTIMS, country="SYR", week="2024-W10")
        second = await ask(http, "operator", VICTIMS, status="civilian", as_of=seeded.isoformat())
        await ask(http, "analyst", "/v1/incidents/i-2")
        entries = await read_audit(redis_client, key_prefix)
        assert [(e.token, e.role, e.endpoint) for e in entries] == [
            ("analyst", "analyst", "GET /v1/projections/community-victims"),
            ("operator", "operator", "GET /v1/projections/community-victims"),
            ("analyst", "analyst", "GET /v1/incidents/{incident_id}"),
        ]
        assert entries[0].filters == {"country": "SYR", "week": "2024-W10"}
        assert entries[0].position == first["position"]
        assert entries[0].lines == 2
        assert entries[1].filters == {"status": "civilian", "as_of": seeded.isoformat()}
        assert entries[1].as_of == seeded.isoformat()
        assert entries[1].position == second["position"]
        assert entries[2].filters == {"incident_id": "i-2"}
        assert all(e.at >= before for e in entries)
        assert SECRETS["analyst"] not in repr(entries)

    async def test_answer_without_community_lines_is_not_recorded(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Iraq has no incident here: nothing exact went out, nothing is recorded."""
        answer = await ask(http, "analyst", VICTIMS, country="IRQ")
        assert answer["communities"] == []
        assert await read_audit(redis_client, key_prefix) == []

    async def test_no_answer_goes_out_when_the_audit_cannot_be_written(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """With the audit key unwritable (a string), the analyst gets an error, not figures."""
        await redis_client.set(Keys(key_prefix).audit, "not a stream")
        response = await http.get(
            VICTIMS, headers={"authorization": f"Bearer {SECRETS['analyst']}"}
        )
        assert response.status_code >= 500
        assert "druze" not in response.text

    async def test_the_stream_keeps_every_entry(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Many reads, no trimming: the stream holds one entry per exact answer."""
        for _ in range(30):
            await ask(http, "analyst", VICTIMS)
        assert await redis_client.xlen(Keys(key_prefix).audit) == 30
        assert len(await read_audit(redis_client, key_prefix)) == 30

    async def test_since_takes_a_position_or_a_date_time(
        self, http: Any, seeded: dt.datetime, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """``since`` a position includes that entry; a future date-time gives nothing."""
        for week in ("2024-W10", "2024-W11"):
            await ask(http, "analyst", VICTIMS, week=week)
        first, second = await read_audit(redis_client, key_prefix)
        assert await read_audit(redis_client, key_prefix, since=second.id) == [second]
        future = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
        assert await read_audit(redis_client, key_prefix, since=future) == []
        assert await read_audit(redis_client, key_prefix, since=first.at.isoformat()) == [
            first,
            second,
        ]


class TestAuditCommand:
    async def test_lists_entries_as_json_lines_from_since(
        self, http: Any, seeded: dt.datetime, redis_url: str, key_prefix: str
    ) -> None:
        """``ledger audit --json --since <id>`` prints the entries from that one on."""
        await ask(http, "analyst", VICTIMS, week="2024-W10")
        await ask(http, "operator", VICTIMS, week="2024-W11")
        everything = await asyncio.to_thread(ledger, redis_url, key_prefix, "audit", "--json")
        assert everything.exit_code == 0, everything.output
        rows = [json.loads(line) for line in everything.stdout.splitlines()]
        assert [(r["token"], r["filters"]) for r in rows] == [
            ("analyst", {"week": "2024-W10"}),
            ("operator", {"week": "2024-W11"}),
        ]
        later = await asyncio.to_thread(
            ledger, redis_url, key_prefix, "audit", "--json", "--since", rows[1]["id"]
        )
        assert [json.loads(line)["token"] for line in later.stdout.splitlines()] == ["operator"]

    async def test_table_names_token_and_endpoint(
        self, http: Any, seeded: dt.datetime, redis_url: str, key_prefix: str
    ) -> None:
        """The default output is one line per entry with the token name and the endpoint."""
        await ask(http, "analyst", "/v1/incidents/i-1")
        result = await asyncio.to_thread(ledger, redis_url, key_prefix, "audit")
        assert result.exit_code == 0, result.output
        assert "analyst" in result.stdout
        assert "/v1/incidents/" in result.stdout

    async def test_bad_since_exits_2(self, redis_url: str, key_prefix: str) -> None:
        """A ``--since`` that is neither a date-time nor a position is refused."""
        result = await asyncio.to_thread(
            ledger, redis_url, key_prefix, "audit", "--since", "last tuesday"
        )
        assert result.exit_code == 2
        assert "--since" in result.output


class TestOpenApi:
    async def test_withheld_fields_are_nullable_in_the_schema(self, http: Any) -> None:
        """The victims body declares unattributed, a status total and a line's numbers and
        qualifier nullable."""
        document = (await http.get("/openapi.json")).json()
        schemas = document["components"]["schemas"]
        body = schemas[next(n for n in schemas if n.endswith("VictimsBody"))]
        row = schemas[next(n for n in schemas if n.endswith("CommunityItem"))]
        assert {"unattributed_suppressed", "total_suppressed", "suppression_k"} <= set(
            body["properties"]
        )
        assert "null" in json.dumps(body["properties"]["total"])
        for name in ("best", "incidents", "at_least", "behind"):
            assert "null" in json.dumps(row["properties"][name]), name
        assert "suppressed" in row["properties"]
