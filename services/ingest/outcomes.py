"""What becomes of an inbox entry once handled: acknowledged, rejected, or given up on.

Every handled entry is acknowledged and deleted from its stream (``XACK`` and ``XDEL`` in one
transaction: its raw text must not rest there) after its events were appended
(:meth:`Outcomes.accepted`) or after it was written to ``<prefix>:inbox:rejected``
(:meth:`Outcomes.reject`); an entry whose rejected-write fails stays pending for a reclaim.
Each outcome is counted in the inbox's stats and, when given, the Prometheus counter
``ledger_inbox_entries_total{feed, result}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Problem
from services.ingest.submissions import Rejection
from services.metrics import IngestMetrics
from services.store.keys import Keys

__all__ = ["MAX_DELIVERIES", "InboxStats", "Outcomes"]

MAX_DELIVERIES: Final = 3
"""Deliveries after which an entry that keeps failing the inbox goes to the rejected stream."""

_log = structlog.get_logger("ledger.inbox")
_problems_encoder: Final = msgspec.json.Encoder()


class InboxStats(msgspec.Struct):
    """What this process's inbox did with the entries it handled, counted since start."""

    appended: int = 0
    """Events appended."""
    duplicates: int = 0
    """Events that were in the log already."""
    rejected: int = 0
    """Entries written to the rejected stream."""
    deferred: int = 0
    """Entries whose append or rejected-write failed (counted per failed attempt)."""
    paced: int = 0
    """Times an entry waited for its feed's rate (``LEDGER_FEED_RATE``)."""


class Outcomes:
    """Acknowledges, rejects and counts the entries of one inbox."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        group: str,
        rejected_maxlen: int,
        metrics: IngestMetrics | None,
    ) -> None:
        self.client, self.keys, self.group = client, keys, group
        self.rejected_maxlen = rejected_maxlen
        self.stats = InboxStats()
        self.metrics = metrics

    def _count(self, feed: str | None, result: str, entries: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.inbox.labels(feed or "", result).inc(entries)

    async def accepted(self, stream: str, feed: str, entry_ids: list[bytes]) -> None:
        """The entries' events are in the log: acknowledge and count them."""
        await self.ack(stream, entry_ids)
        self._count(feed, "accepted", len(entry_ids))

    async def reject(
        self,
        stream: str,
        feed: str | None,
        entry_id: bytes,
        fields: Mapping[bytes, bytes],
        rejection: Rejection,
    ) -> None:
        """Write the entry to the rejected stream, then acknowledge it."""
        errors = _problems_encoder.encode(rejection.problems)
        record: dict[str | bytes, str | bytes] = {
            "inbox_id": entry_id,
            "feed": feed or "",
            "kind": rejection.kind,
            "errors": errors,
        }
        for name, value in fields.items():
            record[b"orig." + name] = value
        try:
            await self.client.xadd(
                self.keys.inbox_rejected,
                record,  # type: ignore[arg-type]
                maxlen=self.rejected_maxlen,
                approximate=True,
            )
        except rexc.RedisError as exc:
            self.stats.deferred += 1
            _log.warning("inbox rejected-write failed", inbox_id=entry_id, error=str(exc))
            return
        self.stats.rejected += 1
        self._count(feed, "invalid" if rejection.kind == "invalid" else "rejected")
        _log.info(
            "inbox entry rejected",
            inbox_id=entry_id.decode(),
            feed=feed,
            kind=rejection.kind,
            errors=[f"{p.field}: {p.message}" for p in rejection.problems][:10],
        )
        await self.ack(stream, [entry_id])

    async def give_up_on(
        self,
        stream: str,
        feed: str | None,
        entry_ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        error: Exception,
    ) -> None:
        """Reject the entries of a failed batch that were delivered too often already."""
        problem = Problem("event", f"the inbox failed on it: {type(error).__name__}: {error}")
        for entry_id, fields in zip(entry_ids, entries, strict=True):
            try:
                found = await self.client.xpending_range(stream, self.group, entry_id, entry_id, 1)
            except rexc.RedisError:
                return  # pending still: the next reclaim tries again
            if found and int(found[0]["times_delivered"]) >= MAX_DELIVERIES:
                await self.reject(stream, feed, entry_id, fields, Rejection("failed", [problem]))

    async def ack(self, stream: str, entry_ids: list[bytes]) -> None:
        """Acknowledge the entries and delete them: their raw text must not rest here."""
        try:
            async with self.client.pipeline(transaction=True) as pipe:
                pipe.xack(stream, self.group, *entry_ids)
                pipe.xdel(stream, *entry_ids)
                await pipe.execute()
        except rexc.RedisError as exc:
            # The work is done and idempotent: a reclaim appends duplicates or rejects again.
            _log.warning("inbox ack failed", entries=len(entry_ids), error=str(exc))
