"""The dashboard shows a reader's withheld community lines as suppressed, never as zeros.

Same service and browser as ``test_dashboard.py`` (the fixtures of ``conftest.py``): the reference
scenario with its revision naming alawite (1,000) and christian (25) civilians, plus one small
incident in Tartus naming 2 druze civilians. The reader's victims
panel must list the druze line as "suppressed (< 5)" — unnamed, as the only line withheld —
with the total and the "not attributed" line withheld too and a note saying why, while the
large lines stay exact.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING

from events import Place, VictimLine
from services.reference import MONITOR_FEED, scenario
from tests.support import builders as f
from tests.support.browser import DEADLINE_MS, open_dashboard, sign_in
from tests.support.service import READER, one_more_revision, publish

if TYPE_CHECKING:
    from playwright.async_api import Browser

SMALL = f.reported(
    "e2e-small-1",
    best=3,
    source=MONITOR_FEED,
    occurred_start=dt.date(2025, 3, 7),
    place=Place(adm1="Tartus"),
    victims=[VictimLine(community="druze", status="civilian", low=2, best=2, high=2)],
)


class TestSuppressedCellsInTheBrowser:
    async def test_reader_sees_a_small_community_line_as_suppressed(
        self,
        service: str,
        browser: Browser,
    ) -> None:
        """Druze (2) reads "suppressed (< 5)" without its name; alawite stays exact; the
        total and unattributed are withheld."""
        from playwright.async_api import expect

        page, watch = await open_dashboard(browser, service)
        await sign_in(page, READER)
        await expect(page.locator("#live-status")).to_have_attribute(
            "data-state", "live", timeout=DEADLINE_MS
        )
        await publish(service, [*scenario(), one_more_revision(), SMALL])

        await expect(page.locator("#victims-total")).to_have_text("suppressed", timeout=DEADLINE_MS)
        druze = page.locator("#victims-table tr[data-community='[withheld]']")
        await expect(druze).to_have_attribute("data-suppressed", "true", timeout=DEADLINE_MS)
        await expect(druze.locator("td")).to_have_text(["suppressed (< 5)"])
        alawite = page.locator("#victims-table tr[data-community='alawite'] td")
        await expect(alawite.nth(1)).to_have_text("1,000")
        await expect(page.locator("#victims-unattributed")).to_have_text("suppressed")
        rest = page.locator("#victims-table tr[data-community=''] td")
        await expect(rest).to_have_text(["suppressed (< 5)"])
        await expect(page.locator("#victims-suppression-note")).to_contain_text("below 5")
        assert "druze" not in str(
            await page.evaluate(
                "Chart.getChart(document.getElementById('victims-chart')).data.labels"
            )
        )
        assert watch.errors == []
