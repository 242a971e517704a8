"""An upgraded deployment, for the tests of ``ledger prune``: what an earlier release left
(country-stance under the version before the current one, projected by a projector pool,
rebuilt once, with an as-of snapshot) beside the current version's view."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import msgspec
import redis.asyncio as aioredis

from projections import PROJECTIONS, Projection, fold
from services.projector.pool import ProjectorPool
from services.projector.replay import Replay
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.snapshots import SnapshotStore
from tests.support import builders as f
from tests.support.runner import FAST, read_log

__all__ = [
    "CURRENT",
    "EARLIER",
    "earlier_release",
    "everything",
    "groups",
    "of_earlier",
    "project",
    "upgraded",
]

DEADLINE = 30.0
"""Seconds a projection or a rebuild may take."""
CURRENT = PROJECTIONS["country-stance"]
EARLIER = msgspec.structs.replace(CURRENT, version=CURRENT.version - 1)


async def project(client: aioredis.Redis, prefix: Keys | str, projection: Projection) -> None:
    """Fold the log into ``projection``'s view and stop, leaving no lease held."""
    pool = ProjectorPool(client, prefix=prefix, projections=[projection], **FAST)
    async with asyncio.timeout(DEADLINE):
        await pool.run_until_caught_up()
    await pool.stop()


async def earlier_release(
    client: aioredis.Redis, store: RedisEventStore, prefix: Keys | str
) -> None:
    """What the earlier release left: its view (rebuilt once), its group, its snapshot."""
    await store.append(f.mixed(120, random.Random(3)))
    await project(client, prefix, EARLIER)
    async with asyncio.timeout(DEADLINE):
        await Replay(client, EARLIER, prefix=prefix, batch_size=50).run()
    log = await read_log(client, prefix)
    await SnapshotStore(client, prefix).save(
        EARLIER, fold(EARLIER, log), log[-1].position, len(log)
    )


async def upgraded(client: aioredis.Redis, store: RedisEventStore, prefix: Keys | str) -> None:
    """The earlier release's leftovers, and the current version's view caught up."""
    await earlier_release(client, store, prefix)
    await project(client, prefix, CURRENT)


async def everything(client: aioredis.Redis, prefix: Keys | str) -> dict[bytes, Any]:
    """Every key under ``prefix`` with its value: a stream's entries (its consumer groups
    are compared apart), any other key's ``DUMP``."""
    found: dict[bytes, Any] = {}
    async for key in client.scan_iter(match=f"{Keys.of(prefix).prefix}:*"):
        stream = await client.type(key) == b"stream"
        found[key] = await client.xrange(key) if stream else await client.dump(key)
    return found


def of_earlier(key: bytes) -> bool:
    return f"country-stance:v{EARLIER.version}".encode() in key


async def groups(client: aioredis.Redis, prefix: Keys | str) -> set[str]:
    return {g["name"].decode() for g in await client.xinfo_groups(Keys.of(prefix).log)}
