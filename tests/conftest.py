"""Shared fixtures: a real Redis for the session, a client and a key prefix per test, stores.

``redis_url`` is, in order of preference: ``LEDGER_TEST_REDIS_URL``; a testcontainers Redis
when a Docker engine answers ``docker info`` quickly; a ``redis-server`` child process on a
free port with its own temporary directory. Every test that touches Redis works under its
own ``key_prefix`` and deletes only the keys under it afterwards (never FLUSHDB).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from services.runtime.redis_server import RedisProcess
from services.store.connection import connect
from services.store.memory import InMemoryEventStore
from services.store.redis import RedisEventStore

REDIS_IMAGE = "redis:7-alpine"

CLIENT_TIMEOUT = 10.0
"""Seconds the tests' client waits for a reply or a connection (the service's: 1 s)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave the soak tests out unless ``LEDGER_SOAK=1`` (``make soak``): they are deselected,
    not skipped, as they are no part of ``make test``."""
    if os.environ.get("LEDGER_SOAK") == "1":
        return
    soak = [item for item in items if item.get_closest_marker("soak") is not None]
    if soak:
        config.hook.pytest_deselected(items=soak)
        items[:] = [item for item in items if item.get_closest_marker("soak") is None]


def _docker_answers() -> bool:
    """Whether a Docker engine answers within a few seconds."""
    docker = shutil.which("docker")
    if docker is None:
        return False
    try:
        done = subprocess.run([docker, "info"], capture_output=True, timeout=3, check=False)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a real Redis shared by the whole session."""
    given = os.environ.get("LEDGER_TEST_REDIS_URL")
    if given:
        yield given
        return
    if _docker_answers():
        from testcontainers.community.redis import RedisContainer

        with RedisContainer(REDIS_IMAGE) as container:
            host = container.get_container_host_ip()
            port = container.get_exposed_port(container.port)
            yield f"redis://{host}:{port}/0"
        return
    data_dir: Path = tmp_path_factory.mktemp("redis")
    with RedisProcess(data_dir=data_dir, appendonly=False) as server:
        yield server.url


@pytest.fixture
async def redis_client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    """A client on the session's Redis, closed after the test: the service's own client
    (:func:`~services.store.connection.connect`) with a longer timeout for a loaded machine.

    Like the service's, it never waits for ever: a reply that does not come within
    :data:`CLIENT_TIMEOUT` raises ``TimeoutError`` and that connection is dropped, so the
    store under test meets a lost reply the way it does in service (and answers
    ``StoreUnavailableError``), and a test's own probe fails instead of hanging.
    """
    client = connect(
        redis_url, socket_timeout=CLIENT_TIMEOUT, socket_connect_timeout=CLIENT_TIMEOUT
    )
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def key_prefix(redis_url: str) -> AsyncIterator[str]:
    """A key prefix of this test alone; every key under it is deleted after the test."""
    prefix = f"t-{uuid.uuid4().hex[:16]}"
    yield prefix
    client = aioredis.Redis.from_url(redis_url)
    try:
        batch: list[bytes] = []
        async for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 500:
                await client.unlink(*batch)
                batch = []
        if batch:
            await client.unlink(*batch)
    finally:
        await client.aclose()


@pytest.fixture
def redis_store(redis_client: aioredis.Redis, key_prefix: str) -> RedisEventStore:
    """A Redis event store under this test's key prefix."""
    return RedisEventStore(redis_client, prefix=key_prefix)


@pytest.fixture
def memory_store() -> InMemoryEventStore:
    """A fresh in-memory event store."""
    return InMemoryEventStore()
