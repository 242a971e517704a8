"""The analysts' dashboard: ``GET /`` serves the page, ``/static/…`` its assets.

Loading the page and its assets needs no token; every data call the page makes goes to the
JSON query API with the reader token the analyst enters once (kept in the tab's
``sessionStorage``). The page asks for nothing outside the service: its charting library
(Chart.js, see ``static/vendor/README.md``) ships inside the package, and the
``Content-Security-Policy`` sent with the page and its assets allows this origin only.

The files live in ``services/http/static/`` (package data, built into the wheel with the
``services`` package). They are read from disk per request, which is cheap for a handful of
small files and keeps an edited asset visible without a restart; ``Cache-Control: no-cache``
makes browsers revalidate them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from litestar import MediaType, Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

STATIC_DIR: Final = Path(__file__).with_name("static")
"""Where the page and its assets are (``index.html``, ``app.js``, ``app.css``, ``vendor/``)."""

STATIC_PATH: Final = "/static"
"""The URL path the assets are served under."""

CONTENT_SECURITY_POLICY: Final = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
"""Same-origin only: no inline script or style, no request to any other host."""

SECURITY_HEADERS: Final[dict[str, str]] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}
"""Sent with the page and with every asset."""


@get("/", include_in_schema=False, media_type=MediaType.HTML)
async def dashboard_page() -> Response[bytes]:
    """The dashboard page (no token needed to load it)."""
    page = (STATIC_DIR / "index.html").read_bytes()
    return Response(
        page,
        media_type=MediaType.HTML,
        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"},
    )


async def _secure_asset(response: Response[Any]) -> Response[Any]:
    """Add :data:`SECURITY_HEADERS` to an asset's answer."""
    response.headers.update(SECURITY_HEADERS)
    return response


def dashboard_routes() -> list[ControllerRouterHandler]:
    """The route handlers of the page and of its static assets, to register on the app."""
    assets = create_static_files_router(
        path=STATIC_PATH,
        directories=[STATIC_DIR],
        name="dashboard-static",
        cache_control=CacheControlHeader(no_cache=True),
        after_request=_secure_asset,
        include_in_schema=False,
    )
    return [dashboard_page, assets]
