"""Tokens: parsing, the constant-time resolver, publishing rights, the generated tokens file."""

from __future__ import annotations

import hmac
import stat
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from services.errors import SettingsError
from services.protection.auth import (
    AuthenticationError,
    Authenticator,
    PermissionDeniedError,
    authorize_publish,
    ensure_tokens,
    load_tokens_file,
    tokens_path,
)
from services.settings import Settings, Token, parse_tokens
from services.store.rules import OPERATOR_FEED

SOHR = "feed-sohr-secret-0123456789abcdef"
READER = "reader-secret-0123456789abcdefgh"
OPERATOR = "operator-secret-0123456789abcdef"
TOKENS = (
    Token(role="feed", secret=SOHR, feed="sohr"),
    Token(role="reader", secret=READER),
    Token(role="operator", secret=OPERATOR),
)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


class TestParseTokens:
    def test_entries_become_tokens_with_roles_and_feeds(self) -> None:
        """``role[:feed]=token`` entries are parsed in order."""
        tokens = parse_tokens(f"feed:sohr={SOHR}, reader={READER},operator={OPERATOR}")
        assert [(t.role, t.feed, t.secret) for t in tokens] == [
            ("feed", "sohr", SOHR),
            ("reader", None, READER),
            ("operator", None, OPERATOR),
        ]

    @pytest.mark.parametrize(
        ("text", "fragment"),
        [
            pytest.param(f"admin={SOHR}", "role must be one of", id="unknown-role"),
            pytest.param(f"feed={SOHR}", "needs a feed name", id="feed-without-name"),
            pytest.param(f"feed:SOHR={SOHR}", "needs a feed name", id="bad-feed-name"),
            pytest.param(f"reader:Bad Name={SOHR}", "a token's name", id="reader-bad-name"),
            pytest.param("reader=short-secret", "at least 16", id="short"),
            pytest.param("reader", "role[:feed]=token", id="no-equals"),
            pytest.param("reader=   ", "role[:feed]=token", id="empty-secret"),
        ],
    )
    def test_bad_entry_names_variable_and_place_but_not_secret(
        self, text: str, fragment: str
    ) -> None:
        """Errors say where and what, never echoing the secret."""
        with pytest.raises(SettingsError) as caught:
            parse_tokens(f"operator={OPERATOR},{text}")
        message = str(caught.value)
        assert message.startswith("LEDGER_TOKENS: entry 2")
        assert fragment in message
        assert SOHR not in message
        assert "short-secret" not in message

    def test_shared_secret_is_refused(self) -> None:
        """Two entries may not share one token (roles would be ambiguous)."""
        with pytest.raises(SettingsError, match="share one token"):
            parse_tokens(f"reader={READER},operator={READER}")

    def test_token_repr_hides_the_secret(self) -> None:
        """A token in a traceback or log shows its role and feed only."""
        assert SOHR not in repr(TOKENS[0])
        assert TOKENS[0].name == "feed:sohr"


class TestAuthenticator:
    @pytest.mark.parametrize("token", TOKENS, ids=lambda t: t.name)
    def test_each_secret_resolves_to_its_token(self, token: Token) -> None:
        """Every configured secret finds its own token."""
        assert Authenticator(TOKENS).resolve(token.secret) == token

    @pytest.mark.parametrize("presented", ["", "x" * 32, SOHR[:-1], SOHR + "x", SOHR.upper()])
    def test_other_values_resolve_to_nothing(self, presented: str) -> None:
        """Near misses, prefixes and extensions of a secret do not match."""
        assert Authenticator(TOKENS).resolve(presented) is None

    @pytest.mark.parametrize("presented", [SOHR, OPERATOR, "not-a-known-token-at-all"])
    def test_every_token_is_compared_whatever_matches(
        self, presented: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """No early exit: a match on the first token still compares all of them."""
        calls: list[int] = []
        real = hmac.compare_digest

        def counting(a: bytes, b: bytes) -> bool:
            calls.append(len(a))
            return real(a, b)

        monkeypatch.setattr("services.protection.auth.hmac.compare_digest", counting)
        Authenticator(TOKENS).resolve(presented)
        assert len(calls) == len(TOKENS)
        assert set(calls) == {32}  # fixed-length digests: the length of a secret never shows

    def test_bearer_scheme_is_case_insensitive(self) -> None:
        """``bearer`` and ``Bearer`` both work; surrounding spaces are ignored."""
        assert Authenticator(TOKENS).authenticate(f"  bearer {READER} ").role == "reader"

    @pytest.mark.parametrize("header", [None, "", f"Basic {SOHR}", "Bearer", "Bearer nope-nope"])
    def test_unusable_headers_raise_without_echoing_them(self, header: str | None) -> None:
        """Missing, non-Bearer and unknown credentials raise AuthenticationError."""
        with pytest.raises(AuthenticationError) as caught:
            Authenticator(TOKENS).authenticate(header)
        assert SOHR not in str(caught.value)
        assert "nope-nope" not in str(caught.value)


REPORT = "incident.reported"
RETRACT = "incident.retracted"


class TestAuthorizePublish:
    def test_feed_token_may_publish_its_feed(self) -> None:
        """Events of the token's own feed pass."""
        authorize_publish(TOKENS[0], [("sohr", REPORT), ("sohr", RETRACT)])

    def test_other_feed_is_refused_naming_its_index(self) -> None:
        """The first event of another feed is named."""
        with pytest.raises(PermissionDeniedError) as caught:
            authorize_publish(TOKENS[0], [("sohr", REPORT), ("acled", REPORT), ("x", REPORT)])
        assert caught.value.index == 1

    def test_a_reader_never_publishes(self) -> None:
        """Readers may not publish, not even an empty batch."""
        with pytest.raises(PermissionDeniedError):
            authorize_publish(TOKENS[1], [])

    def test_an_operator_publishes_corrections_as_the_operators_feed(self) -> None:
        """Given an operator token, revisions, retractions and merges as ledger-operator
        pass; as its own feed name, a report, or a redaction they are refused."""
        operator = TOKENS[2]
        corrections = ["incident.casualties_revised", RETRACT, "incident.merged"]
        authorize_publish(operator, [(OPERATOR_FEED, kind) for kind in corrections])
        for refused in [
            ("sohr", RETRACT),
            (OPERATOR_FEED, REPORT),
            (OPERATOR_FEED, "incident.redacted"),
        ]:
            with pytest.raises(PermissionDeniedError) as caught:
                authorize_publish(operator, [(OPERATOR_FEED, RETRACT), refused])
            assert caught.value.index == 1


class TestEnsureTokens:
    def test_given_tokens_are_kept(self, tmp_path: Path) -> None:
        """With LEDGER_TOKENS nothing is generated or written."""
        settings = Settings(data_dir=tmp_path, tokens=TOKENS)
        assert ensure_tokens(settings) is settings
        assert not tokens_path(tmp_path).exists()

    def test_external_redis_without_tokens_refuses_to_start(self, tmp_path: Path) -> None:
        """LEDGER_REDIS_URL without LEDGER_TOKENS is a settings error naming LEDGER_TOKENS."""
        settings = Settings(redis_url="redis://127.0.0.1:6379/0", data_dir=tmp_path)
        with pytest.raises(SettingsError, match="LEDGER_TOKENS"):
            ensure_tokens(settings)

    def test_embedded_default_generates_a_private_tokens_file(self, tmp_path: Path) -> None:
        """One token per role, feed ``local`` and each given feed, in a 0600 file."""
        data_dir = tmp_path / "var"
        settings = ensure_tokens(Settings(data_dir=data_dir), feeds=["sohr", "acled"])
        names = [t.name for t in settings.tokens]
        assert names == [
            "feed:local",
            "reader",
            "analyst",
            "operator",
            "metrics",
            "feed:sohr",
            "feed:acled",
        ]
        assert len({t.secret for t in settings.tokens}) == 7
        assert all(len(t.secret) >= 40 for t in settings.tokens)
        path = tokens_path(data_dir)
        assert mode_of(path) == 0o600
        assert load_tokens_file(path) == settings.tokens
        assert settings.inbox_feeds == ("local", "sohr", "acled")

    def test_next_start_reuses_the_tokens(self, tmp_path: Path) -> None:
        """A second start reads the same tokens back instead of generating new ones."""
        first = ensure_tokens(Settings(data_dir=tmp_path), feeds=["sohr"])
        again = ensure_tokens(Settings(data_dir=tmp_path), feeds=["sohr"])
        assert again.tokens == first.tokens

    def test_new_feed_adds_a_token_and_keeps_the_old_ones(self, tmp_path: Path) -> None:
        """A feed added later gets a token; existing tokens stay valid."""
        first = ensure_tokens(Settings(data_dir=tmp_path), feeds=[])
        later = ensure_tokens(Settings(data_dir=tmp_path), feeds=["sohr"])
        assert later.tokens[: len(first.tokens)] == first.tokens
        assert later.tokens[-1].name == "feed:sohr"
        assert mode_of(tokens_path(tmp_path)) == 0o600

    def test_loose_file_mode_is_tightened(self, tmp_path: Path) -> None:
        """A tokens file readable by others is set back to 0600 when read."""
        ensure_tokens(Settings(data_dir=tmp_path), feeds=[])
        tokens_path(tmp_path).chmod(0o644)
        ensure_tokens(Settings(data_dir=tmp_path), feeds=[])
        assert mode_of(tokens_path(tmp_path)) == 0o600

    def test_logs_name_the_file_never_the_tokens(self, tmp_path: Path) -> None:
        """Generating and loading log the path; no secret appears in any entry."""
        with capture_logs() as entries:
            settings = ensure_tokens(Settings(data_dir=tmp_path), feeds=["sohr"])
            ensure_tokens(Settings(data_dir=tmp_path), feeds=["sohr"])
        assert [e["event"] for e in entries] == ["tokens.generated", "tokens.loaded"]
        assert entries[0]["path"] == str(tokens_path(tmp_path))
        for token in settings.tokens:
            assert token.secret not in repr(entries)
