"""The read side's filters, the incidents behind a figure, citations and disputes, over HTTP
on a real Redis, given/when/then.

The data (:func:`seeded`): three incidents of March 2025 in Syria and one it retracted:

- ``a`` 6-9 March (day precision), Tartus, Violence against civilians, one-sided, targeting
  civilians, by "Government forces", feed sohr, fair: 50 dead, lines alawite 40, christian 3;
- ``b`` March 2025 (month precision), Latakia, Battles, state-based, acled, weak: 20 dead,
  alawite 12, by "Armed group";
- ``c`` 1 March, Latakia, Explosions/Remote violence, non-state, sohr, discounted: 4 dead;
- ``d`` retracted by sohr, and acled disputes ``a``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import pytest
import redis.asyncio as aioredis

from events import AnyEvent, Place, Source, recorded_at_of
from projections.suppression import WITHHELD_NAME
from services.bootstrap import http_app
from services.settings import Settings, Token
from services.store.keyring import MemoryKeyring
from services.store.redis import RedisEventStore
from services.store.sealing import SealingStore
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import OPERATOR, READER

DEADLINE = 20.0
ANALYST = "analyst-token-filters-0123456789ab"
TOKENS = (
    Token(role="reader", secret=READER),
    Token(role="analyst", secret=ANALYST),
    Token(role="operator", secret=OPERATOR),
)
VICTIMS = "/v1/projections/community-victims"
BEHIND = f"{VICTIMS}/incidents"
URL = "https://example.org/reports/tartus-2025-03"


def seed() -> list[AnyEvent]:
    """The events of the module docstring, in log order."""
    return [
        f.reported(
            "a",
            50,
            occurred_start=dt.date(2025, 3, 6),
            occurred_end=dt.date(2025, 3, 9),
            date_precision=1,
            place=Place(adm1="Tartus", name="Baniyas"),
            event_type="Violence against civilians",
            violence_type="one_sided",
            civilian_targeting=True,
            perpetrators=["Government forces"],
            grading="fair",
            victims=[f.line("alawite", 40), f.line("christian", 3)],
            sources=[Source(publisher="SOHR", url=URL)],
        ),
        f.reported(
            "b",
            20,
            source="acled",
            occurred_start=dt.date(2025, 3, 1),
            date_precision=4,
            place=Place(adm1="Latakia"),
            event_type="Battles",
            violence_type="state_based",
            civilian_targeting=False,
            perpetrators=["Armed group"],
            grading="weak",
            victims=[f.line("alawite", 12)],
        ),
        f.reported(
            "c",
            4,
            occurred_start=dt.date(2025, 3, 1),
            date_precision=1,
            place=Place(adm1="Latakia"),
            event_type="Explosions/Remote violence",
            violence_type="non_state",
            civilian_targeting=False,
            grading="discounted",
        ),
        f.reported("d", 7, occurred_start=dt.date(2025, 3, 7), date_precision=1),
        f.retracted("d"),
        f.disputed(
            "a",
            feed="acled",
            reason="our sources count 35",
            sources=[Source(publisher="ACLED", url="https://acleddata.com/x")],
        ),
    ]


@pytest.fixture
def sealing(redis_store: RedisEventStore) -> SealingStore:
    """This test's store, sealing private text (urls) on the way in."""
    return SealingStore(redis_store, MemoryKeyring())


@pytest.fixture
async def http(sealing: SealingStore, redis_client: aioredis.Redis) -> AsyncIterator[Any]:
    """A client of the API over this test's Redis; no token by default."""
    settings = Settings(tokens=TOKENS, key_prefix=sealing.inner.keys.prefix)  # type: ignore[attr-defined]
    app = http_app(settings, store=sealing, client=redis_client, sealing=sealing)
    async with client_of(app) as client:
        yield client


@pytest.fixture
async def seeded(sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str) -> None:
    """The module's events, appended through the sealing store and applied."""
    await sealing.append(seed())
    await catch_up(redis_client, key_prefix, within=DEADLINE)


async def ask(http: Any, url: str, token: str = READER, **params: Any) -> Any:
    """The JSON of a 200 answer to GET ``url``."""
    response = await http.get(
        url, params=params or None, headers={"authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200, response.text
    return response.json()


async def ids(http: Any, **params: Any) -> list[str]:
    """The ids ``/v1/incidents`` lists under ``params``."""
    return [r["incident_id"] for r in (await ask(http, "/v1/incidents", **params))["data"]]


class TestIncidentFilters:
    @pytest.mark.parametrize(
        ("params", "expected"),
        [
            ({}, ["a", "b", "c"]),
            ({"status": "all"}, ["d", "a", "b", "c"]),
            ({"status": "retracted"}, ["d"]),
            ({"event_type": "Battles"}, ["b"]),
            ({"violence_type": "one_sided"}, ["a"]),
            ({"perpetrator": "government FORCES"}, ["a"]),
            ({"feed": "acled"}, ["b"]),
            ({"grading": "discounted"}, ["c"]),
            ({"min_grading": "fair"}, ["a"]),
            ({"civilian_targeting": "false"}, ["b", "c"]),
            ({"adm1": "tartus"}, ["a"]),
            ({"country": "syr", "adm1": "LATAKIA"}, ["b", "c"]),
            ({"from": "2025-03-08", "to": "2025-03-08"}, ["a", "b"]),
            ({"from": "2025-03-10"}, ["b"]),
            ({"week": "2025-W10"}, ["a", "b"]),
            ({"week": "2025-W11"}, ["b"]),
        ],
    )
    async def test_each_filter_selects_the_incidents_it_names(
        self, http: Any, seeded: None, params: dict[str, str], expected: list[str]
    ) -> None:
        """Given the seeded incidents, when /v1/incidents is asked with a filter, then it
        lists exactly those: live by default, case-insensitive places and perpetrators,
        dates by overlap of the window widened by its precision (``b``, month precision,
        is in 8 March; ``a``, 6-9 March, too; ``c``, 1 March, is in week 9)."""
        assert await ids(http, **params) == expected

    async def test_a_row_shows_what_a_list_needs(self, http: Any, seeded: None) -> None:
        """Given ``a``, its row has its place as reported, dates with precision, figures with
        qualifier, grading, feed, its number of sources and the dispute flag."""
        (row,) = (await ask(http, "/v1/incidents", adm1="tartus"))["data"]
        assert (row["adm1"], row["place"]["name"]) == ("Tartus", "Baniyas")
        assert (row["occurred_start"], row["occurred_end"], row["date_precision"]) == (
            "2025-03-06",
            "2025-03-09",
            1,
        )
        assert row["fatalities"] == {"low": 50, "best": 50, "high": 50}  # exact: the default
        assert (row["event_type"], row["grading"], row["feed"]) == (
            "Violence against civilians",
            "fair",
            "sohr",
        )
        assert (row["sources"], row["disputed"]) == (1, True)

    async def test_the_same_filters_select_the_dead_by_community(
        self, http: Any, seeded: None
    ) -> None:
        """Given the same filter on the victims answer, then it sums the incidents the
        listing shows (every grading but discounted by default): Battles is ``b`` alone."""
        battles = await ask(http, VICTIMS, token=ANALYST, event_type="Battles")
        assert (battles["total"]["best"], battles["incidents"]) == (20, 1)
        assert [c["community"] for c in battles["communities"]] == ["alawite"]
        everything = await ask(http, VICTIMS, token=ANALYST)
        assert (everything["total"]["best"], everything["incidents"]) == (70, 2)


class TestBehindAFigure:
    async def test_each_line_links_to_the_incidents_it_sums(self, http: Any, seeded: None) -> None:
        """Given the alawite line (a and b), when its ``behind`` link is followed, then it
        lists a and b, paged, under the same filters."""
        answer = await ask(http, VICTIMS, token=ANALYST, adm1="tartus")
        (alawite,) = [c for c in answer["communities"] if c["community"] == "alawite"]
        assert alawite["behind"] == f"{BEHIND}?adm1=tartus&community=alawite"
        page = await ask(http, alawite["behind"], token=ANALYST)
        assert (page["incident_ids"], page["total_count"]) == (["a"], 1)
        everywhere = await ask(http, BEHIND, token=ANALYST, community="alawite", limit=1)
        assert (everywhere["incident_ids"], everywhere["total_count"]) == (["a"], 2)
        second = await ask(http, BEHIND, token=ANALYST, community="alawite", limit=1, page=2)
        assert second["incident_ids"] == ["b"]
        total = await ask(http, answer["behind"], token=ANALYST)
        assert total["incident_ids"] == ["a"]

    async def test_as_of_lists_the_incidents_behind_the_figure_as_it_was_then(
        self,
        http: Any,
        seeded: None,
        sealing: SealingStore,
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """Given a report recorded after a moment, then the incidents behind the alawite
        line as of that moment leave it out, as the line itself does then."""
        head = await sealing.head()
        assert head is not None
        async with asyncio.timeout(DEADLINE):  # the next entry must get a later millisecond
            while True:
                seconds, micros = await redis_client.time()
                if seconds * 1000 + micros // 1000 > int(head.split("-")[0]):
                    break
        await sealing.append([f.reported("e", 7, victims=[f.line("alawite", 7)])])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        then = recorded_at_of(head).isoformat()
        now = await ask(http, BEHIND, token=ANALYST, community="alawite")
        past = await ask(http, BEHIND, token=ANALYST, community="alawite", as_of=then)
        assert (now["total_count"], past["total_count"]) == (3, 2)
        assert "e" not in past["incident_ids"]
        line = await ask(http, VICTIMS, token=ANALYST, as_of=then)
        (alawite,) = [c for c in line["communities"] if c["community"] == "alawite"]
        assert (alawite["incidents"], alawite["behind"]) == (
            2,
            f"{BEHIND}?as_of={quote(then)}&community=alawite",
        )

    async def test_a_withheld_line_withholds_its_incidents_from_a_reader(
        self, http: Any, seeded: None
    ) -> None:
        """Given christian 3 (below 5) withheld from a reader, when the reader asks for the
        incidents behind it, then none are listed and the count is withheld; an analyst gets
        them."""
        answer = await ask(http, VICTIMS)
        (christian,) = [c for c in answer["communities"] if c.get("suppressed")]
        assert (christian["community"], christian.get("behind")) == (WITHHELD_NAME, None)
        hidden = await ask(http, BEHIND, community="christian")
        assert (hidden["suppressed"], hidden["incident_ids"], hidden["total_count"]) == (
            True,
            [],
            None,
        )
        shown = await ask(http, BEHIND, token=ANALYST, community="christian")
        assert (shown["suppressed"], shown["incident_ids"]) == (False, ["a"])


class TestCitations:
    async def test_the_incident_cites_its_sources_history_and_disputes(
        self, http: Any, seeded: None
    ) -> None:
        """Given ``a`` reported by sohr with a sealed url and disputed by acled, then its
        sources carry the url and the feed, its history entries their own sources, and the
        dispute is listed and flagged with its reason and sources."""
        incident = (await ask(http, "/v1/incidents/a"))["incident"]
        assert incident["sources"] == [{"publisher": "SOHR", "url": URL, "feed": "sohr"}]
        report, dispute = incident["history"]
        assert report["sources"][0]["url"] == URL
        assert dispute["sources"] == [
            {"publisher": "ACLED", "url": "https://acleddata.com/x", "feed": "acled"}
        ]
        assert (incident["disputed"], incident["disputed_by"]) == (True, ["acled"])
        (listed,) = incident["disputes"]
        assert (listed["feed"], listed["reason"]) == ("acled", "our sources count 35")
        assert listed["sources"][0]["url"] == "https://acleddata.com/x"
        assert incident["version"] == 1  # a dispute changes nothing of the incident

    async def test_a_revision_keeps_its_own_sources(
        self,
        http: Any,
        seeded: None,
        sealing: SealingStore,
        redis_client: aioredis.Redis,
        key_prefix: str,
    ) -> None:
        """Given a revision of ``a`` citing another report, then the history shows each
        event's sources, the revision's url restored from its sealed text."""
        later = "https://example.org/reports/tartus-update"
        await sealing.append([f.revised("a", 60, sources=[Source(publisher="SOHR", url=later)])])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        incident = (await ask(http, "/v1/incidents/a"))["incident"]
        urls = [[s["url"] for s in h["sources"] or ()] for h in incident["history"]]
        assert urls == [[URL], ["https://acleddata.com/x"], [later]]

    async def test_a_timeline_entry_cites_its_statement(
        self, http: Any, sealing: SealingStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Given a statement with a source, then the timeline entry names its feed and
        sources."""
        source = Source(publisher="MFA", url="https://example.org/s")
        await sealing.append([f.statement("s-1", sources=[source])])
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        (entry,) = (await ask(http, "/v1/projections/country-stance/fra/timeline"))["entries"]
        assert (entry["feed"], entry["sources"][0]["url"]) == ("sohr", "https://example.org/s")


class TestStrictParameters:
    @pytest.mark.parametrize(
        "url",
        [
            VICTIMS,
            BEHIND,
            "/v1/projections/country-stance",
            "/v1/projections/country-stance/FRA/timeline",
            "/v1/projections/alignment",
            "/v1/incidents",
            "/v1/incidents/a",
            "/v1/live/community-victims",
        ],
    )
    async def test_an_unknown_parameter_is_refused_on_every_route(
        self, http: Any, url: str
    ) -> None:
        """Given a parameter the route does not take, then 422 names it: nothing is ever
        answered as if filtered."""
        response = await http.get(
            url, params={"event_typ": "Battles"}, headers={"authorization": f"Bearer {READER}"}
        )
        assert response.status_code == 422
        assert [e["field"] for e in response.json()["errors"]] == ["event_typ"]

    async def test_a_parameter_given_twice_is_refused(self, http: Any) -> None:
        """``country=SYR&country=LBN`` is refused rather than half-read."""
        response = await http.get(
            "/v1/incidents?country=SYR&country=LBN", headers={"authorization": f"Bearer {READER}"}
        )
        assert response.status_code == 422
        assert response.json()["errors"][0]["field"] == "country"

    async def test_the_openapi_document_lists_every_filter(self, http: Any) -> None:
        """The incident filters and the format are documented on the three routes."""
        document = (await http.get("/openapi.json")).json()
        wanted = {
            "country",
            "adm1",
            "week",
            "from",
            "to",
            "grading",
            "min_grading",
            "event_type",
            "violence_type",
            "perpetrator",
            "feed",
            "civilian_targeting",
            "format",
        }
        for path in (VICTIMS, BEHIND, "/v1/incidents"):
            operation = document["paths"][path]["get"]
            assert wanted <= {p["name"] for p in operation["parameters"]}, path
            assert "text/csv" in operation["responses"]["200"]["content"], path
