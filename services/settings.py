"""Settings, read once from the environment into one frozen Struct.

| variable | meaning | default |
|---|---|---|
| ``LEDGER_REDIS_URL`` | the Redis (a cluster's nodes: comma-separated); unset: embedded | unset |
| ``LEDGER_HTTP_HOST`` / ``LEDGER_HTTP_PORT`` | where the HTTP API listens | 127.0.0.1 / 8000 |
| ``LEDGER_DATA_DIR`` | embedded Redis data, generated tokens | ``./var`` |
| ``LEDGER_TOKENS`` | ``role[:feed]=token,…`` (roles: see services.protection.auth) | generated |
| ``LEDGER_FSYNC`` | embedded Redis AOF fsync: ``everysec`` or ``always`` | everysec |
| ``LEDGER_KEY_PREFIX`` | prefix of every Redis key the service owns | ``ledger`` |
| ``LEDGER_PARTITIONS`` | log partitions (hash-tagged key groups) | 1 |
| ``LEDGER_REDIS_CLUSTER`` | ``1``: ``LEDGER_REDIS_URL`` names nodes of a Redis Cluster | 0 |
| ``LEDGER_WAIT_REPLICAS`` | strict mode: appends are acknowledged once on this many replicas | 0 |
| ``LEDGER_WAIT_TIMEOUT_MS`` | how long strict mode waits for the replicas (under 1 s) | 500 |
| ``LEDGER_INBOX_FEEDS`` | feeds allowed to submit via the Redis inbox | the feed tokens' feeds |
| ``LEDGER_PROJECTORS`` | run projectors inside ``ledger serve`` (``0`` turns off) | 1 |
| ``LEDGER_CLAIM_IDLE_MS`` | idle time after which a pending entry is reclaimed | 30000 |
| ``LEDGER_SNAPSHOT_EVERY`` | log entries between two as-of snapshots (``0`` turns off) | 20000 |
| ``LEDGER_SNAPSHOT_KEEP`` | as-of snapshots kept per projection | 32 |
| ``LEDGER_SNAPSHOT_CHAIN`` | as-of snapshot deltas between two bases (``0``: bases only) | 8 |
| ``LEDGER_KEYRING`` | data keys: ``file:<dir>``, ``redis`` | ``file:<data dir>/keyring/<prefix>`` |
| ``LEDGER_INBOX_REJECTED_MAXLEN`` | about how many entries the rejected stream keeps | 10000 |
| ``LEDGER_SUPPRESSION_K`` | community lines below it are withheld from readers (1-1000) | 5 |
| ``LEDGER_READ_RATE`` / ``LEDGER_READ_BURST`` | requests/s, burst per reader/analyst | 50 / 100 |
| ``LEDGER_FEED_RATE`` / ``LEDGER_FEED_BURST`` | batches/s and burst per feed token | 20 / 50 |
| ``LEDGER_FEED_EVENTS_PER_HOUR`` | events a feed may publish per clock hour | 10000000 |
| ``LEDGER_LIVE_STREAMS_PER_TOKEN`` | open live (SSE) streams per token | 20 |
| ``LEDGER_REDIS_MAXMEMORY`` | embedded Redis ``maxmemory`` (``512mb``, ``2gb``) | half the RAM |
| ``LEDGER_INGEST_MEMORY_PERCENT`` | ingest answers 507 past this share of ``maxmemory`` | 90 |
| ``LEDGER_REDIS_PASSWORD_FILE`` | a file holding the Redis password, put into the URL | unset |
| ``LEDGER_TOKENS_FILE`` | a file of ``LEDGER_TOKENS`` entries (one a line), instead of it | unset |

A limit of 0 is off; the Struct's own defaults are all off (limits are set from the
environment: :mod:`services.protection.limits`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Final, Literal
from urllib.parse import quote

import msgspec

from services.errors import SettingsError
from services.store.connection import node_urls
from services.store.keys import RESERVED_INBOX_NAMES, Keys
from services.store.rules import OPERATOR_FEED

Role = Literal["feed", "reader", "analyst", "operator", "metrics"]
ROLES: tuple[Role, ...] = ("feed", "reader", "analyst", "operator", "metrics")
_FEED = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class Token(msgspec.Struct, frozen=True):
    """One bearer token and what it may do. ``feed`` is set for role ``feed`` only;
    ``label`` names a token of another role (``analyst:alice=…``)."""

    role: Role
    secret: str
    feed: str | None = None
    label: str | None = None

    @property
    def name(self) -> str:
        """How the token is named in logs and audits (never the secret): ``feed:sohr``,
        ``analyst:alice``, or the bare role of an unnamed token."""
        given = self.feed or self.label
        return f"{self.role}:{given}" if given else self.role

    def __repr__(self) -> str:  # keep secrets out of tracebacks and logs
        return f"Token(role={self.role!r}, name={self.name!r}, secret=<hidden>)"


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the service reads from its environment."""

    redis_url: str | None = None
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    data_dir: Path = Path("var")
    tokens: tuple[Token, ...] = ()
    fsync: Literal["everysec", "always"] = "everysec"
    key_prefix: str = "ledger"
    partitions: int = 1
    cluster: bool = False
    wait_replicas: int = 0
    wait_timeout_ms: int = 500
    inbox_feeds: tuple[str, ...] = ()
    projectors: bool = True
    claim_idle_ms: int = 30_000
    snapshot_every: int = 20_000
    snapshot_keep: int = 32
    snapshot_chain: int = 8
    keyring: str = "redis"
    inbox_rejected_maxlen: int = 10_000
    suppression_k: int = 5
    read_rate: int = 0
    read_burst: int = 0
    feed_rate: int = 0
    feed_burst: int = 0
    feed_events_per_hour: int = 0
    live_streams_per_token: int = 0
    redis_maxmemory: int = 0
    ingest_memory_percent: int = 90

    @property
    def keys(self) -> Keys:
        """The key names of this deployment (prefix, partitions, one node or a cluster)."""
        return Keys(self.key_prefix, self.partitions, self.cluster)

    @property
    def embedded(self) -> bool:
        """Whether the service starts its own Redis."""
        return self.redis_url is None


def parse_tokens(text: str, variable: str = "LEDGER_TOKENS") -> tuple[Token, ...]:
    """Parse ``role[:name]=token,…`` (a feed token's name is its feed; any other token's a
    name for the audit trail); a bad entry names its place, never its secret."""
    tokens: list[Token] = []
    for i, entry in enumerate(filter(None, (e.strip() for e in text.split(",")))):
        who, sep, secret = entry.partition("=")
        role, _, feed = who.strip().partition(":")
        where = f"{variable}: entry {i + 1}"
        if not sep or not secret.strip():
            raise SettingsError(f"{where} must look like role[:feed]=token")
        if role not in ROLES:
            raise SettingsError(f"{where}: role must be one of {', '.join(ROLES)}")
        if role == "feed" and not _FEED.match(feed):
            raise SettingsError(f"{where}: a feed token needs a feed name, as feed:NAME=token")
        if role == "feed" and feed == OPERATOR_FEED:
            raise SettingsError(f"{where}: {OPERATOR_FEED} is reserved for operators' events")
        if role != "feed" and feed and not _FEED.match(feed):
            raise SettingsError(f"{where}: a token's name must be 1-64 chars of a-z0-9_.-")
        if len(secret.strip()) < 16:
            raise SettingsError(f"{where}: a token must be at least 16 characters")
        named = feed or None
        tokens.append(
            Token(
                role=role,
                secret=secret.strip(),
                feed=named if role == "feed" else None,
                label=None if role == "feed" else named,
            )
        )
    secrets = [t.secret for t in tokens]
    if len(set(secrets)) != len(secrets):
        raise SettingsError(f"{variable}: two entries share one token")
    return tuple(tokens)


def feed_name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a feed's name (``None`` when it can)."""
    if not _FEED.match(name):
        return f"{name!r} is not a feed name: 1-64 of a-z 0-9 _ . - starting with a letter or digit"
    if name == OPERATOR_FEED:
        return f"{OPERATOR_FEED} is reserved for operators' events"
    return None


def inbox_feeds_of(tokens: tuple[Token, ...]) -> tuple[str, ...]:
    """The feeds of the feed tokens that may use the inbox (all but reserved stream names)."""
    return tuple(t.feed for t in tokens if t.feed and t.feed not in RESERVED_INBOX_NAMES)


def _int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a whole number, got {raw!r}") from None
    if not low <= value <= high:
        raise SettingsError(f"{name} must be between {low} and {high}, got {value}")
    return value


def _secret(path: str, name: str) -> str:
    """The text of a secret file (a compose or Kubernetes secret), stripped."""
    try:
        text = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise SettingsError(f"LEDGER_{name}_FILE: cannot read {path}: {exc.strerror}") from None
    if not text:
        raise SettingsError(f"LEDGER_{name}_FILE: {path} is empty")
    return text


def _with_password(url: str, password: str) -> str:
    """``url`` with ``password`` put into its (first node's) credentials, unless it has one."""
    scheme, sep, rest = url.partition("://")
    netloc, slash, path = rest.partition("/")
    user, _, hosts = netloc.rpartition("@")
    if ":" in user:
        raise SettingsError("LEDGER_REDIS_URL holds a password already: leave it out of the URL")
    return f"{scheme}{sep}{user}:{quote(password, safe='')}@{hosts}{slash}{path}"


_UNITS: Final = {"": 1, "b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}


def _bytes(env: Mapping[str, str], name: str) -> int:
    raw = (env.get(name) or "").strip().lower()
    if not raw:
        return 0
    match = re.match(r"^(\d{1,15})\s*(b|kb|mb|gb)?$", raw)
    if match is None or int(match[1]) == 0:
        raise SettingsError(f"{name} must be a size such as 512mb or 2gb, got {raw!r}")
    return int(match[1]) * _UNITS[match[2] or ""]


def _choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    value = env.get(name) or default
    if value not in choices:
        raise SettingsError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def _keyring(env: Mapping[str, str], data_dir: Path, prefix: str) -> str:
    value = env.get("LEDGER_KEYRING") or f"file:{data_dir / 'keyring' / prefix}"
    if value != "redis" and not (value.startswith("file:") and len(value) > len("file:")):
        raise SettingsError(f"LEDGER_KEYRING must be redis or file:<dir>, got {value!r}")
    return value


def _nodes(url: str | None) -> list[str]:
    """The nodes ``LEDGER_REDIS_URL`` names (:func:`services.store.connection.node_urls`)."""
    if url is None:
        return []
    try:
        return node_urls(url)
    except ValueError as exc:
        raise SettingsError(f"LEDGER_REDIS_URL: {exc}") from None


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read the settings from ``env`` (default: the process environment).

    Raises :class:`SettingsError` naming the variable at fault.
    """
    env = os.environ if env is None else env
    url = env.get("LEDGER_REDIS_URL") or None
    if env.get("LEDGER_REDIS_PASSWORD_FILE"):
        if url is None:
            raise SettingsError("LEDGER_REDIS_PASSWORD_FILE needs LEDGER_REDIS_URL")
        url = _with_password(url, _secret(env["LEDGER_REDIS_PASSWORD_FILE"], "REDIS_PASSWORD"))
    if url is not None and not re.match(r"^(redis|rediss|unix)://", url.strip()):
        raise SettingsError("LEDGER_REDIS_URL must start with redis://, rediss:// or unix://")
    nodes = _nodes(url)
    data_dir = Path(env.get("LEDGER_DATA_DIR") or "var")
    tokens_file = env.get("LEDGER_TOKENS_FILE")
    tokens = (
        parse_tokens(",".join(_secret(tokens_file, "TOKENS").splitlines()), "LEDGER_TOKENS_FILE")
        if tokens_file and not env.get("LEDGER_TOKENS")
        else parse_tokens(env.get("LEDGER_TOKENS", ""))
    )
    prefix = env.get("LEDGER_KEY_PREFIX") or "ledger"
    if not re.match(r"^[A-Za-z0-9_.:-]{1,64}$", prefix) or "{" in prefix:
        raise SettingsError("LEDGER_KEY_PREFIX must be 1-64 chars of A-Za-z0-9_.:-")
    inbox = tuple(f.strip() for f in env.get("LEDGER_INBOX_FEEDS", "").split(",") if f.strip())
    for feed in inbox:
        if not _FEED.match(feed):
            raise SettingsError(f"LEDGER_INBOX_FEEDS: {feed!r} is not a feed name")
        if feed == OPERATOR_FEED:
            raise SettingsError(f"LEDGER_INBOX_FEEDS: {OPERATOR_FEED} is reserved for operators")
        if feed in RESERVED_INBOX_NAMES:
            raise SettingsError(f"LEDGER_INBOX_FEEDS: {feed!r} names the inbox's own stream")
    projectors = _choice(env, "LEDGER_PROJECTORS", "1", ("0", "1", "true", "false"))
    cluster = _choice(env, "LEDGER_REDIS_CLUSTER", "0", ("0", "1", "true", "false")) in (
        "1",
        "true",
    )
    if cluster and url is None:
        raise SettingsError("LEDGER_REDIS_CLUSTER=1 needs LEDGER_REDIS_URL naming a cluster node")
    if len(nodes) > 1 and not cluster:
        raise SettingsError(
            "LEDGER_REDIS_URL names several nodes, which only a cluster has: "
            "set LEDGER_REDIS_CLUSTER=1, or name one node"
        )
    return Settings(
        redis_url=url,
        http_host=env.get("LEDGER_HTTP_HOST") or "127.0.0.1",
        http_port=_int(env, "LEDGER_HTTP_PORT", 8000, 0, 65535),
        data_dir=data_dir,
        tokens=tokens,
        fsync=_choice(env, "LEDGER_FSYNC", "everysec", ("everysec", "always")),  # type: ignore[arg-type]
        key_prefix=prefix,
        partitions=_int(env, "LEDGER_PARTITIONS", 1, 1, 1024),
        cluster=cluster,
        wait_replicas=_int(env, "LEDGER_WAIT_REPLICAS", 0, 0, 16),
        wait_timeout_ms=_int(env, "LEDGER_WAIT_TIMEOUT_MS", 500, 1, 800),
        inbox_feeds=inbox or inbox_feeds_of(tokens),
        projectors=projectors in ("1", "true"),
        claim_idle_ms=_int(env, "LEDGER_CLAIM_IDLE_MS", 30_000, 100, 86_400_000),
        snapshot_every=_int(env, "LEDGER_SNAPSHOT_EVERY", 20_000, 0, 100_000_000),
        snapshot_keep=_int(env, "LEDGER_SNAPSHOT_KEEP", 32, 1, 10_000),
        snapshot_chain=_int(env, "LEDGER_SNAPSHOT_CHAIN", 8, 0, 1_000),
        keyring=_keyring(env, data_dir, prefix),
        inbox_rejected_maxlen=_int(env, "LEDGER_INBOX_REJECTED_MAXLEN", 10_000, 1, 100_000_000),
        suppression_k=_int(env, "LEDGER_SUPPRESSION_K", 5, 1, 1000),
        read_rate=_int(env, "LEDGER_READ_RATE", 50, 0, 1_000_000),
        read_burst=_int(env, "LEDGER_READ_BURST", 100, 0, 1_000_000),
        feed_rate=_int(env, "LEDGER_FEED_RATE", 20, 0, 1_000_000),
        feed_burst=_int(env, "LEDGER_FEED_BURST", 50, 0, 1_000_000),
        feed_events_per_hour=_int(env, "LEDGER_FEED_EVENTS_PER_HOUR", 10_000_000, 0, 10**12),
        live_streams_per_token=_int(env, "LEDGER_LIVE_STREAMS_PER_TOKEN", 20, 0, 100_000),
        redis_maxmemory=_bytes(env, "LEDGER_REDIS_MAXMEMORY"),
        ingest_memory_percent=_int(env, "LEDGER_INGEST_MEMORY_PERCENT", 90, 1, 100),
    )
