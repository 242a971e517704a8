"""The deployment's scripts run here as compose runs them: their files, secrets and nodes."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import redis
import redis.exceptions

__all__ = ["CLUSTER_SECRETS", "DEPLOY", "answers", "cluster_node", "cluster_node_env"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
"""The deployment files."""

CLUSTER_SECRETS = {
    "REDIS_PASSWORD_FILE": 'service"pa\\ss-0123456789',
    "REDIS_ADMIN_PASSWORD_FILE": "admin-secret-0123456789",
    "REDIS_REPLICA_PASSWORD_FILE": 'replica"pa\\ss/wo+rd=',
}
"""The three passwords a cluster node's start script reads, by the variable naming its file."""


def cluster_node_env(root: Path, secrets: dict[str, str] = CLUSTER_SECRETS) -> dict[str, str]:
    """``deploy/redis-node-auth.sh``'s environment for a node in ``root``: each secret in a
    file of its own (only the files' paths in the environment), the ACL and include files in
    ``root``, the cluster's template from ``deploy/``."""
    root.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "AUTH_CONF": str(root / "auth.conf"), "ACL_FILE": str(root / "users.acl")}
    env["ACL_TEMPLATE"] = str(DEPLOY / "cluster-users.acl.in")
    for variable, password in secrets.items():
        path = root / variable.lower()
        path.write_text(password + "\n", encoding="utf-8")
        env[variable] = str(path)
    return env


def cluster_node(binary: str, root: Path, port: int) -> subprocess.Popen[bytes]:
    """A cluster-enabled redis-server on ``port``, data in ``root``, started through
    ``deploy/redis-node-auth.sh`` with :data:`CLUSTER_SECRETS` (the compose file's nodes run
    deploy/redis.conf; this one keeps nothing on disk but its ``nodes.conf``)."""
    command = [binary, "--port", str(port), "--dir", str(root), "--save", "", "--appendonly"]
    command += ["no", "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
    return subprocess.Popen(
        ["sh", str(DEPLOY / "redis-node-auth.sh"), *command],
        env=cluster_node_env(root),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def answers(client: redis.Redis) -> bool:
    """Whether the server of ``client`` answers ``PING`` (``False`` while it is not listening)."""
    try:
        return bool(client.ping())
    except redis.exceptions.ConnectionError:
        return False
