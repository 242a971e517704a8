"""Redis's own files rewritten, so that what was deleted is gone from the disk as well.

Deleting a key (a data key ``HDEL``\\ed from the Redis keyring, an inbox submission ``XDEL``\\ed
after it was appended) removes it from memory only: the append-only file still holds the
command that wrote it until the AOF is rewritten, and the last RDB snapshot holds it until the
next one. :class:`RedisFiles` forces both, the way erasure needs
(:mod:`services.protection.erasure`):

1. waits for a rewrite or save already under way to end (it may have copied the key);
2. ``BGREWRITEAOF`` when the server keeps an AOF, and waits until a rewrite that began after
   the deletion has finished (Redis 7 then deletes the old base and incremental files);
3. ``BGSAVE SCHEDULE`` and waits for that save: the RDB file is replaced by one taken after
   the deletion (a stale ``dump.rdb`` from an earlier configuration included).

Redis refuses either command while another save or rewrite runs (one a replica's full sync
started after step 1, say): that one is waited out and the command sent again.

It waits on ``INFO persistence`` (``aof_rewrites``, ``rdb_saves``), so it works on a server
whose files it cannot see. :class:`ServerFiles` does it on a server and the replicas it
reports (``INFO replication``), :class:`ClusterFiles` on every node of a Redis Cluster,
masters and replicas, all at once. What it cannot reach: copies of those files made
before (backups, the files of a server it does not know of). The commands need the
``@admin`` rights of ``BGREWRITEAOF``/``BGSAVE`` (and ``INFO``) for the service's Redis user.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import redis.asyncio as aioredis
import redis.exceptions as rexc
from redis.asyncio.cluster import ClusterNode, RedisCluster

from services.store.base import StoreError

__all__ = [
    "COMPACTION_TIMEOUT",
    "ClusterFiles",
    "CompactionError",
    "Node",
    "RedisFiles",
    "ServerFiles",
]

COMPACTION_TIMEOUT: Final = 300.0
"""Seconds to wait for the rewrite and the save together."""
_POLL: Final = 0.05


class CompactionError(StoreError):
    """Raised when Redis's files could not be rewritten: a command was refused (no rights,
    a failed fork, a full disk) or the rewrite and save did not end within the timeout.
    What was deleted is gone from memory but may still be in the AOF or the RDB file; running
    the erasure again retries."""


class Node(Protocol):
    """One server to send commands to: a client of it, or a cluster's node."""

    async def execute_command(self, *args: Any, **options: Any) -> Any:
        """Send one command; its parsed reply."""
        ...


class RedisFiles:
    """Rewrites the AOF and the RDB file of one Redis server (see the module docstring)."""

    def __init__(self, client: Node, *, timeout: float = COMPACTION_TIMEOUT) -> None:
        self.client = client
        self.timeout = timeout

    async def _info(self) -> dict[str, Any]:
        try:
            info = await self.client.execute_command("INFO", "persistence")
        except rexc.RedisError as exc:
            raise CompactionError(f"INFO persistence: {exc}") from exc
        if not isinstance(info, dict):
            raise CompactionError(f"INFO persistence answered {type(info).__name__}")
        return info

    async def _until(self, done: Callable[[dict[str, Any]], bool], what: str, end: float) -> None:
        while True:
            info = await self._info()
            if done(info):
                return
            if time.monotonic() > end:
                raise CompactionError(f"{what} did not end within {self.timeout:g} s")
            await asyncio.sleep(_POLL)

    @staticmethod
    def _idle(info: dict[str, Any]) -> bool:
        return not (
            int(info.get("aof_rewrite_in_progress", 0))
            or int(info.get("aof_rewrite_scheduled", 0))
            or int(info.get("rdb_bgsave_in_progress", 0))
        )

    async def compact(self) -> None:
        """Rewrite the AOF (when on) and write a fresh RDB, each begun after this call."""
        end = time.monotonic() + self.timeout
        await self._until(self._idle, "a rewrite or save already under way", end)
        if int((await self._info()).get("aof_enabled", 0)):
            rewrites = await self._begin("aof_rewrites", end, "BGREWRITEAOF")
            await self._until(
                lambda i: int(i.get("aof_rewrites", 0)) > rewrites and self._idle(i),
                "the AOF rewrite",
                end,
            )
            if (await self._info()).get("aof_last_bgrewrite_status") != "ok":
                raise CompactionError("the AOF rewrite failed (see the Redis log)")
        saves = await self._begin("rdb_saves", end, "BGSAVE", "SCHEDULE")
        await self._until(
            lambda i: int(i.get("rdb_saves", 0)) > saves and self._idle(i), "the RDB save", end
        )
        if (await self._info()).get("rdb_last_bgsave_status") != "ok":
            raise CompactionError("the RDB save failed (see the Redis log)")

    async def _begin(self, counter: str, end: float, *args: str) -> int:
        """Send ``args`` (a rewrite or a save); the ``counter`` of those done just before.

        Redis refuses one while another is under way (``… already in progress``): a save a
        replica's full sync started meanwhile, say. That one is waited out and the command
        sent again, so the files are always rewritten by a command of this call.
        """
        while True:
            done = int((await self._info()).get(counter, 0))
            try:
                await self.client.execute_command(*args)
            except rexc.ResponseError as exc:
                if "in progress" not in str(exc):
                    raise CompactionError(f"{' '.join(args)}: {exc}") from exc
            except rexc.RedisError as exc:
                raise CompactionError(f"{' '.join(args)}: {exc}") from exc
            else:
                return done
            await self._until(self._idle, f"the save or rewrite that {args[0]} met", end)


class ServerFiles:
    """Rewrites the files of one Redis server and of the replicas it reports, all at once."""

    def __init__(self, client: aioredis.Redis, *, timeout: float = COMPACTION_TIMEOUT) -> None:
        self.client = client
        self.timeout = timeout

    async def compact(self) -> None:
        """:meth:`RedisFiles.compact` on the server and each replica it reports."""
        try:
            info = await self.client.execute_command(  # type: ignore[no-untyped-call]
                "INFO", "replication"
            )
        except rexc.RedisError as exc:
            raise CompactionError(f"INFO replication: {exc}") from exc
        replicas = _clients_of(info, self.client.connection_pool.connection_kwargs)
        await _compact_all([self.client, *replicas], replicas, self.timeout)


class ClusterFiles:
    """Rewrites the AOF and RDB files of every node of a Redis Cluster, all at once: the
    masters the client knows, and the replicas each master reports (``INFO replication``),
    reached with the same credentials."""

    def __init__(self, client: RedisCluster, *, timeout: float = COMPACTION_TIMEOUT) -> None:
        self.client = client
        self.timeout = timeout

    async def compact(self) -> None:
        """:meth:`RedisFiles.compact` on every master and replica."""
        try:
            await self.client.initialize()
            masters = self.client.get_nodes()
            replicas = [r for node in masters for r in await _replicas(node)]
        except rexc.RedisError as exc:
            raise CompactionError(f"the cluster's nodes: {exc}") from exc
        await _compact_all([*masters, *replicas], replicas, self.timeout)


async def _compact_all(
    nodes: Sequence[Node], opened: Sequence[aioredis.Redis], wait: float
) -> None:
    """:meth:`RedisFiles.compact` on ``nodes`` at once (each waiting up to ``wait`` s); then
    close the clients ``opened``."""
    try:
        await asyncio.gather(*(RedisFiles(n, timeout=wait).compact() for n in nodes))
    finally:
        for client in opened:
            await client.aclose()


_CREDENTIALS: Final = ("username", "password", "socket_timeout", "socket_connect_timeout")


def _clients_of(info: Mapping[str, Any], connection: Mapping[str, Any]) -> list[aioredis.Redis]:
    """Clients of the replicas an ``INFO replication`` reply lists, with the credentials of
    ``connection``."""
    kwargs = {k: v for k, v in connection.items() if k in _CREDENTIALS}
    return [
        aioredis.Redis(host=str(value["ip"]), port=int(value["port"]), **kwargs)
        for name, value in info.items()
        if name.startswith("slave") and isinstance(value, dict) and "ip" in value
    ]


async def _replicas(node: ClusterNode) -> list[aioredis.Redis]:
    """Clients of the replicas a cluster's ``node`` reports."""
    return _clients_of(await node.execute_command("INFO", "replication"), node.connection_kwargs)
