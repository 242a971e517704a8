"""The wired service served in the test's own event loop, and publishing to it.

:func:`serving` runs what ``ledger serve`` wires (:func:`services.bootstrap.api`: the Redis
event store, inbox, projector pool) on a free port, with a reader and an analyst token and a feed
token per reference feed; :func:`publish` sends events with the token of each one's feed.
:func:`serve_defaults` runs ``ledger serve`` itself with nothing configured (embedded Redis)
until SIGTERM, as an operator would start it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import uuid
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from events import AnyEvent, CasualtiesRevised, Fatalities, Source, VictimLine
from services.bootstrap import Service, api
from services.cli.processes import serve
from services.client import LedgerClient
from services.http.side import ReadSide
from services.reference import MAIN_INCIDENT, MONITOR_FEED, REFERENCE_FEEDS
from services.settings import Settings, Token
from tests.support.http import served

__all__ = [
    "ANALYST",
    "FEED_TOKENS",
    "METRICS",
    "READER",
    "one_more_revision",
    "publish",
    "serve_defaults",
    "serving",
]

READER = "reader-token-e2e-0123456789"
ANALYST = "analyst-token-e2e-0123456789"
METRICS = "metrics-token-e2e-0123456789"
FEED_TOKENS = {feed: f"feed-{feed}-e2e-0123456789" for feed in REFERENCE_FEEDS}


@contextlib.asynccontextmanager
async def serving(
    redis_url: str, key_prefix: str, options: Mapping[str, Any] | None = None
) -> AsyncIterator[str]:
    """The real service on ``key_prefix``, listening on a free port; yields its URL.

    ``options`` are further settings (a cluster test sets more).
    """
    tokens = (
        Token(role="reader", secret=READER),
        Token(role="analyst", secret=ANALYST),
        Token(role="metrics", secret=METRICS),
        *(Token(role="feed", secret=secret, feed=feed) for feed, secret in FEED_TOKENS.items()),
    )
    settings = Settings(
        redis_url=redis_url,
        http_host="127.0.0.1",
        http_port=0,
        tokens=tokens,
        key_prefix=key_prefix,
        **(options or {}),
    )
    service = api(settings)
    await service.start()
    read: ReadSide | None = service.app.state.get("read")
    try:
        # ending open live streams first, as `ledger serve` does on stopping
        on_stop = None if read is None else read.live.close
        async with served(service.app, on_stop=on_stop, timeout_graceful_shutdown=5) as url:
            yield url
    finally:
        await service.stop()


@contextlib.asynccontextmanager
async def serve_defaults(data_dir: Path) -> AsyncIterator[tuple[Service, asyncio.Task[None]]]:
    """``serve`` with default settings under ``data_dir`` (embedded Redis, a free HTTP port, no
    projectors), in this event loop; yields the started service and the serving task. On
    leaving, SIGTERM stops it unless the test already has, and the task is awaited."""
    settings = Settings(data_dir=data_dir, http_port=0, projectors=False)
    started: asyncio.Queue[Service] = asyncio.Queue()
    task = asyncio.create_task(serve(settings, ready=started.put))
    try:
        async with asyncio.timeout(30):
            service = await started.get()
        yield service, task
    finally:
        if not task.done():
            os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(30):
            await task


async def publish(base_url: str, events: list[AnyEvent]) -> None:
    """Publish ``events`` through the HTTP API, each run of one feed with that feed's token."""
    for source, run in itertools.groupby(events, key=lambda e: e.source):
        async with LedgerClient(base_url, FEED_TOKENS[source], retries=2) as client:
            await client.publish(list(run))


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
