"""``/schema`` loads nothing from other hosts: ReDoc is served from the package.

The page shares the dashboard's origin, where a reader's token lives in sessionStorage; a
script from a CDN there could read it. Every ``src`` and ``href`` of the page is a path of
the service itself, the bundle it names is served, and no Google Fonts are linked.
"""

from __future__ import annotations

import re

from services.bootstrap import http_app
from services.http.app import REDOC_JS
from services.settings import Settings
from services.store.memory import InMemoryEventStore
from tests.support.http import client_of


class TestSchemaPage:
    async def test_the_schema_page_loads_only_the_service_s_own_files(self) -> None:
        """Every src/href is a local path; the ReDoc bundle answers 200 as JavaScript."""
        app = http_app(Settings(), store=InMemoryEventStore())
        async with client_of(app) as http:
            page = await http.get("/schema")
            assert page.status_code == 200
            links = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)["\']', page.text)
            assert REDOC_JS in links
            assert all(link.startswith("/") and not link.startswith("//") for link in links)
            assert "fonts.googleapis" not in page.text
            assert "cdn.jsdelivr" not in page.text
            bundle = await http.get(REDOC_JS)
            assert bundle.status_code == 200
            assert "javascript" in bundle.headers["content-type"]
