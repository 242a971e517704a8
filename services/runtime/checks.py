"""Start-up checks of the Redis server the ledger is about to use.

The log is the source of truth, so a Redis that may evict keys is refused outright: an
evicted stream, idempotency hash or entity version is a lost event, a duplicate or a broken
rule, silently. :func:`check_redis` reads ``maxmemory-policy`` with ``CONFIG GET`` (and
falls back to ``INFO memory`` where ``CONFIG`` is disabled or not permitted) and raises
:class:`EvictionPolicyError` unless it is ``noeviction``. It also reads the persistence
settings and logs a loud warning when there is none (no AOF and no RDB save points): a
restart of such a server loses everything. ``ledger serve`` and ``ledger project`` run the
check before they start any work.
"""

from __future__ import annotations

from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from services.errors import LedgerError
from services.resp import text

__all__ = ["EvictionPolicyError", "RedisCheckError", "RedisSetup", "check_redis", "redis_setup"]

log = structlog.get_logger(__name__)

SAFE_POLICY: Final = "noeviction"


class RedisCheckError(LedgerError):
    """Root of the errors of the start-up checks of the Redis server."""


class EvictionPolicyError(RedisCheckError):
    """Raised at start-up when the Redis server may evict keys (``maxmemory-policy``).

    Any policy but ``noeviction`` lets Redis delete keys under memory pressure, and a deleted
    log or index key loses events without an error. Set ``maxmemory-policy noeviction`` in
    the server's configuration (``CONFIG SET maxmemory-policy noeviction`` for a running one).
    """


class RedisSetup(msgspec.Struct, frozen=True, kw_only=True):
    """What the checks read about the server (``None``: the server would not say)."""

    maxmemory_policy: str | None
    maxmemory: int | None
    used_memory: int | None
    appendonly: bool | None
    appendfsync: str | None
    save: str | None
    """The RDB save points (``""``: none)."""
    source: str
    """Where the settings came from: ``config`` or ``info`` (CONFIG unavailable)."""

    @property
    def persistent(self) -> bool | None:
        """Whether writes survive a restart (AOF on, or RDB save points set)."""
        if self.appendonly:
            return True
        if self.save is None:
            return None if self.appendonly is None else bool(self.appendonly)
        return bool(self.save.strip())


def _config(reply: Any) -> dict[str, str]:
    if isinstance(reply, dict):
        return {text(k): text(v) for k, v in reply.items()}
    items = list(reply or ())
    return {text(k): text(v) for k, v in zip(items[::2], items[1::2], strict=True)}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


async def redis_setup(client: aioredis.Redis) -> RedisSetup:
    """Read the eviction policy, memory and persistence settings of the server."""
    memory = await client.info("memory")
    persistence = await client.info("persistence")
    try:
        config: dict[str, str] = {}
        for name in ("maxmemory-policy", "appendonly", "appendfsync", "save"):
            config.update(_config(await client.config_get(name)))
    except rexc.ResponseError:  # CONFIG renamed away, disabled or not permitted
        policy = memory.get("maxmemory_policy")
        aof = persistence.get("aof_enabled")
        return RedisSetup(
            maxmemory_policy=None if policy is None else text(policy),
            maxmemory=_int(memory.get("maxmemory")),
            used_memory=_int(memory.get("used_memory")),
            appendonly=None if aof is None else bool(_int(aof)),
            appendfsync=None,
            save=None,
            source="info",
        )
    return RedisSetup(
        maxmemory_policy=config.get("maxmemory-policy"),
        maxmemory=_int(memory.get("maxmemory")),
        used_memory=_int(memory.get("used_memory")),
        appendonly=config.get("appendonly") == "yes" if "appendonly" in config else None,
        appendfsync=config.get("appendfsync"),
        save=config.get("save"),
        source="config",
    )


async def check_redis(client: aioredis.Redis) -> RedisSetup:
    """Refuse a Redis that may evict keys; warn when it does not persist (module docstring).

    Raises :class:`EvictionPolicyError`; returns what it read.
    """
    setup = await redis_setup(client)
    policy = setup.maxmemory_policy
    if policy is None:
        raise EvictionPolicyError(
            "the Redis server tells neither by CONFIG GET nor by INFO memory whether it may "
            "evict keys; the ledger needs maxmemory-policy noeviction"
        )
    if policy != SAFE_POLICY:
        raise EvictionPolicyError(
            f"the Redis server's maxmemory-policy is {policy!r}: it may evict keys, and an "
            "evicted key loses events. Set `maxmemory-policy noeviction` in its configuration "
            "(or CONFIG SET maxmemory-policy noeviction)"
        )
    persistent = setup.persistent
    if persistent is False:
        log.warning(
            "redis.persistence_off",
            message="the Redis server has no AOF and no RDB save points: a restart loses "
            "every event. Turn on appendonly (see deploy/redis.conf)",
        )
    elif persistent is None:
        log.warning(
            "redis.persistence_unknown",
            message="CONFIG is unavailable and AOF is off: cannot tell whether the server "
            "saves RDB snapshots; make sure it persists",
        )
    return setup
