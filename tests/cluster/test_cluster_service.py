"""The ledger on a real Redis Cluster: the service end to end, and a master killed mid-ingest."""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest

from events import AnyEvent, IncidentRetracted, encode
from projections import PROJECTIONS, Docs, fold
from services.projector.pool import ProjectorPool
from services.reference import (
    DUPLICATE_FEED,
    DUPLICATE_INCIDENT,
    MAIN_INCIDENT,
    MONITOR_FEED,
    SUBJECT,
    scenario,
)
from services.runtime.redis_cluster import ClusterUsers
from services.store.base import StoreUnavailableError
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.cache import ViewReader
from services.views.redis import RedisViewStore
from tests.support.builders import mixed
from tests.support.cluster import FAILOVER_NODE_TIMEOUT_MS, running_cluster
from tests.support.scenarios import kill_one_of_two, partition_logs
from tests.support.service import FEED_TOKENS, READER, publish, serving

PARTITIONS = 4
DEADLINE = 60.0


@pytest.fixture
def redis_url(cluster_url: str) -> str:
    """The service's LEDGER_REDIS_URL is a node of the session cluster."""
    return cluster_url


@pytest.fixture
def key_prefix() -> str:
    """A key prefix of this test alone (the cluster is the session's own, dropped after)."""
    return f"t-{time.monotonic_ns()}"


@pytest.fixture
async def service(redis_url: str, key_prefix: str) -> AsyncIterator[str]:
    """The service on the cluster, with its log in four partitions; yields its URL."""
    async with serving(redis_url, key_prefix, {"cluster": True, "partitions": PARTITIONS}) as url:
        yield url


class TestServiceOnACluster:
    """``ledger serve`` with LEDGER_REDIS_CLUSTER=1 answers as on one node."""

    @pytest.mark.timeout(120)
    async def test_reference_scenario_published_over_http_gives_the_hand_computed_answers(
        self, service: str
    ) -> None:
        """Published through the API, read back merged from four partitions: 1,476 dead."""
        await publish(service, scenario())
        async with httpx.AsyncClient(
            base_url=service, headers={"authorization": f"Bearer {READER}"}
        ) as http:
            deadline = time.monotonic() + DEADLINE
            while True:
                victims = (await http.get("/v1/projections/community-victims")).json()
                listing = (await http.get("/v1/incidents")).json()
                if victims["lag"] == 0 and listing["lag"] == 0 and victims["position"]:
                    break
                assert time.monotonic() < deadline, (victims, listing)
                await asyncio.sleep(0.05)
            at_least = {"low": 1476, "best": 1476, "high": 1476, "at_least": True}
            assert victims["total"] == at_least
            assert victims["incidents"] == 1
            assert len(victims["position"].split(",")) == PARTITIONS
            main = (await http.get(f"/v1/incidents/{MAIN_INCIDENT}")).json()["incident"]
            assert main["duplicates"] == [DUPLICATE_INCIDENT]
            pairs = (await http.get("/v1/projections/alignment")).json()["pairs"]
            assert pairs == [
                {"a": "RUS", "b": "USA", "score": 1.0, "shared_subjects": 1, "thin": True}
            ]
            stance = await http.get("/v1/projections/country-stance", params={"subject": SUBJECT})
            usa = next(r for r in stance.json()["countries"] if r["country"] == "USA")
            assert (usa["family"], usa["role"]) == ("critical", "foreign_minister")

    @pytest.mark.timeout(120)
    async def test_another_feed_may_not_retract_an_incident_over_http(self, service: str) -> None:
        """Given the monitor's incident on a partitioned cluster log, when another reference
        feed retracts it over HTTP, then 403 names the owner (the store's check, made inside
        the append script on the incident's master)."""
        await publish(service, scenario()[:1])
        foreign = IncidentRetracted(
            event_id=uuid.uuid4(),
            source=DUPLICATE_FEED,
            incident_id=MAIN_INCIDENT,
            reason="I don't like it",
        )
        async with httpx.AsyncClient(base_url=service) as http:
            response = await http.post(
                "/v1/events",
                content=encode(foreign),
                headers={
                    "authorization": f"Bearer {FEED_TOKENS[DUPLICATE_FEED]}",
                    "content-type": "application/json",
                },
            )
        assert response.status_code == 403
        assert (response.json()["error"], response.json()["owner"]) == ("not_owner", MONITOR_FEED)


async def append_until_acknowledged(store: RedisEventStore, batch: Sequence[AnyEvent]) -> None:
    """Append ``batch``, retrying (same event ids) while the store is unavailable."""
    deadline = time.monotonic() + DEADLINE
    while True:
        try:
            await store.append(batch)
        except StoreUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)
        else:
            return


class TestFailover:
    """A master killed during strict-mode ingest loses no acknowledged event."""

    @pytest.mark.timeout(240)
    async def test_every_acknowledged_event_survives_once_and_views_equal_the_fold(
        self, tmp_path: Path
    ) -> None:
        """kill -9 the master of a partition mid-ingest; its replica is promoted. The nodes
        hold the deployment's users: the service writes and waits for its replicas as
        ``ledger``, the replicas sync as ``ledger-replica`` (the promoted one had to), and
        the cluster is watched as ``ledger-admin``."""
        users = ClusterUsers("fo", "service-0123456789", "admin-0123456789", "replica-0123456")
        with running_cluster(
            tmp_path, cluster_node_timeout_ms=FAILOVER_NODE_TIMEOUT_MS, users=users
        ) as cluster:
            client = connect(cluster.service_url, cluster=True)
            keys = Keys("fo", PARTITIONS, cluster=True)
            store = RedisEventStore(
                client,
                prefix="fo",
                partitions=PARTITIONS,
                cluster=True,
                wait_replicas=1,
                wait_timeout_ms=500,
            )
            events = mixed(3000, random.Random(3))
            batches = [events[i : i + 100] for i in range(0, len(events), 100)]
            acknowledged: list[str] = []
            victim = cluster.master_for_key(keys.log_of(0))

            def fail_over() -> None:
                cluster.wait_for_failover(victim)
                cluster.restart(victim)  # back, as a replica of the promoted one

            recovery: asyncio.Future[None] | None = None
            for number, batch in enumerate(batches):
                if number == 10:
                    cluster.kill(victim)
                    recovery = asyncio.ensure_future(asyncio.to_thread(fail_over))
                await append_until_acknowledged(store, batch)  # retried meanwhile
                acknowledged += [str(e.event_id) for e in batch]
            assert recovery is not None
            await recovery
            logs = await partition_logs(store)
            stored = [str(r.event.event_id) for log in logs for r in log]
            assert sorted(stored) == sorted(acknowledged)  # every one, once
            async with asyncio.timeout(DEADLINE):
                await ProjectorPool(client, prefix=keys, block_ms=50).run_until_caught_up()
            reader = ViewReader(RedisViewStore(client, keys))
            for projection in PROJECTIONS.values():
                expected = projection.merge([fold(projection, log) for log in logs])
                docs, _ = await reader.read(projection, list(projection.doc_types))
                assert Docs(docs) == expected, projection.name
            await client.aclose()


class TestRebalanceOnACluster:
    """Projector processes on a cluster share and take over (projection, partition) leases."""

    @pytest.mark.timeout(300)
    async def test_survivor_takes_the_killed_process_s_partitions_and_views_equal_the_fold(
        self, cluster_url: str, cluster_client: Any, key_prefix: str, tmp_path: Path
    ) -> None:
        """Two processes with LEDGER_REDIS_CLUSTER=1; one killed; the other holds all leases."""
        keys = Keys(key_prefix, PARTITIONS, cluster=True)
        env = {"LEDGER_REDIS_CLUSTER": "1", "LEDGER_REDIS_URL": cluster_url}
        await kill_one_of_two(cluster_url, cluster_client, keys, tmp_path, env)
