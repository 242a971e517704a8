"""Clients of the Redis the service uses: the timeouts, the one quick reconnect, a cluster.

Every part of the service connects through :func:`connect`, except the inbox's FastStream
broker, which builds its own pool with :func:`renewing_connections`; a Redis error becomes
:class:`~services.store.base.StoreUnavailableError` where the store's callers expect one
(:func:`unavailable`).

**Seed nodes.** ``LEDGER_REDIS_URL`` may name several nodes of a Redis Cluster, comma-separated
(:func:`node_urls`): ``redis://:pw@10.0.0.1:6379,10.0.0.2:6379,10.0.0.3:6379``. A later node
may be a full URL or just ``host:port``, which takes the first one's scheme, credentials and
options. The cluster client asks them in turn for the slot map, so a process started while
any one of them is down (a master killed, its replica promoted) still connects through
another; once connected it follows the cluster's own view of its nodes.
"""

from __future__ import annotations

import math
import time
from typing import Any, ClassVar, Final, cast
from urllib.parse import urlsplit, urlunsplit

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.asyncio.connection import AbstractConnection, Connection, SSLConnection, parse_url
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.store.base import StoreUnavailableError

__all__ = [
    "BULK_SOCKET_TIMEOUT",
    "REDIS_DOWN",
    "SOCKET_TIMEOUT",
    "UNAVAILABLE",
    "connect",
    "describe",
    "learn_slots",
    "node_urls",
    "renewing_connections",
    "unavailable",
]

SOCKET_TIMEOUT = 1.0
"""Seconds a command or a connection attempt may take before the store gives up."""

BULK_SOCKET_TIMEOUT = 60.0
"""Seconds a bulk read may take (a projector loading its whole view in pages): on a big log
a page runs to megabytes and must not fail on the hot path's timeout."""

UNAVAILABLE: Final = (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError)
"""The Redis errors the store answers as :class:`StoreUnavailableError`."""

REDIS_DOWN: Final = (
    rexc.ConnectionError,
    rexc.TimeoutError,
    OSError,
    rexc.RedisClusterUnreachableError,
    rexc.SlotNotCoveredError,
)
"""The errors of a Redis that cannot be reached (on a cluster: no seed answers, or a slot has
no master during a failover): the background workers wait and retry."""


def node_urls(url: str) -> list[str]:
    """The node URLs ``url`` names: one, or several comma-separated (see the module
    docstring); a later ``host:port`` takes the first URL's scheme, credentials and options.

    :class:`ValueError` for an empty list or a node without a port.
    """
    parts = [part.strip() for part in url.split(",") if part.strip()]
    if not parts:
        raise ValueError("no Redis node named")
    first = urlsplit(parts[0])
    credentials, at, _ = first.netloc.rpartition("@")
    found = [parts[0]]
    for part in parts[1:]:
        if "://" in part:
            found.append(part)
            continue
        host, colon, port = part.rpartition(":")
        if not colon or not host or not port.isdigit():
            raise ValueError(f"a further Redis node must be host:port or a URL, not {part!r}")
        netloc = f"{credentials}{at}{part}"
        found.append(urlunsplit((first.scheme, netloc, first.path, first.query, "")))
    return found


def describe(url: str) -> str:
    """The nodes ``url`` names as ``host:port``, comma-separated: no credentials."""
    return ",".join(f"{urlsplit(one).hostname}:{urlsplit(one).port}" for one in node_urls(url))


def _cluster(nodes: list[str], settings: dict[str, Any]) -> RedisCluster:
    """A cluster client seeded with every node of ``nodes`` (options from the first)."""
    options: dict[str, Any] = dict(parse_url(nodes[0]))
    for name in ("host", "port", "db"):
        options.pop(name, None)
    if options.pop("connection_class", None) is SSLConnection:
        options["ssl"] = True
    seeds = []
    for node in nodes:
        found = urlsplit(node)
        seeds.append(ClusterNode(found.hostname or "127.0.0.1", found.port or 6379))
    return RedisCluster(startup_nodes=seeds, **{**options, **settings})


def connect(url: str, *, cluster: bool = False, **options: Any) -> aioredis.Redis:
    """A client for the service: 1 s socket and connect timeouts, one quick reconnect.

    A closed port or a dead server then fails within about a second (and the store answers
    :class:`StoreUnavailableError`) instead of hanging; a connection the server dropped is
    replaced once, without a backoff. Timeouts are not retried. Nothing connects until the
    first command. ``options`` override the defaults (any ``redis.asyncio.Redis`` argument).

    With ``cluster``, ``url`` names one or several nodes of a Redis Cluster (the seeds,
    :func:`node_urls`) and the client is redis-py's cluster client (typed as a plain client:
    the ledger uses only commands both serve), which follows the slots to their masters and
    refreshes them after a failover. Several nodes without ``cluster`` are refused
    (:class:`ValueError`).
    """
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    if not cluster:
        settings["retry"] = Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,))
        settings["health_check_interval"] = 30
    settings.update(options)
    nodes = node_urls(url)
    if cluster:
        return cast("aioredis.Redis", _cluster(nodes, settings))
    if len(nodes) > 1:
        raise ValueError("several Redis nodes are seeds of a cluster: set LEDGER_REDIS_CLUSTER=1")
    return aioredis.Redis.from_url(nodes[0], **settings)


class _RenewedTogether:
    """Mixed into a connection class: a failed read renews every connection of its pool.

    A network fault that leaves connections half-open (a peer gone without a reset, a NAT
    entry expired) silences every connection opened before it at once, not just the one that
    noticed. redis-py drops only the connection whose read failed, so a client would meet the
    others one by one, paying a full reply timeout for each. Here a read that times out or
    finds its connection closed stamps the time on the class (one class per pool, made by
    :func:`renewing_connections`), and every connection opened before that is reconnected when
    the pool next hands it out.
    """

    lost_at: ClassVar[float] = -math.inf
    """When a read last failed on a connection of this class (``time.monotonic``)."""

    _opened_at: float = -math.inf

    async def connect(self) -> None:
        connection = cast("AbstractConnection", self)
        if connection.is_connected and self._opened_at <= type(self).lost_at:
            await connection.disconnect()
        if not connection.is_connected:
            await cast("Any", super()).connect()
            self._opened_at = time.monotonic()

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await cast("Any", super()).read_response(*args, **kwargs)
        except (rexc.TimeoutError, rexc.ConnectionError):
            type(self).lost_at = time.monotonic()
            raise


def renewing_connections(url: str) -> type[Connection]:
    """A connection class for one pool to ``url`` (plain, TLS or a Unix socket, as the URL
    says) whose connections are renewed together after a failed read (:class:`_RenewedTogether`).

    Pass it as ``connection_class`` to the one pool it is made for: the pool's connections
    share the time of the last failure through it. (Typed as a TCP connection, as the pools'
    signatures want; for a ``unix://`` URL it is redis-py's Unix socket connection.)
    """
    base: type[AbstractConnection] = parse_url(url).get("connection_class", Connection)
    made = type(f"Renewing{base.__name__}", (_RenewedTogether, base), {})
    return cast("type[Connection]", made)


def unavailable(exc: rexc.RedisError) -> StoreUnavailableError:
    """The store's error for a Redis error."""
    return StoreUnavailableError(f"redis: {type(exc).__name__}: {exc}")


async def learn_slots(client: aioredis.Redis) -> None:
    """Have a cluster client learn which master serves which slot (nothing on one node)."""
    cluster: Any = client
    if isinstance(cluster, RedisCluster):
        try:
            await cluster.initialize()
        except UNAVAILABLE as exc:
            raise unavailable(exc) from exc
