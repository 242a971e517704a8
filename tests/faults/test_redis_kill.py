"""``kill -9`` Redis under concurrent publishers: no acknowledged event is lost or doubled.

A ``ledger serve`` process (HTTP API, inbox and projectors) runs against a redis-server the
test starts itself. Publishers over plain HTTP (httpx) and through the Python client
(:class:`services.client.LedgerClient`) publish batches while Redis is killed with SIGKILL
and restarted on the same port several times. A publisher re-sends a failed batch with the
same event ids until it is answered 2xx.

With ``appendfsync always`` every event ever acknowledged must be in the log, none twice,
and the views (caught up by a ProjectorPool) must equal the pure fold of the log. With
``everysec`` the test measures how many acknowledged events a kill lost and prints it.

CI size: 3 kills. ``LEDGER_SOAK=1``: 15 kills and more publishing between them.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
import redis.asyncio as aioredis

from events import AnyEvent, Recorded, from_fields, recorded_at_of
from projections import PROJECTIONS, fold
from services.client import LedgerClient
from services.projector.pool import ProjectorPool
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.views.redis import load_view
from tests.support import builders as f
from tests.support.processes import FEEDS, PREFIX, TOKENS, LedgerServer
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

# --- publishers -------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the publishers saw: every acknowledged event id, and the failed attempts."""

    acked: set[str] = field(default_factory=set)
    acked_order: list[str] = field(default_factory=list)
    failures: int = 0
    retries: int = 0
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    def ack(self, ids: list[str]) -> None:
        """Record event ids answered 2xx."""
        for ident in ids:
            if ident not in self.acked:
                self.acked.add(ident)
                self.acked_order.append(ident)


def next_batch(feed: str, n: int, rng: random.Random, live: list[str]) -> list[AnyEvent]:
    """A batch of reports and revisions of this feed's own incidents (always valid)."""
    batch: list[AnyEvent] = []
    for _ in range(n):
        if live and rng.random() < 0.4:
            batch.append(f.revised(rng.choice(live), rng.randint(0, 50), source=feed))
        else:
            ident = f"{feed}-{uuid.uuid4().hex[:12]}"
            live.append(ident)
            batch.append(f.reported(ident, rng.randint(0, 50), source=feed))
    return batch


async def http_publisher(base_url: str, feed: str, ledger: Ledger, seed: int) -> None:
    """Publish over plain HTTP; a failed batch is re-sent unchanged until it is answered 2xx."""
    rng = random.Random(seed)
    live: list[str] = []
    headers = {"authorization": f"Bearer {TOKENS[feed]}", "content-type": "application/json"}
    async with httpx.AsyncClient(base_url=base_url, timeout=5.0, headers=headers) as http:
        while not ledger.stop.is_set():
            batch = next_batch(feed, rng.randint(1, 20), rng, live)
            body = msgspec.json.encode(batch)
            deadline = time.monotonic() + DEADLINE
            while True:
                try:
                    response = await http.post("/v1/events", content=body)
                except httpx.TransportError:
                    status = 0
                else:
                    status = response.status_code
                if 200 <= status < 300:
                    ledger.ack([r["event_id"] for r in response.json()["results"]])
                    break
                assert status in (0, 503), f"unexpected {status}: {response.text[:500]}"
                ledger.failures += 1
                ledger.retries += 1
                if time.monotonic() > deadline:
                    pytest.fail(f"{feed}: no 2xx within {DEADLINE} s")
                await asyncio.sleep(0.05)  # a retry's back-off, not a synchronisation


async def client_publisher(base_url: str, feed: str, ledger: Ledger, seed: int) -> None:
    """Publish through LedgerClient, which retries 503s and transport errors itself."""
    rng = random.Random(seed)
    live: list[str] = []
    async with LedgerClient(
        base_url, TOKENS[feed], timeout=5.0, retries=400, backoff=0.05, max_wait=0.3
    ) as client:
        while not ledger.stop.is_set():
            batch = next_batch(feed, rng.randint(1, 20), rng, live)
            results = await client.publish(batch, batch_size=len(batch))
            ledger.ack([r.event_id for r in results])


def failed_after(ledger: Ledger, failures: int) -> Callable[[], bool]:
    """Whether a publisher has failed since the ledger counted ``failures``."""
    return lambda: ledger.failures > failures


def waiting(server: LedgerServer) -> dict[str, Any]:
    """How the test waits on ``server``: up to :data:`DEADLINE`, failing at once if it died."""
    return {"within": DEADLINE, "gone": server.gone, "context": server.tail}


# --- reading the outcome ----------------------------------------------------------------------


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


async def assert_views_equal_fold(client: aioredis.Redis, prefix: str) -> int:
    """Catch the views up with a pool of our own and compare them with the fold; the diff."""
    pool = ProjectorPool(client, prefix=prefix, claim_idle_ms=1000, lease_ms=2000, block_ms=100)
    async with asyncio.timeout(DEADLINE):
        await pool.run_until_caught_up()
    log = [
        Recorded(pos, recorded_at_of(pos), from_fields(fields))  # type: ignore[arg-type]
        for pos, fields in await log_entries(client, prefix)
    ]
    differences = 0
    for projection in PROJECTIONS.values():
        docs, checkpoint = await load_view(client, prefix, projection)
        assert checkpoint == log[-1].position, projection.name
        expected = fold(projection, log)
        for kind in set(docs.kinds()) | set(expected.kinds()):
            mine, theirs = docs.kind(kind), expected.kind(kind)
            differences += sum(1 for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k))
    return differences


# --- the tests --------------------------------------------------------------------------------


class TestRedisKilledStrict:
    """With ``appendfsync always`` a Redis crash loses no acknowledged event."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 300)
    async def test_every_acknowledged_event_survives_repeated_kill_9(self, tmp_path: Path) -> None:
        """Kill -9 Redis under publishers; every ack is logged exactly once; views = fold."""
        seed = seed_of("LEDGER_KILL_SEED")
        with replaying("LEDGER_KILL_SEED", seed):
            redis_server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
            redis_server.start()
            server = LedgerServer(redis_server.url, tmp_path)
            client = connect(redis_server.url)
            ledger = Ledger()
            publishers: list[asyncio.Task[None]] = []
            kills = 0
            try:
                server.start()
                await server.wait_ready()
                publishers = [
                    asyncio.create_task(http_publisher(server.base_url, FEEDS[i], ledger, seed + i))
                    for i in range(3)
                ] + [
                    asyncio.create_task(
                        client_publisher(server.base_url, FEEDS[3 + i], ledger, seed + 3 + i)
                    )
                    for i in range(2)
                ]

                def published(target: int) -> Callable[[], bool]:
                    def check() -> bool:
                        for task in publishers:
                            if task.done() and task.exception() is not None:
                                raise task.exception()  # type: ignore[misc]
                        return len(ledger.acked) >= target

                    return check

                for _ in range(KILLS):
                    await until(
                        published(len(ledger.acked) + ACKS_BETWEEN_KILLS), "acks", **waiting(server)
                    )
                    failures = ledger.failures
                    redis_server.kill()
                    kills += 1
                    # restart only once a publisher has seen the outage (a 503 or a refused call)
                    await until(failed_after(ledger, failures), "a failure", **waiting(server))
                    redis_server.start()
                await until(
                    published(len(ledger.acked) + ACKS_BETWEEN_KILLS), "acks", **waiting(server)
                )
                ledger.stop.set()
                async with asyncio.timeout(DEADLINE):
                    await asyncio.gather(*publishers)
                entries = await log_entries(client, PREFIX)
                ids = [fields[b"event_id"].decode() for _, fields in entries]
                missing = ledger.acked - set(ids)
                doubled = len(ids) - len(set(ids))
                differences = await assert_views_equal_fold(client, PREFIX)
            finally:
                ledger.stop.set()
                for task in publishers:
                    task.cancel()
                await asyncio.gather(*publishers, return_exceptions=True)
                exit_code = server.stop()
                await client.aclose()
                redis_server.stop()
            print(  # the figures are the point of this test
                f"\nredis kill -9 (fsync always): seed={seed} kills={kills} "
                f"acknowledged={len(ledger.acked)} logged={len(ids)} lost={len(missing)} "
                f"doubled={doubled} failed_attempts={ledger.failures} "
                f"view_differences={differences}"
            )
            assert kills == KILLS
            assert missing == set()
            assert doubled == 0
            assert differences == 0
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
                    logged = {fields[b"event_id"].decode() for _, fields in entries}
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
