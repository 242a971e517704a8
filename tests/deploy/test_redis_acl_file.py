"""The deployment's Redis users: ``deploy/users.acl.in`` and ``deploy/redis-acl.sh``.

The template holds the same rules :mod:`services.runtime.acl` gives the embedded default;
the start script, run here in front of a local redis-server as compose runs it in front of
the image's entrypoint, writes the ACL file from secret files (hashes only), keeps the feed
users ``ledger feeds add`` saved, and starts Redis with it.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
import redis.asyncio as aioredis
import redis.exceptions

from services.runtime.acl import acl_file, add_feed_user, cluster_acl_file, password_hash
from services.runtime.binaries import find_redis_cli, free_port
from services.store.keys import Keys
from tests.support.cluster import redis_server_or_skip

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
SERVICE, ADMIN = "service-secret-0123456789", "admin-secret-0123456789"
REPLICA = "replica-secret-0123456789"


def _filled(template: str, prefix: str) -> str:
    """A template's rules with the hashes and ``prefix`` filled in, as redis-acl.sh does."""
    lines = (DEPLOY / template).read_text(encoding="utf-8").splitlines()
    filled = "\n".join(line for line in lines if not line.startswith("#")) + "\n"
    for marker, password in (("SERVICE", SERVICE), ("ADMIN", ADMIN), ("REPLICA", REPLICA)):
        filled = filled.replace(f"#@{marker}_HASH@", password_hash(password))
    return filled.replace("@PREFIX@", prefix)


@pytest.mark.parametrize("prefix", ["ledger", "ops-ledger_2"])
def test_the_template_holds_the_rules_the_service_gives_itself(prefix: str) -> None:
    """users.acl.in, hashes and prefix filled in, is what acl_file renders for the prefix."""
    assert _filled("users.acl.in", prefix) == acl_file(prefix, SERVICE, ADMIN)


@pytest.mark.parametrize("prefix", ["ledger", "ops-ledger_2"])
def test_the_cluster_template_holds_the_rules_of_the_cluster_users(prefix: str) -> None:
    """cluster-users.acl.in, filled in, is what cluster_acl_file renders for the prefix."""
    expected = cluster_acl_file(prefix, SERVICE, ADMIN, REPLICA)
    assert _filled("cluster-users.acl.in", prefix) == expected


class Started:
    """redis-server started through deploy/redis-acl.sh in a directory of its own."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        (root / "service").write_text(SERVICE + "\n", encoding="utf-8")
        (root / "admin").write_text(ADMIN + "\n", encoding="utf-8")
        (root / "redis.conf").write_text(
            f'bind 127.0.0.1\nport {self.port}\ndir "{root}"\nsave ""\nappendonly no\n',
            encoding="utf-8",
        )
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = {
            **os.environ,
            "ACL_FILE": str(self.root / "users.acl"),
            "ACL_TEMPLATE": str(DEPLOY / "users.acl.in"),
            "REDIS_PASSWORD_FILE": str(self.root / "service"),
            "REDIS_ADMIN_PASSWORD_FILE": str(self.root / "admin"),
        }
        script, conf = str(DEPLOY / "redis-acl.sh"), str(self.root / "redis.conf")
        self.process = subprocess.Popen(
            ["sh", script, redis_server_or_skip(), conf], env=env, stdout=subprocess.DEVNULL
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with self.client("ledger", SERVICE) as probe:
                    probe.ping()
                    return
            except redis.exceptions.ConnectionError:
                time.sleep(0.05)
        pytest.fail("redis-server did not start through redis-acl.sh")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)

    def client(self, user: str | None, password: str | None) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.port, username=user, password=password)

    def url(self, user: str, password: str) -> str:
        return f"redis://{user}:{password}@127.0.0.1:{self.port}/0"


@pytest.fixture
def started(tmp_path: Path) -> Iterator[Started]:
    """Redis started by the deploy script, stopped after the test."""
    server = Started(tmp_path)
    server.start()
    yield server
    server.stop()


def test_the_script_starts_redis_with_the_users_and_keeps_added_feeds(started: Started) -> None:
    """Default user off; the service is no superuser; a feed added by the admin survives a
    restart; the file holds no password; the healthcheck's redis-cli call answers."""
    with started.client(None, None) as anonymous, pytest.raises(redis.exceptions.RedisError):
        anonymous.set("ledger:x", "1")
    with started.client("ledger", SERVICE) as service:
        service.set("ledger:x", "1")
        with pytest.raises(redis.exceptions.NoPermissionError):
            service.flushall()
    feed_password = "feed-secret-0123456789"

    async def add() -> bool:
        admin = aioredis.Redis.from_url(started.url("ledger-admin", ADMIN))
        try:
            return await add_feed_user(admin, Keys("ledger"), "sohr", feed_password)
        finally:
            await admin.aclose()

    assert asyncio.run(add()) is True  # ACL SAVE wrote it to the file
    started.stop()
    started.start()
    with started.client("feed-sohr", feed_password) as feed:
        assert feed.xadd("ledger:inbox:sohr", {"event": "{}"})
        with pytest.raises(redis.exceptions.NoPermissionError):
            feed.xadd("ledger:inbox:acled", {"event": "{}"})
    text = (started.root / "users.acl").read_text(encoding="utf-8")
    assert SERVICE not in text
    assert ADMIN not in text
    assert feed_password not in text
    health = subprocess.run(
        [find_redis_cli(), "-p", str(started.port), "--user", "ledger", "ping"],
        env={**os.environ, "REDISCLI_AUTH": SERVICE},
        capture_output=True,
        text=True,
        check=False,
    )
    assert health.stdout.strip() == "PONG"


def run_script(root: Path, prefix: str) -> subprocess.CompletedProcess[str]:
    """deploy/redis-acl.sh with ``prefix`` as LEDGER_KEY_PREFIX, running ``true`` for Redis."""
    (root / "service").write_text(SERVICE + "\n", encoding="utf-8")
    env = {
        **os.environ,
        "ACL_FILE": str(root / "users.acl"),
        "ACL_TEMPLATE": str(DEPLOY / "users.acl.in"),
        "REDIS_PASSWORD_FILE": str(root / "service"),
        "LEDGER_KEY_PREFIX": prefix,
    }
    return subprocess.run(
        ["sh", str(DEPLOY / "redis-acl.sh"), "true"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def test_the_script_gives_the_service_the_key_prefix_it_is_told(tmp_path: Path) -> None:
    """LEDGER_KEY_PREFIX replaces the default prefix in the service user's key patterns."""
    done = run_script(tmp_path, "ops-2")
    assert done.returncode == 0, done.stderr
    written = (tmp_path / "users.acl").read_text(encoding="utf-8")
    assert "~ops-2:* resetchannels &ops-2:*" in written
    assert "~ledger:*" not in written


def test_the_script_refuses_a_prefix_that_is_not_a_plain_name(tmp_path: Path) -> None:
    """A prefix that would change the rules (here a wildcard) stops the start, naming it."""
    done = run_script(tmp_path, "*")
    assert done.returncode == 1
    assert "LEDGER_KEY_PREFIX" in done.stderr
    assert not (tmp_path / "users.acl").exists()
