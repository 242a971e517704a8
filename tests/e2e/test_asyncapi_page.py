"""The inbox's AsyncAPI page in a real browser: it asks for a token, then shows the document.

Nothing comes from another host and no script error or CSP violation happens on the way.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.support.browser import DEADLINE_MS, PageWatch
from tests.support.service import FEED_TOKENS, READER

if TYPE_CHECKING:
    from playwright.async_api import Browser

FEED_TOKEN = next(iter(FEED_TOKENS.values()))


async def test_the_page_shows_the_per_feed_channel_after_a_token(
    browser: Browser, service: str
) -> None:
    """With a feed token the page lists the feed's stream and the two message forms."""
    page = await browser.new_page()
    watch = PageWatch(page, service)
    await page.goto(f"{service}/asyncapi")
    await page.get_by_label("Any token of this ledger").fill(FEED_TOKEN)
    await page.get_by_role("button", name="Show").click()
    main = page.locator("#document")
    await main.get_by_text(":inbox:{feed}").first.wait_for(timeout=DEADLINE_MS)
    text = await main.inner_text()
    assert "RawSubmission" in text
    assert "FastStreamSubmission" in text
    assert "__data__" in text
    assert watch.foreign == []
    assert watch.errors == []


async def test_a_wrong_token_is_told_and_nothing_is_shown(browser: Browser, service: str) -> None:
    """An unknown token gets the HTTP status, not the document."""
    page = await browser.new_page()
    await page.goto(f"{service}/asyncapi")
    await page.get_by_label("Any token of this ledger").fill(READER + "-wrong")
    await page.get_by_role("button", name="Show").click()
    await page.get_by_text("HTTP 401").wait_for(timeout=DEADLINE_MS)
    assert "FastStreamSubmission" not in await page.locator("#document").inner_text()
