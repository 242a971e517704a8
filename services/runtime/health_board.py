"""The health board: every process's degraded parts in one Redis hash, for every ``/readyz``.

In the deployed shape (``ledger run``, the compose file) the projectors and the snapshot
writer run in processes without an HTTP port, so the API's ``/readyz`` could not tell that
one of them keeps failing. Each process therefore posts its degraded parts
(:mod:`services.health`) to the hash ``<prefix>:health`` every :data:`POST_EVERY` seconds
(:class:`HealthPoster`): one field per part, ``<process>/<part>``, holding the part's state,
last error, restarts and when it was posted; a part that recovered is removed, and a process
that stops removes its own. A process killed while a part of it was degraded leaves its
field behind, so a reader takes only fields posted within :data:`FRESH_FOR` seconds
(:func:`read_board`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from typing import Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from services.health import HealthOf, PartHealth, degraded_of
from services.resp import text
from services.store.connection import REDIS_DOWN
from services.store.keys import Keys

__all__ = ["FRESH_FOR", "POST_EVERY", "HealthPoster", "Posted", "read_board"]

POST_EVERY: Final = 2.0
"""Seconds between two posts of a process's degraded parts."""
FRESH_FOR: Final = 15.0
"""Seconds a posted part counts as current (a process posting no more has stopped or died)."""

log = structlog.get_logger(__name__)


class Posted(msgspec.Struct, frozen=True, kw_only=True):
    """One degraded part as the board holds it."""

    health: PartHealth
    at: float
    """When it was posted (Unix seconds)."""


_encoder: Final = msgspec.json.Encoder()
_decoder: Final = msgspec.json.Decoder(Posted)


class HealthPoster:
    """Posts one process's degraded parts to the board (a component: ``start``/``stop``)."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        process: str,
        reporters: Sequence[HealthOf],
        *,
        every: float = POST_EVERY,
    ) -> None:
        self.client = client
        self.key = keys.health
        self.process = process
        self.reporters = list(reporters)
        self.every = every
        self._posted: set[str] = set()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def post_once(self) -> None:
        """Post the degraded parts now and remove those of this process that recovered."""
        now = time.time()
        fields = {
            f"{self.process}/{name}": _encoder.encode(Posted(health=health, at=now))
            for name, health in degraded_of(self.reporters).items()
        }
        gone = self._posted - set(fields)
        if fields:
            await self.client.hset(self.key, mapping=fields)  # type: ignore[arg-type]
        if gone:
            await self.client.hdel(self.key, *gone)
        self._posted = set(fields)

    async def _run(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):  # posted next time
                await self.post_once()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.every)

    async def start(self) -> None:
        """Start posting in the background."""
        if self._task is None:
            self._stop.clear()
            self._task = asyncio.create_task(self._run(), name="health-poster")

    async def stop(self) -> None:
        """Stop posting and remove this process's fields."""
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
        with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):
            if self._posted:
                await self.client.hdel(self.key, *self._posted)
        self._posted = set()


async def read_board(
    client: aioredis.Redis, keys: Keys, *, fresh_for: float = FRESH_FOR
) -> dict[str, PartHealth]:
    """Every degraded part posted within ``fresh_for`` seconds, by ``<process>/<part>``."""
    found: dict[str, PartHealth] = {}
    oldest = time.time() - fresh_for
    for name, raw in (await client.hgetall(keys.health)).items():
        try:
            posted = _decoder.decode(raw)
        except msgspec.DecodeError:
            log.warning("health.unreadable", field=text(name))
            continue
        if posted.at >= oldest:
            found[text(name)] = posted.health
    return found
