"""Settings from the environment: defaults, parsing, and errors naming the variable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from typer.testing import CliRunner

from services.cli import main
from services.errors import SettingsError
from services.settings import Settings, load_settings, parse_tokens
from services.store.connection import connect, describe, node_urls, renewing_connections

FEED = "feed-sohr-secret-0123456789abcdef"
EVERYWHERE = "0.0.0.0"  # noqa: S104  # a setting under test, nothing binds it


class TestDefaults:
    def test_empty_environment_gives_the_embedded_default(self) -> None:
        """No variables: embedded Redis, loopback on 8000, ./var, no tokens yet, and data
        keys in files under ./var, outside Redis's AOF and RDB; the default limits."""
        settings = load_settings({})
        assert settings == Settings(
            keyring="file:var/keyring/ledger",
            read_rate=50,
            read_burst=100,
            feed_rate=20,
            feed_burst=50,
            feed_events_per_hour=10_000_000,
            live_streams_per_token=20,
        )
        assert settings.embedded
        assert (settings.http_host, settings.http_port) == ("127.0.0.1", 8000)
        assert settings.data_dir == Path("var")

    def test_every_variable_is_read(self) -> None:
        """Each documented variable lands in its field."""
        settings = load_settings(
            {
                "LEDGER_REDIS_URL": "redis://example:6379/1",
                "LEDGER_HTTP_HOST": EVERYWHERE,
                "LEDGER_HTTP_PORT": "9000",
                "LEDGER_DATA_DIR": "/srv/ledger",
                "LEDGER_TOKENS": f"feed:sohr={FEED}",
                "LEDGER_FSYNC": "always",
                "LEDGER_KEY_PREFIX": "prod",
                "LEDGER_PARTITIONS": "4",
                "LEDGER_PROJECTORS": "0",
                "LEDGER_CLAIM_IDLE_MS": "5000",
            }
        )
        assert not settings.embedded
        assert (settings.http_host, settings.http_port) == (EVERYWHERE, 9000)
        assert settings.data_dir == Path("/srv/ledger")
        assert [t.name for t in settings.tokens] == ["feed:sohr"]
        assert (settings.fsync, settings.key_prefix, settings.partitions) == ("always", "prod", 4)
        assert settings.projectors is False
        assert settings.claim_idle_ms == 5000

    def test_inbox_feeds_default_to_the_feed_tokens_feeds(self) -> None:
        """Without LEDGER_INBOX_FEEDS the feeds with tokens may use the inbox."""
        settings = load_settings({"LEDGER_TOKENS": f"feed:sohr={FEED}"})
        assert settings.inbox_feeds == ("sohr",)
        given = load_settings({"LEDGER_TOKENS": f"feed:sohr={FEED}", "LEDGER_INBOX_FEEDS": "a,b"})
        assert given.inbox_feeds == ("a", "b")

    def test_a_feed_token_named_rejected_gets_no_inbox(self) -> None:
        """``<prefix>:inbox:rejected`` is the inbox's own stream: no feed reads from it."""
        tokens = f"feed:sohr={FEED},feed:rejected=feed-rejected-token-0123"
        assert load_settings({"LEDGER_TOKENS": tokens}).inbox_feeds == ("sohr",)

    def test_a_metrics_token_is_a_role_of_its_own(self) -> None:
        """``metrics=…`` parses as the metrics role, naming no feed."""
        [token] = load_settings({"LEDGER_TOKENS": "metrics=metrics-token-0123456789"}).tokens
        assert (token.role, token.feed) == ("metrics", None)


class TestErrors:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("LEDGER_REDIS_URL", "http://localhost:6379"),
            ("LEDGER_REDIS_URL", "redis://a:6379,b:6380"),  # several nodes, no cluster
            ("LEDGER_REDIS_URL", "redis://a:6379,b"),  # a further node without a port
            ("LEDGER_HTTP_PORT", "eighty"),
            ("LEDGER_HTTP_PORT", "70000"),
            ("LEDGER_FSYNC", "sometimes"),
            ("LEDGER_KEY_PREFIX", "{bad}"),
            ("LEDGER_KEY_PREFIX", "has space"),
            ("LEDGER_PARTITIONS", "0"),
            ("LEDGER_INBOX_FEEDS", "Not A Feed"),
            ("LEDGER_PROJECTORS", "maybe"),
            ("LEDGER_CLAIM_IDLE_MS", "5"),
            ("LEDGER_TOKENS", "reader=short"),
            ("LEDGER_TOKENS", "feed:ledger-operator=a-long-enough-token-1"),
            ("LEDGER_INBOX_FEEDS", "ledger-operator"),
            ("LEDGER_INBOX_FEEDS", "rejected"),  # the inbox's own stream
            ("LEDGER_TOKENS", "metric=a-long-enough-token-1"),
        ],
    )
    def test_bad_value_names_its_variable(self, variable: str, value: str) -> None:
        """The error message starts from the variable at fault."""
        with pytest.raises(SettingsError) as caught:
            load_settings({variable: value})
        assert variable in str(caught.value)

    def test_cli_reports_a_settings_error_with_exit_status_2(self) -> None:
        """``ledger`` prints the message on stderr and exits 2, without a traceback."""
        result = CliRunner().invoke(main, ["seed", "reference"], env={"LEDGER_HTTP_PORT": "eighty"})
        assert result.exit_code == 2
        assert "LEDGER_HTTP_PORT" in result.stderr
        assert "Traceback" not in result.output

    def test_cli_without_any_token_to_seed_with_exits_2(self, tmp_path: Path) -> None:
        """Seeding with no token given and no tokens file names LEDGER_SEED_TOKEN."""
        result = CliRunner().invoke(
            main,
            ["seed", "reference"],
            env={"LEDGER_DATA_DIR": str(tmp_path), "LEDGER_SEED_TOKEN": "", "LEDGER_TOKENS": ""},
        )
        assert result.exit_code == 2
        assert "LEDGER_SEED_TOKEN" in result.stderr


class TestSeedNodes:
    """LEDGER_REDIS_URL may name several nodes of a cluster, comma-separated."""

    def test_further_nodes_take_the_first_one_s_scheme_and_credentials(self) -> None:
        """``host:port`` after the first URL becomes a URL with its scheme, user, password."""
        url = "rediss://ledger:s%2Cecret@10.0.0.1:7000/0, 10.0.0.2:7001,redis://10.0.0.3:7002"
        assert node_urls(url) == [
            "rediss://ledger:s%2Cecret@10.0.0.1:7000/0",
            "rediss://ledger:s%2Cecret@10.0.0.2:7001/0",
            "redis://10.0.0.3:7002",
        ]
        assert describe(url) == "10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002"

    def test_a_cluster_setting_takes_several_nodes_and_its_client_is_seeded_with_all(
        self,
    ) -> None:
        """Every node is a startup node of the cluster client (nothing connects yet)."""
        url = "redis://:pw@127.0.0.1:7000,127.0.0.1:7001,127.0.0.1:7002"
        settings = load_settings({"LEDGER_REDIS_URL": url, "LEDGER_REDIS_CLUSTER": "1"})
        assert settings.redis_url == url
        client: Any = connect(url, cluster=True)
        assert [(n.host, n.port) for n in client.startup_nodes] == [
            ("127.0.0.1", 7000),
            ("127.0.0.1", 7001),
            ("127.0.0.1", 7002),
        ]
        assert client.connection_kwargs["password"] == "pw"


class TestRenewingConnections:
    """A pool whose connections are renewed together keeps the URL's kind of connection."""

    @pytest.mark.parametrize(
        ("url", "kind"),
        [
            ("redis://127.0.0.1:6379/0", Connection),
            ("rediss://127.0.0.1:6380/0", SSLConnection),
            ("unix:///run/redis.sock", UnixDomainSocketConnection),
        ],
    )
    def test_the_class_is_the_url_s_own_kind(self, url: str, kind: type[Any]) -> None:
        assert issubclass(renewing_connections(url), kind)

    def test_each_pool_s_class_keeps_its_own_time_of_failure(self) -> None:
        """A failed read renews the connections of its own pool, not another's."""
        one: Any = renewing_connections("redis://127.0.0.1:6379/0")
        other: Any = renewing_connections("redis://127.0.0.1:6379/0")
        one.lost_at = 1.0
        assert other.lost_at != 1.0


class TestNamedTokens:
    """Tokens of every role may carry a name, which audits and logs show."""

    def test_a_name_after_the_role_names_the_token(self) -> None:
        """analyst:alice is named so; an unnamed reader is its role; a feed is its feed."""
        tokens = parse_tokens(
            "analyst:alice=analyst-token-0123456789,reader=reader-token-0123456789ab,"
            "feed:sohr=feed-token-0123456789abcd,operator:ops-1=operator-token-012345678"
        )
        assert [t.name for t in tokens] == [
            "analyst:alice",
            "reader",
            "feed:sohr",
            "operator:ops-1",
        ]
        assert [t.feed for t in tokens] == [None, None, "sohr", None]
        assert "analyst-token" not in repr(tokens[0])

    def test_a_malformed_name_is_refused_naming_the_entry(self) -> None:
        """A name outside a-z0-9_.- is refused, naming the entry, never the secret."""
        with pytest.raises(SettingsError, match="entry 1") as raised:
            parse_tokens("analyst:Alice Smith=analyst-token-0123456789")
        assert "analyst-token" not in str(raised.value)


class TestSecretFiles:
    """Secrets from files (compose secrets), never on a command line or in the URL given."""

    def test_the_redis_password_file_goes_into_the_url(self, tmp_path: Path) -> None:
        """The password is read, quoted and put into the first node's credentials."""
        secret = tmp_path / "redis_password"
        secret.write_text("p@ss:word/1\n")
        settings = load_settings(
            {
                "LEDGER_REDIS_URL": "redis://ledger@redis:6379/0",
                "LEDGER_REDIS_PASSWORD_FILE": str(secret),
            }
        )
        assert settings.redis_url == "redis://ledger:p%40ss%3Aword%2F1@redis:6379/0"
        plain = load_settings(
            {"LEDGER_REDIS_URL": "rediss://redis:6379/0", "LEDGER_REDIS_PASSWORD_FILE": str(secret)}
        )
        assert plain.redis_url == "rediss://:p%40ss%3Aword%2F1@redis:6379/0"

    def test_tokens_come_from_a_file_one_entry_a_line(self, tmp_path: Path) -> None:
        """LEDGER_TOKENS_FILE holds the entries a line each."""
        secret = tmp_path / "tokens"
        secret.write_text(f"feed:sohr={FEED}\nanalyst:alice=analyst-token-0123456789\n")
        settings = load_settings({"LEDGER_TOKENS_FILE": str(secret)})
        assert [t.name for t in settings.tokens] == ["feed:sohr", "analyst:alice"]

    def test_a_missing_or_empty_secret_file_is_named(self, tmp_path: Path) -> None:
        """The variable and the path are named; nothing starts."""
        with pytest.raises(SettingsError, match="LEDGER_TOKENS_FILE"):
            load_settings({"LEDGER_TOKENS_FILE": str(tmp_path / "absent")})
        empty = tmp_path / "empty"
        empty.write_text("\n")
        with pytest.raises(SettingsError, match="empty"):
            load_settings(
                {"LEDGER_REDIS_URL": "redis://r:1", "LEDGER_REDIS_PASSWORD_FILE": str(empty)}
            )
