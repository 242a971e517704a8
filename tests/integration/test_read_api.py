"""The read side's query API over a real Redis: every endpoint, filter, freshness and error.

Events are appended through the store and applied with ``ProjectorPool.run_until_caught_up``
(bounded by ``asyncio.timeout``), so every answer is deterministic.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest
import redis.asyncio as aioredis

from benchmarks.workload import Workload
from events import AnyEvent, Place, Speaker, VictimLine
from projections import PROJECTIONS, VictimsFilter
from projections import community_victims as cv
from projections.suppression import exact, protected_query
from services.bootstrap import http_app
from services.http.side import ReadSide
from services.projector.pool import ProjectorPool
from services.settings import Settings
from services.store.redis import RedisEventStore
from services.views.redis import load_checkpoint
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import catch_up
from tests.support.tokens import FEED, METRICS, OPERATOR, READER, TOKENS

SCRAPE = {"authorization": f"Bearer {METRICS}"}
"""What Prometheus sends: the metrics token."""

DEADLINE = 20.0

Client = httpx.AsyncClient

VICTIMS = "/v1/projections/community-victims"
STANCE = "/v1/projections/country-stance"
ALIGNMENT = "/v1/projections/alignment"


@pytest.fixture
async def client(
    redis_store: RedisEventStore, redis_client: aioredis.Redis
) -> AsyncIterator[Client]:
    """A reader's HTTP client of the API over this test's Redis."""
    settings = Settings(tokens=TOKENS, key_prefix=redis_store.keys.prefix)
    app = http_app(settings, store=redis_store, client=redis_client)
    async with client_of(app, headers={"authorization": f"Bearer {READER}"}) as http:
        yield http


async def publish(store: RedisEventStore, *events: AnyEvent) -> None:
    """Append events one by one (each its own position)."""
    for event in events:
        await store.append([event])


def victim_lines(*lines: tuple[str, str, int]) -> list[VictimLine]:
    return [
        VictimLine(community=c, status=s, low=n, best=n, high=n)  # type: ignore[arg-type]
        for c, s, n in lines
    ]


async def seed_victims(store: RedisEventStore, client: aioredis.Redis, prefix: str) -> None:
    """Three live incidents in two countries, weeks and gradings, plus a retracted one."""
    await publish(
        store,
        f.reported(
            "i-1",
            best=10,
            occurred_start=dt.date(2024, 3, 4),  # 2024-W10
            victims=victim_lines(("alawite", "civilian", 6), ("druze", "combatant", 2)),
            grading="confirmed",
        ),
        f.reported(
            "i-2",
            best=5,
            occurred_start=dt.date(2024, 3, 12),  # 2024-W11
            place=Place(adm1="Aleppo"),
            victims=victim_lines(("druze", "civilian", 5)),
            grading="weak",
        ),
        f.reported(
            "i-3",
            best=7,
            country="IRQ",
            place=Place(adm1="Nineveh"),
            occurred_start=dt.date(2024, 3, 5),
            victims=victim_lines(("yazidi", "civilian", 7)),
            grading="discounted",
        ),
        f.reported("i-4", best=100, occurred_start=dt.date(2024, 3, 6)),
        f.retracted("i-4"),
    )
    await catch_up(client, prefix, within=DEADLINE)


async def seed_statements(store: RedisEventStore, client: aioredis.Redis, prefix: str) -> None:
    """France and Germany condemn, Turkey is neutral on one subject; France alone on another."""
    await publish(
        store,
        f.reported("i-1", occurred_start=dt.date(2024, 3, 1)),
        f.statement("s-1", incident_ids=["i-1"]),
        f.statement(
            "s-2",
            speakers=[Speaker(country="DEU", name="Auswärtiges Amt")],
            issued_at=dt.datetime(2024, 3, 3, tzinfo=dt.UTC),
        ),
        f.statement(
            "s-3",
            speakers=[Speaker(country="TUR", name="MFA")],
            stance="neutral",
            cameo_code="020",
        ),
        f.statement("s-4", subject="other-subject", stance="support", cameo_code="051"),
    )
    await catch_up(client, prefix, within=DEADLINE)


async def get(client: Client, url: str, *, token: str | None = None, **params: Any) -> Any:
    headers = {"authorization": f"Bearer {token}"} if token else None
    response = await client.get(url, params=params, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


class TestCommunityVictims:
    async def test_sums_communities_of_live_incidents_by_best_descending(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Without filters every grading but discounted counts; retracted incidents never."""
        await seed_victims(redis_store, redis_client, key_prefix)
        client.headers["authorization"] = f"Bearer {OPERATOR}"  # exact figures (druze 2)
        answer = await get(client, VICTIMS)
        assert answer["total"] == {"low": 15, "best": 15, "high": 15, "at_least": False}
        assert answer["unattributed"] == {"low": 2, "best": 2, "high": 2, "at_least": False}
        behind = "/v1/projections/community-victims/incidents"
        assert answer["communities"] == [
            {
                "community": "druze",
                "low": 7,
                "best": 7,
                "high": 7,
                "incidents": 2,
                "at_least": False,
                "behind": f"{behind}?community=druze",
            },
            {
                "community": "alawite",
                "low": 6,
                "best": 6,
                "high": 6,
                "incidents": 1,
                "at_least": False,
                "behind": f"{behind}?community=alawite",
            },
        ]
        assert (answer["as_of"], answer["behind"]) == (None, behind)

    async def test_filters_by_country_adm1_week_dates_status_and_grading(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Each filter narrows the incidents (or the lines) counted (as an operator: a
        reader's totals are withheld beside the small lines of these data)."""
        await seed_victims(redis_store, redis_client, key_prefix)
        filters: dict[str, dict[str, str]] = {
            "country": {"country": "SYR"},
            "adm1": {"adm1": "Aleppo"},
            "week": {"week": "2024-W10"},
            "from": {"from": "2024-03-10"},
            "to": {"to": "2024-03-05"},
            "grading": {"min_grading": "confirmed"},
            "all": {"min_grading": "discounted"},
        }
        best = {
            name: (await get(client, VICTIMS, token=OPERATOR, **params))["total"]["best"]
            for name, params in filters.items()
        }
        assert best == {
            "country": 15,
            "adm1": 5,
            "week": 10,
            "from": 5,
            "to": 10,
            "grading": 10,
            "all": 22,
        }
        civilians = await get(client, VICTIMS, token=OPERATOR, status="civilian")
        assert [c["community"] for c in civilians["communities"]] == ["alawite", "druze"]
        assert (civilians["status"], civilians["total"]["best"]) == ("civilian", 6 + 5)
        assert civilians["unattributed"]["best"] == 0  # a status total is its lines' own


class TestCountryStance:
    async def test_lists_stances_with_latency_and_goldstein_mean(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Each (country, subject) row carries its stance, count, mean and latency."""
        await seed_statements(redis_store, redis_client, key_prefix)
        answer = await get(client, STANCE, subject="syria-civilians")
        rows = {row["country"]: row for row in answer["countries"]}
        assert sorted(rows) == ["DEU", "FRA", "TUR"]
        assert rows["FRA"]["stance"] == "condemn"
        assert rows["FRA"]["statements"] == 1
        assert rows["FRA"]["goldstein_mean"] == -2.0
        assert rows["FRA"]["reaction_latency_hours"] == 34.0  # 2 March 10:00 - 1 March 00:00
        assert rows["DEU"]["first_statement_at"] == "2024-03-03T00:00:00Z"
        assert rows["TUR"]["stance"] == "neutral"

    async def test_filters_by_country(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """``country`` keeps that country's rows on every subject."""
        await seed_statements(redis_store, redis_client, key_prefix)
        answer = await get(client, STANCE, country="FRA")
        assert [(r["country"], r["subject"]) for r in answer["countries"]] == [
            ("FRA", "other-subject"),
            ("FRA", "syria-civilians"),
        ]

    async def test_timeline_lists_a_countrys_statements(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """The timeline lists statements by issue time, on one subject when asked."""
        await seed_statements(redis_store, redis_client, key_prefix)
        everything = await get(client, f"{STANCE}/FRA/timeline")
        assert [e["statement_id"] for e in everything["entries"]] == ["s-1", "s-4"]
        one = await get(client, f"{STANCE}/FRA/timeline", subject="other-subject")
        assert [e["statement_id"] for e in one["entries"]] == ["s-4"]
        assert one["country"] == "FRA"


class TestAlignment:
    async def test_scores_pairs_with_a_below_b(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Equal stances score 1, a neutral one 0.5; pairs are ordered a < b."""
        await seed_statements(redis_store, redis_client, key_prefix)
        answer = await get(client, ALIGNMENT, subject="syria-civilians")
        assert answer["pairs"] == [
            {"a": "DEU", "b": "FRA", "score": 1.0, "shared_subjects": 1, "thin": True},
            {"a": "DEU", "b": "TUR", "score": 0.5, "shared_subjects": 1, "thin": True},
            {"a": "FRA", "b": "TUR", "score": 0.5, "shared_subjects": 1, "thin": True},
        ]
        unfiltered = await get(client, ALIGNMENT)
        assert len(unfiltered["pairs"]) == 3


class TestIncidents:
    async def test_pages_like_acled_with_count_and_total_count(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Pages hold ``limit`` incidents, newest occurrence first; totals count all matches."""
        await publish(
            redis_store,
            *(f.reported(f"i-{n}", occurred_start=dt.date(2024, 3, n)) for n in range(1, 6)),
        )
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        first = await get(client, "/v1/incidents", limit=2)
        third = await get(client, "/v1/incidents", limit=2, page=3)
        assert [r["incident_id"] for r in first["data"]] == ["i-5", "i-4"]
        assert (first["count"], first["total_count"], first["page"]) == (2, 5, 1)
        assert [r["incident_id"] for r in third["data"]] == ["i-1"]
        assert third["count"] == 1

    async def test_filters_by_country_adm1_and_dates(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Place and occurrence-date filters select incidents."""
        await seed_victims(redis_store, redis_client, key_prefix)
        ids = {
            name: [r["incident_id"] for r in (await get(client, "/v1/incidents", **q))["data"]]
            for name, q in {
                "country": {"country": "IRQ"},
                "adm1": {"adm1": "Aleppo"},
                "dates": {"from": "2024-03-05", "to": "2024-03-06"},
                "retracted too": {"from": "2024-03-05", "to": "2024-03-06", "status": "all"},
            }.items()
        }
        assert ids == {
            "country": ["i-3"],
            "adm1": ["i-2"],
            "dates": ["i-3"],  # live incidents only by default
            "retracted too": ["i-4", "i-3"],
        }

    async def test_a_page_by_status_place_and_dates_never_reads_the_rows_whole(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """A page with at most a country, an adm1 and dates, and one incident, come from the
        listing index and one row: the read side holds no incident rows after them. Another
        filter (a grading) reads the rows whole (and then holds them)."""
        await seed_victims(redis_store, redis_client, key_prefix)
        app = http_app(
            Settings(tokens=TOKENS, key_prefix=key_prefix), store=redis_store, client=redis_client
        )
        side: ReadSide = app.state.read
        rows = (PROJECTIONS["incidents"].view, "incident")
        async with client_of(app, headers={"authorization": f"Bearer {READER}"}) as http:
            paged = await get(http, "/v1/incidents", country="irq", status="all")
            assert [r["incident_id"] for r in paged["data"]] == ["i-3"]
            assert (await get(http, "/v1/incidents", limit=1))["total_count"] == 3
            assert (await get(http, "/v1/incidents/i-3"))["incident"]["incident_id"] == "i-3"
            aleppo = await get(http, "/v1/incidents", adm1="ALEPPO", week="2024-W11")
            assert [r["incident_id"] for r in aleppo["data"]] == ["i-2"]
            dated = await get(http, "/v1/incidents", status="all", **{"from": "2024-03-05"})
            assert [r["incident_id"] for r in dated["data"]] == ["i-2", "i-4", "i-3"]
            assert rows not in side.views.held()
            graded = await get(http, "/v1/incidents", grading="weak")
            assert rows in side.views.held()
            assert [r["incident_id"] for r in graded["data"]] == ["i-2"]

    async def test_one_incident_has_its_state_and_history(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """An incident answers its current figures and every event that touched it."""
        await publish(redis_store, f.reported("i-1", best=10), f.revised("i-1", best=12))
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        answer = await get(client, "/v1/incidents/i-1")
        assert answer["incident"]["fatalities"]["best"] == 12
        assert [h["type"] for h in answer["incident"]["history"]] == [
            "incident.reported",
            "incident.casualties_revised",
        ]

    async def test_unknown_incident_is_404(self, client: Client) -> None:
        """An id no event named answers 404 with a JSON error."""
        response = await client.get("/v1/incidents/nope")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


class TestFreshness:
    async def test_position_is_the_runners_checkpoint_and_lag_zero(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """Caught up, every endpoint answers the view's checkpoint and no lag."""
        await seed_statements(redis_store, redis_client, key_prefix)
        for name, url in {
            "community-victims": VICTIMS,
            "country-stance": STANCE,
            "alignment": ALIGNMENT,
            "incidents": "/v1/incidents",
        }.items():
            checkpoint = await load_checkpoint(redis_client, key_prefix, PROJECTIONS[name])
            answer = await get(client, url)
            assert (answer["position"], answer["lag"]) == (checkpoint, 0), name
            assert checkpoint == await redis_store.head()

    async def test_lag_counts_entries_appended_but_not_applied(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """With no projector running, appended events show as lag behind the checkpoint."""
        await publish(redis_store, f.reported("i-1"))
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        before = await get(client, VICTIMS)
        await publish(redis_store, f.reported("i-2"), f.statement("s-1"), f.revised("i-1"))
        after = await get(client, VICTIMS)
        assert after["position"] == before["position"]
        assert after["lag"] == 3
        assert after["total"] == before["total"]

    async def test_view_without_checkpoint_lags_by_the_whole_log(
        self, client: Client, redis_store: RedisEventStore
    ) -> None:
        """Before any projector ran, the position is null and the lag the log's length."""
        await publish(redis_store, f.reported("i-1"), f.reported("i-2"))
        answer = await get(client, ALIGNMENT)
        assert (answer["position"], answer["lag"]) == (None, 2)

    async def test_answer_follows_the_view_after_more_is_applied(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """A cached answer is not served once the checkpoint moves."""
        await publish(redis_store, f.reported("i-1", best=10))
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        assert (await get(client, VICTIMS))["total"]["best"] == 10
        await publish(redis_store, f.revised("i-1", best=30))
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        answer = await get(client, VICTIMS)
        assert (answer["total"]["best"], answer["lag"]) == (30, 0)


class TestInvalidParameters:
    @pytest.mark.parametrize(
        ("url", "params", "field"),
        [
            (VICTIMS, {"week": "2024-10"}, "week"),
            (VICTIMS, {"week": "2024-W60"}, "week"),
            (VICTIMS, {"status": "child"}, "status"),
            (VICTIMS, {"min_grading": "strong"}, "min_grading"),
            (VICTIMS, {"from": "yesterday"}, "from"),
            (VICTIMS, {"to": "2024-02-30"}, "to"),
            (VICTIMS, {"country": "SYRIA"}, "country"),
            (VICTIMS, {"colour": "red"}, "colour"),
            (VICTIMS, {"event_type": "battles"}, "event_type"),
            (VICTIMS, {"grading": "strong"}, "grading"),
            (VICTIMS, {"civilian_targeting": "maybe"}, "civilian_targeting"),
            (VICTIMS, {"from": "2024-03-10", "to": "2024-03-01"}, "from"),
            (f"{VICTIMS}/incidents", {"community": "Druze!"}, "community"),
            ("/v1/incidents", {"event_type": "Battle"}, "event_type"),
            ("/v1/incidents", {"violence_type": "war"}, "violence_type"),
            ("/v1/incidents", {"min_grading": "strong"}, "min_grading"),
            ("/v1/incidents", {"as_of": "2025-03-09T00:00:00Z"}, "as_of"),
            ("/v1/incidents", {"format": "xml"}, "format"),
            (ALIGNMENT, {"country": "FRA"}, "country"),
            (VICTIMS, {"as_of": "2024-03-01T00:00:00"}, "as_of"),
            (VICTIMS, {"as_of": "last tuesday"}, "as_of"),
            (STANCE, {"country": "FRANCE"}, "country"),
            (STANCE, {"as_of": "2024-03-01"}, "as_of"),
            (f"{STANCE}/fr/timeline", {}, "country"),
            (ALIGNMENT, {"as_of": "nope"}, "as_of"),
            ("/v1/incidents", {"page": "0"}, "page"),
            ("/v1/incidents", {"page": "two"}, "page"),
            ("/v1/incidents", {"limit": "5001"}, "limit"),
            ("/v1/incidents", {"limit": "0"}, "limit"),
            ("/v1/incidents", {"status": "alive"}, "status"),
        ],
    )
    async def test_bad_parameter_answers_422_naming_it(
        self, client: Client, url: str, params: dict[str, str], field: str
    ) -> None:
        """Each bad parameter is named in a 422 of the ingest error shape (minus index)."""
        response = await client.get(url, params=params)
        assert response.status_code == 422, response.text
        answer = response.json()
        assert answer["error"] == "invalid"
        assert [e["field"] for e in answer["errors"]] == [field]
        assert all(e["message"] for e in answer["errors"])

    async def test_largest_limit_is_accepted(self, client: Client) -> None:
        """A limit of 5000 is the maximum and still valid."""
        response = await client.get("/v1/incidents", params={"limit": "5000"})
        assert response.status_code == 200
        assert response.json()["limit"] == 5000


class TestAccess:
    @pytest.mark.parametrize(
        "url", [VICTIMS, STANCE, f"{STANCE}/FRA/timeline", ALIGNMENT, "/v1/incidents"]
    )
    async def test_every_endpoint_needs_a_token(self, client: Client, url: str) -> None:
        """No token answers 401 with a Bearer challenge."""
        response = await client.get(url, headers={"authorization": ""})
        assert response.status_code == 401
        assert response.headers["www-authenticate"] == "Bearer"

    async def test_feed_token_may_not_read(self, client: Client) -> None:
        """A feed token is refused with 403."""
        response = await client.get(VICTIMS, headers={"authorization": f"Bearer {FEED}"})
        assert response.status_code == 403

    async def test_operator_token_may_read(self, client: Client) -> None:
        """An operator token reads like a reader token."""
        response = await client.get(VICTIMS, headers={"authorization": f"Bearer {OPERATOR}"})
        assert response.status_code == 200

    async def test_unknown_route_is_404(self, client: Client) -> None:
        """A path no endpoint serves answers a JSON 404."""
        response = await client.get("/v1/projections/nope")
        assert response.status_code == 404
        assert response.json()["error"] == "not_found"


class TestOperations:
    async def test_openapi_lists_read_endpoints_with_parameters_and_schemas(
        self, client: Client
    ) -> None:
        """The OpenAPI document names each endpoint's query parameters and response body."""
        document = (await client.get("/openapi.json")).json()
        victims = document["paths"][VICTIMS]["get"]
        names = {p["name"] for p in victims["parameters"]}
        assert {"country", "adm1", "week", "from", "to", "status", "min_grading", "as_of"} <= names
        assert "VictimsBody" in str(victims["responses"]["200"])
        incidents = document["paths"]["/v1/incidents"]["get"]
        assert {"page", "limit", "from", "to"} <= {p["name"] for p in incidents["parameters"]}
        for path in (STANCE, ALIGNMENT, "/v1/incidents/{incident_id}", "/v1/live/{projection}"):
            assert path in document["paths"]

    async def test_metrics_report_lag_position_and_dead_letters(
        self, client: Client, redis_store: RedisEventStore, redis_client: Any, key_prefix: str
    ) -> None:
        """The scrape carries each projection's lag and position and the dead-letter count."""
        await publish(redis_store, f.reported("i-1"))
        await catch_up(redis_client, key_prefix, within=DEADLINE)
        await publish(redis_store, f.reported("i-2"))
        text = (await client.get("/metrics", headers=SCRAPE)).text
        assert 'ledger_projection_lag{projection="incidents"} 1.0' in text
        assert 'ledger_projection_position_seconds{projection="alignment"}' in text
        assert "ledger_dead_letters 0.0" in text
        assert "ledger_sse_clients 0.0" in text

    async def test_readyz_reports_projectors_when_the_service_runs_them(
        self, redis_store: RedisEventStore, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """``/readyz`` names the projectors' state given by the wiring, and every view's lag
        (an empty log: nothing to apply)."""
        states: Sequence[str] = ("running", "degraded")
        for state in states:
            app = http_app(
                Settings(tokens=TOKENS, key_prefix=key_prefix),
                store=redis_store,
                client=redis_client,
                projector_state=functools.partial(str, state),
            )
            async with client_of(app) as http:
                answer = (await http.get("/readyz")).json()
            none = {"entries": 0, "seconds": 0.0}
            assert answer == {
                "status": "ready",
                "projectors": state,
                "lag": dict.fromkeys(PROJECTIONS, none),
            }


class TestIncrementalVictimsAnswer:
    """The community-victims answer kept up to date by changed cells equals a full query."""

    @pytest.mark.parametrize(
        "filters",
        [
            {},
            {"status": "civilian"},
            {"min_grading": "fair"},
            {"date_from": dt.date(2025, 3, 1), "status": "unknown"},
        ],
    )
    async def test_moved_sums_equal_a_full_query_after_each_batch(
        self,
        redis_client: aioredis.Redis,
        key_prefix: str,
        filters: dict[str, Any],
    ) -> None:
        """Revisions, retractions and merges moved in by diff answer what a full query does."""
        store = RedisEventStore(redis_client, prefix=key_prefix)
        side = ReadSide(redis_client, key_prefix, suppression_k=5)
        projection = PROJECTIONS[cv.NAME]
        workload = Workload(seed=7, namespace="inc-")
        moved = 0
        for _ in range(6):
            await store.append(workload.take(400))
            await ProjectorPool(redis_client, prefix=key_prefix, block_ms=50).run_until_caught_up()
            state, checkpoint = await side.views.read(projection, ("total",))
            assert checkpoint is not None
            before = next(iter(side.victims_sums.values()), None)
            moved += before is not None and before.checkpoint is not None
            where = VictimsFilter(**filters)
            sums = side.kept_sums(projection, state, checkpoint, where)
            assert exact(sums.answer()) == exact(cv.query(state, where))
            assert sums.protected() == protected_query(state, 5, where)
        assert moved == 5  # every batch after the first was applied as a difference
