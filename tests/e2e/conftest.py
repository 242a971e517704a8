"""The e2e fixtures: the real service on this test's prefix, and a headless chromium."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.browser import CHROMIUM_ARGS, chromium_or_skip
from tests.support.service import serving

if TYPE_CHECKING:
    from playwright.async_api import Browser


@pytest.fixture
def service_options() -> dict[str, Any]:
    """Settings of the service beyond Redis, tokens and prefix."""
    return {}


@pytest.fixture
async def service(
    redis_url: str, key_prefix: str, service_options: dict[str, Any]
) -> AsyncIterator[str]:
    """The real service on this test's key prefix, listening on a free port; yields its URL."""
    async with serving(redis_url, key_prefix, service_options) as url:
        yield url


@pytest.fixture
def chromium() -> str:
    """The chromium executable, or a skip naming what is missing (a failure under CI)."""
    return chromium_or_skip()


@pytest.fixture
async def browser(chromium: str) -> AsyncIterator[Browser]:
    """A headless chromium, closed after the test."""
    from playwright.async_api import async_playwright  # the browser tests only

    async with async_playwright() as driver:
        launched = await driver.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()
