"""Where the service listens and who may talk to its embedded Redis.

The HTTP API binds 127.0.0.1 unless ``LEDGER_HTTP_HOST`` says otherwise; the embedded Redis
binds 127.0.0.1 and accepts only the ACL user ``ledger`` with its generated password: the
default user is off, so an anonymous connection, or one with the password but no user name,
is refused.
"""

from __future__ import annotations

import stat
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis
import redis.exceptions
from redis.backoff import NoBackoff
from redis.retry import Retry

from services.bootstrap import Service
from services.http.server import bind
from services.protection.auth import tokens_path
from services.runtime.embedded import REDIS_USER, EmbeddedRedis, password_path
from services.settings import Settings, load_settings
from tests.support.service import serve_defaults


class TestHttpBinding:
    """The API listens on loopback unless told otherwise."""

    def test_settings_default_to_loopback(self) -> None:
        """Neither the Struct's default nor an empty environment binds beyond 127.0.0.1."""
        assert Settings().http_host == "127.0.0.1"
        assert load_settings({}).http_host == "127.0.0.1"

    def test_an_explicit_host_is_honoured(self) -> None:
        """``LEDGER_HTTP_HOST`` is how one opts into another address."""
        assert load_settings({"LEDGER_HTTP_HOST": "0.0.0.0"}).http_host == "0.0.0.0"  # noqa: S104

    def test_bind_uses_the_given_host(self) -> None:
        """The socket ``serve`` listens on is bound to exactly the configured host."""
        sock = bind("127.0.0.1", 0)
        try:
            assert sock.getsockname()[0] == "127.0.0.1"
        finally:
            sock.close()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[Service]:
    """``serve`` with default settings (embedded Redis, free port) until the test ends."""
    async with serve_defaults(tmp_path / "var") as (service, _):
        yield service


class TestServeDefaults:
    """A ``serve`` with nothing configured exposes nothing beyond this machine."""

    async def test_http_and_embedded_redis_listen_on_loopback_only(self, served: Service) -> None:
        """The API's address and the embedded Redis's ``bind`` are both 127.0.0.1."""
        assert served.address is not None
        assert served.address[0] == "127.0.0.1"
        assert served.embedded is not None
        with redis.Redis.from_url(served.embedded.url) as client:
            assert client.config_get("bind") == {"bind": "127.0.0.1"}
            assert client.config_get("protected-mode") == {"protected-mode": "yes"}

    async def test_secrets_files_are_private(self, served: Service) -> None:
        """The generated tokens and the Redis password are readable by the owner only."""
        data_dir = served.settings.data_dir
        assert stat.S_IMODE(tokens_path(data_dir).stat().st_mode) == 0o600
        assert stat.S_IMODE(password_path(data_dir).stat().st_mode) == 0o600


def attempt(port: int, **credentials: str | None) -> redis.Redis:
    """A client of ``port`` with ``credentials`` that fails at once (no retries)."""
    return redis.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0), **credentials)  # type: ignore[arg-type]


class TestEmbeddedRedisAccess:
    """Only the service's ACL user gets in."""

    @pytest.fixture
    def embedded(self, tmp_path: Path) -> Iterator[EmbeddedRedis]:
        """A running embedded Redis (stopped after the test)."""
        server = EmbeddedRedis(Settings(data_dir=tmp_path))
        server.start()
        yield server
        server.stop()

    def test_the_service_user_connects_and_may_work(self, embedded: EmbeddedRedis) -> None:
        """The URL names the ``ledger`` user; it can run the stream commands the ledger uses."""
        assert f"//{REDIS_USER}:" in embedded.url
        with redis.Redis.from_url(embedded.url) as client:
            assert client.acl_whoami() == REDIS_USER
            client.xadd("ledger:probe:log", {"k": "v"})  # its own prefix's keys
            assert client.xlen("ledger:probe:log") == 1

    def test_an_unauthenticated_connection_is_refused(self, embedded: EmbeddedRedis) -> None:
        """No user, no password: every command is refused."""
        port = embedded.process.port
        with (
            attempt(port) as anonymous,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            anonymous.ping()

    def test_the_password_without_the_user_is_refused(self, embedded: EmbeddedRedis) -> None:
        """The default user is off: its name with the right password does not get in."""
        port = embedded.process.port
        password = embedded.process.password
        for username in (None, "default"):
            with (
                attempt(port, username=username, password=password) as client,
                pytest.raises(redis.exceptions.AuthenticationError),
            ):
                client.ping()

    def test_a_wrong_password_for_the_user_is_refused(self, embedded: EmbeddedRedis) -> None:
        """The right user with a wrong password does not get in."""
        port = embedded.process.port
        with (
            attempt(port, username=REDIS_USER, password="not-the-password") as client,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            client.ping()

    def test_the_password_never_appears_on_the_command_line(self, embedded: EmbeddedRedis) -> None:
        """The server's argv (visible to every local user) holds no password."""
        pid = embedded.process.pid
        assert pid is not None
        argv = Path(f"/proc/{pid}/cmdline").read_bytes()
        assert embedded.process.password is not None
        assert embedded.process.password.encode() not in argv
