"""Flushing a rebuild: each batch of the fold written into the new generation in one step.

A rebuild (:mod:`services.projector.replay`) folds its partition's log in batches; after
each one :class:`Flusher` writes what the batch changed, the new generation's own
checkpoint, the rebuild's progress and the dead letters of the entries the projection could
not apply in one script (:data:`~services.projector.replay_scripts.BUILD_SCRIPT`), which
checks that the rebuild still holds its lock. Entries already in the dead-letter stream (or
dropped from it) are not dead-lettered again: a resumed rebuild folds them once more.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
import structlog

from events import Position
from projections import Projection
from services.projector.commit import dead_letter
from services.projector.replay_records import ReplayRunningError, dead_letter_positions
from services.projector.replay_scripts import BUILD_SCRIPT
from services.store.keys import Keys
from services.store.log import RawEntry
from services.views.fold import FoldRun
from services.views.generations import ViewKeys
from services.views.scripts import doc_change_args

__all__ = ["Flusher"]


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
        page: list[RawEntry],
    ) -> None:
        """Write what ``fold`` changed, the checkpoint ``last`` (expected at ``expected``)
        with its ``ordinal``, the ``record`` fields and the dead letters of the batch
        ``page`` in one script.

        :class:`ReplayRunningError` when the lock was taken over or another writer moved
        the new generation's checkpoint.
        """
        dead = await self._letters(fold, page)
        doc_keys, doc_args = doc_change_args(fold.take(), keys.kinds)
        script_keys = [self.lock_key, keys.meta, keys.dlq, self.record_key]
        args: list[bytes | str | int] = [
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
        result = await self._build(keys=script_keys, args=args)
        if result == 0:
            raise ReplayRunningError(f"the rebuild lock of {self.projection.view} was taken over")
        if result != 1:
            raise ReplayRunningError(f"{keys.meta} moved under the rebuild: another one writes it")

    async def _letters(self, fold: FoldRun, page: list[RawEntry]) -> list[list[bytes | str]]:
        """Dead letters for this batch's failed entries the dead-letter stream does not know
        (``page``: the batch's entries, whose fields the letters keep)."""
        if not fold.failures:
            return []
        if self._known_dead is None:
            self._known_dead = await dead_letter_positions(
                self.client, self.keys, self.projection, partition=self.partition
            )
        letters = []
        fields = dict(page)
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
                    fields[position],
                    deliveries=1,
                    consumer=self.owner,
                )
                letters.append(letter)
                self._known_dead.add(position)
        fold.failures.clear()
        return letters
