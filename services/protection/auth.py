"""Bearer tokens: who may do what, and the tokens of the embedded default.

Roles (``Settings.tokens``, from ``LEDGER_TOKENS=role[:feed]=token,…``):

- ``feed:<name>`` publishes events whose ``source`` is ``<name>``, and nothing else;
- ``reader`` reads (views); it never publishes, and gets community figures with
  small counts withheld (:mod:`projections.suppression`);
- ``analyst`` reads like a reader but is cleared for exact community figures; every answer
  that carries them to it is audited (:mod:`services.protection.audit`);
- ``operator`` runs the service (metrics, operational endpoints) and corrects what feeds
  published: it publishes as the reserved feed ``ledger-operator`` only, and only events that
  change what exists (:data:`OPERATOR_EVENTS`: a revision, retraction or merge of any
  feed's incident, the retraction of any feed's statement), never a report, a statement, a
  dispute or a redaction (erasure has its own route, which destroys the key too). Every
  event in the log is thus attributable to one feed or to the operators. It sees exact
  community figures, audited like an analyst's.
- ``metrics`` reads ``GET /metrics`` (what Prometheus scrapes with) and nothing else.

:class:`Authenticator` resolves an ``Authorization: Bearer …`` header in constant time: the
presented token is hashed and compared with :func:`hmac.compare_digest` against the hash of
every configured token, always all of them, so neither the position of a match nor its
absence shows in the timing.

:func:`ensure_tokens` gives the embedded default (no ``LEDGER_REDIS_URL``) its tokens when
``LEDGER_TOKENS`` is unset: one per role (feed ``local``) plus one per feed of the reference
scenario (so ``ledger seed reference`` can publish each event with its own feed's token),
generated once with :func:`secrets.token_urlsafe` into ``<data_dir>/tokens`` (mode 0600, the
``LEDGER_TOKENS`` syntax one entry a line) and reused on every later start. With an external
Redis (``LEDGER_REDIS_URL``) tokens must be given: the service refuses to start without them.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import msgspec
import structlog

from services.errors import LedgerError, SettingsError
from services.files import read_private, write_private
from services.settings import Settings, Token, inbox_feeds_of, parse_tokens
from services.store.rules import OPERATOR_FEED

log = structlog.get_logger(__name__)

READ_ROLES: Final = frozenset({"reader", "analyst", "operator"})
"""The roles that may read: the query API and the live streams."""
METRICS_ROLES: Final = frozenset({"metrics", "operator"})
"""The roles that may read ``GET /metrics``."""
EXACT_ROLES: Final = frozenset({"analyst", "operator"})
"""The roles cleared for exact community figures (each such answer is audited)."""
PUBLISH_ROLES: Final = frozenset({"feed", "operator"})
"""The roles that may publish: feeds as themselves, operators as ``ledger-operator``."""
OPERATOR_EVENTS: Final = frozenset(
    {
        "incident.casualties_revised",
        "incident.retracted",
        "incident.merged",
        "statement.retracted",
    }
)
"""The events an operator token publishes (as ``ledger-operator``): corrections of what any
feed published."""

LOCAL_FEED: Final = "local"
"""The feed of the generated feed token on the embedded default."""
TOKENS_FILE: Final = "tokens"


class AuthError(LedgerError):
    """Root of the errors of authentication and authorisation."""


class AuthenticationError(AuthError):
    """Raised when a request carries no bearer token, a malformed one, or an unknown one.

    Answered with 401 and ``WWW-Authenticate: Bearer``. The message never holds the token.
    """


class PermissionDeniedError(AuthError):
    """Raised when a known token asks for something its role may not do.

    A reader or analyst token publishing, a feed token publishing an event of another feed,
    an operator token publishing anything but the operators' corrections (``index`` is then
    the event's place in the batch). Answered with 403.
    """

    def __init__(self, message: str, index: int | None = None) -> None:
        self.index = index
        super().__init__(message)


def _digest(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()


class Authenticator:
    """Resolves bearer tokens to the :class:`~services.settings.Token` they belong to."""

    def __init__(self, tokens: Iterable[Token]) -> None:
        self._tokens: tuple[tuple[bytes, Token], ...] = tuple(
            (_digest(t.secret), t) for t in tokens
        )

    @property
    def tokens(self) -> tuple[Token, ...]:
        """Every token this authenticator knows."""
        return tuple(t for _, t in self._tokens)

    def resolve(self, presented: str | None) -> Token | None:
        """The token whose secret is ``presented``, or ``None``; constant time over all tokens."""
        if not presented:
            return None
        digest = _digest(presented)
        found: Token | None = None
        for known, token in self._tokens:  # no early exit: every token is compared
            if hmac.compare_digest(digest, known):
                found = token
        return found

    def authenticate(self, authorization: str | None) -> Token:
        """The token of an ``Authorization`` header value; :class:`AuthenticationError` if none."""
        if not authorization:
            raise AuthenticationError("an Authorization: Bearer <token> header is required")
        scheme, _, presented = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            raise AuthenticationError("the Authorization header must be Bearer <token>")
        token = self.resolve(presented.strip())
        if token is None:
            raise AuthenticationError("the bearer token is not valid")
        return token


def sees_exact(token: Token) -> bool:
    """Whether ``token`` is cleared for exact community figures."""
    return token.role in EXACT_ROLES


def authorize_publish(token: Token, events: Iterable[tuple[str, str]]) -> None:
    """Check that ``token`` may publish these events, given as (``source``, ``type``) in
    batch order: a feed token its own feed's, an operator token the operators' feed's
    corrections (:data:`OPERATOR_EVENTS`).

    Raises :class:`PermissionDeniedError` naming the first event it may not publish.
    """
    if token.role not in PUBLISH_ROLES:
        raise PermissionDeniedError(f"a {token.role} token may not publish; use a feed token")
    feed = token.feed if token.role == "feed" else OPERATOR_FEED
    for index, (source, kind) in enumerate(events):
        if source != feed:
            raise PermissionDeniedError(
                f"event {index} has source {source!r}; this token publishes for feed {feed!r} only",
                index=index,
            )
        if token.role == "operator" and kind not in OPERATOR_EVENTS:
            raise PermissionDeniedError(
                f"event {index} is {kind}; operators publish only "
                f"{', '.join(sorted(OPERATOR_EVENTS))} (erasure: POST /v1/admin/erase)",
                index=index,
            )


def tokens_path(data_dir: Path) -> Path:
    """Where the embedded default keeps its generated tokens."""
    return data_dir / TOKENS_FILE


def wanted_names(feeds: Iterable[str] = ()) -> list[str]:
    """The token names the embedded default generates: every role, feed ``local`` and ``feeds``."""
    names = [f"feed:{LOCAL_FEED}", "reader", "analyst", "operator", "metrics"]
    names += [f"feed:{f}" for f in feeds if f"feed:{f}" not in names]
    return names


def load_tokens_file(path: Path) -> tuple[Token, ...]:
    """The tokens of a tokens file (one ``role[:feed]=token`` a line)."""
    text = read_private(path)
    return parse_tokens(",".join(text.splitlines()), variable=str(path))


def ensure_tokens(settings: Settings, *, feeds: Iterable[str] = ()) -> Settings:
    """``settings`` with tokens: the given ones, or the embedded default's generated ones.

    ``feeds`` (the wiring passes the reference scenario's) get feed tokens too. Raises
    :class:`SettingsError` when an external Redis is configured without ``LEDGER_TOKENS``.
    """
    if settings.tokens:
        return settings
    if not settings.embedded:
        raise SettingsError(
            "LEDGER_TOKENS must be set when LEDGER_REDIS_URL is set "
            "(role[:feed]=token,…; tokens are only generated for the embedded default)"
        )
    path = tokens_path(settings.data_dir)
    existing = load_tokens_file(path) if path.exists() else ()
    have = {t.name for t in existing}
    wanted = wanted_names(feeds)
    missing = [n for n in wanted if n not in have]
    tokens = list(existing)
    for name in missing:
        role, _, feed = name.partition(":")
        tokens.append(Token(role=role, secret=secrets.token_urlsafe(32), feed=feed or None))  # type: ignore[arg-type]
    if missing:
        write_private(path, "".join(f"{t.name}={t.secret}\n" for t in tokens))
        log.info("tokens.generated", path=str(path), names=missing)
    else:
        log.info("tokens.loaded", path=str(path))
    inbox = settings.inbox_feeds or inbox_feeds_of(tuple(tokens))
    return msgspec.structs.replace(settings, tokens=tuple(tokens), inbox_feeds=inbox)


def feed_tokens(tokens: Iterable[Token]) -> dict[str, str]:
    """Secret per feed name, of the feed tokens among ``tokens``."""
    return {t.feed: t.secret for t in tokens if t.role == "feed" and t.feed}
