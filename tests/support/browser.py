"""The analysts' dashboard in a real browser: Debian's chromium, driven by Playwright.

The chromium is ``LEDGER_CHROMIUM``, else ``/usr/bin/chromium`` or one on the PATH; without
it (or the ``playwright`` package) a browser test skips, naming what is missing, and fails
under CI (:mod:`tests.support.tools`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.tools import missing

if TYPE_CHECKING:
    from playwright.async_api import Browser, Page

__all__ = [
    "ARTIFACTS",
    "CHROMIUM_ARGS",
    "DEADLINE_MS",
    "PageWatch",
    "chromium_or_skip",
    "open_dashboard",
    "sign_in",
]

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


def chromium_or_skip() -> str:
    """The chromium executable; without it (or playwright) the test skips (fails under CI)."""
    try:
        import playwright.async_api  # noqa: F401  # the test extras install it
    except ImportError:
        missing("the playwright package is not installed (pip install playwright)")
    path = chromium_path()
    if path is None:
        missing("no chromium: install it (apt-get install chromium) or set LEDGER_CHROMIUM")
    return path


class PageWatch:
    """What a page did besides rendering: requests to other hosts, script errors, CSP reports."""

    def __init__(self, page: Page, base_url: str) -> None:
        self.foreign: list[str] = []
        self.errors: list[str] = []
        self.refused: list[str] = []
        """Chromium's log of 422 answers: the page's by=party probe expects one where the
        API does not split by party (a panel refused shows its error in the page)."""
        page.on("request", lambda r: self._request(r.url, base_url))
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.on("console", self._console)

    def _request(self, url: str, base_url: str) -> None:
        # a CSV download is a blob of the page's own origin
        own = (f"{base_url}/", f"blob:{base_url}/", "data:")
        if not url.startswith(own):
            self.foreign.append(url)

    def _console(self, message: Any) -> None:
        text = str(message.text)
        if "the server responded with a status of 422" in text:
            self.refused.append(text)
        elif message.type == "error" or "Content Security Policy" in text:
            self.errors.append(f"console {message.type}: {text}")


async def open_dashboard(
    browser: Browser, base_url: str, path: str = "/", width: int = 1400
) -> tuple[Page, PageWatch]:
    """A fresh page (its own session storage) on the dashboard at ``path``, watched."""
    context = await browser.new_context(
        viewport={"width": width, "height": 1000}, accept_downloads=True
    )
    page = await context.new_page()
    watch = PageWatch(page, base_url)
    await page.goto(f"{base_url}{path}")
    return page, watch


async def sign_in(page: Page, token: str) -> None:
    """Enter ``token`` in the token form and connect."""
    await page.get_by_label("Reader token").fill(token)
    await page.get_by_role("button", name="Connect").click()
