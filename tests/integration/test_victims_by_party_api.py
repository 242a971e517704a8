"""``GET /v1/projections/community-victims?by=party`` over HTTP: the community answer's
shape with the lines ``civilians``, ``side_a``, ``side_b``, ``unknown``, as JSON and CSV,
suppressed for readers, and refused (422, the parameter named) when it cannot be answered.

The data: ``g-1`` (one-sided, 60 dead: 58 civilians, 2 unknown), ``g-2`` (state-based, 33
dead: 16 and 16 fighters, 1 unknown), ``a-1`` (10 dead, not split by party).
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import PartyLine
from projections.suppression import WITHHELD_NAME
from services.bootstrap import http_app
from services.settings import Settings, Token
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import OPERATOR, READER

TOKENS = (Token(role="reader", secret=READER), Token(role="operator", secret=OPERATOR))
VICTIMS = "/v1/projections/community-victims"


def parties(civilians: int, side_a: int, side_b: int, unknown: int) -> list[PartyLine]:
    names = ("civilians", "side_a", "side_b", "unknown")
    return [
        PartyLine(low=n, best=n, high=n, party=name)  # type: ignore[arg-type]
        for name, n in zip(names, (civilians, side_a, side_b, unknown), strict=True)
    ]


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[Any]:
    """A client of the API over this test's Redis, the data applied."""
    await redis_store.append(
        [
            f.reported("g-1", 60, parties=parties(58, 0, 0, 2)),
            f.reported("g-2", 33, parties=parties(0, 16, 16, 1)),
            f.reported("a-1", 10),
        ]
    )
    await catch_up(redis_client, key_prefix, within=20.0)
    app = http_app(
        Settings(tokens=TOKENS, key_prefix=key_prefix), store=redis_store, client=redis_client
    )
    async with client_of(app) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


class TestByParty:
    async def test_the_answer_has_the_community_shape_with_party_lines(self, http: Any) -> None:
        """An operator sees the four party lines, the total and what no line accounts for."""
        answer = await http.get(VICTIMS, params={"by": "party"}, headers=auth(OPERATOR))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        lines = {c["community"]: (c["best"], c["incidents"]) for c in body["communities"]}
        assert lines == {
            "civilians": (58, 2),
            "side_a": (16, 2),
            "side_b": (16, 2),
            "unknown": (3, 2),
        }
        assert (body["total"]["best"], body["unattributed"]["best"]) == (103, 10)
        default = await http.get(VICTIMS, headers=auth(OPERATOR))
        assert default.json()["communities"] == []  # by=community is the default

    async def test_readers_get_small_party_lines_withheld(self, http: Any) -> None:
        """Side lines under K stay shown (16); unknown (3) is withheld, unnamed as the only
        line withheld, and unattributed and the total with it."""
        body = (await http.get(VICTIMS, params={"by": "party"}, headers=auth(READER))).json()
        withheld = {c["community"]: c.get("suppressed", False) for c in body["communities"]}
        assert withheld == {
            "civilians": False,
            "side_a": False,
            "side_b": False,
            WITHHELD_NAME: True,
        }
        assert (body["unattributed"], body["total"], body["incidents"]) == (None, None, None)

    async def test_the_csv_answer_takes_by_too(self, http: Any) -> None:
        """CSV rows: total, unattributed, then the party lines."""
        answer = await http.get(
            VICTIMS, params={"by": "party", "format": "csv"}, headers=auth(OPERATOR)
        )
        assert answer.status_code == 200, answer.text
        _, header, *rows = list(csv.reader(io.StringIO(answer.text)))
        names = [dict(zip(header, row, strict=True))[header[1]] for row in rows[2:]]
        assert names == ["civilians", "side_a", "side_b", "unknown"]

    @pytest.mark.parametrize(
        ("params", "parameter"),
        [({"by": "side"}, "by"), ({"by": "party", "status": "civilian"}, "status")],
    )
    async def test_what_cannot_be_answered_is_refused_naming_the_parameter(
        self, http: Any, params: dict[str, str], parameter: str
    ) -> None:
        """422 names the parameter."""
        answer = await http.get(VICTIMS, params=params, headers=auth(OPERATOR))
        assert answer.status_code in (400, 422), answer.text
        assert parameter in answer.text
