"""Poison entries: an entry ``apply`` refuses (or that does not decode) is undone, redelivered
and, at the limit, dead-lettered, while the worker goes on with later events.

``apply`` may update the state in place, so when it raises (or the entry does not decode)
the worker undoes exactly what that one entry touched (:func:`put_back`): every key the
failed ``apply`` changed goes back to its value after the batch's earlier entries (which the
worker keeps, per key, for the commit anyway) or, for keys the batch had not changed, to the
committed value read back from the view. This costs a lookup of a few keys, never a copy of
the state. The entry is then redelivered to the same worker (``XCLAIM``, which counts a
delivery) and applied again; once ``XPENDING`` counts :data:`MAX_DELIVERIES` deliveries it
goes to the dead-letter stream with its error, the projection's name and its original
fields, in the same commit that moves the checkpoint past it (:func:`apply_entry`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

import msgspec

from projections.docs import Docs, Key
from services.projector.commit import Batch, dead_letter
from services.store.log import LogEntry, decode_entry
from services.views.fold import fold, stop

if TYPE_CHECKING:
    from services.projector.worker import Worker

__all__ = ["MAX_DELIVERIES", "apply_entry", "put_back"]

MAX_DELIVERIES: Final = 3
"""Deliveries after which an entry that cannot be applied goes to the dead-letter stream."""


async def apply_entry(
    worker: Worker,
    docs: Docs[msgspec.Struct],
    batch: Batch,
    entry: LogEntry,
    fields: Mapping[Any, Any],
) -> None:
    """Apply one entry (``fields`` decoded, the own documents it names held:
    :meth:`~services.projector.worker.Worker.recall`); on failure undo it, redeliver it, and
    dead-letter it at the limit."""
    position = entry[0]
    while True:
        stopped = fold(worker.projection.apply, docs, [entry], stop)
        if stopped is None:
            batch.changes.update(docs.take_changes())
            worker.applied += 1
            break
        _, exc = stopped
        await put_back(worker, docs, batch.changes)
        deliveries = await worker.group.deliveries(position, MAX_DELIVERIES)
        if deliveries >= MAX_DELIVERIES:
            batch.dead.append(
                dead_letter(
                    worker.projection,
                    worker.name,
                    position,
                    exc,
                    fields,
                    deliveries=deliveries,
                    consumer=worker.pool.consumer,
                )
            )
            worker.dead_lettered += 1
            worker.log.warning(
                "projector.dead_lettered",
                position=position,
                error_type=type(exc).__name__,
                error=str(exc)[:500],
                deliveries=deliveries,
            )
            break
        worker.log.info(
            "projector.entry_failed",
            position=position,
            error_type=type(exc).__name__,
            deliveries=deliveries,
        )
        again = await worker.group.redeliver(position)
        if again is None:  # deleted from the log meanwhile: nothing left to apply
            break
        fields = again
        entry = decode_entry(position, fields)
        await worker.recall(docs, [entry])
    batch.last = position
    batch.moved += 1
    batch.acks.append(position)


async def put_back(
    worker: Worker,
    docs: Docs[msgspec.Struct],
    changes: Mapping[Key, msgspec.Struct | None] | None = None,
) -> None:
    """Put back every document changed since the last take: to its value in ``changes``
    (the batch's earlier entries) or, where it has none, its committed value."""
    changes = changes or {}
    touched = docs.take_changes()
    committed = await worker.pool.views.documents(
        worker.projection,
        [key for key in touched if key not in changes],
        generation=worker.keys.generation,
        partition=worker.partition,
    )
    for key in touched:
        before = changes[key] if key in changes else committed[key]
        if before is None:
            docs.delete(*key)
        else:
            docs.put(*key, before)
    docs.take_changes()
