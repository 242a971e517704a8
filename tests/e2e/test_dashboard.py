"""The analysts' dashboard in a real browser, against the real service on a real Redis.

The service is wired by :func:`services.bootstrap.api` (Redis event store, inbox, projector
pool) under this test's key prefix and served by uvicorn on a free port in the test's own
event loop; the page is driven by Playwright's async API in Debian's chromium. Waiting is
always for a condition (Playwright's ``expect``/``wait_for`` with a deadline), never a sleep.

The browser tests skip, naming what is missing, only when the ``playwright`` package or a
chromium executable (``LEDGER_CHROMIUM``, else ``/usr/bin/chromium`` or ``chromium`` on the
PATH) cannot be had. The page-serving tests need neither.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import shutil
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest
import uvicorn

from events import AnyEvent, CasualtiesRevised, Fatalities, Source, VictimLine
from services.bootstrap import Service, api, http_app
from services.client import LedgerClient
from services.http.dashboard import STATIC_DIR
from services.http.middleware import live_query_token
from services.http.server import bind
from services.reference import MAIN_INCIDENT, MONITOR_FEED, REFERENCE_FEEDS, scenario
from services.settings import Settings, Token
from services.store.memory import InMemoryEventStore

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

READER = "reader-token-e2e-0123456789"
FEED_TOKENS = {feed: f"feed-{feed}-e2e-0123456789" for feed in REFERENCE_FEEDS}
DEADLINE_MS = 20_000
"""How long the page may take to show a change (the projectors run in the same process)."""
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def chromium_path() -> str | None:
    """The chromium to drive: ``LEDGER_CHROMIUM``, ``/usr/bin/chromium`` or one on the PATH."""
    given = os.environ.get("LEDGER_CHROMIUM")
    if given:
        return given if os.access(given, os.X_OK) else None
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium") or shutil.which("chromium-browser")


def one_more_revision() -> CasualtiesRevised:
    """A revision of the coastal incident that names communities (1,520 killed, best)."""
    return CasualtiesRevised(
        event_id=uuid.uuid4(),
        source=MONITOR_FEED,
        incident_id=MAIN_INCIDENT,
        fatalities=Fatalities(low=1500, best=1520, high=1600, qualifier="approximately"),
        victims=[
            VictimLine(community="alawite", status="civilian", low=900, best=1000, high=1150),
            VictimLine(community="christian", status="civilian", low=10, best=25, high=40),
        ],
        sources=[Source(publisher="Syrian Observatory for Human Rights")],
        reason="End-to-end test revision: a higher toll with two communities named.",
    )


async def publish(base_url: str, events: list[AnyEvent]) -> None:
    """Publish ``events`` through the HTTP API, each run of one feed with that feed's token."""
    for source, run in itertools.groupby(events, key=lambda e: e.source):
        async with LedgerClient(base_url, FEED_TOKENS[source], retries=2) as client:
            await client.publish(list(run))


# --- the service ------------------------------------------------------------------------------


@pytest.fixture
def service_options() -> dict[str, Any]:
    """Settings of the service beyond Redis, tokens and prefix (a cluster test sets more)."""
    return {}


@pytest.fixture
async def service(
    redis_url: str, key_prefix: str, service_options: dict[str, Any]
) -> AsyncIterator[str]:
    """The real service on this test's key prefix, listening on a free port; yields its URL."""
    tokens = (
        Token(role="reader", secret=READER),
        *(Token(role="feed", secret=secret, feed=feed) for feed, secret in FEED_TOKENS.items()),
    )
    settings = Settings(
        redis_url=redis_url,
        http_host="127.0.0.1",
        http_port=0,
        tokens=tokens,
        key_prefix=key_prefix,
        **service_options,
    )
    built: Service = api(settings)
    await built.start()
    sock = bind("127.0.0.1", 0)
    host, port = sock.getsockname()[:2]
    server = uvicorn.Server(
        uvicorn.Config(
            built.app,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
        )
    )
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            if serving.done() or time.monotonic() > deadline:
                serving.result()  # raises what stopped it
                pytest.fail("uvicorn did not start listening within 10 s")
            await asyncio.sleep(0.01)  # polling a condition with a deadline
        yield f"http://{host}:{port}"
    finally:
        read = built.http.state.get("read")
        if read is not None:
            read.live.close()  # ends open live streams, as `ledger serve` does on stopping
        server.should_exit = True
        await serving
        sock.close()
        await built.stop()


# --- the browser ------------------------------------------------------------------------------


@pytest.fixture
def chromium() -> str:
    """The chromium executable, or a skip naming what is missing."""
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        pytest.skip("the playwright package is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        pytest.skip("no chromium: install it (apt-get install chromium) or set LEDGER_CHROMIUM")
    return path


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """A headless chromium, closed after the test."""
    from playwright.async_api import async_playwright

    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


class PageWatch:
    """What a page did besides rendering: requests to other hosts, script errors, CSP reports."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.foreign: list[str] = []
        self.errors: list[str] = []
        page.on("request", lambda r: self._request(r.url, base_url))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", self._console)

    def _request(self, url: str, base_url: str) -> None:
        if not (url.startswith(f"{base_url}/") or url.startswith("data:")):
            self.foreign.append(url)

    def _console(self, message: Any) -> None:
        text = str(message.text)
        if message.type == "error" or "Content Security Policy" in text:
            self.errors.append(f"console {message.type}: {text}")


async def open_dashboard(browser: Browser, base_url: str) -> tuple[Page, PageWatch]:
    """A fresh page (its own session storage) on the dashboard, watched."""
    context = await browser.new_context(viewport={"width": 1400, "height": 1000})
    page = await context.new_page()
    watch = PageWatch(page, base_url)
    await page.goto(f"{base_url}/")
    return page, watch


async def sign_in(page: Page, token: str) -> None:
    """Enter ``token`` in the token form and connect."""
    await page.get_by_label("Reader token").fill(token)
    await page.get_by_role("button", name="Connect").click()


class TestDashboardInTheBrowser:
    async def test_page_follows_the_reference_scenario_and_a_live_revision(
        self, service: str, browser: Browser
    ) -> None:
        """The panels show the scenario's figures, then a revision arrives over SSE."""
        from playwright.async_api import expect

        page, watch = await open_dashboard(browser, service)
        await expect(page.get_by_role("heading", name="Victims per community")).to_be_visible()
        await sign_in(page, READER)
        live = page.locator("#live-status")
        await expect(live).to_have_attribute("data-state", "live", timeout=DEADLINE_MS)
        assert await page.evaluate("sessionStorage.length") == 1

        await publish(service, scenario())

        total = page.locator("#victims-total")
        await expect(total).to_have_text("1,476", timeout=DEADLINE_MS)
        stance = page.locator("#stance-table tbody")
        await expect(stance.locator("tr[data-country='USA']")).to_be_visible()
        await expect(stance.locator("tr[data-country='RUS']")).to_be_visible()
        cell = page.locator("#heatmap td[data-pair='RUS-USA']").first
        await expect(cell).to_have_text("1.00")
        incident = page.locator(f"button[data-incident='{MAIN_INCIDENT}']")
        await expect(incident).to_contain_text("1,476 killed")
        await incident.click()
        history = page.locator(f"li[data-incident-row='{MAIN_INCIDENT}'] .history tbody tr")
        await expect(history).to_have_count(4)  # reported, revised, merged into, revised
        await page.get_by_role("button", name="Timeline of USA").click()
        await expect(page.locator("#timeline li")).to_have_count(3)

        await page.evaluate("window.loadedOnce = true")
        await publish(service, [one_more_revision()])

        await expect(total).to_have_text("1,520", timeout=DEADLINE_MS)
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

_OTHER_HOST = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}""")


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    """The HTTP app in process: an in-memory store, so no read side runs (its routes 404)."""
    settings = Settings(tokens=(Token(role="reader", secret=READER),))
    app = http_app(settings, store=InMemoryEventStore())
    transport = httpx.ASGITransport(app=app)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=transport, base_url="http://ledger.test") as client:
        yield client


class TestPageServing:
    async def test_page_and_assets_load_without_a_token(self, http: httpx.AsyncClient) -> None:
        """GET / and every asset it names answer 200 with no Authorization header."""
        page = await http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
        assert set(assets) >= {
            "/static/app.js",
            "/static/app.css",
            "/static/vendor/chart.umd.min.js",
        }
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
        """index.html, app.js and app.css reference no URL of another host (no CDN)."""
        for name in ("index.html", "app.js", "app.css"):
            text = (STATIC_DIR / name).read_text(encoding="utf-8")
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
