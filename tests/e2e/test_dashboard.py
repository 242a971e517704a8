"""The analysts' dashboard in a real browser, against the real service on a real Redis.

The service is wired by :func:`services.bootstrap.api` (Redis event store, inbox, projector
pool) under this test's key prefix and served by uvicorn on a free port in the test's own
event loop; the page is driven by Playwright's async API in Debian's chromium. Waiting is
always for a condition (Playwright's ``expect``/``wait_for`` with a deadline), never a sleep.

The browser tests skip, naming what is missing, only when the ``playwright`` package or a
chromium executable (``LEDGER_CHROMIUM``, else ``/usr/bin/chromium`` or ``chromium`` on the
PATH) cannot be had, and fail then under CI. The page-serving tests need neither. The
fixtures are in ``conftest.py``; the browser helpers in :mod:`tests.support.browser`.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from services.bootstrap import http_app
from services.http.dashboard import STATIC_DIR
from services.http.middleware import live_query_token
from services.reference import MAIN_INCIDENT, scenario
from services.settings import Settings, Token
from services.store.memory import InMemoryEventStore
from tests.support.browser import ARTIFACTS, DEADLINE_MS, open_dashboard, sign_in
from tests.support.http import client_of
from tests.support.service import READER, one_more_revision, publish

if TYPE_CHECKING:
    from playwright.async_api import Browser


class TestDashboardInTheBrowser:
    async def test_page_follows_the_reference_scenario_and_a_live_revision(
        self, service: str, browser: Browser
    ) -> None:
        """The panels show the scenario's figures, then a revision arrives over SSE."""
        from playwright.async_api import expect

        page, watch = await open_dashboard(browser, service)
        await expect(page.get_by_role("heading", name="Victims", exact=True)).to_be_visible()
        await sign_in(page, READER)
        live = page.locator("#live-status")
        await expect(live).to_have_attribute("data-state", "live", timeout=DEADLINE_MS)
        assert await page.evaluate("sessionStorage.length") == 1

        await publish(service, scenario())

        total = page.locator("#victims-total")
        await expect(total).to_have_text("≥ 1,476", timeout=DEADLINE_MS)  # "at least"
        stance = page.locator("#stance-table tbody")
        usa = stance.locator("tr[data-country='USA']")
        await expect(usa).to_have_count(2)  # the coastal violence, and the warning's subject
        await expect(usa.filter(has_text="syria-coastal").locator(".stance")).to_have_attribute(
            "data-family", "critical"
        )
        await expect(usa.filter(has_text="extremism").locator(".stance")).to_have_text("warn")
        await expect(stance.locator("tr[data-country='RUS']")).to_be_visible()
        cell = page.locator("#heatmap td[data-pair='RUS-USA']").first
        await expect(cell).to_have_text("1.00 thin")  # one shared subject
        incident = page.locator(f"button[data-incident='{MAIN_INCIDENT}']")
        await expect(incident).to_contain_text("≥ 1,476 killed")
        await incident.click()
        history = page.locator(f"li[data-incident-row='{MAIN_INCIDENT}'] .history tbody tr")
        await expect(history).to_have_count(4)  # reported, revised, merged into, revised
        await page.get_by_role("button", name="Timeline of USA").first.click()
        await expect(page.locator("#timeline li")).to_have_count(4)  # the warning too

        await page.evaluate("window.loadedOnce = true")
        await publish(service, [one_more_revision()])

        await expect(total).to_have_text("1,520", timeout=DEADLINE_MS)  # approximately
        alawite = page.locator("#victims-table tr[data-community='alawite'] td")
        await expect(alawite.nth(1)).to_have_text("1,000")
        await expect(history).to_have_count(5, timeout=DEADLINE_MS)
        await expect(page.locator("#victims-communities")).to_have_text("2")
        chart_best = await page.evaluate(
            "Chart.getChart(document.getElementById('victims-chart')).data.datasets[0].data"
        )
        assert chart_best == [1000, 25, 495]  # alawite, christian, not attributed
        assert await page.evaluate("window.loadedOnce") is True, "the page was reloaded"

        ARTIFACTS.mkdir(exist_ok=True)
        await page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
        assert watch.foreign == []
        assert watch.errors == []

    async def test_an_unknown_token_is_refused_and_forgotten(
        self, service: str, browser: Browser
    ) -> None:
        """A token the service does not know brings the form back with a message."""
        from playwright.async_api import expect

        page, _ = await open_dashboard(browser, service)
        await sign_in(page, "not-a-token-0123456789")
        await expect(page.get_by_role("alert")).to_contain_text("not accepted")
        await expect(page.get_by_label("Reader token")).to_be_visible()
        assert await page.evaluate("sessionStorage.length") == 0

    async def test_the_token_survives_a_reload_of_the_tab(
        self, service: str, browser: Browser
    ) -> None:
        """The token is entered once per tab: a reload reconnects without asking again."""
        from playwright.async_api import expect

        page, _ = await open_dashboard(browser, service)
        await sign_in(page, READER)
        live = page.locator("#live-status")
        await expect(live).to_have_attribute("data-state", "live", timeout=DEADLINE_MS)
        await page.reload()
        await expect(live).to_have_attribute("data-state", "live", timeout=DEADLINE_MS)
        await expect(page.get_by_label("Reader token")).to_be_hidden()


# --- the page as served (no browser) ------------------------------------------------------------

SCRIPTS = ("core.js", "victims.js", "series.js", "map.js", "incidents.js", "stance.js", "app.js")
"""The page's own scripts, in the order it loads them."""
_SVG_NAMESPACE = "http://www.w3.org/2000/svg"
_OTHER_HOST = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app in process: an in-memory store, so no read side runs (its routes 404)."""
    settings = Settings(tokens=(Token(role="reader", secret=READER),))
    app = http_app(settings, store=InMemoryEventStore())
    async with client_of(app, base_url="http://ledger.test") as client:
        yield client


class TestPageServing:
    async def test_page_and_assets_load_without_a_token(self, http: httpx.AsyncClient) -> None:
        """GET / and every asset it names answer 200 with no Authorization header."""
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert set(assets) >= {
            *(f"/static/{name}" for name in SCRIPTS),
            "/static/app.css",
            "/static/vendor/chart.umd.min.js",
        }
        outlines = await http.get("/static/vendor/boundaries.json")
        assert outlines.status_code == 200
        for asset in assets:
            answer = await http.get(asset)
            assert answer.status_code == 200, asset

    async def test_page_and_assets_carry_a_same_origin_policy(
        self, http: httpx.AsyncClient
    ) -> None:
        """The page and its assets forbid other origins, inline script and framing."""
        for path in ("/", "/static/app.js"):
            answer = await http.get(path)
            policy = answer.headers["content-security-policy"]
            assert "default-src 'none'" in policy
            assert "script-src 'self'" in policy
            assert "connect-src 'self'" in policy
            assert "frame-ancestors 'none'" in policy
            assert answer.headers["x-content-type-options"] == "nosniff"

    def test_own_files_name_no_other_host(self) -> None:
        """index.html, the scripts and app.css reference no URL of another host (no CDN)."""
        for name in ("index.html", "app.css", *SCRIPTS):
            text = (STATIC_DIR / name).read_text(encoding="utf-8")
            text = text.replace(_SVG_NAMESPACE, "")  # a namespace's name, never fetched
            assert _OTHER_HOST.findall(text) == [], name

    async def test_unknown_asset_is_a_json_404(self, http: httpx.AsyncClient) -> None:
        """A missing asset answers 404 with the API's JSON error body."""
        answer = await http.get("/static/missing.js")
        assert answer.status_code == 404
        assert answer.json()["error"] == "not_found"

    def test_charting_library_ships_with_its_licence(self) -> None:
        """The vendored Chart.js is in the package with its MIT licence and origin note."""
        vendor = STATIC_DIR / "vendor"
        assert (
            (vendor / "chart.umd.min.js")
            .read_text(encoding="utf-8")
            .startswith("/*!\n * Chart.js v4")
        )
        assert "MIT License" in (vendor / "LICENSE.md").read_text(encoding="utf-8")
        assert "npm" in (vendor / "README.md").read_text(encoding="utf-8")

    def test_map_outlines_ship_with_their_origin_and_stay_small(self) -> None:
        """The Natural Earth outlines are in the package, under 2 MB, their origin noted."""
        outlines = STATIC_DIR / "vendor" / "boundaries.json"
        assert outlines.stat().st_size < 2_000_000
        body = json.loads(outlines.read_text(encoding="utf-8"))
        assert {c["id"] for c in body["countries"]} >= {"SYR", "IRQ", "TUR", "LBN"}
        assert {a["id"] for a in body["adm1"] if a["country"] == "SYR"} >= {"SY.LA", "SY.TA"}
        note = (STATIC_DIR / "vendor" / "README.md").read_text(encoding="utf-8")
        assert "Natural Earth" in note
        assert "public domain" in note


class TestLiveTokenInQuery:
    async def test_live_stream_takes_the_token_as_a_query_parameter(
        self, http: httpx.AsyncClient
    ) -> None:
        """``/v1/live/…?access_token=`` authenticates (then 404s: no read side runs here)."""
        answer = await http.get("/v1/live/incidents", params={"access_token": READER})
        assert answer.status_code == 404
        refused = await http.get("/v1/live/incidents", params={"access_token": "wrong-token-0123"})
        assert refused.status_code == 401

    async def test_other_paths_ignore_a_token_in_the_query(self, http: httpx.AsyncClient) -> None:
        """Elsewhere a token in the URL authenticates nothing: the header is needed."""
        for path in ("/v1/incidents", "/metrics", "/v1/projections/alignment"):
            answer = await http.get(path, params={"access_token": READER})
            assert answer.status_code == 401, path

    async def test_a_header_wins_over_the_query_parameter(self, http: httpx.AsyncClient) -> None:
        """With an Authorization header, the query's token is not looked at."""
        answer = await http.get(
            "/v1/live/incidents",
            params={"access_token": READER},
            headers={"Authorization": "Bearer wrong-token-0123"},
        )
        assert answer.status_code == 401

    async def test_token_moves_from_the_query_string_to_the_header(self) -> None:
        """Downstream sees ``Authorization: Bearer`` and a query string without the token."""
        seen: list[dict[str, Any]] = []

        async def app(scope: Any, receive: Any, send: Any) -> None:
            seen.append(dict(scope))

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/v1/live/alignment",
            "query_string": f"x=1&access_token={READER}".encode(),
            "headers": [(b"accept", b"text/event-stream")],
        }
        await live_query_token(app)(scope, None, None)  # type: ignore[arg-type]
        (downstream,) = seen
        assert downstream["query_string"] == b"x=1"
        assert (b"authorization", f"Bearer {READER}".encode()) in downstream["headers"]
