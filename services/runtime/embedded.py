"""The embedded default: a private redis-server under the data directory.

Without ``LEDGER_REDIS_URL`` the service starts its own Redis (``services.runtime.redis_server``):
data and AOF under ``<data_dir>/redis`` with the configured fsync policy, bound to
127.0.0.1 on a free port, and reachable only as the ACL user ``ledger`` with a password
generated once into ``<data_dir>/redis.password`` (mode 0600) and reused on later starts; the
default user is switched off, so a connection without that user and password is refused.
The Redis is stopped after everything that uses it (``SHUTDOWN``, so the AOF is flushed).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Final

import structlog

from services.files import read_private, write_private
from services.logging import redactor
from services.runtime.redis_server import RedisProcess
from services.settings import Settings

log = structlog.get_logger(__name__)

PASSWORD_FILE: Final = "redis.password"  # noqa: S105  # a file name, not a password
REDIS_DIR: Final = "redis"
REDIS_USER: Final = "ledger"
"""The ACL user the service connects to the embedded Redis as."""
PORT_FILE: Final = "redis.port"
"""Beside the password: the port of the running embedded Redis (removed when it stops)."""


def port_path(data_dir: Path) -> Path:
    """Where the running embedded Redis's port is written (for ``ledger`` operator commands)."""
    return data_dir / PORT_FILE


def running_url(data_dir: Path) -> str | None:
    """The URL of the embedded Redis a ``ledger serve`` on ``data_dir`` runs, if it runs."""
    port_file, password_file = port_path(data_dir), password_path(data_dir)
    if not port_file.exists() or not password_file.exists():
        return None
    port = port_file.read_text(encoding="utf-8").strip()
    password = read_private(password_file).strip()
    if not port.isdigit() or not password:
        return None
    return RedisProcess(
        data_dir=data_dir / REDIS_DIR, port=int(port), password=password, username=REDIS_USER
    ).url


def half_of_memory() -> int:
    """Half of this machine's physical memory in bytes: the embedded Redis's ``maxmemory``
    unless ``LEDGER_REDIS_MAXMEMORY`` says otherwise."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 2


def password_path(data_dir: Path) -> Path:
    """Where the embedded Redis's password is kept."""
    return data_dir / PASSWORD_FILE


def ensure_password(data_dir: Path) -> str:
    """The embedded Redis's password: read from its file, or generated into it (mode 0600)."""
    path = password_path(data_dir)
    if path.exists():
        password = read_private(path).strip()
        if password:
            return password
    password = secrets.token_urlsafe(32)
    write_private(path, password + "\n")
    log.info("redis.password_generated", path=str(path))
    return password


class EmbeddedRedis:
    """The redis-server of the embedded default (see the module docstring)."""

    def __init__(
        self,
        settings: Settings,
        *,
        port: int | None = None,
        preexec: Callable[[], None] | None = None,
    ) -> None:
        self.data_dir = settings.data_dir / REDIS_DIR
        self._port_file = port_path(settings.data_dir)
        self._password = ensure_password(settings.data_dir)
        redactor().add([self._password])
        self.process = RedisProcess(
            data_dir=self.data_dir,
            port=port,
            fsync=settings.fsync,
            appendonly=True,
            password=self._password,
            username=REDIS_USER,
            preexec=preexec,
            maxmemory=settings.redis_maxmemory or half_of_memory(),
        )

    @property
    def url(self) -> str:
        """The URL of the running server (with its password)."""
        return self.process.url

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.process.start()
        self._port_file.write_text(f"{self.process.port}\n", encoding="utf-8")
        log.info("redis.embedded_started", port=self.process.port, dir=str(self.data_dir))
        return self.url

    def stop(self) -> None:
        """Shut the server down, flushing its AOF."""
        self.process.stop()
        self._port_file.unlink(missing_ok=True)
        log.info("redis.embedded_stopped", port=self.process.port)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
