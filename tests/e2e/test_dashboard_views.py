"""The dashboard's views in a real browser, on the reference scenario (issue 19).

The reference scenario with its revision naming alawite (1,000) and christian (25)
civilians, a small Tartus incident naming 2 druze civilians (withheld from a reader) and a
Homs incident a month later (so the series has empty days between). Each test proves one
thing the analysts asked for: the map draws the incidents, the series shows the gap, a
suppressed line is marked and not numbered for a reader, a panel's CSV download is the
API's CSV, a shared URL reproduces the filters, retracted incidents are hidden by default,
and the drill-down shows the owner, sources, merges and disputes.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from events import Place, Source, VictimLine
from services.reference import (
    DUPLICATE_FEED,
    DUPLICATE_INCIDENT,
    MAIN_INCIDENT,
    MONITOR_FEED,
    UNVERIFIED_INCIDENT,
    scenario,
)
from tests.support import builders as f
from tests.support.browser import ARTIFACTS, DEADLINE_MS, open_dashboard, sign_in
from tests.support.service import ANALYST, READER, one_more_revision, publish
from tests.support.waiting import until

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

SMALL = f.reported(
    "e2e-small-1",
    best=3,
    source=MONITOR_FEED,
    occurred_start=dt.date(2025, 3, 7),
    place=Place(adm1="Tartus"),
    victims=[
        VictimLine(community="druze", status="civilian", low=2, best=2, high=2),
        VictimLine(community="ismaili", status="civilian", low=1, best=1, high=1),
    ],
)
LATER = f.reported(
    "e2e-homs-april",
    best=40,
    source=MONITOR_FEED,
    occurred_start=dt.date(2025, 4, 10),
    place=Place(adm1="Homs", name="Homs city", lat=34.73, lon=36.71),
    geo_precision=1,
    violence_type="state_based",
    event_type="Battles",
    sources=[
        Source(
            publisher="Homs field report",
            url="https://example.org/homs/1",
            published_at=dt.datetime(2025, 4, 11, 9, tzinfo=dt.UTC),
        )
    ],
)
DISPUTE = f.disputed("e2e-homs-april", feed=DUPLICATE_FEED)
MIXED = [
    f.statement(
        f"e2e-fra-{stance}",
        "FRA",
        stance=stance,
        role="foreign_minister",
        title="Minister for Europe and Foreign Affairs",
    )
    for stance in ("condemn", "support")
]
"""Two statements of one rank at one moment, of different families: a mixed stance."""
EVENTS = [*scenario(), one_more_revision(), SMALL, LATER, DISPUTE, *MIXED]
LIVE = [MAIN_INCIDENT, "e2e-small-1", "e2e-homs-april"]


async def api(service: str, path: str, token: str = READER, **params: Any) -> httpx.Response:
    """The service's answer to ``path`` with ``params`` as ``token``."""
    async with httpx.AsyncClient(base_url=service, timeout=30) as client:
        answer = await client.get(path, params=params, headers={"Authorization": f"Bearer {token}"})
    answer.raise_for_status()
    return answer


async def ready(
    browser: Browser, service: str, token: str = READER, path: str = "/", width: int = 1400
) -> Page:
    """A signed-in dashboard at ``path``, its live streams open."""
    from playwright.async_api import expect

    page, watch = await open_dashboard(browser, service, path, width)
    page.watch = watch  # type: ignore[attr-defined]
    await sign_in(page, token)
    await expect(page.locator("#live-status")).to_have_attribute(
        "data-state", "live", timeout=DEADLINE_MS
    )
    return page


@pytest.fixture
async def published(service: str) -> str:
    """The service with :data:`EVENTS` published and folded into every view."""
    await publish(service, EVENTS)
    await caught_up(service)
    return service


async def caught_up(service: str, within: float = 30) -> None:
    """Wait until every view the dashboard reads has applied the whole log."""

    async def done() -> bool:
        paths = ("/v1/incidents", "/v1/projections/community-victims", "/v1/projections/alignment")
        return all([(await api(service, path)).json()["lag"] == 0 for path in paths])

    await until(done, "every view at the head of the log", within=within, every=0.1)


def no_trouble(page: Page) -> None:
    """The page asked no other host for anything and raised no error."""
    watch = page.watch  # type: ignore[attr-defined]
    assert watch.foreign == []
    assert watch.errors == []


class TestMap:
    async def test_map_draws_each_live_incident_with_its_place_precision(
        self, published: str, browser: Browser
    ) -> None:
        """One mark per live incident; an ADM1-precision one is a ring on its shaded area."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        dots = page.locator("#map-box circle.dot")
        await expect(dots).to_have_count(len(LIVE), timeout=DEADLINE_MS)
        main = page.locator(f"#map-box circle[data-incident='{MAIN_INCIDENT}']")
        await expect(main).to_have_attribute("data-precision", "adm1")
        homs = page.locator("#map-box circle[data-incident='e2e-homs-april']")
        await expect(homs).to_have_attribute("data-precision", "exact")
        await expect(page.locator("#map-box path[data-adm1='SY.LA']")).to_have_class("shaded")
        await expect(page.locator("#map-summary")).to_contain_text("3 incidents on the map")
        no_trouble(page)


class TestSeries:
    async def test_series_lies_on_a_time_axis_with_the_empty_days_as_a_gap(
        self, published: str, browser: Browser
    ) -> None:
        """March and April are a month apart on the axis; the days between read as a gap."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        gap = page.locator("#series-table tr.gap")
        await expect(gap).to_have_count(1, timeout=DEADLINE_MS)
        await expect(gap.last).to_have_attribute("data-gap", "2025-03-08/2025-04-09")
        await expect(page.locator("#series-unit")).to_have_text("per day")
        await expect(
            page.locator("#series-table tr[data-period='2025-04-10'] td").nth(1)
        ).to_have_text("40")
        xs = await page.evaluate(
            "Chart.getChart(document.getElementById('series-chart'))"
            ".data.datasets[0].data.filter(p => p.y !== null).map(p => p.x)"
        )
        day = 86_400_000
        assert (xs[-1] - xs[-2]) / day == 34  # 7 March to 10 April, not one slot apart
        no_trouble(page)

    async def test_brushing_the_series_sets_the_range_of_every_panel(
        self, published: str, browser: Browser
    ) -> None:
        """A drag across April filters the map and the victims to the April incident."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        await expect(page.locator("#map-box circle.dot")).to_have_count(3, timeout=DEADLINE_MS)
        await page.locator("#series-chart").scroll_into_view_if_needed()
        box = await page.locator("#series-chart").bounding_box()
        assert box is not None
        # from 3 April to past the chart's right edge (the brush holds on past it)
        x = await page.evaluate(
            "(() => { const s = Chart.getChart(document.getElementById('series-chart')).scales.x;"
            " return [s.getPixelForValue(Date.UTC(2025, 3, 3)), s.right + 40]; })()"
        )
        await page.mouse.move(box["x"] + x[0], box["y"] + box["height"] / 2)
        await page.mouse.down()
        await page.mouse.move(box["x"] + x[1], box["y"] + box["height"] / 2, steps=4)
        await page.mouse.up()
        await expect(page.locator("#f-from")).to_have_value(re.compile(r"^2025-04-0[234]$"))
        await expect(page.locator("#map-box circle.dot")).to_have_count(1, timeout=DEADLINE_MS)
        await expect(page.locator("#victims-total")).to_have_text("40", timeout=DEADLINE_MS)
        assert "from=2025-04" in page.url


class TestSuppression:
    async def test_reader_sees_a_small_line_marked_and_never_numbered(
        self, published: str, browser: Browser
    ) -> None:
        """Druze reads "fewer than 5" with no figure, in the table and in the chart."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        druze = page.locator("#victims-table tr[data-community='druze']")
        await expect(druze).to_have_attribute("data-suppressed", "true", timeout=DEADLINE_MS)
        await expect(druze.locator("td")).to_have_text(["fewer than 5"])
        alawite = page.locator("#victims-table tr[data-community='alawite'] td")
        await expect(alawite.nth(1)).to_have_text("1,000")  # large lines stay exact
        await expect(page.locator("#victims-unattributed")).to_have_text("withheld")
        rest = page.locator("#victims-table tr[data-community=''] td")
        await expect(rest).to_have_text(["withheld"])  # it would let druze be recomputed
        await expect(page.locator("#victims-suppression-note")).to_contain_text("below 5")
        chart = await page.evaluate(
            "(() => { const c = Chart.getChart(document.getElementById('victims-chart'));"
            " return {labels: c.data.labels, best: c.data.datasets[0].data}; })()"
        )
        index = next(i for i, label in enumerate(chart["labels"]) if label.startswith("druze"))
        assert chart["labels"][index] == "druze (fewer than 5)"
        assert chart["best"][index] is None
        answer = (await api(published, "/v1/projections/community-victims")).json()
        if answer["total_suppressed"]:  # the total would bound the withheld lines: withheld
            await expect(page.locator("#victims-total")).to_have_text("withheld")
        else:  # the bars add up to the total: the withheld lines are drawn together
            assert sum(b for b in chart["best"] if b is not None) == 1520 + 3 + 40
            together = page.locator("#victims-table tr[data-withheld] td")
            await expect(together.nth(1)).to_have_text("538")  # 1,563 - 1,000 - 25
        no_trouble(page)

    async def test_analyst_sees_every_line_numbered(self, published: str, browser: Browser) -> None:
        """With an analyst token druze is 2 and nothing is withheld."""
        from playwright.async_api import expect

        page = await ready(browser, published, ANALYST)
        druze = page.locator("#victims-table tr[data-community='druze'] td")
        await expect(druze.nth(1)).to_have_text("2", timeout=DEADLINE_MS)
        await expect(page.locator("#victims-table tr[data-suppressed]")).to_have_count(0)
        await expect(page.locator("#victims-unattributed")).to_have_text("535")  # 1,563 - 1,028


class TestCsv:
    @pytest.mark.parametrize(
        ("panel", "path", "params"),
        [
            ("victims", "/v1/projections/community-victims", {"min_grading": "contested"}),
            (
                "incidents",
                "/v1/incidents",
                {"status": "live", "limit": "50", "page": "1", "min_grading": "contested"},
            ),
            ("stance", "/v1/projections/country-stance", {}),
        ],
    )
    async def test_a_panel_download_is_the_api_csv_of_what_it_shows(
        self, published: str, browser: Browser, panel: str, path: str, params: dict[str, str]
    ) -> None:
        """The downloaded file holds the API's CSV rows of the same request, row for row."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        await expect(page.locator(f"#panel-{panel} [data-freshness]")).to_have_attribute(
            "data-lag", "0", timeout=DEADLINE_MS
        )
        async with page.expect_download() as info:
            await page.locator(f"button[data-csv='{panel}']").click()
        download = await info.value
        saved = await download.path()
        got = saved.read_bytes().decode("utf-8").split("\r\n")
        expected = (await api(published, path, format="csv", **params)).text.split("\r\n")
        assert got[0].startswith("#ledger,position=")
        assert got[0].split(",")[1] == expected[0].split(",")[1]  # the same position read
        assert got[1:] == expected[1:]
        assert len(got) > 3
        no_trouble(page)


class TestSharedUrl:
    async def test_a_link_reproduces_the_filters_of_the_view(
        self, published: str, browser: Browser
    ) -> None:
        """Filters applied go into the URL; that URL opened afresh shows the same view."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        await page.locator("#f-adm1").fill("Tartus")
        await page.locator("#f-from").fill("2025-03-01")
        await page.locator("#f-event-type").select_option("Violence against civilians")
        await page.locator("#f-status").select_option("all")
        await page.get_by_role("button", name="Apply").click()
        await expect(page).to_have_url(re.compile(r"adm1=Tartus"))
        url = page.url
        for part in ("from=2025-03-01", "event_type=Violence", "status=all"):
            assert part in url
        expected = (
            await api(
                published,
                "/v1/projections/community-victims",
                adm1="Tartus",
                **{"from": "2025-03-01"},
                event_type="Violence against civilians",
            )
        ).json()
        total = "withheld" if expected["total_suppressed"] else f"{expected['total']['best']:,}"

        again = await ready(browser, published, path="/" + url.split("/", 3)[3])
        await expect(again.locator("#f-adm1")).to_have_value("Tartus")
        await expect(again.locator("#f-from")).to_have_value("2025-03-01")
        await expect(again.locator("#f-status")).to_have_value("all")
        await expect(again.locator("#f-event-type")).to_have_value("Violence against civilians")
        await expect(again.locator("#victims-total")).to_have_text(total, timeout=DEADLINE_MS)
        listed = await api(
            published,
            "/v1/incidents",
            adm1="Tartus",
            status="all",
            **{"from": "2025-03-01"},
            event_type="Violence against civilians",
        )
        rows = again.locator("#incident-list > li")
        await expect(rows).to_have_count(listed.json()["total_count"], timeout=DEADLINE_MS)
        no_trouble(again)


class TestIncidents:
    async def test_retracted_and_merged_incidents_are_hidden_until_asked_for(
        self, published: str, browser: Browser
    ) -> None:
        """Live only by default; "all" lists the others, styled and never bold as a toll."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        rows = page.locator("#incident-list > li")
        await expect(rows).to_have_count(len(LIVE), timeout=DEADLINE_MS)
        await expect(page.locator(f"li[data-incident-row='{UNVERIFIED_INCIDENT}']")).to_have_count(
            0
        )
        await page.locator("#f-status").select_option("all")
        await page.get_by_role("button", name="Apply").click()
        await expect(rows).to_have_count(len(LIVE) + 2, timeout=DEADLINE_MS)
        gone = page.locator(f"button[data-incident='{UNVERIFIED_INCIDENT}']")
        await expect(gone).to_have_class(re.compile(r"\bgone\b"))
        await expect(gone).to_contain_text("retracted")
        killed = gone.locator(".killed")
        assert await killed.evaluate("e => getComputedStyle(e).fontWeight") == "400"
        await expect(killed).to_contain_text("was ")
        dup = page.locator(f"button[data-incident='{DUPLICATE_INCIDENT}']")
        await expect(dup).to_contain_text("merged")

    async def test_drill_down_shows_owner_sources_with_dates_and_the_merge(
        self, published: str, browser: Browser
    ) -> None:
        """The main incident names its feed, each revision's sources and its duplicate."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        button = page.locator(f"button[data-incident='{MAIN_INCIDENT}']")
        await expect(button).to_contain_text("1,520 killed", timeout=DEADLINE_MS)
        await button.focus()
        await page.keyboard.press("Enter")  # keyboard reachable
        detail = page.locator(f"li[data-incident-row='{MAIN_INCIDENT}'] .incident-detail")
        await expect(detail.locator(".history tbody tr")).to_have_count(5, timeout=DEADLINE_MS)
        await expect(detail.locator(".meta")).to_contain_text(f"reported by feed {MONITOR_FEED}")
        await expect(detail.locator(".merge")).to_contain_text(DUPLICATE_INCIDENT)

        later = page.locator("button[data-incident='e2e-homs-april']")
        await later.click()
        detail = page.locator("li[data-incident-row='e2e-homs-april'] .incident-detail")
        source = detail.locator(".history tbody tr").first.locator(".source")
        await expect(source).to_contain_text("Homs field report 2025-04-11", timeout=DEADLINE_MS)
        await expect(source).to_contain_text(f"via {MONITOR_FEED}")
        await expect(source.locator("a")).to_have_attribute("href", "https://example.org/homs/1")
        dispute = detail.locator(".dispute")
        await expect(dispute).to_contain_text(f"Disputed by feed {DUPLICATE_FEED}")
        await expect(dispute.locator("a")).to_have_text("ACLED")


class TestStance:
    async def test_stance_lists_the_statements_it_rests_on_and_thin_in_words(
        self, published: str, browser: Browser
    ) -> None:
        """Each stance shows its basis (role, title, code, time); thin pairs say so."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        usa = page.locator("#stance-table tr[data-country='USA']").filter(has_text="syria-coastal")
        basis = usa.locator(".basis li")
        await expect(basis.first).to_contain_text("CAMEO 111", timeout=DEADLINE_MS)
        await expect(basis.first).to_contain_text("foreign minister")
        await expect(basis.first).to_contain_text("Secretary of State")
        warning = page.locator("#stance-table tr[data-country='USA']").filter(has_text="extremism")
        await expect(warning.locator(".basis li").first).to_contain_text("(a range)")
        await expect(page.locator("#heatmap td[data-pair='RUS-USA']").first).to_have_text(
            "1.00 thin"
        )
        france = page.locator("#stance-table tr[data-country='FRA']")
        await expect(france.locator(".stance")).to_have_text("mixed: condemn / support")
        await expect(france.locator(".basis li")).to_have_count(2)


class TestLayout:
    @pytest.mark.parametrize(("token", "name"), [(READER, "reader"), (ANALYST, "analyst")])
    async def test_the_page_fits_1280_px_and_a_phone(
        self, published: str, browser: Browser, token: str, name: str
    ) -> None:
        """At 1,280 px and at 390 px the page never scrolls sideways; screenshots of both."""
        from playwright.async_api import expect

        ARTIFACTS.mkdir(exist_ok=True)
        for width in (1280, 390):
            page = await ready(browser, published, token, width=width)
            await expect(page.locator("#map-box circle.dot")).to_have_count(
                len(LIVE), timeout=DEADLINE_MS
            )
            await expect(page.locator("#incident-list > li")).to_have_count(len(LIVE))
            await page.locator(f"button[data-incident='{MAIN_INCIDENT}']").click()
            await expect(page.locator(".history tbody tr")).to_have_count(5, timeout=DEADLINE_MS)
            overflow = await page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, f"{width} px: the page scrolls sideways by {overflow} px"
            await page.screenshot(
                path=str(ARTIFACTS / f"dashboard-{name}-{width}.png"), full_page=True
            )
            no_trouble(page)

    async def test_every_control_is_reached_by_the_keyboard(
        self, published: str, browser: Browser
    ) -> None:
        """Tabbing from the top reaches the filters, a CSV button and an incident."""
        page = await ready(browser, published)
        await page.locator("#f-country").focus()
        reached: set[str] = set()
        for _ in range(60):
            await page.keyboard.press("Tab")
            reached.add(
                await page.evaluate(
                    "(() => { const e = document.activeElement;"
                    " return e.dataset.csv ? 'csv' : e.dataset.incident ? 'incident' : e.id; })()"
                )
            )
        assert {"f-status", "csv", "series-reset"} <= reached


class TestParties:
    async def test_the_party_switch_follows_what_the_api_answers(
        self, published: str, browser: Browser
    ) -> None:
        """The page asks once with by=party: a 422 keeps the switch out of the view; an
        answer brings it, and choosing parties shows that answer's lines."""
        from playwright.async_api import expect

        page = await ready(browser, published)
        await expect(page.locator("#panel-victims [data-freshness]")).to_have_attribute(
            "data-lag", "0", timeout=DEADLINE_MS
        )
        async with httpx.AsyncClient(base_url=published) as client:
            answer = await client.get(
                "/v1/projections/community-victims",
                params={"by": "party"},
                headers={"Authorization": f"Bearer {READER}"},
            )
        if answer.status_code == 422:
            await expect(page.locator("#victims-by")).to_be_hidden()
            assert len(page.watch.refused) == 1  # type: ignore[attr-defined]
            return
        await expect(page.locator("#victims-by")).to_be_visible()
        await page.get_by_label("party (civilians").check()
        await expect(page).to_have_url(re.compile(r"by=party"))
        names = [line["community"] for line in answer.json()["communities"]]
        for name in names:
            row = page.locator(f"#victims-table tr[data-community='{name}']")
            await expect(row).to_have_count(1, timeout=DEADLINE_MS)
        await expect(page.locator("#victims-table tr[data-community='alawite']")).to_have_count(0)
        no_trouble(page)

    async def test_the_switch_shows_party_lines_where_the_api_has_them(
        self, published: str, browser: Browser
    ) -> None:
        """An API answering by=party (here stood in for in the browser) gets the switch;
        choosing parties draws civilians, side A, side B and unknown, and the URL says so."""
        from playwright.async_api import Route, expect

        lines = {"civilians": 1200, "side_a": 200, "side_b": 100, "unknown": 63}
        real = (await api(published, "/v1/projections/community-victims")).json()
        body = {
            **real,
            "communities": [
                {"community": k, "low": v, "best": v, "high": v, "incidents": 1, "at_least": False}
                for k, v in lines.items()
            ],
            "unattributed": {"low": 0, "best": 0, "high": 0, "at_least": False},
            "unattributed_suppressed": False,
            "total": {"low": 1563, "best": 1563, "high": 1563, "at_least": False},
            "total_suppressed": False,
        }

        async def by_party(route: Route) -> None:
            if "by=party" in route.request.url:
                await route.fulfill(json=body)
            else:
                await route.continue_()

        page, watch = await open_dashboard(browser, published)
        page.watch = watch  # type: ignore[attr-defined]
        await page.route("**/v1/projections/community-victims?*", by_party)
        await sign_in(page, READER)
        switch = page.locator("#victims-by")
        await expect(switch).to_be_visible(timeout=DEADLINE_MS)
        await page.get_by_label("party (civilians").check()
        rows = page.locator("#victims-table tbody tr")
        await expect(rows).to_have_count(5, timeout=DEADLINE_MS)  # four parties, unattributed
        await expect(page.locator("#victims-table tr[data-community='side_a'] th")).to_have_text(
            "side a"
        )
        await expect(page).to_have_url(re.compile(r"by=party"))
        no_trouble(page)


CONTRAST = """
(() => {
  const rgb = (text) => (text.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const c = [r, g, b].map((v) => {
      v /= 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
    return 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2];
  };
  const background = (node) => {
    for (let e = node; e; e = e.parentElement) {
      const [r, g, b, a = 1] = rgb(getComputedStyle(e).backgroundColor);
      if (a > 0.5) return [r, g, b];
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const node of document.querySelectorAll("body *")) {
    const own = [...node.childNodes].some((c) => c.nodeType === 3 && c.textContent.trim());
    if (!own || !node.getClientRects().length || node.closest(".sr-only, svg")) continue;
    const style = getComputedStyle(node);
    if (style.visibility === "hidden") continue;
    const [l1, l2] = [lum(rgb(style.color)), lum(background(node))].sort((a, b) => b - a);
    const ratio = (l1 + 0.05) / (l2 + 0.05);
    const size = parseFloat(style.fontSize);
    const large = size >= 24 || (size >= 18.66 && Number(style.fontWeight) >= 700);
    const what = `${node.tagName}.${node.className} "${node.textContent.trim().slice(0, 30)}"`;
    if (ratio < (large ? 3 : 4.5)) low.push(`${what}: ${ratio.toFixed(2)}`);
  }
  return low;
})()
"""
"""Every visible text's contrast with its background (WCAG 2 formula), listing the low."""


class TestContrast:
    @pytest.mark.parametrize("token", [READER, ANALYST])
    async def test_every_text_meets_wcag_aa_contrast(
        self, published: str, browser: Browser, token: str
    ) -> None:
        """4.5:1 for text, 3:1 for large text, on every panel with data and a drill-down."""
        from playwright.async_api import expect

        page = await ready(browser, published, token)
        await page.locator("#f-status").select_option("all")
        await page.get_by_role("button", name="Apply").click()
        await expect(page.locator("#incident-list > li")).to_have_count(
            len(LIVE) + 2, timeout=DEADLINE_MS
        )
        await page.locator(f"button[data-incident='{MAIN_INCIDENT}']").click()
        await expect(page.locator(".history tbody tr")).to_have_count(5, timeout=DEADLINE_MS)
        await page.get_by_role("button", name="Timeline of USA").first.click()
        await expect(page.locator("#timeline li").first).to_be_visible()
        assert await page.evaluate(CONTRAST) == []
