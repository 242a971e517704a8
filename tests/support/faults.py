"""What the fault tests share: feeds that retry, the views read back through the API, and the
log checked against what the feeds were told.

A :class:`Feeds` ledger records every event a publisher was answered 2xx for; publishers
(:func:`http_publisher`, :func:`client_publisher`) send batches of their own feed's reports
and revisions and re-send a failed batch unchanged (same event ids) until it is answered. The
events carry no private text, so the log holds them as they were sent and the test can fold
its own objects. :func:`api_caught_up` asks the service's read endpoints whether every view
lags by nothing; :func:`log_ids` reads back which event each log position holds, and
:func:`fold_differences` compares the stored views with the fold of the acknowledged events;
:func:`groups_disagreeing` says which consumer groups ``XINFO GROUPS`` shows wrong.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import (
    SEALED,
    AnyEvent,
    Position,
    Recorded,
    Source,
    from_fields,
    masked,
    private_fields,
    recorded_at_of,
    with_private,
)
from projections import PROJECTIONS, Docs, fold
from services.client import LedgerClient
from services.resp import text
from services.store.keys import Keys
from services.store.log import LogReader
from services.views.cache import ViewReader
from services.views.redis import RedisViewStore
from tests.support import builders as f

__all__ = [
    "READ_ENDPOINTS",
    "Feeds",
    "api_caught_up",
    "as_logged",
    "client_publisher",
    "fold_differences",
    "groups_disagreeing",
    "http_publisher",
    "log_ids",
    "next_batch",
]

RETRY_WITHIN = 120.0
"""Seconds a publisher may go without a 2xx for one batch before the test fails."""

READ_ENDPOINTS: Final = (
    "/v1/projections/community-victims",
    "/v1/projections/country-stance",
    "/v1/projections/alignment",
    "/v1/incidents",
)
"""One read endpoint per projection: each answer carries its view's position and lag."""


@dataclass
class Feeds:
    """What the publishers saw: every acknowledged event, and the failed attempts."""

    acked: dict[str, AnyEvent] = field(default_factory=dict)
    failures: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self, events: Sequence[AnyEvent]) -> None:
        """Record events answered 2xx."""
        for event in events:
            self.acked.setdefault(str(event.event_id), event)


def next_batch(feed: str, n: int, rng: random.Random, live: list[str]) -> list[AnyEvent]:
    """A batch of reports and revisions of this feed's own incidents (always valid, no
    private text)."""
    batch: list[AnyEvent] = []
    sources = [Source(publisher=feed)]
    for _ in range(n):
        if live and rng.random() < 0.4:
            batch.append(f.revised(rng.choice(live), rng.randint(0, 50), source=feed))
        else:
            ident = f"{feed}-{uuid.UUID(int=rng.getrandbits(128)).hex[:12]}"
            live.append(ident)
            batch.append(f.reported(ident, rng.randint(0, 50), source=feed, sources=sources))
    return batch


async def http_publisher(
    base_url: str, feed: str, token: str, feeds: Feeds, seed: int, *, most: int = 20
) -> None:
    """Publish over plain HTTP; a failed batch is re-sent unchanged until it is answered 2xx."""
    rng = random.Random(seed)
    live: list[str] = []
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0, headers=headers) as http:
        while not feeds.stop.is_set():
            batch = next_batch(feed, rng.randint(1, most), rng, live)
            body = msgspec.json.encode(batch)
            deadline = time.monotonic() + RETRY_WITHIN
            while True:
                try:
                    response = await http.post("/v1/events", content=body)
                except httpx.TransportError:
                    status = 0
                else:
                    status = response.status_code
                if 200 <= status < 300:
                    feeds.ack(batch)
                    break
                assert status in (0, 429, 503), f"unexpected {status}: {response.text[:500]}"
                feeds.failures += 1
                if time.monotonic() > deadline:
                    pytest.fail(f"{feed}: no 2xx within {RETRY_WITHIN} s")
                await asyncio.sleep(0.05)  # a retry's back-off, not a synchronisation


async def client_publisher(
    base_url: str, feed: str, token: str, feeds: Feeds, seed: int, *, most: int = 20
) -> None:
    """Publish through LedgerClient, which retries 503s and transport errors itself."""
    rng = random.Random(seed)
    live: list[str] = []
    async with LedgerClient(
        base_url, token, timeout=5.0, retries=2000, backoff=0.05, max_wait=0.3
    ) as client:
        while not feeds.stop.is_set():
            batch = next_batch(feed, rng.randint(1, most), rng, live)
            await client.publish(batch, batch_size=len(batch))
            feeds.ack(batch)


def api_caught_up(
    base_url: str, reader: str, heads: Callable[[], Awaitable[str | None]]
) -> Callable[[], Awaitable[bool]]:
    """A condition: every read endpoint answers ``lag`` 0 with ``lag_seconds`` 0 at the
    position ``heads()`` names (the log's head, joined over partitions)."""

    async def check() -> bool:
        head = await heads()
        async with httpx.AsyncClient(
            base_url=base_url, timeout=2.0, headers={"authorization": f"Bearer {reader}"}
        ) as http:
            for endpoint in READ_ENDPOINTS:
                try:
                    response = await http.get(endpoint)
                except httpx.TransportError:
                    return False
                if response.status_code != 200:
                    return False
                answer = response.json()
                if (answer["lag"], answer["lag_seconds"], answer["position"]) != (0, 0.0, head):
                    return False
        return True

    return check


async def log_ids(client: aioredis.Redis, keys: Keys) -> list[list[tuple[Position, str]]]:
    """Per partition, every log position and the event id it holds, in order."""
    found: list[list[tuple[Position, str]]] = []
    for partition in range(keys.partitions):
        part: list[tuple[Position, str]] = []
        async for page in LogReader(client, keys, partition).pages(size=5000):
            for position, fields in page:
                part.append((position, str(from_fields(fields).event_id)))
        found.append(part)
    return found


def as_logged(event: AnyEvent) -> AnyEvent:
    """``event`` as the log holds it: its private text sealed away, placeholders in its place."""
    return with_private(event, masked(private_fields(event), SEALED))


async def fold_differences(
    client: aioredis.Redis,
    keys: Keys,
    logged: Sequence[Sequence[tuple[Position, str]]],
    acked: Mapping[str, AnyEvent],
) -> dict[str, int]:
    """Per projection, the documents in which the stored view (merged over partitions)
    differs from the fold of the acknowledged events in their log order (the test's own
    event objects, not the log's, with their private text replaced by the placeholder the
    log keeps in its place, as the projectors see it)."""
    reader = ViewReader(RedisViewStore(client, keys))
    differences: dict[str, int] = {}
    for projection in PROJECTIONS.values():
        parts = [
            fold(
                projection,
                [
                    Recorded(pos, recorded_at_of(pos), as_logged(acked[ident]))
                    for pos, ident in part
                ],
            )
            for part in logged
        ]
        expected = parts[0] if len(parts) == 1 else projection.merge(parts)
        docs, _ = await reader.read(projection, list(projection.doc_types))
        stored = Docs(docs)
        count = 0
        for kind in set(stored.kinds()) | set(expected.kinds()):
            mine, theirs = stored.kind(kind), expected.kind(kind)
            count += sum(1 for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
        differences[projection.name] = count
    return differences


async def groups_disagreeing(client: aioredis.Redis, keys: Keys) -> dict[str, str]:
    """The projections' consumer groups whose ``XINFO GROUPS`` does not say what a caught-up
    view's group must: nothing pending, entries-read = the partition's length, lag 0."""
    wrong: dict[str, str] = {}
    for partition in range(keys.partitions):
        log = keys.log_of(partition)
        length = int(await client.xlen(log))
        groups = {text(g["name"]): g for g in await client.xinfo_groups(log)}
        for projection in PROJECTIONS.values():
            name = keys.group(projection.name, projection.version)
            info = groups.get(name)
            seen = None if info is None else (info["pending"], info["entries-read"], info["lag"])
            if seen != (0, length, 0):
                wrong[f"{name}@p{partition}"] = f"pending, entries-read, lag = {seen}; {length=}"
    return wrong
