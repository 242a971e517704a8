"""The deployment files: the compose file renders with its variables set.

Runs ``docker compose config`` when a docker client with the compose plugin is installed (no
engine is needed to render the file); skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


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
        """``docker compose config`` succeeds and names the api, projectors and Redis."""
        command = _compose()
        if command is None:
            pytest.skip("no docker compose client installed")
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
        for service in ("redis:", "api:", "projector-1:", "projector-2:"):
            assert service in done.stdout

    def test_compose_without_the_password_fails(self) -> None:
        """Without REDIS_PASSWORD the file refuses to render (no Redis without a password)."""
        command = _compose()
        if command is None:
            pytest.skip("no docker compose client installed")
        env = {k: v for k, v in os.environ.items() if k not in ("REDIS_PASSWORD", "LEDGER_TOKENS")}
        done = subprocess.run(
            [*command, "-f", str(DEPLOY / "docker-compose.yml"), "config"],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            check=False,
        )
        assert done.returncode != 0

    def test_redis_conf_never_evicts_and_persists(self) -> None:
        """The production Redis configuration passes the start-up checks by construction."""
        conf = (DEPLOY / "redis.conf").read_text(encoding="utf-8").splitlines()
        settings = {
            line.split()[0]: " ".join(line.split()[1:])
            for line in conf
            if line.strip() and not line.startswith("#")
        }
        assert settings["maxmemory-policy"] == "noeviction"
        assert settings["appendonly"] == "yes"
