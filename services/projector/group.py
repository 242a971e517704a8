"""A projection's consumer group on the log, as one projector reads it.

The group ``projector:<name>:v<version>`` is created by us at id ``0`` (so an existing
history is delivered too; FastStream would create it at ``$``). The checkpoint is a single
position, so entries must be applied in log order with no gap: an entry left pending below
a newer applied one would later look "at or below the checkpoint" and be skipped. A worker
therefore reads its own pending entries first (``XREADGROUP`` at id ``0``), then reclaims
entries idle for ``claim_idle_ms`` on dead consumers (``XAUTOCLAIM``), then new ones
(``>``). An entry above the checkpoint still pending on *another* consumer was delivered to
an earlier lease holder (one that crashed, or paused until its lease expired) and precedes
what was just read: the worker takes such entries over at once (``XCLAIM … JUSTID``,
whatever their idle time: their consumer can no longer commit) and re-reads its own pending
entries from ``0`` in log order; entries at or below the checkpoint pending elsewhere are
simply acked (:meth:`ConsumerGroup.take_over`).

**Repair.** The lag the service reports never comes from the group
(:mod:`services.views.freshness`), but an operator reading ``XINFO GROUPS`` or Redis's own
``lag`` should see the truth too, and the group's counters can drift from it: an ``XGROUP
SETID`` without ``ENTRIESREAD``, a crash between a delivery and its commit, an AOF rewrite or
a failover. When a worker's term starts it therefore sets the group from the view's
checkpoint (:meth:`ConsumerGroup.repair`): the last-delivered id to the checkpoint, or to the
highest entry still pending when that is further on (those entries stay delivered; they are
settled from the pending list in order), and entries-read to that id's ordinal. An idle
worker checks the group again (:meth:`ConsumerGroup.settle_counters`): with nothing
pending, its last-delivered id must be the checkpoint and its entries-read the ordinal. After
an AOF reload Redis restores a group's last-delivered id from the deliveries it logged but
not its entries-read count, and a client that reconnected by itself never ended the term.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position
from services.resp import stream_entries, text
from services.store.log import LogReader
from services.store.positions import START, above
from services.views.freshness import group_info

__all__ = ["ConsumerGroup", "Entries", "ensure_group"]

Entries = list[tuple[str, Mapping[Any, Any]]]
"""Entries as a group delivers them: id and fields (empty: no longer in the log)."""


async def ensure_group(client: aioredis.Redis, log_key: str, group: str) -> None:
    """Create ``group`` on ``log_key`` at id ``0`` (and the stream) unless it exists."""
    try:
        await client.xgroup_create(log_key, group, id="0", mkstream=True, entries_read=0)
    except rexc.ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class ConsumerGroup:
    """One projection's group on one log partition, read by the consumer ``consumer``."""

    def __init__(
        self,
        client: aioredis.Redis,
        log_key: str,
        name: str,
        consumer: str,
        *,
        batch_size: int,
        claim_idle_ms: int,
        block_ms: int,
        log: Any = None,
    ) -> None:
        self.client = client
        self.log_key = log_key
        self.name = name
        self.consumer = consumer
        self.batch_size = batch_size
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.log = log or structlog.get_logger(__name__)
        self._own_cursor: str | None = "0"
        self._claim_cursor: str | None = "0-0"

    async def start(self) -> None:
        """Create the group if need be, forget dead consumers, read from the start again."""
        await ensure_group(self.client, self.log_key, self.name)
        await self._forget_idle_consumers()
        self._own_cursor, self._claim_cursor = "0", "0-0"

    async def repair(self, checkpoint: Position | None, ordinal: int) -> None:
        """Set the group's last-delivered id and entries-read from the view's ``checkpoint``
        and its ``ordinal`` (see the module docstring)."""
        summary = await self.client.xpending(self.log_key, self.name)
        target, entries_read = checkpoint or START, ordinal
        highest = summary.get("max") if int(summary.get("pending") or 0) else None
        if highest is not None and above(text(highest), checkpoint):
            target = Position(text(highest))
            log = LogReader.at(self.client, self.log_key)
            entries_read += await log.count_after(checkpoint, until=target)
        await self.client.xgroup_setid(self.log_key, self.name, target, entries_read=entries_read)
        self.log.debug("projector.group_repaired", last_delivered=target, entries_read=entries_read)

    async def settle_counters(self, checkpoint: Position | None, ordinal: int) -> bool:
        """Repair the group when, with nothing pending in it, its last-delivered id or its
        entries-read count disagrees with the view's ``checkpoint`` and ``ordinal`` (an AOF
        reload restores the last-delivered id of a delivery but not the count, and a client
        that reconnects by itself never ends the worker's term); whether it had to."""
        info = await group_info(self.client, self.log_key, self.name)
        if info is None or int(info.get("pending") or 0):
            return False
        delivered = text(info.get("last-delivered-id") or START)
        entries_read = info.get("entries-read")
        agreed = entries_read is not None and int(entries_read) == ordinal
        if delivered == (checkpoint or START) and agreed:
            return False
        self.log.info(
            "projector.group_disagreed",
            last_delivered=delivered,
            entries_read=entries_read,
            checkpoint=checkpoint,
            ordinal=ordinal,
        )
        await self.repair(checkpoint, ordinal)
        return True

    async def _forget_idle_consumers(self) -> None:
        """Delete other consumers of the group with nothing pending and idle past the threshold."""
        for info in await self.client.xinfo_consumers(self.log_key, self.name):
            name = text(info["name"])
            idle = int(info.get("inactive", info.get("idle", 0)) or 0)
            if name != self.consumer and not info["pending"] and idle > self.claim_idle_ms:
                await self.client.xgroup_delconsumer(self.log_key, self.name, name)

    async def settled(self) -> Entries:
        """The next of this consumer's own pending entries, then of the reclaimed ones (empty
        once there are none left of either)."""
        if self._own_cursor is not None:
            reply = await self.client.xreadgroup(
                self.name, self.consumer, {self.log_key: self._own_cursor}, count=self.batch_size
            )
            entries = stream_entries(reply)
            if entries:
                self._own_cursor = entries[-1][0]
                return entries
            self._own_cursor = None
        while self._claim_cursor is not None:
            cursor, claimed, *_ = await self.client.xautoclaim(
                self.log_key,
                self.name,
                self.consumer,
                self.claim_idle_ms,
                start_id=self._claim_cursor,
                count=self.batch_size,
            )
            cursor = text(cursor)
            self._claim_cursor = None if cursor == "0-0" else cursor
            found = [(text(i), f or {}) for i, f in claimed if i is not None]
            if found:
                self.log.info("projector.reclaimed", entries=len(found))
                return found
        return []

    async def new(self) -> Entries:
        """New entries, blocking briefly when there are none."""
        reply = await self.client.xreadgroup(
            self.name,
            self.consumer,
            {self.log_key: ">"},
            count=self.batch_size,
            block=self.block_ms,
        )
        return stream_entries(reply)

    async def take_over(self, checkpoint: Position | None) -> bool:
        """Take over entries above ``checkpoint`` pending on other consumers (and ack those
        at or below it); whether any were taken: the own pending entries are then read again
        from ``0``, in log order."""
        summary = await self.client.xpending(self.log_key, self.name)
        others = [
            text(c["name"])
            for c in summary.get("consumers") or []
            if text(c["name"]) != self.consumer and int(c["pending"])
        ]
        taken = 0
        for consumer in others:
            pending = await self.client.xpending_range(
                self.log_key, self.name, "-", "+", self.batch_size, consumer
            )
            ids = [text(p["message_id"]) for p in pending]
            done = [i for i in ids if not above(i, checkpoint)]
            ahead: list[Any] = [i for i in ids if above(i, checkpoint)]
            if done:
                await self.client.xack(self.log_key, self.name, *done)
            if ahead:
                await self.client.xclaim(
                    self.log_key, self.name, self.consumer, 0, ahead, justid=True
                )
                taken += len(ahead)
                self.log.info("projector.took_over", consumer=consumer, entries=len(ahead))
        if taken:
            self._own_cursor = "0"
        return taken > 0

    async def pending(self) -> int:
        """How many entries are pending in the group (on any consumer)."""
        summary = await self.client.xpending(self.log_key, self.name)
        return int(summary["pending"])

    async def info(self) -> Mapping[str, Any] | None:
        """The group's ``XINFO GROUPS`` entry (``None``: no such group)."""
        found = await group_info(self.client, self.log_key, self.name)
        return None if found is None else dict(found)

    async def deliveries(self, position: Position, otherwise: int) -> int:
        """How often the entry at ``position`` was delivered (``otherwise`` when it is not
        pending)."""
        pending = await self.client.xpending_range(self.log_key, self.name, position, position, 1)
        return int(pending[0]["times_delivered"]) if pending else otherwise

    async def redeliver(self, position: Position) -> Mapping[Any, Any] | None:
        """Deliver the entry at ``position`` to this consumer again (a delivery counts); its
        fields, or ``None`` when the log no longer holds it."""
        redelivered: list[Any] = await self.client.xclaim(
            self.log_key, self.name, self.consumer, 0, [position]
        )
        again = [(i, f) for i, f in redelivered if i is not None and f]
        return again[0][1] if again else None

    async def ack(self, ids: list[str]) -> None:
        """Acknowledge entries: they are in the view (or never will be)."""
        await self.client.xack(self.log_key, self.name, *ids)
