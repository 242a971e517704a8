"""RedisClusterProcesses itself: start failures clean up, passwords, failover errors, restarts."""

from __future__ import annotations

import socket
import stat
from pathlib import Path

import pytest
import redis
import redis.exceptions as rexc
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster
from redis.retry import Retry

from services.runtime.redis_cluster import (
    RedisClusterFailoverError,
    RedisClusterProcesses,
    RedisClusterStartError,
)
from tests.support.cluster import redis_server_or_skip, running_cluster


def _fake_cli(directory: Path, output: str, code: int) -> Path:
    """An executable standing in for redis-cli: prints ``output`` and exits with ``code``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "redis-cli"
    path.write_text(f"#!/bin/sh\necho '{output}'\nexit {code}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _listening(port: int) -> bool:
    """Whether something accepts TCP connections on 127.0.0.1:port."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


class TestStartFailures:
    """A cluster that cannot be formed raises RedisClusterStartError and leaves no process."""

    def test_fewer_than_three_masters_is_refused(self, tmp_path: Path) -> None:
        """Redis Cluster needs three masters for a majority; two are refused up front."""
        with pytest.raises(ValueError, match="at least 3 masters"):
            RedisClusterProcesses(data_dir=tmp_path, masters=2)

    def test_failed_create_kills_every_node(self, tmp_path: Path) -> None:
        """When redis-cli --cluster create fails, its output is in the error, no node runs."""
        cli = _fake_cli(tmp_path / "bin", "[ERR] Node 127.0.0.1:1 is not empty", 1)
        cluster = RedisClusterProcesses(
            data_dir=tmp_path / "cluster", binary=redis_server_or_skip(), cli=str(cli)
        )
        with pytest.raises(RedisClusterStartError, match="is not empty"):
            cluster.start()
        assert not any(node.running for node in cluster.nodes)
        assert not any(_listening(node.port) for node in cluster.nodes)

    def test_cluster_that_never_settles_raises_and_kills_every_node(self, tmp_path: Path) -> None:
        """Nodes never joined (a redis-cli that only claims success) end in a start error."""
        cli = _fake_cli(tmp_path / "bin", "[OK] All 16384 slots covered.", 0)
        cluster = RedisClusterProcesses(
            data_dir=tmp_path / "cluster", binary=redis_server_or_skip(), cli=str(cli)
        )
        with pytest.raises(RedisClusterStartError, match="did not settle"):
            cluster.start(timeout=3)
        assert not any(node.running for node in cluster.nodes)
        assert not any(_listening(node.port) for node in cluster.nodes)


class TestPassword:
    """A cluster with a password refuses bare connections and still replicates."""

    def test_password_is_required_and_replicas_authenticate_to_their_masters(
        self, tmp_path: Path
    ) -> None:
        """The URL carries the password, a bare client is refused, WAIT sees the replica."""
        with running_cluster(tmp_path, password="cluster s3cret:/@") as cluster:
            node = cluster.nodes[0]
            bare = redis.Redis(port=node.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
            with pytest.raises(rexc.AuthenticationError):
                bare.ping()
            bare.close()
            client = RedisCluster.from_url(cluster.url)
            try:
                client.set("{pw}:k", "v")
                master = client.get_node_from_key("{pw}:k")
                assert master is not None
                replicas = client.execute_command("WAIT", 1, 5000, target_nodes=master)
                assert replicas >= 1
                assert client.get("{pw}:k") == b"v"
            finally:
                client.close()
            conf = node.data_dir / "redis.conf"
            assert stat.S_IMODE(conf.stat().st_mode) == 0o600


class TestKillAndRestart:
    """Failover waits fail clearly when no failover can happen; restarts rejoin the cluster."""

    def test_waiting_for_failover_of_a_replica_is_refused_and_restart_rejoins_it(
        self, tmp_path: Path
    ) -> None:
        """A replica has no slots to take over; restarted, it follows its master again."""
        with running_cluster(tmp_path) as cluster:
            master = cluster.masters()[0]
            replica = cluster.replica_of(master)
            cluster.kill(replica)
            with pytest.raises(RedisClusterFailoverError, match="not a master"):
                cluster.wait_for_failover(replica, timeout=5)
            cluster.restart(replica, timeout=30)
            assert cluster.replicas_of(master) == [replica]
            assert cluster.masters()[0] is master

    def test_failover_without_a_majority_of_masters_times_out(self, tmp_path: Path) -> None:
        """With two of three masters down no replica can be elected: the wait gives up."""
        with running_cluster(tmp_path) as cluster:
            first, second, _ = cluster.masters()
            cluster.kill(first)
            cluster.kill(second)
            with pytest.raises(RedisClusterFailoverError, match="no failover"):
                cluster.wait_for_failover(first, timeout=4)

    def test_stopped_cluster_starts_again_with_its_ports_roles_and_data(
        self, tmp_path: Path
    ) -> None:
        """stop() ends every node; start() brings the same cluster back, data included."""
        with running_cluster(tmp_path) as cluster:
            ports = [node.port for node in cluster.nodes]
            masters = cluster.masters()
            client = RedisCluster.from_url(cluster.url)
            client.set("{again}:k", "kept")
            client.close()
        assert not any(node.running for node in cluster.nodes)
        assert not any(_listening(port) for port in ports)
        cluster.start()
        try:
            assert [node.port for node in cluster.nodes] == ports
            assert cluster.masters() == masters
            client = RedisCluster.from_url(cluster.url)
            assert client.get("{again}:k") == b"kept"
            client.close()
        finally:
            cluster.stop()
