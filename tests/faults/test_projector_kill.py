"""``kill -9`` the projector process at random points while events stream in.

The projector runs as its own OS process (``ledger project``). Events are
appended
in batches while it works; at a few random moments, once the view of a random projection has
reached a random event of the latest batch, the process is killed with SIGKILL and started
again (a new consumer name each time, so the new process must wait out the lease and take
over what the dead one left pending). At the end every stored view must equal the pure fold
of the log: no event lost, none counted twice.

CI size: 20,000 events and 5 kills. ``LEDGER_SOAK=1``: 200,000 events and 20 kills.
``LEDGER_KILL_SEED`` replays one schedule.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from events import Recorded
from projections import PROJECTIONS, fold
from services.store.redis import RedisEventStore
from services.views.redis import load_checkpoint, load_view
from tests.support.builders import mixed
from tests.support.processes import Projector
from tests.support.seeds import replaying, seed_of

SOAK = os.environ.get("LEDGER_SOAK") == "1"
EVENTS = 200_000 if SOAK else 20_000
KILLS = 20 if SOAK else 5
BATCH = 500
WAIT = 600.0 if SOAK else 120.0
"""Seconds to wait for the projector to reach a position before the test fails."""


async def reach(
    client: aioredis.Redis, prefix: str, names: list[str], position: str, projector: Projector
) -> None:
    """Poll until the views ``names`` include ``position``; fail if the projector died."""
    deadline = time.monotonic() + WAIT
    target = tuple(map(int, position.split("-")))
    for name in names:
        while True:
            checkpoint = await load_checkpoint(client, prefix, PROJECTIONS[name])
            if checkpoint is not None and tuple(map(int, checkpoint.split("-"))) >= target:
                break
            if not projector.alive():
                pytest.fail(f"the projector exited:\n{projector.tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{name} did not reach {position} in {WAIT} s:\n{projector.tail()}")
            await asyncio.sleep(0.01)


async def read_all(store: RedisEventStore) -> list[Recorded]:
    """The whole log, page by page."""
    log: list[Recorded] = []
    while True:
        page = await store.read(log[-1].position if log else "0-0", count=5000)  # type: ignore[arg-type]
        if not page:
            return log
        log += page


class TestProjectorKilled:
    """A projector killed with SIGKILL at random points and restarted neither loses nor repeats."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 600)
    async def test_views_equal_the_fold_after_repeated_kill_9(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
    ) -> None:
        """Kill -9 mid-stream several times; the final views equal the pure fold, difference 0."""
        seed = seed_of("LEDGER_KILL_SEED")
        with replaying("LEDGER_KILL_SEED", seed):
            rng = random.Random(seed)
            events = mixed(EVENTS, rng)
            batches = [events[i : i + BATCH] for i in range(0, len(events), BATCH)]
            kill_after = set(rng.sample(range(len(batches) - 1), KILLS))
            store = RedisEventStore(redis_client, prefix=key_prefix)
            projector = Projector(redis_url, key_prefix, tmp_path)
            projector.start()
            kills = 0
            started = time.monotonic()
            try:
                for index, batch in enumerate(batches):
                    appended = await store.append(batch)
                    if index in kill_after:
                        names = [rng.choice(sorted(PROJECTIONS))]
                        await reach(redis_client, key_prefix, names, rng.choice(appended).position,
                                    projector)  # fmt: skip
                        projector.kill()
                        kills += 1
                        projector.start()
                head = await store.head()
                assert head is not None
                await reach(redis_client, key_prefix, sorted(PROJECTIONS), head, projector)
                assert projector.stop() == 0, projector.tail()
            finally:
                if projector.alive():
                    projector.kill()
            elapsed = time.monotonic() - started

            log = await read_all(store)
            assert len(log) == EVENTS
            differences = 0
            for projection in PROJECTIONS.values():
                docs, checkpoint = await load_view(redis_client, key_prefix, projection)
                expected = fold(projection, log)
                assert checkpoint == log[-1].position
                for kind in set(docs.kinds()) | set(expected.kinds()):
                    mine, theirs = docs.kind(kind), expected.kind(kind)
                    differences += sum(
                        1 for k in set(mine) | set(theirs) if mine.get(k) != theirs.get(k)
                    )
            print(  # the figures are the point of a soak run
                f"\nprojector kill -9: seed={seed} kills={kills} restarts={projector.starts - 1} "
                f"events={len(log)} projections={len(PROJECTIONS)} differences={differences} "
                f"elapsed={elapsed:.1f}s"
            )
            assert differences == 0
            assert kills == KILLS
