"""The cluster nodes' start script: the users and passwords come from the secret files alone.

``deploy/redis-node-auth.sh`` (``docker-compose.cluster.yml``'s entrypoint of every node)
writes ``masteruser ledger-replica`` and its ``masterauth`` from ``REDIS_REPLICA_PASSWORD_FILE``
into an include file, and has ``deploy/redis-acl.sh`` write the cluster's ACL file
(``deploy/cluster-users.acl.in``) from the three secret files; run here with a local
redis-server. That a replica syncs as ``ledger-replica`` through it: ``test_compose.py``.
"""

from __future__ import annotations

import asyncio
import stat
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
import redis.exceptions

from services.runtime.redis_server import free_cluster_port
from tests.support.cluster import redis_server_or_skip
from tests.support.deploy import CLUSTER_SECRETS, DEPLOY, answers
from tests.support.deploy import cluster_node_env as node_env
from tests.support.waiting import until

SECRETS = CLUSTER_SECRETS


class TestNodeAuthScript:
    """redis-node-auth.sh starts a node with the cluster's users from the secret files."""

    async def test_each_user_has_its_password_and_no_more_than_its_part(
        self, tmp_path: Path
    ) -> None:
        """Anonymous is refused; `ledger` writes its keys but cannot read the configuration
        (where masterauth is) or flush; `ledger-admin` answers but reads no key;
        `ledger-replica` reads no key. The include file holds the replicas' credentials, 0600;
        the ACL file holds no password."""
        binary = redis_server_or_skip()
        port = free_cluster_port()
        command = [binary, "--port", str(port), "--save", "", "--appendonly", "no"]
        command += ["--dir", str(tmp_path)]
        node = await asyncio.create_subprocess_exec(
            "sh",
            str(DEPLOY / "redis-node-auth.sh"),
            *command,
            env=node_env(tmp_path),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def as_user(user: str | None, variable: str | None = None) -> redis.Redis:
            password = SECRETS[variable] if variable else None
            return redis.Redis(port=port, username=user, password=password, socket_timeout=1)

        service = as_user("ledger", "REDIS_PASSWORD_FILE")
        admin = as_user("ledger-admin", "REDIS_ADMIN_PASSWORD_FILE")
        replica = as_user("ledger-replica", "REDIS_REPLICA_PASSWORD_FILE")
        try:
            await until(lambda: answers(service), "the node to answer", every=0.05)
            with pytest.raises(redis.exceptions.AuthenticationError):
                as_user(None).ping()
            service.set("ledger:x", "1")
            refused: list[Callable[[], object]] = [
                lambda: service.config_get("masterauth"),
                service.flushall,
                lambda: service.set("other:x", "1"),
                lambda: admin.get("ledger:x"),
                lambda: replica.get("ledger:x"),
            ]
            for command_ in refused:
                with pytest.raises(redis.exceptions.NoPermissionError):
                    command_()
            assert admin.ping()
            assert replica.ping()
            replica_password = SECRETS["REDIS_REPLICA_PASSWORD_FILE"]
            quoted = replica_password.replace("\\", "\\\\").replace('"', '\\"')
            auth_conf = tmp_path / "auth.conf"
            assert auth_conf.read_text(encoding="utf-8") == (
                f'masteruser ledger-replica\nmasterauth "{quoted}"\n'
            )
            assert stat.S_IMODE(auth_conf.stat().st_mode) == 0o600
            acl = (tmp_path / "users.acl").read_text(encoding="utf-8")
            assert not any(password in acl for password in SECRETS.values())
        finally:
            for client in (service, admin, replica):
                client.close()
            node.kill()
            await asyncio.wait_for(node.wait(), timeout=10)

    def test_what_the_node_is_given_holds_no_password(self, tmp_path: Path) -> None:
        """The command the script runs gets the include file's and the ACL file's paths and an
        environment with only the secret files' paths: no password is in either (redis-server
        rewrites its process title, so the process list of a real node would show nothing
        either way)."""
        recorder = ["sh", "-c", 'echo "args: $*"; env', "node"]
        done = subprocess.run(
            ["sh", str(DEPLOY / "redis-node-auth.sh"), *recorder],
            env=node_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        acl = tmp_path / "users.acl"
        assert f"args: --include {tmp_path / 'auth.conf'} --aclfile {acl}" in done.stdout
        assert not any(password in done.stdout for password in SECRETS.values())

    @pytest.mark.parametrize("variable", sorted(SECRETS))
    def test_an_empty_secret_file_stops_the_node_from_starting(
        self, tmp_path: Path, variable: str
    ) -> None:
        """Any of the three passwords missing, no node: the script exits non-zero naming it."""
        done = subprocess.run(
            ["sh", str(DEPLOY / "redis-node-auth.sh"), "true"],
            env=node_env(tmp_path, {**SECRETS, variable: ""}),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode != 0
        assert variable in done.stderr

    def test_a_replicas_password_of_two_lines_is_refused(self, tmp_path: Path) -> None:
        """masterauth is one line of redis.conf: a password over two lines stops the start."""
        secrets = {**SECRETS, "REDIS_REPLICA_PASSWORD_FILE": "first\nsecond"}
        done = subprocess.run(
            ["sh", str(DEPLOY / "redis-node-auth.sh"), "true"],
            env=node_env(tmp_path, secrets),
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        assert done.returncode != 0
        assert "one line" in done.stderr
        assert not (tmp_path / "auth.conf").exists()
