"""Flushing a rebuild: each batch of the fold written into the new generation in one step.

A rebuild (:mod:`services.projector.replay`) folds its partition's log in batches; after
each one :class:`Flusher` writes what the batch changed, the new generation's own
checkpoint, the rebuild's progress and the dead letters of the entries the projection could
not apply in one script (:data:`~services.projector.replay_scripts.BUILD_SCRIPT`), which
checks that the rebuild still holds its lock. Entries already in the dead-letter stream (or
dropped from it) are not dead-lettered again: a resumed rebuild folds them once more.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import structlog

from events import Position
from projections import Projection
from projections.docs import Key
from services.projector.commit import dead_letter
from services.projector.replay_records import ReplayRunningError, dead_letter_positions
from services.projector.replay_scripts import BUILD_SCRIPT, packed_doc_args
from services.store.keys import Keys
from services.views.fold import FoldRun
from services.views.generations import ViewKeys

__all__ = ["CHUNK", "Flusher"]

CHUNK: Final = 5_000
"""Documents written per script at most when a rebuild's batch changed more."""


class Flusher:
    """Flushes one rebuild's batches, partition by partition (:meth:`select`)."""

    def __init__(
        self, client: aioredis.Redis, keys: Keys, projection: Projection, owner: str
    ) -> None:
        self.client = client
        self.keys = keys
        self.projection = projection
        self.owner = owner
        self.log = structlog.get_logger("services.projector.replay")
        self.lock_key = ""
        self.record_key = ""
        self.partition = 0
        self._build = client.register_script(BUILD_SCRIPT)
        self._known_dead: set[str] | None = None

    def select(self, partition: int, lock_key: str, record_key: str, log: Any) -> None:
        """Flush into ``partition``'s new generation from here on, under its lock and record."""
        self.partition, self.lock_key, self.record_key = partition, lock_key, record_key
        self.log = log
        self._known_dead = None

    async def flush(
        self,
        keys: ViewKeys,
        fold: FoldRun,
        expected: Position | None,
        last: Position | None,
        *,
        ordinal: int | None,
        record: list[str],
        failed: Mapping[Position, Mapping[Any, Any]],
    ) -> None:
        """Write what ``fold`` changed, the checkpoint ``last`` (expected at ``expected``)
        with its ``ordinal``, the ``record`` fields and the dead letters of the batch's
        failed entries (``failed``: their stored fields, by position).

        In one script, unless the batch changed more than :data:`CHUNK` documents and the
        rebuild keeps a record (``record``): then the documents go in chunks, each chunk's
        script sent while the next one is encoded, and the last one writes the checkpoint,
        the record and the dead letters. Meanwhile the record says ``flushing``, so a
        rebuild killed half-way through knows its documents may be ahead of its checkpoint
        (it starts that generation again).

        :class:`ReplayRunningError` when the lock was taken over or another writer moved
        the new generation's checkpoint.
        """
        dead = await self._letters(fold, failed)
        changes = fold.take()
        chunks: list[dict[Key, msgspec.Struct | None]] = [changes]
        if record and len(changes) > CHUNK:
            items = list(changes.items())
            chunks = [dict(items[at : at + CHUNK]) for at in range(0, len(items), CHUNK)]
            record = [*record, "flushing", ""]
        sent: asyncio.Future[Any] | None = None
        for chunk in chunks[:-1]:
            doc_keys, doc_args = packed_doc_args(chunk, keys)
            if sent is not None:
                self._check(keys, await sent)
            args: list[bytes | str | int] = [self.owner, expected or "", "", "", 0, 1]
            sent = asyncio.ensure_future(
                self._build(
                    keys=[self.lock_key, keys.meta, keys.dlq, self.record_key, *doc_keys],
                    args=[*args, "flushing", "1", *doc_args],
                )
            )
            await asyncio.sleep(0)  # sent: Redis writes it while the next chunk is encoded
        doc_keys, doc_args = packed_doc_args(chunks[-1], keys)
        if sent is not None:
            self._check(keys, await sent)
        script_keys = [self.lock_key, keys.meta, keys.dlq, self.record_key]
        args = [
            self.owner,
            expected or "",
            last or "",
            "" if ordinal is None else str(ordinal),
            len(dead),
            len(record) // 2,
            *record,
            *doc_args,
        ]
        script_keys += doc_keys
        for letter in dead:
            args += [len(letter) // 2, *letter]
        self._check(keys, await self._build(keys=script_keys, args=args))

    def _check(self, keys: ViewKeys, result: Any) -> None:
        if result == 0:
            raise ReplayRunningError(f"the rebuild lock of {self.projection.view} was taken over")
        if result != 1:
            raise ReplayRunningError(f"{keys.meta} moved under the rebuild: another one writes it")

    async def _letters(
        self, fold: FoldRun, failed: Mapping[Position, Mapping[Any, Any]]
    ) -> list[list[bytes | str]]:
        """Dead letters for this batch's failed entries the dead-letter stream does not know
        (``failed``: their fields, which the letters keep)."""
        if not fold.failures:
            return []
        if self._known_dead is None:
            self._known_dead = await dead_letter_positions(
                self.client, self.keys, self.projection, partition=self.partition
            )
        letters = []
        for position, exc in fold.failures:
            self.log.warning(
                "replay.entry_failed", position=position, error_type=type(exc).__name__
            )
            if position not in self._known_dead:
                letter = dead_letter(
                    self.projection,
                    self.projection.name,
                    position,
                    exc,
                    failed[position],
                    deliveries=1,
                    consumer=self.owner,
                )
                letters.append(letter)
                self._known_dead.add(position)
        fold.failures.clear()
        return letters
