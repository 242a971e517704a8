"""Sustained ingest through HTTP with the projectors running: no errors, lag and memory bounded.

A ``ledger serve`` process (HTTP, inbox, projectors) runs against a redis-server of the
test's own. The test publishes 2,000 events/s (batches of 100 every 50 ms, sent on a fixed
schedule without waiting for earlier answers) for ``LOAD_SECONDS`` and samples, twice a
second, the projectors' lag (log entries not yet in a view, the largest over the views) and
the service's resident memory. Every answer must be 2xx; after the load the views must catch
up (lag 0, nothing pending) within a bound. The figures are printed.

A soak test: ``make soak`` runs it (10 minutes), ``make test`` leaves it out; with
``LEDGER_SOAK=1`` and ``LEDGER_LOAD_SECONDS`` set it runs that long.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
import uuid
from pathlib import Path

import httpx
import msgspec
import pytest

from events import AnyEvent, IncidentReported, Speaker
from services.projector.pool import ProjectorPool
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from tests.support import builders as f
from tests.support.processes import PREFIX, TOKENS, LedgerServer

SOAK = os.environ.get("LEDGER_SOAK") == "1"
LOAD_SECONDS = float(os.environ.get("LEDGER_LOAD_SECONDS") or 600)
RATE = 2000
"""Events per second."""
BATCH = 100
INTERVAL = BATCH / RATE
CATCH_UP = 300.0
"""Seconds the views may take to catch up after the load before the test fails."""
MAX_RSS_GROWTH_MB = 512
"""A sanity bound on the service's memory growth (a leak of the log would exceed it)."""


def rss_mb(pid: int) -> float:
    """Resident memory of process ``pid`` in MiB (from /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Feed:
    """Valid batches: new incidents, revisions of acknowledged ones, statements about them.

    Batches are sent without waiting for earlier answers, so a revision only names an
    incident whose report was already acknowledged (:meth:`confirm`).
    """

    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)
        self.live: list[str] = []

    def confirm(self, batch: list[AnyEvent]) -> None:
        """Record the incidents reported in an acknowledged batch."""
        self.live += [e.incident_id for e in batch if isinstance(e, IncidentReported)]

    def batch(self) -> list[AnyEvent]:
        """One batch of :data:`BATCH` events."""
        rng, out = self.rng, list[AnyEvent]()
        for _ in range(BATCH):
            roll = rng.random()
            if roll < 0.6 or len(self.live) < 50:
                ident = f"l-{uuid.uuid4().hex[:12]}"
                out.append(f.reported(ident, rng.randint(0, 30)))
            elif roll < 0.9:
                out.append(f.revised(rng.choice(self.live[-500:]), rng.randint(0, 30)))
            else:
                out.append(
                    f.statement(
                        f"s-{uuid.uuid4().hex[:12]}",
                        speakers=[Speaker(country=rng.choice(("FRA", "DEU", "USA")), name="MFA")],
                        subject=f"subject-{rng.randrange(50)}",
                        incident_ids=[rng.choice(self.live[-500:])],
                    )
                )
        return out


class TestSustainedLoad:
    """2,000 events/s through HTTP with the projectors keeping up."""

    @pytest.mark.soak
    @pytest.mark.timeout(int(LOAD_SECONDS) + 900)
    async def test_sustained_ingest_has_no_errors_and_bounded_lag(self, tmp_path: Path) -> None:
        """Every request is answered 2xx; the views catch up; lag and RSS growth are printed."""
        redis_server = RedisProcess(data_dir=tmp_path / "redis", fsync="everysec")
        redis_server.start()
        server = LedgerServer(redis_server.url, tmp_path)
        client = connect(redis_server.url)
        statuses: dict[int, int] = {}
        acked = 0
        max_lag = 0
        lag_samples: list[int] = []
        try:
            server.start()
            await server.wait_ready()
            assert server.process is not None
            pid = server.process.pid
            status_pool = ProjectorPool(client, prefix=PREFIX)  # never started: status only
            headers = {
                "authorization": f"Bearer {TOKENS['sohr']}",
                "content-type": "application/json",
            }
            feed = Feed(seed=11)
            limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
            async with httpx.AsyncClient(
                base_url=server.base_url, headers=headers, timeout=30.0, limits=limits
            ) as http:

                async def send(batch: list[AnyEvent]) -> None:
                    nonlocal acked
                    body = msgspec.json.encode(batch)
                    response = await http.post("/v1/events", content=body)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
                    if response.status_code < 300:
                        acked += len(response.json()["results"])
                        feed.confirm(batch)

                rss_start = rss_max = rss_mb(pid)
                started = time.monotonic()
                next_sample = started
                in_flight: set[asyncio.Task[None]] = set()
                sent_batches = 0
                while (now := time.monotonic()) - started < LOAD_SECONDS:
                    due = int((now - started) / INTERVAL) + 1
                    while sent_batches < due:
                        task = asyncio.create_task(send(feed.batch()))
                        in_flight.add(task)
                        task.add_done_callback(in_flight.discard)
                        sent_batches += 1
                    if now >= next_sample:
                        lag = max(s.lag for s in await status_pool.status())
                        lag_samples.append(lag)
                        max_lag = max(max_lag, lag)
                        rss_max = max(rss_max, rss_mb(pid))
                        next_sample += 0.5
                    # the schedule's tick: wait for the next batch's slot
                    await asyncio.sleep(max(0.0, started + sent_batches * INTERVAL - now))
                await asyncio.gather(*in_flight)
                elapsed = time.monotonic() - started
                rss_load_end = rss_mb(pid)

            deadline = time.monotonic() + CATCH_UP
            while True:
                rows = await status_pool.status()
                if all(s.lag == 0 and s.pending == 0 for s in rows):
                    break
                if not server.alive() or time.monotonic() > deadline:
                    pytest.fail(f"the views did not catch up: {rows}\n{server.tail()}")
                await asyncio.sleep(0.1)
            caught_up_after = time.monotonic() - started - elapsed
            rss_end = rss_mb(pid)
            log_length = await client.xlen(Keys(PREFIX).log)
        finally:
            exit_code = server.stop()
            await client.aclose()
            redis_server.stop()
        errors = {code: n for code, n in statuses.items() if code >= 400}
        print(  # the figures are the point of this test
            f"\nload: target={RATE}/s seconds={LOAD_SECONDS:g} sent={sent_batches * BATCH} "
            f"acked={acked} achieved={acked / elapsed:.0f}/s statuses={sorted(statuses.items())} "
            f"max_lag={max_lag} events, median_lag={sorted(lag_samples)[len(lag_samples) // 2]} "
            f"caught_up_after={caught_up_after:.1f}s rss_mb start={rss_start:.0f} "
            f"max={rss_max:.0f} load_end={rss_load_end:.0f} end={rss_end:.0f} "
            f"growth={rss_end - rss_start:.0f}"
        )
        assert errors == {}
        assert acked == sent_batches * BATCH
        assert log_length == acked
        assert rss_max - rss_start < MAX_RSS_GROWTH_MB
        assert exit_code == 0, server.tail()
