"""The embedded default: a private redis-server under the data directory.

Without ``LEDGER_REDIS_URL`` the service starts its own Redis (``services.redis_server``):
data and AOF under ``<data_dir>/redis`` with the configured fsync policy, bound to
127.0.0.1 on a free port, and protected by a password generated once into
``<data_dir>/redis.password`` (mode 0600) and reused on later starts. The Redis is stopped
after everything that uses it (``SHUTDOWN``, so the AOF is flushed).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Final

import structlog

from .auth import read_private, write_private
from .logging import redactor
from .redis_server import RedisProcess
from .settings import Settings

log = structlog.get_logger(__name__)

PASSWORD_FILE: Final = "redis.password"  # noqa: S105  # a file name, not a password
REDIS_DIR: Final = "redis"


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

    def __init__(self, settings: Settings, *, port: int | None = None) -> None:
        self.data_dir = settings.data_dir / REDIS_DIR
        self._password = ensure_password(settings.data_dir)
        redactor().add([self._password])
        self.process = RedisProcess(
            data_dir=self.data_dir,
            port=port,
            fsync=settings.fsync,
            appendonly=True,
            password=self._password,
        )

    @property
    def url(self) -> str:
        """The URL of the running server (with its password)."""
        return self.process.url

    def start(self) -> str:
        """Start the server and wait until it answers; returns its URL."""
        self.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.process.start()
        log.info("redis.embedded_started", port=self.process.port, dir=str(self.data_dir))
        return self.url

    def stop(self) -> None:
        """Shut the server down, flushing its AOF."""
        self.process.stop()
        log.info("redis.embedded_stopped", port=self.process.port)

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
