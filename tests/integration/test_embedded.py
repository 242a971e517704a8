"""The embedded default: a private redis-server under the data directory, and a whole serve."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
import redis
import redis.exceptions
from typer.testing import CliRunner

import events
from services.bootstrap import Service
from services.cli import main
from services.protection.auth import load_tokens_file, tokens_path
from services.reference import REFERENCE_FEEDS, scenario
from services.runtime.embedded import EmbeddedRedis, password_path
from services.settings import Settings
from tests.support.builders import reported
from tests.support.service import serve_defaults


def alive(pid: int) -> bool:
    """Whether a process with this id exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


class TestEmbeddedRedis:
    def test_starts_a_password_protected_redis_and_stops_it(self, tmp_path: Path) -> None:
        """The server answers with its password only, and is gone after stop()."""
        embedded = EmbeddedRedis(Settings(data_dir=tmp_path))
        url = embedded.start()
        try:
            pid = embedded.process.pid
            assert pid is not None
            with redis.Redis.from_url(url) as client:
                assert client.ping()
                client.set("ledger:probe", "1")  # the service user writes its own keys only
            with (
                redis.Redis(host="127.0.0.1", port=embedded.process.port) as anonymous,
                pytest.raises(redis.exceptions.AuthenticationError),
            ):
                anonymous.ping()
        finally:
            embedded.stop()
        assert not alive(pid)
        assert stat.S_IMODE(password_path(tmp_path).stat().st_mode) == 0o600

    def test_restart_reuses_the_password_and_keeps_the_data(self, tmp_path: Path) -> None:
        """The password file and the AOF under the data directory survive a restart."""
        with EmbeddedRedis(Settings(data_dir=tmp_path)) as first:
            with redis.Redis.from_url(first.url) as client:
                client.set("ledger:kept", "yes")
            first_password = first.process.password
        with EmbeddedRedis(Settings(data_dir=tmp_path)) as second:
            assert second.process.password == first_password
            with redis.Redis.from_url(second.url) as client:
                assert client.get("ledger:kept") == b"yes"


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[Service, asyncio.Task[None]]]:
    """``serve`` on the embedded default (free HTTP port), until the test stops it."""
    async with serve_defaults(tmp_path / "var") as running:
        yield running


class TestServe:
    async def test_serves_the_api_and_stops_everything_on_sigterm(
        self, served: tuple[Service, asyncio.Task[None]]
    ) -> None:
        """The generated feed token publishes; SIGTERM stops uvicorn and then the Redis."""
        service, task = served
        assert service.address is not None
        assert service.embedded is not None
        host, port = service.address
        data_dir = service.settings.data_dir
        tokens = {t.name: t.secret for t in load_tokens_file(tokens_path(data_dir))}
        assert {f"feed:{feed}" for feed in REFERENCE_FEEDS} <= set(tokens)
        redis_pid = service.embedded.process.pid
        assert redis_pid is not None
        headers = {"authorization": f"Bearer {tokens['feed:local']}"}
        async with httpx.AsyncClient(base_url=f"http://{host}:{port}", headers=headers) as http:
            response = await http.post(
                "/v1/events",
                content=events.encode(reported("i-1", source="local")),
                headers={"content-type": "application/json"},
            )
            ready = await http.get("/readyz")
        assert response.status_code == 202
        assert ready.status_code == 200
        assert await service.store.length() == 1

        os.kill(os.getpid(), signal.SIGTERM)
        async with asyncio.timeout(30):
            await task
        assert not alive(redis_pid)

    async def test_seed_reference_publishes_each_feed_with_its_token_once(
        self, served: tuple[Service, asyncio.Task[None]]
    ) -> None:
        """``ledger seed reference`` writes the scenario; a second seed writes nothing new."""
        service, _ = served
        assert service.address is not None
        host, port = service.address
        env = {
            "LEDGER_DATA_DIR": str(service.settings.data_dir),
            "LEDGER_TOKENS": "",
            "LEDGER_SEED_TOKEN": "",
            "LEDGER_REDIS_URL": "",
        }
        args = ["seed", "reference", "--url", f"http://{host}:{port}"]
        first = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
        assert first.exit_code == 0, first.output
        total = len(scenario())
        assert await service.store.length() == total
        assert f"{total} appended" in first.stderr
        again = await asyncio.to_thread(CliRunner().invoke, main, args, env=env)
        assert again.exit_code == 0, again.output
        assert f"0 appended, {total} already there" in again.stderr
        assert await service.store.length() == total
