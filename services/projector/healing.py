"""A projector worker's unexpected failures: restart, go carefully, dead-letter what keeps failing.

The errors a worker expects (Redis unreachable or refusing, its lease lost, its checkpoint
or generation moved, a rebalance) end its term and it starts another
(:mod:`services.projector.worker`). Any other error (a bug, a document that does not encode,
a stored view that does not decode, a fault a test injects) ends the term the same way
instead of the worker: the reason is logged, the worker shows as ``restarting`` with the
error (``/readyz``, the pool's status), waits (0.1 s doubling to 5 s, like a Redis outage)
and starts a new term, which reloads the view from Redis, so nothing half-applied survives
and nothing committed is lost.

**An entry that keeps failing the worker.** When the failure came while a batch was in hand,
the worker goes *carefully* from then on: one entry per batch and no catch-up, until its
checkpoint passes the last entry of that batch, so a failure points at one entry. When the
worker has failed :data:`~services.projector.worker.MAX_DELIVERIES` times in a row with its
checkpoint unmoved, the entry after the checkpoint is the one that fails it: it goes to the
dead-letter stream with the last error, in a commit that moves the checkpoint (and its
ordinal) past it, and the worker goes on with later entries, as it does with an entry
``apply`` refuses. The count lives in the worker: a process that dies on an entry (killed
for memory, say) is restarted by its supervisor and meets the entry afresh.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from events import Position
from services.projector.commit import Batch, dead_letter
from services.store.positions import above

if TYPE_CHECKING:
    from services.projector.worker import Worker

__all__ = ["FAILURES_BEFORE_DEAD_LETTER", "Healing"]

FAILURES_BEFORE_DEAD_LETTER: Final = 3
"""Failures of a careful worker at one checkpoint after which the next entry is dead-lettered
(the same count as the deliveries after which ``apply``'s refusals are)."""


class Healing:
    """What one worker remembers of its unexpected failures (see the module docstring)."""

    def __init__(self) -> None:
        self.failures = 0
        """Failures in a row at the checkpoint :attr:`at` (0: the worker is healthy)."""
        self.at: Position | None = None
        self.until: Position | None = None
        """The worker goes carefully until its checkpoint passes this position."""
        self.error: BaseException | None = None
        """The last unexpected error (kept after recovery, for the status)."""
        self.restarts = 0
        """Terms ended by an unexpected error since the worker started."""

    @property
    def degraded(self) -> bool:
        """Whether the worker failed and has not made progress since."""
        return self.failures > 0

    def failed(
        self, error: BaseException, checkpoint: Position | None, in_flight: Position | None
    ) -> None:
        """Record an unexpected error at ``checkpoint``, with the last entry of the batch in
        hand (``in_flight``; ``None``: none was)."""
        if self.failures and checkpoint == self.at:
            self.failures += 1
        else:
            self.at, self.failures = checkpoint, 1
        if in_flight is not None and (self.until is None or above(in_flight, self.until)):
            self.until = in_flight
        self.error = error
        self.restarts += 1

    def careful(self, checkpoint: Position | None) -> bool:
        """Whether the worker at ``checkpoint`` takes one entry at a time."""
        if self.until is not None and not above(self.until, checkpoint):
            self.until = None
        return self.until is not None

    def recovered(self) -> None:
        """The worker made progress (a commit, or nothing left to read): healthy again."""
        self.failures = 0

    def due(self, checkpoint: Position | None) -> bool:
        """Whether the entry after ``checkpoint`` is to be dead-lettered now."""
        return (
            self.careful(checkpoint)
            and self.failures >= FAILURES_BEFORE_DEAD_LETTER
            and checkpoint == self.at
        )

    async def dead_letter_next(self, worker: Worker) -> None:
        """Dead-letter the entry after the worker's checkpoint with the last error."""
        docs = worker.docs
        assert docs is not None  # noqa: S101  # a term has loaded the view
        found = await worker.reader.log.raw(worker.checkpoint, count=1)
        if not found:
            self.failures = 0
            return
        position, fields = found[0]
        error = self.error if isinstance(self.error, Exception) else RuntimeError("unknown")
        batch = Batch(docs.take_changes(), position)
        batch.dead.append(
            dead_letter(
                worker.projection,
                worker.name,
                position,
                error,
                fields,
                deliveries=self.failures,
                consumer=worker.pool.consumer,
            )
        )
        batch.moved = 1
        await worker.commit(batch, position)
        await worker.group.ack([position])
        worker.dead_lettered += 1
        self.failures = 0
        worker.log.warning(
            "projector.dead_lettered",
            position=position,
            error_type=type(error).__name__,
            error=str(error)[:500],
            failures=FAILURES_BEFORE_DEAD_LETTER,
            reason="the entry failed the worker itself",
        )
