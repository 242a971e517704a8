"""Black-box through HTTP: feeds publish and retry while the service and Redis are killed.

The service runs as ``ledger run`` (the supervised default: API, projector, snapshot writer)
against a Redis the test starts itself (``appendfsync always``, a free port, a directory of
its own), or against a Redis Cluster of its own in strict mode. Feeds publish batches over
HTTP and through the Python client, re-sending a failed batch with the same event ids. At
random moments (after a random number of further acknowledgements, from the test's seed)
something is killed with ``kill -9``: Redis (restarted at once), a master of the cluster (its
replica promoted, the old master back as a replica), the API, the projector, the snapshot
writer (each brought back by the supervisor), or the whole service (started again). After
the traffic stops every view must report ``lag`` 0 through the API within
:data:`SETTLE_WITHIN` seconds, at the log's head; the log must hold every acknowledged event
exactly once and nothing else; every projection's consumer group must show in ``XINFO
GROUPS`` nothing pending, entries-read equal to its log's length and lag 0; and every stored
view must equal the test's own fold of the acknowledged events in log order. A failure names
the seed to replay it with.

CI size: 10 kills each. ``LEDGER_SOAK=1`` (``make soak``): 40.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from events import Position
from services.runtime.redis_cluster import RedisClusterProcesses
from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.keys import Keys
from services.store.log import LogReader
from services.store.positions import joined
from tests.support.cluster import FAILOVER_NODE_TIMEOUT_MS, running_cluster
from tests.support.faults import (
    Feeds,
    api_caught_up,
    client_publisher,
    fold_differences,
    groups_disagreeing,
    http_publisher,
    log_ids,
)
from tests.support.processes import FEEDS, PREFIX, READER, TOKENS, LedgerRun, tokens_env
from tests.support.seeds import replaying, seed_of
from tests.support.waiting import until

SOAK = os.environ.get("LEDGER_SOAK") == "1"
KILLS = 40 if SOAK else 10
SETTLE_WITHIN = 30.0
"""Seconds every view may take, once the traffic stops, to report lag 0."""
PROGRESS_WITHIN = 120.0
"""Seconds the feeds may take to get their next acknowledgements after a kill."""
PARTITIONS = 4
UNEXPECTED = (
    '"projector.restarting"',
    '"projector.failed"',
    '"snapshotter.restarting"',
    '"live.poll_restarting"',
    '"inbox batch failed"',
)
"""Log events of a part meeting an error it did not expect: a kill explains none of them."""


def unexpected_in(log: str) -> list[str]:
    """The lines of ``log`` that tell of an unexpected error: one of :data:`UNEXPECTED`, or a
    traceback printed outside a log line (a process that died of an uncaught exception)."""
    return [
        line[:500]
        for line in log.splitlines()
        if any(mark in line for mark in UNEXPECTED) or line.startswith(("Traceback", "╭"))
    ]


class Scene:
    """The service under test, its feeds, and how each kind of kill is done."""

    def __init__(self, run: LedgerRun, keys: Keys, url: str, seed: int) -> None:
        self.run, self.keys, self.url, self.seed = run, keys, url, seed
        self.feeds = Feeds()
        self.client = connect(url, cluster=keys.cluster)
        self.publishers: list[asyncio.Task[None]] = []
        self.kills: list[str] = []

    def start_feeds(self) -> None:
        """Three feeds over plain HTTP, two through the Python client."""
        base = self.run.base_url
        self.publishers = [
            asyncio.create_task(http_publisher(base, feed, TOKENS[feed], self.feeds, self.seed + n))
            for n, feed in enumerate(FEEDS[:3])
        ] + [
            asyncio.create_task(
                client_publisher(base, feed, TOKENS[feed], self.feeds, self.seed + 3 + n)
            )
            for n, feed in enumerate(FEEDS[3:])
        ]

    async def acks(self, more: int) -> None:
        """Wait until the feeds have ``more`` acknowledgements than now."""
        target = len(self.feeds.acked) + more

        def reached() -> bool:
            for task in self.publishers:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            return len(self.feeds.acked) >= target

        await until(reached, f"{more} more acknowledgements", within=PROGRESS_WITHIN,
                    context=self.run.tail)  # fmt: skip

    def kill_child(self, name: str) -> None:
        """``kill -9`` one supervised child; the supervisor starts it again."""
        pid = self.run.children().get(name)
        if pid is not None:
            os.kill(pid, 9)

    def restart_service(self) -> None:
        """``kill -9`` the supervisor and every child at once, then start the service again."""
        self.run.kill_all()
        self.run = LedgerRun(self.run.data_dir, self.run.env, port=self.run.port)
        self.run.start()

    async def heads(self) -> str | None:
        """The log's head, as answers name positions (joined over partitions)."""
        found: list[Position | None] = [
            await LogReader(self.client, self.keys, p).head() for p in range(self.keys.partitions)
        ]
        return joined(found)

    async def settle_and_check(self) -> None:
        """Stop the feeds, then check lag, the log and the views (module docstring)."""
        self.feeds.stop.set()
        async with asyncio.timeout(PROGRESS_WITHIN):
            await asyncio.gather(*self.publishers)
        await until(
            api_caught_up(self.run.base_url, READER, self.heads),
            "every view to report lag 0 at the log's head",
            within=SETTLE_WITHIN,
            context=self.run.tail,
        )
        disagreeing: dict[str, str] = {}

        async def groups_agree() -> bool:
            disagreeing.clear()
            disagreeing.update(await groups_disagreeing(self.client, self.keys))
            return not disagreeing

        await until(groups_agree, "XINFO GROUPS to tell the truth", within=10,
                    context=lambda: str(disagreeing))  # fmt: skip
        logged = await log_ids(self.client, self.keys)
        ids = [ident for part in logged for _, ident in part]
        acked = self.feeds.acked
        assert len(ids) == len(set(ids)), "an event was logged twice"
        assert set(ids) == set(acked), (
            f"missing {len(set(acked) - set(ids))}, not acknowledged {len(set(ids) - set(acked))}"
        )
        differences = await fold_differences(self.client, self.keys, logged, acked)
        unexpected = unexpected_in(self.run.log_path.read_text(errors="replace"))
        assert unexpected == [], "\n".join(unexpected[:5])
        print(  # the figures are the point of this test
            f"\nblack box: seed={self.seed} kills={self.kills} acknowledged={len(acked)} "
            f"logged={len(ids)} failed_attempts={self.feeds.failures} differences={differences}"
        )
        assert set(differences.values()) == {0}, differences

    async def play(
        self,
        rng: random.Random,
        kinds: list[str],
        of_redis: Mapping[str, Callable[[], Awaitable[None]]],
    ) -> None:
        """Start the service and the feeds, kill at random (``of_redis``: how the kinds that
        are not the service's are done), then settle and check."""

        async def act(kind: str) -> None:
            if kind in of_redis:
                await of_redis[kind]()
            elif kind == "service":
                self.restart_service()
            else:
                self.kill_child(kind)

        try:
            self.run.start()
            await self.run.wait_ready()
            self.start_feeds()
            await kill_at_random(self, rng, kinds, act)
            await self.settle_and_check()
        finally:
            await self.close()

    async def close(self) -> None:
        """Stop the feeds and the service (whatever state they are in)."""
        self.feeds.stop.set()
        for task in self.publishers:
            task.cancel()
        await asyncio.gather(*self.publishers, return_exceptions=True)
        if self.run.alive():
            code = self.run.interrupt()
            assert code == 0, self.run.tail()
        await self.client.aclose()


async def kill_at_random(
    scene: Scene, rng: random.Random, kinds: list[str], act: Callable[[str], Awaitable[None]]
) -> None:
    """:data:`KILLS` kills: each kind once at least, the rest drawn; each after a random
    number of further acknowledgements."""
    schedule = kinds + rng.choices(kinds, k=max(0, KILLS - len(kinds)))
    rng.shuffle(schedule)
    for kind in schedule:
        await scene.acks(rng.randint(20, 250))
        scene.kills.append(kind)
        await act(kind)
    await scene.acks(200)


def service_env(url: str, **more: str) -> dict[str, str]:
    """The service's settings: the test's Redis, its tokens, quick reclaims."""
    return {
        "LEDGER_REDIS_URL": url,
        "LEDGER_TOKENS": tokens_env(),
        "LEDGER_KEY_PREFIX": PREFIX,
        "LEDGER_CLAIM_IDLE_MS": "1000",
        "LEDGER_SNAPSHOT_EVERY": "500",
        **more,
    }


class TestOneRedis:
    """On one Redis (``appendfsync always``)."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 600)
    async def test_kills_of_redis_and_the_service_lose_nothing_and_lag_settles_at_0(
        self, tmp_path: Path
    ) -> None:
        """Redis, the API, the projector, the snapshot writer and the whole service killed at
        random; lag 0 within 30 s, every ack logged once, views equal the fold."""
        seed = seed_of("LEDGER_FAULT_SEED")
        rng = random.Random(seed)
        redis_server = RedisProcess(data_dir=tmp_path / "redis", fsync="always")
        redis_server.start()
        run = LedgerRun(tmp_path / "var", service_env(redis_server.url))
        scene = Scene(run, Keys(PREFIX), redis_server.url, seed)

        async def kill_redis() -> None:
            redis_server.kill()
            redis_server.start()

        kinds = ["redis", "redis", "api", "projector", "snapshots", "service"]
        with replaying("LEDGER_FAULT_SEED", seed):
            try:
                await scene.play(rng, kinds, {"redis": kill_redis})
            finally:
                redis_server.stop()


class TestACluster:
    """On a Redis Cluster of 3 masters with a replica each, strict mode, 4 partitions."""

    @pytest.mark.slow
    @pytest.mark.timeout(3600 if SOAK else 900)
    async def test_master_failovers_and_service_kills_lose_nothing_and_lag_settles_at_0(
        self, tmp_path: Path
    ) -> None:
        """Masters failed over and the service's processes killed at random; lag 0 within
        30 s, every ack logged once, views (merged over partitions) equal the fold."""
        seed = seed_of("LEDGER_FAULT_SEED")
        rng = random.Random(seed)
        with running_cluster(
            tmp_path / "cluster", cluster_node_timeout_ms=FAILOVER_NODE_TIMEOUT_MS
        ) as cluster:
            url = ",".join(node.url for node in cluster.nodes)
            env = service_env(
                url,
                LEDGER_REDIS_CLUSTER="1",
                LEDGER_PARTITIONS=str(PARTITIONS),
                LEDGER_WAIT_REPLICAS="1",
            )
            run = LedgerRun(tmp_path / "var", env)
            scene = Scene(run, Keys(PREFIX, PARTITIONS, cluster=True), url, seed)

            async def fail_a_master_over() -> None:
                await asyncio.to_thread(fail_over, cluster, rng)

            kinds = ["master", "master", "api", "projector", "service"]
            with replaying("LEDGER_FAULT_SEED", seed):
                await scene.play(rng, kinds, {"master": fail_a_master_over})


def fail_over(cluster: RedisClusterProcesses, rng: random.Random) -> Any:
    """``kill -9`` a master at random; once its replica is promoted, start it again (it comes
    back as that replica's replica)."""
    victim = rng.choice(cluster.masters())
    cluster.kill(victim)
    cluster.wait_for_failover(victim, timeout=60)
    cluster.restart(victim, timeout=60)
