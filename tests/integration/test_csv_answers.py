"""CSV answers over HTTP: the first line, the header, and every row equal to its JSON answer's,
with suppression applied exactly as to JSON.

The data: ``i-1`` (Latakia, 6 March 2025, at least 50 dead: alawite 40, christian 3) and
``i-2`` (Tartus, 20 dead, alawite 12), both from sohr; France and the USA condemn, Russia
calls for a meeting with the USA.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from events import Place
from projections.suppression import WITHHELD_NAME
from services.bootstrap import http_app
from services.settings import Settings, Token
from services.store.redis import RedisEventStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import OPERATOR, READER

DEADLINE = 20.0
TOKENS = (Token(role="reader", secret=READER), Token(role="operator", secret=OPERATOR))
VICTIMS = "/v1/projections/community-victims"


def _cell(value: Any) -> str:
    """A JSON value as the README says a CSV cell shows it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ";".join(_cell(v) for v in value)
    return str(value)


def _figures(line: str, figures: Any, incidents: Any) -> list[Any]:
    if figures is None:
        return [line, None, None, None, None, None, incidents, True]
    low, best, high = figures["low"], figures["best"], figures["high"]
    return [line, None, low, best, high, figures["at_least"], incidents, False]


def victims_rows(answer: Any) -> list[list[Any]]:
    """The rows the README documents for a community-victims answer."""
    lines = [
        [
            "community",
            c["community"],
            c["low"],
            c["best"],
            c["high"],
            c["at_least"],
            c["incidents"],
            c.get("suppressed", False),
        ]
        for c in answer["communities"]
    ]
    return [
        _figures("total", answer["total"], answer["incidents"]),
        _figures("unattributed", answer["unattributed"], None),
        *lines,
    ]


def incident_rows(answer: Any) -> list[list[Any]]:
    """The rows of ``/v1/incidents``."""
    return [
        [
            r["incident_id"],
            r["status"],
            r["occurred_start"],
            r["occurred_end"],
            r["date_precision"],
            r["country"],
            r["adm1"],
            r["place"].get("name"),
            r["event_type"],
            r["violence_type"],
            r["fatalities"]["low"],
            r["fatalities"]["best"],
            r["fatalities"]["high"],
            r["fatalities"].get("qualifier", "exact"),
            r["grading"],
            r["feed"],
            r["sources"],
            r["disputed"],
            r["merged_into"],
            r["version"],
        ]
        for r in answer["data"]
    ]


def stance_rows(answer: Any) -> list[list[Any]]:
    """The rows of the country-stance answer."""
    return [
        [
            r["country"],
            r["subject"],
            r["stance"],
            r["family"],
            r["stances"],
            r["role"],
            r["statements"],
            r["goldstein_mean"],
            r["first_statement_at"].replace("Z", "+00:00"),
            r["latest_statement_at"].replace("Z", "+00:00"),
            r["reaction_latency_hours"],
            r["latest_statement_id"],
            [b["statement_id"] for b in r["basis"]],
        ]
        for r in answer["countries"]
    ]


def pair_rows(answer: Any) -> list[list[Any]]:
    """The rows of the alignment answer."""
    return [[p["a"], p["b"], p["score"], p["shared_subjects"], p["thin"]] for p in answer["pairs"]]


def _time(value: str | None) -> str | None:
    return None if value is None else value.replace("Z", "+00:00")


def timeline_rows(answer: Any) -> list[list[Any]]:
    """The rows of a country's timeline."""
    return [
        [
            e["statement_id"],
            e["subject"],
            _time(e["issued_at"]),
            e["issued_precision"],
            _time(e["issued_end"]),
            e["stance"],
            e["cameo_code"],
            e["goldstein"],
            e["speaker"],
            e["role"],
            e["title"],
            e["co_speakers"],
            e["incident_ids"],
            e["position"],
            e["erased"],
            e["feed"],
            [s["publisher"] for s in e["sources"]],
            [s.get("url") or "" for s in e["sources"]],
        ]
        for e in answer["entries"]
    ]


def behind_rows(answer: Any) -> list[list[Any]]:
    """The rows of the incidents behind a figure."""
    return [[one] for one in answer["incident_ids"]]


@pytest.fixture
async def http(
    redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[Any]:
    """A client of the API over this test's Redis, the data applied."""
    await redis_store.append(
        [
            f.reported(
                "i-1",
                50,
                occurred_start=dt.date(2025, 3, 6),
                place=Place(adm1="Latakia", name="Jableh"),
                fatalities=f.fatalities(50, "at_least"),
                victims=[f.line("alawite", 40), f.line("christian", 3)],
            ),
            f.reported(
                "i-2",
                20,
                occurred_start=dt.date(2025, 3, 7),
                place=Place(adm1="Tartus", name="Baniyas"),
                victims=[f.line("alawite", 12)],
            ),
            f.statement("s-1", "FRA", incident_ids=["i-1"]),
            f.statement("s-2", "USA", incident_ids=["i-1"]),
            f.statement(
                "s-3",
                "RUS",
                "USA",
                stance="call_for_meeting",
                cameo_code="026",
                role="head_of_state",
            ),
        ]
    )
    await catch_up(redis_client, key_prefix, within=DEADLINE)
    app = http_app(
        Settings(tokens=TOKENS, key_prefix=key_prefix), store=redis_store, client=redis_client
    )
    async with client_of(app) as client:
        yield client


async def both(
    http: Any, url: str, token: str = READER, **params: Any
) -> tuple[Any, list[list[str]], list[str], list[str]]:
    """The JSON answer and the CSV one (first line, header, rows) to the same request."""
    auth = {"authorization": f"Bearer {token}"}
    json_answer = await http.get(url, params=params, headers=auth)
    assert json_answer.status_code == 200, json_answer.text
    csv_answer = await http.get(url, params={**params, "format": "csv"}, headers=auth)
    assert csv_answer.status_code == 200, csv_answer.text
    assert csv_answer.headers["content-type"] == "text/csv; charset=utf-8"
    first, header, *rows = list(csv.reader(io.StringIO(csv_answer.text)))
    return json_answer.json(), rows, first, header


CASES: list[tuple[str, dict[str, str], Callable[[Any], list[list[Any]]]]] = [
    (VICTIMS, {}, victims_rows),
    (VICTIMS, {"status": "civilian", "adm1": "latakia"}, victims_rows),
    (f"{VICTIMS}/incidents", {"community": "alawite"}, behind_rows),
    ("/v1/incidents", {}, incident_rows),
    ("/v1/projections/country-stance", {}, stance_rows),
    ("/v1/projections/alignment", {}, pair_rows),
    ("/v1/projections/country-stance/USA/timeline", {}, timeline_rows),
]


class TestCsvEqualsJson:
    @pytest.mark.parametrize(("url", "params", "rows_of"), CASES)
    @pytest.mark.parametrize("token", [READER, OPERATOR], ids=["reader", "operator"])
    async def test_every_row_equals_its_json_row(
        self,
        http: Any,
        url: str,
        params: dict[str, str],
        rows_of: Callable[[Any], list[list[Any]]],
        token: str,
    ) -> None:
        """Given an answer as JSON, when it is asked as CSV, then the first line names its
        position, read time and lag, and the rows are the JSON's, cell for cell (what a
        reader's JSON withholds is empty in its CSV)."""
        answer, rows, first, _ = await both(http, url, token, **params)
        assert first[:2] == ["#ledger", f"position={answer['position']}"]
        assert first[2].startswith("read_at=20")
        assert first[3] == f"lag={answer['lag']}"
        assert rows == [[_cell(v) for v in row] for row in rows_of(answer)]
        assert rows  # each case has rows to compare

    async def test_a_reader_s_csv_withholds_what_its_json_withholds(self, http: Any) -> None:
        """Christian 3 is withheld from a reader (unnamed: the only line withheld),
        unattributed and the total too: empty cells, flagged."""
        answer, rows, _, header = await both(http, VICTIMS)
        line = dict(zip(header, next(r for r in rows if r[1] == WITHHELD_NAME), strict=True))
        assert "christian" not in {r[1] for r in rows}
        total = dict(zip(header, rows[0], strict=True))
        assert (total["line"], total["best"], total["incidents"]) == ("total", "", "")
        assert (line["best"], line["incidents"], line["suppressed"]) == ("", "", "true")
        unattributed = dict(zip(header, rows[1], strict=True))
        assert (unattributed["best"], unattributed["suppressed"]) == ("", "true")
        assert answer["unattributed"] is None
        _, exact_rows, _, _ = await both(http, VICTIMS, OPERATOR)
        assert ["community", "christian", "3", "3", "3", "false", "1", "false"] in exact_rows

    async def test_accept_text_csv_asks_for_csv_and_format_json_overrides_it(
        self, http: Any
    ) -> None:
        """``Accept: text/csv`` answers CSV; ``format=json`` answers JSON whatever Accept."""
        headers = {"authorization": f"Bearer {READER}", "accept": "text/csv"}
        as_csv = await http.get("/v1/incidents", headers=headers)
        assert as_csv.text.startswith("#ledger,position=")
        as_json = await http.get("/v1/incidents", params={"format": "json"}, headers=headers)
        assert as_json.json()["total_count"] == 2

    async def test_the_at_least_qualifier_reaches_the_csv(self, http: Any) -> None:
        """i-1's "at least 50" makes the total a lower bound, in the CSV too."""
        _, rows, _, header = await both(http, VICTIMS, OPERATOR)
        total = dict(zip(header, rows[0], strict=True))
        assert (total["line"], total["best"], total["at_least"]) == ("total", "70", "true")

    async def test_an_as_of_answer_names_its_time_in_the_first_line(self, http: Any) -> None:
        """as_of echoes in the first line."""
        at = "2099-01-01T00:00:00+00:00"
        _, _, first, _ = await both(http, VICTIMS, as_of=at)
        assert first[-1] == f"as_of={at}"
