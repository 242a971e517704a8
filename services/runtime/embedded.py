"""The embedded default: a private redis-server under the data directory.

Without ``LEDGER_REDIS_URL`` the service starts its own Redis (``services.runtime.redis_server``):
data and AOF under ``<data_dir>/redis`` with the configured fsync policy, bound to
127.0.0.1 on a free port, with the users of :mod:`services.runtime.acl` in its ACL file
``<data_dir>/redis/users.acl`` (passwords hashed); the default user is off.

- ``ledger``, the service: its password is generated once into ``<data_dir>/redis.password``
  (mode 0600) and reused on later starts;
- ``ledger-admin``, for ``ledger feeds add``: ``<data_dir>/redis-admin.password`` (0600);
- ``feed-<name>`` for every inbox feed of the settings: passwords generated once into
  ``<data_dir>/redis-feeds`` (0600, a ``feed=password`` line each), for the local feeds to
  write their inbox stream with. Redis keeps the feed users in the ACL file itself
  (``ACL SAVE``, which ``ledger feeds add`` runs); the file is written again at every start with
  the feed users it holds carried over as they are (a password ``ledger feeds add`` gave a
  feed stays its password), and a user added for each configured feed it does not hold yet.

The Redis is stopped after everything that uses it (``SIGTERM`` when the service user may
not ``SHUTDOWN``: the AOF is flushed either way).
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
from services.runtime.acl import ADMIN_USER, FEED_USER_PREFIX, acl_file, acl_line, feed_rules
from services.runtime.acl import feed_user as feed_user_of
from services.runtime.redis_server import RedisProcess
from services.settings import Settings, inbox_feeds_of

log = structlog.get_logger(__name__)

PASSWORD_FILE: Final = "redis.password"  # noqa: S105  # a file name, not a password
REDIS_DIR: Final = "redis"
REDIS_USER: Final = "ledger"
"""The ACL user the service connects to the embedded Redis as."""
ADMIN_PASSWORD_FILE: Final = "redis-admin.password"  # noqa: S105  # a file name
FEEDS_FILE: Final = "redis-feeds"
"""Beside the password: ``feed=password`` of each configured inbox feed's Redis user."""
ACL_FILE: Final = "users.acl"
"""In the Redis data directory: the server's ACL file."""
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


def ensure_password(data_dir: Path, name: str = PASSWORD_FILE) -> str:
    """A password of the embedded Redis: read from ``data_dir/name``, or generated into it
    (mode 0600)."""
    path = data_dir / name
    if path.exists():
        password = read_private(path).strip()
        if password:
            return password
    password = secrets.token_urlsafe(32)
    write_private(path, password + "\n")
    log.info("redis.password_generated", path=str(path))
    return password


def admin_url(data_dir: Path) -> str | None:
    """The administrator's URL of the embedded Redis a ``ledger serve`` on ``data_dir`` runs."""
    url = running_url(data_dir)
    admin = data_dir / ADMIN_PASSWORD_FILE
    if url is None or not admin.exists():
        return None
    port = int(port_path(data_dir).read_text(encoding="utf-8").strip())
    password = read_private(admin).strip()
    return RedisProcess(data_dir=data_dir, port=port, password=password, username=ADMIN_USER).url


def _feed_passwords(path: Path, feeds: tuple[str, ...]) -> dict[str, str]:
    """``feed → password`` of ``feeds`` from ``path``, generating (and writing) the missing."""
    known: dict[str, str] = {}
    if path.exists():
        for line in read_private(path).splitlines():
            feed, sep, password = line.partition("=")
            if sep and password:
                known[feed] = password
    missing = [f for f in feeds if f not in known]
    for feed in missing:
        known[feed] = secrets.token_urlsafe(24)
    if missing:
        write_private(path, "".join(f"{f}={p}\n" for f, p in known.items()))
        log.info("redis.feed_passwords_generated", path=str(path), feeds=missing)
    return known


def write_acl_file(settings: Settings, service_password: str, admin_password: str) -> Path:
    """Write the embedded Redis's ACL file (module docstring); returns its path."""
    path = settings.data_dir / REDIS_DIR / ACL_FILE
    saved = read_private(path).splitlines() if path.exists() else []
    kept = [line for line in saved if line.startswith(f"user {FEED_USER_PREFIX}")]
    have = {line.split()[1] for line in kept}
    feeds = [
        f
        for f in settings.inbox_feeds or inbox_feeds_of(settings.tokens)
        if feed_user_of(f) not in have
    ]
    passwords = _feed_passwords(settings.data_dir / FEEDS_FILE, tuple(feeds))
    lines = [
        *kept,
        *(acl_line(feed_user_of(f), passwords[f], feed_rules(settings.keys, f)) for f in feeds),
    ]
    redactor().add(list(passwords.values()))
    write_private(path, acl_file(settings.key_prefix, service_password, admin_password, lines))
    return path


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
        admin = ensure_password(settings.data_dir, ADMIN_PASSWORD_FILE)
        redactor().add([self._password, admin])
        self._settings, self._admin = settings, admin
        self.process = RedisProcess(
            data_dir=self.data_dir,
            port=port,
            fsync=settings.fsync,
            appendonly=True,
            password=self._password,
            username=REDIS_USER,
            acl_file=settings.data_dir / REDIS_DIR / ACL_FILE,
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
        write_acl_file(self._settings, self._password, self._admin)
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
