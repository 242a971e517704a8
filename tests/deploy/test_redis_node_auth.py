"""The cluster nodes' start script: the password comes from the secret file alone.

``deploy/redis-node-auth.sh`` (``docker-compose.cluster.yml``'s entrypoint of every node)
writes ``requirepass`` and ``masterauth`` from ``REDIS_PASSWORD_FILE`` into an include file
and runs the node with ``--include`` it; run here with a local redis-server.
"""

from __future__ import annotations

import asyncio
import os
import stat
import subprocess
from pathlib import Path

import pytest
import redis
import redis.exceptions

from services.runtime.redis_server import free_cluster_port
from tests.support.cluster import redis_server_or_skip
from tests.support.waiting import until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


class TestNodeAuthScript:
    """redis-node-auth.sh starts a node whose password comes from the secret file alone."""

    async def test_the_node_requires_the_password_of_the_secret_file(self, tmp_path: Path) -> None:
        """A node started through the script answers NOAUTH without a password and PONG with
        the file's (quotes and backslashes kept), which is also its masterauth; the include
        file it wrote is 0600."""
        binary = redis_server_or_skip()
        password = 'pa"ss\\wo/rd+='
        secret = tmp_path / "redis_password"
        secret.write_text(password + "\n", encoding="utf-8")
        auth_conf = tmp_path / "auth.conf"
        port = free_cluster_port()
        env = {**os.environ, "REDIS_PASSWORD_FILE": str(secret), "AUTH_CONF": str(auth_conf)}
        command = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
        command += ["--dir", str(tmp_path)]
        node = await asyncio.create_subprocess_exec(
            "sh",
            str(DEPLOY / "redis-node-auth.sh"),
            *command,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=port, password=password, socket_timeout=1)
        try:
            await until(lambda: _answers(client), "the node to answer", every=0.05)
            with pytest.raises(redis.exceptions.AuthenticationError):
                redis.Redis(port=port, socket_timeout=1).ping()
            assert client.config_get("masterauth") == {"masterauth": password}
            assert stat.S_IMODE(auth_conf.stat().st_mode) == 0o600
        finally:
            client.close()
            node.kill()
            await asyncio.wait_for(node.wait(), timeout=10)

    def test_what_the_node_is_given_holds_no_password(self, tmp_path: Path) -> None:
        """The command the script runs gets the include file's path and an environment with
        only the secret file's path: the password is in neither (redis-server rewrites its
        process title, so the process list of a real node would show nothing either way)."""
        password = "never-shown-0123456789"
        secret = tmp_path / "redis_password"
        secret.write_text(password + "\n", encoding="utf-8")
        auth_conf = tmp_path / "auth.conf"
        env = {**os.environ, "REDIS_PASSWORD_FILE": str(secret), "AUTH_CONF": str(auth_conf)}
        recorder = ["sh", "-c", 'echo "args: $*"; env', "node"]
        done = subprocess.run(
            ["sh", str(DEPLOY / "redis-node-auth.sh"), *recorder],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        assert f"args: --include {auth_conf}" in done.stdout
        assert password not in done.stdout
        assert f'requirepass "{password}"' in auth_conf.read_text(encoding="utf-8")

    def test_an_empty_secret_file_stops_the_node_from_starting(self, tmp_path: Path) -> None:
        """No password, no node: the script exits non-zero naming REDIS_PASSWORD_FILE."""
        secret = tmp_path / "redis_password"
        secret.write_text("", encoding="utf-8")
        env = {**os.environ, "REDIS_PASSWORD_FILE": str(secret)}
        done = subprocess.run(
            ["sh", str(DEPLOY / "redis-node-auth.sh"), "true"],
            env=env,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode != 0
        assert "REDIS_PASSWORD_FILE" in done.stderr


def _answers(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
