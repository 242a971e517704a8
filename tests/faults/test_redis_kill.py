"""``kill -9`` Redis under concurrent publishers: no acknowledged event is lost or doubled.

A ``ledger serve`` process (HTTP API, inbox and projectors) runs against a redis-server the
test starts itself. Publishers over plain HTTP (httpx) and through the Python client
(:class:`services.client.LedgerClient`) publish batches while Redis is killed with SIGKILL
and restarted on the same port several times. A publisher re-sends a failed batch with the
same event ids until it is answered 2xx (:mod:`tests.support.faults`).

With ``appendfsync always`` every event ever acknowledged must be in the log, none twice;
the service's own projectors must bring every view to lag 0 at the log's head, as its
answers report it, within :data:`SETTLE_WITHIN` seconds of the traffic stopping, and the
views must equal the fold of the acknowledged events. With ``everysec`` the test measures
how many acknowledged events a kill lost and prints it.

CI size: 3 kills. ``LEDGER_SOAK=1``: 15 kills and more publishing between them.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import from_fields
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.log import LogReader
from tests.support import builders as f
from tests.support.faults import (
    Feeds,
    api_caught_up,
    client_publisher,
    fold_differences,
    http_publisher,
    log_ids,
)
from tests.support.processes import FEEDS, PREFIX, READER, TOKENS, LedgerServer
from tests.support.seeds import replaying, seed_of
from tests.support.streams import entries as stream_entries
from tests.support.waiting import until

SOAK = os.environ.get("LEDGER_SOAK") == "1"
KILLS = 15 if SOAK else 3
ACKS_BETWEEN_KILLS = 2000 if SOAK else 300
"""Events acknowledged after a (re)start before Redis is killed again."""
EVERYSEC_KILLS = 10 if SOAK else 3
DEADLINE = 120.0
"""Seconds any awaited condition may take before the test fails."""
SETTLE_WITHIN = 30.0
"""Seconds the service's views may take, once the traffic stops, to report lag 0."""


def waiting(server: LedgerServer) -> dict[str, Any]:
    """How the test waits on ``server``: up to :data:`DEADLINE`, failing at once if it died."""
    return {"within": DEADLINE, "gone": server.gone, "context": server.tail}


async def log_entries(client: aioredis.Redis, prefix: str) -> list[tuple[str, dict[bytes, bytes]]]:
    """Every entry of the log, page by page."""
    log_key = Keys(prefix).log
    entries: list[tuple[str, dict[bytes, bytes]]] = []
    start = "-"
    while True:
        page = await stream_entries(client, log_key, start, "+", count=5000)
        entries += [(ident.decode(), fields) for ident, fields in page]
        if len(page) < 5000:
            return entries
        start = f"({page[-1][0].decode()}"


# --- the tests --------------------------------------------------------------------------------


class TestRedisKilledStrict:
    """With ``appendfsync always`` a Redis crash loses no acknowledged event, and the
    service's own projectors bring every view back to lag 0."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 300)
    async def test_every_acknowledged_event_survives_repeated_kill_9(self, tmp_path: Path) -> None:
        """Kill -9 Redis under publishers; every ack is logged exactly once; the service's
        answers reach lag 0 at the log's head and its views equal the fold of the acks."""
        seed = seed_of("LEDGER_KILL_SEED")
        with replaying("LEDGER_KILL_SEED", seed):
            redis_server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
            redis_server.start()
            server = LedgerServer(redis_server.url, tmp_path)
            client = connect(redis_server.url)
            keys = Keys(PREFIX)
            feeds = Feeds()
            publishers: list[asyncio.Task[None]] = []
            kills = 0
            try:
                server.start()
                await server.wait_ready()
                publishers = [
                    asyncio.create_task(
                        http_publisher(server.base_url, feed, TOKENS[feed], feeds, seed + i)
                    )
                    for i, feed in enumerate(FEEDS[:3])
                ] + [
                    asyncio.create_task(
                        client_publisher(server.base_url, feed, TOKENS[feed], feeds, seed + 3 + i)
                    )
                    for i, feed in enumerate(FEEDS[3:])
                ]

                def published(target: int) -> Callable[[], bool]:
                    def check() -> bool:
                        for task in publishers:
                            if task.done() and task.exception() is not None:
                                raise task.exception()  # type: ignore[misc]
                        return len(feeds.acked) >= target

                    return check

                for _ in range(KILLS):
                    await until(
                        published(len(feeds.acked) + ACKS_BETWEEN_KILLS), "acks", **waiting(server)
                    )
                    failures = feeds.failures
                    redis_server.kill()
                    kills += 1
                    # restart only once a publisher has seen the outage (a 503 or a refused call)
                    await until(
                        lambda: feeds.failures > failures,  # noqa: B023  # awaited here
                        "a failure",
                        **waiting(server),
                    )
                    redis_server.start()
                await until(
                    published(len(feeds.acked) + ACKS_BETWEEN_KILLS), "acks", **waiting(server)
                )
                feeds.stop.set()
                async with asyncio.timeout(DEADLINE):
                    await asyncio.gather(*publishers)

                async def head() -> str | None:
                    return await LogReader(client, keys).head()

                # the service's own projectors, seen through its answers: no pool of ours
                await until(
                    api_caught_up(server.base_url, READER, head),
                    "the service's views to reach lag 0",
                    **{**waiting(server), "within": SETTLE_WITHIN},
                )
                logged = await log_ids(client, keys)
                ids = [ident for _, ident in logged[0]]
                missing = set(feeds.acked) - set(ids)
                doubled = len(ids) - len(set(ids))
                differences = await fold_differences(client, keys, logged, feeds.acked)
            finally:
                feeds.stop.set()
                for task in publishers:
                    task.cancel()
                await asyncio.gather(*publishers, return_exceptions=True)
                exit_code = server.stop()
                await client.aclose()
                redis_server.stop()
            print(  # the figures are the point of this test
                f"\nredis kill -9 (fsync always): seed={seed} kills={kills} "
                f"acknowledged={len(feeds.acked)} logged={len(ids)} lost={len(missing)} "
                f"doubled={doubled} failed_attempts={feeds.failures} "
                f"view_differences={differences}"
            )
            assert kills == KILLS
            assert missing == set()
            assert doubled == 0
            assert set(ids) == set(feeds.acked)
            assert set(differences.values()) == {0}, differences
            assert exit_code == 0, server.tail()


class TestRedisKilledEverysec:
    """With ``appendfsync everysec`` the loss window per kill is measured and printed; what an
    earlier restart found in the log is never lost by a later kill."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 300)
    async def test_loss_window_per_kill_is_measured(self, tmp_path: Path) -> None:
        """Kill -9 right after acknowledgements; count acknowledged events missing afterwards
        (the window), and check that every event found after an earlier kill is still there."""
        redis_server = RedisProcess(data_dir=tmp_path / "redis", fsync="everysec")
        redis_server.start()
        server = LedgerServer(redis_server.url, tmp_path, projectors=False)
        client = connect(redis_server.url)
        losses: list[int] = []
        stale: list[int] = []  # per kill: events the log held after an earlier one, lost since
        survived: set[str] = set()
        acked_total = 0
        rng = random.Random(7)
        try:
            server.start()
            await server.wait_ready()
            headers = {
                "authorization": f"Bearer {TOKENS['sohr']}",
                "content-type": "application/json",
            }
            async with httpx.AsyncClient(
                base_url=server.base_url, timeout=5.0, headers=headers
            ) as http:
                for _ in range(EVERYSEC_KILLS):
                    acked: list[str] = []
                    started = time.monotonic()
                    # publish for ~1.5 s so a kill lands inside an fsync second
                    while time.monotonic() - started < 1.5:
                        batch = [f.reported(f"e-{uuid.uuid4().hex}", rng.randint(0, 9))
                                 for _ in range(50)]  # fmt: skip
                        response = await http.post("/v1/events", content=msgspec.json.encode(batch))
                        assert response.status_code == 202, response.text
                        acked += [r["event_id"] for r in response.json()["results"]]
                    redis_server.kill()
                    redis_server.start()
                    entries = await log_entries(client, PREFIX)
                    logged = {str(from_fields(fields).event_id) for _, fields in entries}
                    losses.append(sum(1 for ident in acked if ident not in logged))
                    stale.append(len(survived - logged))
                    survived |= logged & set(acked)
                    acked_total += len(acked)
                    # let the service's client see Redis again before the next round
                    await until(
                        lambda: _ready(server.base_url),
                        "readiness after restart",
                        **waiting(server),
                    )
        finally:
            server.stop()
            await client.aclose()
            redis_server.stop()
        print(  # documented in the README: the price of everysec on a process crash
            f"\nredis kill -9 (fsync everysec): kills={len(losses)} acknowledged={acked_total} "
            f"lost_per_kill={losses} max_lost={max(losses)} lost_from_before={stale}"
        )
        assert len(losses) == EVERYSEC_KILLS
        assert stale == [0] * EVERYSEC_KILLS


async def _ready(base_url: str) -> bool:
    async with httpx.AsyncClient(base_url=base_url, timeout=2.0) as http:
        try:
            return (await http.get("/readyz")).status_code == 200
        except httpx.TransportError:
            return False
