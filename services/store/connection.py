"""Clients of the Redis the service uses: the timeouts, the one quick reconnect, a cluster.

Every part of the service connects through :func:`connect`; a Redis error becomes
:class:`~services.store.base.StoreUnavailableError` where the store's callers expect one
(:func:`unavailable`).
"""

from __future__ import annotations

from typing import Any, Final, cast

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import RedisCluster
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from services.store.base import StoreUnavailableError

__all__ = [
    "BULK_SOCKET_TIMEOUT",
    "REDIS_DOWN",
    "SOCKET_TIMEOUT",
    "UNAVAILABLE",
    "connect",
    "learn_slots",
    "unavailable",
]

SOCKET_TIMEOUT = 1.0
"""Seconds a command or a connection attempt may take before the store gives up."""

BULK_SOCKET_TIMEOUT = 60.0
"""Seconds a bulk read may take (a projector loading its whole view in pages): on a big log
a page runs to megabytes and must not fail on the hot path's timeout."""

UNAVAILABLE: Final = (rexc.ConnectionError, rexc.TimeoutError, rexc.ResponseError)
"""The Redis errors the store answers as :class:`StoreUnavailableError`."""

REDIS_DOWN: Final = (rexc.ConnectionError, rexc.TimeoutError, OSError)
"""The errors of a Redis that cannot be reached: the background workers wait and retry."""


def connect(url: str, *, cluster: bool = False, **options: Any) -> aioredis.Redis:
    """A client for the service: 1 s socket and connect timeouts, one quick reconnect.

    A closed port or a dead server then fails within about a second (and the store answers
    :class:`StoreUnavailableError`) instead of hanging; a connection the server dropped is
    replaced once, without a backoff. Timeouts are not retried. Nothing connects until the
    first command. ``options`` override the defaults (any ``redis.asyncio.Redis`` argument).

    With ``cluster``, ``url`` names any node of a Redis Cluster and the client is redis-py's
    cluster client (typed as a plain client: the ledger uses only commands both serve),
    which follows the slots to their masters and refreshes them after a failover.
    """
    settings: dict[str, Any] = {
        "socket_timeout": SOCKET_TIMEOUT,
        "socket_connect_timeout": SOCKET_TIMEOUT,
    }
    if not cluster:
        settings["retry"] = Retry(NoBackoff(), 1, supported_errors=(rexc.ConnectionError,))
        settings["health_check_interval"] = 30
    settings.update(options)
    if cluster:
        return cast("aioredis.Redis", RedisCluster.from_url(url, **settings))
    return aioredis.Redis.from_url(url, **settings)


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
