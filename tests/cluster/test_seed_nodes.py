"""Several seed nodes: with the first-named master killed, every process still connects.

``LEDGER_REDIS_URL`` names the three masters of a cluster of its own, the first-named being
the master killed (``kill -9``; its replica is promoted). A ``ledger serve`` started before
the kill carries on; afterwards ``ledger export``, ``ledger status`` and a fresh
``ledger serve``, each started then, connect through the nodes still alive.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from services.store.connection import connect
from services.store.redis import RedisEventStore
from tests.support.builders import mixed
from tests.support.cluster import FAILOVER_NODE_TIMEOUT_MS, running_cluster
from tests.support.processes import PREFIX, READER, ROOT, LedgerServer
from tests.support.waiting import until

PARTITIONS = 4
DEADLINE = 60.0


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """``ledger <args>`` as an operator runs it, with ``env`` added to the environment."""
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=DEADLINE,
        check=False,
    )


async def views_caught_up(server: LedgerServer, head_count: int) -> bool:
    """Whether the served incidents listing has every incident, of every status, and lags by
    nothing."""
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=2.0, headers={"authorization": f"Bearer {READER}"}
    ) as http:
        try:
            answer = (await http.get("/v1/incidents", params={"limit": 1, "status": "all"})).json()
        except (httpx.TransportError, ValueError):
            return False
    return bool(answer.get("lag") == 0 and answer.get("total_count") == head_count)


async def serving_all(server: LedgerServer, head_count: int, what: str) -> None:
    """Wait until ``server`` answers, caught up with ``head_count`` incidents."""
    await server.wait_ready(DEADLINE)
    await until(
        lambda: views_caught_up(server, head_count),
        what,
        within=DEADLINE,
        gone=server.gone,
        context=server.tail,
    )


class TestSeedNodes:
    """Every process, started before or after the first-named master died, connects."""

    @pytest.mark.slow
    @pytest.mark.timeout(300)
    async def test_export_status_and_a_fresh_serve_work_after_the_first_named_master_dies(
        self, tmp_path: Path
    ) -> None:
        """Kill the first-named master; the running service goes on, and new processes reach
        the cluster through the other seeds."""
        with running_cluster(
            tmp_path / "cluster", cluster_node_timeout_ms=FAILOVER_NODE_TIMEOUT_MS
        ) as cluster:
            masters = cluster.masters()
            url = ",".join(node.url for node in masters)
            env = {
                "LEDGER_REDIS_URL": url,
                "LEDGER_REDIS_CLUSTER": "1",
                "LEDGER_PARTITIONS": str(PARTITIONS),
                "LEDGER_KEY_PREFIX": PREFIX,
            }
            client = connect(url, cluster=True)
            store = RedisEventStore(
                client, prefix=PREFIX, partitions=PARTITIONS, cluster=True, wait_replicas=1
            )
            events = mixed(300, random.Random(5))
            for start in range(0, len(events), 100):
                await store.append(events[start : start + 100])
            incidents = len({e.entity for e in events if e.type == "incident.reported"})
            before = LedgerServer(url, tmp_path / "before")
            (tmp_path / "before").mkdir()
            before.start(env)
            after: LedgerServer | None = None
            try:
                await serving_all(before, incidents, "the running service to catch up")
                first = masters[0]
                cluster.kill(first)
                cluster.wait_for_failover(first, timeout=30)

                exported = tmp_path / "events.jsonl"
                done = cli(env, "export", "--out", str(exported))
                assert done.returncode == 0, done.stderr
                assert len(exported.read_text().splitlines()) == len(events)

                done = cli(env, "status", "--json")
                assert done.returncode == 0, done.stderr
                status: Any = msgspec.json.decode(done.stdout)
                assert status["log"]["length"] == len(events)
                assert {row["lag"] for row in status["projections"]} == {0}

                (tmp_path / "after").mkdir()
                after = LedgerServer(url, tmp_path / "after")
                after.start(env)
                await serving_all(after, incidents, "a fresh service to answer")
                assert before.alive()
                assert await views_caught_up(before, incidents)
            finally:
                assert before.stop() == 0, before.tail()
                if after is not None:
                    assert after.stop() == 0, after.tail()
                await client.aclose()
