"""The deployment files: the compose files render with their variables set.

Runs ``docker compose config`` (or the v1 ``docker-compose config``) when a client is
installed (no engine is needed to render a file); skipped otherwise, failed under CI. The
cluster file's one-shot init script also runs here, against six local redis-server nodes (its
nodes' start script: ``test_redis_node_auth.py``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.exceptions
import yaml

from services.runtime.redis_server import find_redis_cli, free_cluster_port
from tests.support.cluster import redis_server_or_skip
from tests.support.deploy import CLUSTER_SECRETS, answers, cluster_node, cluster_node_env
from tests.support.tools import missing
from tests.support.waiting import until

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
CLUSTER_FILE = DEPLOY / "docker-compose.cluster.yml"
CLUSTER_NODES = [f"redis-{n}" for n in range(1, 7)]
LEDGER_SERVICES = ["api", "projector-1", "projector-2"]
PASSWORD = "compose-test-password"
NODE_SECRETS = ("redis_password", "redis_admin_password", "redis_replica_password")


def _compose() -> list[str] | None:
    """The compose command line: ``docker compose`` or ``docker-compose``, if installed."""
    docker = shutil.which("docker")
    if docker is not None:
        probe = subprocess.run(
            [docker, "compose", "version"], capture_output=True, timeout=10, check=False
        )
        if probe.returncode == 0:
            return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy is not None else None


class TestCompose:
    """``deploy/docker-compose.yml`` is a valid compose file."""

    def test_compose_config_renders_with_the_variables_set(self) -> None:
        """``docker compose config`` succeeds and names the api, projectors, snapshots, Redis."""
        command = _compose()
        if command is None:
            missing("no docker compose client installed")
        env = {
            **os.environ,
            "REDIS_PASSWORD": "compose-test-password",
            "LEDGER_TOKENS": "operator=compose-test-operator-token",
        }
        done = subprocess.run(
            [*command, "-f", str(DEPLOY / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode == 0, done.stderr
        for service in ("redis:", "api:", "projector-1:", "projector-2:", "snapshots:"):
            assert service in done.stdout

    def test_no_secret_on_a_command_line_and_redis_on_an_internal_network(self) -> None:
        """Rendered: Redis publishes no port and sits on the internal network alone; the
        ledger reads its Redis password and tokens from secret files; no command or
        environment holds a secret; data keys have a volume of their own."""
        config = _rendered(
            DEPLOY / "docker-compose.yml", {"LEDGER_TOKENS": "x", "REDIS_PASSWORD": "y"}
        )
        services = config["services"]
        redis = services["redis"]
        assert "ports" not in redis
        assert list(redis["networks"]) == ["backend"]
        assert config["networks"]["backend"]["internal"] is True
        assert redis["entrypoint"] == ["sh", "/usr/local/etc/redis/redis-acl.sh"]
        assert redis["environment"] == {
            "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
            "REDIS_ADMIN_PASSWORD_FILE": "/run/secrets/redis_admin_password",
            "LEDGER_KEY_PREFIX": "ledger",
        }
        assert {s["source"] for s in redis["secrets"]} == {
            "redis_password",
            "redis_admin_password",
        }
        for name in ("api", "projector-1", "projector-2", "snapshots"):
            env = services[name]["environment"]
            assert env["LEDGER_REDIS_URL"] == "redis://ledger@redis:6379/0"
            assert env["LEDGER_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
            assert env["LEDGER_TOKENS_FILE"] == "/run/secrets/ledger_tokens"
            assert "LEDGER_TOKENS" not in env
            assert env["LEDGER_KEYRING"] == "file:/keyring"
            assert {s["source"] for s in services[name]["secrets"]} == {
                "redis_password",
                "ledger_tokens",
            }
        assert [_host_ip(p) for p in services["api"]["ports"]] == ["127.0.0.1"]
        assert "keyring" in config["volumes"]
        rendered = yaml.safe_dump(config)
        assert "REDIS_PASSWORD:" not in rendered  # no password variable anywhere
        assert "--requirepass" not in rendered

    def test_the_tls_override_renders_tls_for_redis_and_https_in_front(self) -> None:
        """With docker-compose.tls.yml: Redis only on its TLS port with its certificate, the
        ledger on rediss:// checking the CA, and Caddy terminating HTTPS on 443 for
        LEDGER_PUBLIC_HOST with the certificate from secrets."""
        config = _rendered(
            DEPLOY / "docker-compose.yml",
            {"LEDGER_PUBLIC_HOST": "ledger.example.org"},
            DEPLOY / "docker-compose.tls.yml",
        )
        services = config["services"]
        script = " ".join(services["redis"]["command"])
        for flag in ("--port 0", "--tls-port 6379", "--tls-cert-file /run/secrets/redis_tls_cert"):
            assert flag in script
        assert services["redis"]["entrypoint"] == ["sh", "/usr/local/etc/redis/redis-acl.sh"]
        for name in ("api", "projector-1", "projector-2", "snapshots"):
            env = services[name]["environment"]
            assert env["LEDGER_REDIS_URL"].startswith("rediss://ledger@redis:6379/0?ssl_ca_certs=")
            assert "redis_tls_ca" in {s["source"] for s in services[name]["secrets"]}
        https = services["https"]
        assert [_published(p) for p in https["ports"]] == ["443"]
        assert https["environment"]["LEDGER_PUBLIC_HOST"] == "ledger.example.org"
        assert {s["source"] for s in https["secrets"]} == {"http_tls_cert", "http_tls_key"}
        caddyfile = (DEPLOY / "Caddyfile").read_text(encoding="utf-8")
        assert "reverse_proxy api:8000" in caddyfile
        assert "tls /run/secrets/http_tls_cert /run/secrets/http_tls_key" in caddyfile
        missing_host = _render_files(
            [DEPLOY / "docker-compose.yml", DEPLOY / "docker-compose.tls.yml"],
            {k: v for k, v in os.environ.items() if k != "LEDGER_PUBLIC_HOST"},
        )
        assert missing_host.returncode != 0

    def test_redis_conf_never_evicts_and_persists(self) -> None:
        """The production Redis configuration passes the start-up checks by construction."""
        conf = (DEPLOY / "redis.conf").read_text(encoding="utf-8").splitlines()
        settings = {
            line.split()[0]: " ".join(line.split()[1:])
            for line in conf
            if line.strip() and not line.startswith("#")
        }
        assert settings["maxmemory-policy"] == "noeviction"
        assert settings["maxmemory"] == "2gb"
        assert settings["appendonly"] == "yes"

    def test_redis_starts_with_the_acl_users_and_no_password_argument(self) -> None:
        """Redis runs through redis-acl.sh (ACL users); no password on its command line; the
        services connect as the ledger user (its password from a secret file)."""
        env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "LEDGER_TOKENS": "operator=compose-token"}
        done = _render(DEPLOY / "docker-compose.yml", env)
        assert done.returncode == 0, done.stderr
        services = yaml.safe_load(done.stdout)["services"]
        redis = services["redis"]
        assert redis["entrypoint"][-1].endswith("redis-acl.sh")
        assert PASSWORD not in " ".join(redis["entrypoint"] + redis["command"])
        assert services["api"]["environment"]["LEDGER_REDIS_URL"].startswith("redis://ledger@")


def _host_ip(port: str | dict[str, Any]) -> str:
    """The host address of a rendered port (short form of compose v1, long form of v2)."""
    return port.rsplit(":", 2)[0] if isinstance(port, str) else str(port.get("host_ip", ""))


def _published(port: str | dict[str, Any]) -> str:
    """The published port of a rendered port, either form."""
    return port.split(":")[-2] if isinstance(port, str) else str(port["published"])


def _render_files(paths: list[Path], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``<compose> -f a -f b … config`` with exactly ``env``."""
    command = _compose()
    if command is None:
        missing("no docker compose client installed")
    files = [arg for path in paths for arg in ("-f", str(path))]
    return subprocess.run(
        [*command, *files, "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def _rendered(path: Path, extra: dict[str, str], *more: Path) -> dict[str, Any]:
    """The files as ``config`` renders them with the process environment plus ``extra``."""
    done = _render_files([path, *more], {**os.environ, **extra})
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


def _render(path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``<compose> -f path config`` with exactly ``env``; skips when no client is installed
    (fails under CI)."""
    command = _compose()
    if command is None:
        missing("no docker compose client installed")
    return subprocess.run(
        [*command, "-f", str(path), "config"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


@pytest.fixture(scope="module")
def cluster_config() -> dict[str, Any]:
    """The cluster compose file as ``config`` renders it with its variables set."""
    env = {**os.environ, "REDIS_PASSWORD": PASSWORD, "LEDGER_TOKENS": "operator=compose-token"}
    env.pop("REDIS_CLUSTER_NET", None)
    done = _render(CLUSTER_FILE, env)
    assert done.returncode == 0, done.stderr
    rendered: dict[str, Any] = yaml.safe_load(done.stdout)
    return rendered


def _after(command: list[str], flag: str) -> str:
    """The argument that follows ``flag`` in a command list."""
    return command[command.index(flag) + 1]


class TestClusterCompose:
    """``deploy/docker-compose.cluster.yml``: six cluster nodes, an init job, the ledger."""

    def test_six_cluster_enabled_nodes_with_the_users_from_secret_files(
        self, cluster_config: dict[str, Any]
    ) -> None:
        """Each node runs deploy/redis.conf with cluster-enabled and its own volume, started by
        redis-node-auth.sh (with redis-acl.sh and the cluster's users beside it) with the
        three passwords' files (never a password) in its environment and those secrets
        mounted, on the internal network at a fixed address."""
        services = cluster_config["services"]
        assert sorted(name for name in services if name.startswith("redis-")) == sorted(
            [*CLUSTER_NODES, "redis-cluster-init"]
        )
        data_volumes = set()
        addresses = set()
        for name in CLUSTER_NODES:
            node = services[name]
            assert node["entrypoint"] == ["sh", "/usr/local/etc/redis/redis-node-auth.sh"]
            command = node["command"]
            assert command[:3] == [
                "docker-entrypoint.sh",
                "redis-server",
                "/usr/local/etc/redis/redis.conf",
            ]
            assert _after(command, "--cluster-enabled") == "yes"
            assert _after(command, "--cluster-config-file") == "nodes.conf"
            assert "--requirepass" not in command
            assert "--masterauth" not in command
            assert node["environment"] == {
                "REDIS_PASSWORD_FILE": "/run/secrets/redis_password",
                "REDIS_ADMIN_PASSWORD_FILE": "/run/secrets/redis_admin_password",
                "REDIS_REPLICA_PASSWORD_FILE": "/run/secrets/redis_replica_password",
                "LEDGER_KEY_PREFIX": "ledger",
            }
            assert [s["source"] for s in node["secrets"]] == list(NODE_SECRETS)
            volumes = [str(v) for v in node["volumes"]]
            for mounted in ("redis.conf", "redis-node-auth.sh", "redis-acl.sh"):
                assert any(f"{mounted}:/usr/local/etc/redis/{mounted}" in v for v in volumes)
            template = "cluster-users.acl.in:/usr/local/etc/redis/cluster-users.acl.in"
            assert any(template in v for v in volumes)
            data_volumes |= {v.split(":")[0] for v in volumes if v.endswith(":/data:rw")}
            assert list(node["networks"]) == ["redis"]
            assert "ports" not in node
            addresses.add(node["networks"]["redis"]["ipv4_address"])
        assert len(data_volumes) == 6
        assert len(addresses) == 6
        conf = (DEPLOY / "redis.conf").read_text(encoding="utf-8")
        assert "\nappendonly yes\n" in conf

    def test_init_job_creates_the_cluster_once_all_nodes_are_healthy(
        self, cluster_config: dict[str, Any]
    ) -> None:
        """redis-cli --cluster create over the six node addresses, one replica per master,
        as ledger-admin with the secret file read inside its own shell."""
        init = cluster_config["services"]["redis-cluster-init"]
        script = init["command"][-1]
        assert "redis-cli --user ledger-admin --cluster create" in script
        assert "--cluster-replicas 1 --cluster-yes" in script
        nodes = cluster_config["services"]
        for name in CLUSTER_NODES:
            assert f"{nodes[name]['networks']['redis']['ipv4_address']}:6379" in script
            assert init["depends_on"][name]["condition"] == "service_healthy"
        admin_file = "/run/secrets/redis_admin_password"
        assert init["environment"] == {"REDIS_ADMIN_PASSWORD_FILE": admin_file}
        assert [s["source"] for s in init["secrets"]] == ["redis_admin_password"]
        unescaped = script.replace("$$", "$")  # compose's escape for a literal $
        assert 'REDISCLI_AUTH="$(cat "$REDIS_ADMIN_PASSWORD_FILE")"' in unescaped
        assert init["restart"] == "no"

    def test_ledger_services_run_in_cluster_mode_with_secret_files(
        self, cluster_config: dict[str, Any]
    ) -> None:
        """API and projectors: LEDGER_REDIS_CLUSTER=1, 16 partitions, a node's URL as the user
        ledger without a password, the password and the tokens from secret files, the data
        keys on the keyring volume, after the init job; on the internal network, the API
        alone also on the front one."""
        for name in LEDGER_SERVICES:
            service = cluster_config["services"][name]
            env = service["environment"]
            assert env["LEDGER_REDIS_CLUSTER"] == "1"
            assert env["LEDGER_PARTITIONS"] == "16"
            assert env["LEDGER_REDIS_URL"] == "redis://ledger@redis-1:6379/0"
            assert env["LEDGER_KEY_PREFIX"] == "ledger"
            # the data keys on a volume of their own, the same for every process: a
            # container's own disk would lose them (and with them the sealed text) when it
            # is recreated
            assert env["LEDGER_KEYRING"] == "file:/keyring"
            volumes = [str(v) for v in service["volumes"]]
            assert any(v.startswith("keyring:/keyring") for v in volumes), volumes
            expected = ["redis", "frontend"] if name == "api" else ["redis"]
            assert sorted(service["networks"]) == sorted(expected)
            assert env["LEDGER_REDIS_PASSWORD_FILE"] == "/run/secrets/redis_password"
            assert env["LEDGER_TOKENS_FILE"] == "/run/secrets/ledger_tokens"
            assert "LEDGER_TOKENS" not in env
            assert {s["source"] for s in service["secrets"]} == {"redis_password", "ledger_tokens"}
            condition = service["depends_on"]["redis-cluster-init"]["condition"]
            assert condition == "service_completed_successfully"

    def test_no_secret_on_a_command_line_or_in_the_environment(
        self, cluster_config: dict[str, Any]
    ) -> None:
        """Rendered with REDIS_PASSWORD and LEDGER_TOKENS set in the shell (as the old file
        took them): neither value appears anywhere, nor any password flag or variable; the
        secrets are files."""
        rendered = yaml.safe_dump(cluster_config)
        assert PASSWORD not in rendered
        assert "compose-token" not in rendered
        for leak in ("--requirepass", "--masterauth", "REDIS_PASSWORD:", "REDISCLI_AUTH:"):
            assert leak not in rendered
        assert set(cluster_config["secrets"]) == {*NODE_SECRETS, "ledger_tokens"}
        assert cluster_config["networks"]["redis"]["internal"] is True

    def test_cluster_file_has_no_top_level_name(self) -> None:
        """No ``name:`` key, which the v1 docker-compose refuses to render."""
        source = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))
        assert "name" not in source
        assert "version" not in source


def _local_init_script(ports: list[int]) -> str:
    """The init job's script with the six compose addresses swapped for local nodes."""
    source = yaml.safe_load(CLUSTER_FILE.read_text(encoding="utf-8"))
    script: str = source["services"]["redis-cluster-init"]["command"][-1]
    script = script.replace("$$", "$")  # compose's escape for a literal $
    net = "${REDIS_CLUSTER_NET:-172.29.0}"
    script = script.replace(f"-h {net}.11 ", f"-h 127.0.0.1 -p {ports[0]} ")
    for n, port in enumerate(ports, start=1):
        script = script.replace(f"{net}.1{n}:6379", f"127.0.0.1:{port}")
    assert "REDIS_CLUSTER_NET" not in script
    return script


def _client(port: int, user: str, variable: str) -> redis.Redis:
    password = CLUSTER_SECRETS[variable]
    return redis.Redis(port=port, username=user, password=password, socket_timeout=1)


def _synced(client: redis.Redis) -> bool:
    """A replica whose link to its master is up (it authenticated as ledger-replica)."""
    info = client.info("replication")
    return info.get("role") != "slave" or info.get("master_link_status") == "up"


class TestClusterInitScript:
    """The init job's shell script works on nodes started as the compose file starts them: it
    creates the cluster as ledger-admin, the replicas sync as ledger-replica, the service
    reads the slot map and nothing of the cluster's administration, and a rerun changes
    nothing."""

    async def test_init_script_creates_the_cluster_of_least_privileged_users(
        self, tmp_path: Path
    ) -> None:
        """First run joins six nodes (3 masters + 3 replicas) and every replica's link comes
        up; ``ledger`` may read CLUSTER SLOTS, not CLUSTER NODES or ADDSLOTS; the second run
        only reports the cluster."""
        binary = redis_server_or_skip()
        ports = [free_cluster_port() for _ in range(6)]
        nodes = [cluster_node(binary, tmp_path / f"n{n}", port) for n, port in enumerate(ports)]
        cli_dir = os.path.dirname(find_redis_cli())  # the image has redis-cli on PATH
        env = {k: v for k, v in os.environ.items() if k != "REDISCLI_AUTH"}
        env["REDIS_ADMIN_PASSWORD_FILE"] = cluster_node_env(tmp_path / "init")[
            "REDIS_ADMIN_PASSWORD_FILE"
        ]
        env["PATH"] = f"{cli_dir}{os.pathsep}{env.get('PATH', '')}"
        admins = [_client(port, "ledger-admin", "REDIS_ADMIN_PASSWORD_FILE") for port in ports]
        service = _client(ports[0], "ledger", "REDIS_PASSWORD_FILE")
        try:
            for admin in admins:
                await until(partial(answers, admin), "a node to answer", every=0.05)
            run = ["sh", "-ec", _local_init_script(ports)]
            first = await asyncio.to_thread(
                subprocess.run, run, capture_output=True, text=True, env=env, timeout=60
            )
            assert first.returncode == 0, first.stdout + first.stderr
            assert "All 16384 slots covered" in first.stdout
            for admin in admins:
                await until(partial(_synced, admin), "a replica to sync", within=30)
            assert len(service.execute_command("CLUSTER", "SLOTS")) == 3  # type: ignore[no-untyped-call]
            for refused in (("CLUSTER", "NODES"), ("CLUSTER", "ADDSLOTS", "1")):
                with pytest.raises(redis.exceptions.NoPermissionError):
                    service.execute_command(*refused)  # type: ignore[no-untyped-call]
            second = await asyncio.to_thread(
                subprocess.run, run, capture_output=True, text=True, env=env, timeout=60
            )
            assert second.returncode == 0, second.stdout + second.stderr
            assert "the cluster exists (6 nodes)" in second.stdout
        finally:
            for client in (*admins, service):
                client.close()
            for node in nodes:
                node.kill()
                node.wait(10)
