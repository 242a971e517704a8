"""Folding log entries into a view's state, with entries that cannot be applied isolated.

:func:`fold` is the one loop that applies decoded log entries (:mod:`services.store.log`)
to a state: the projectors' catch-up, rebuilds, verification, dead-letter retries and as-of
reads all fold through it. An entry that did not decode, or whose ``apply`` raised, is a
*poison* entry; what becomes of it is the caller's to say (``failed``): the catch-up stops
there and leaves it to its classic path, a rebuild isolates it and goes on
(:class:`FoldRun`), an as-of read raises.

``apply`` may update the state in place and then raise. :class:`FoldRun` therefore keeps
every document's last good value (by reference: documents are frozen) and puts back what
the failed ``apply`` touched, so the state is as if the entry had never been applied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from events import Position, Recorded
from projections import Projection, State
from projections.docs import Docs, JournalDocs, Key
from services.store.log import LogEntry

__all__ = ["Failed", "FoldRun", "Stopped", "fold", "stop"]

Failed = Callable[[LogEntry, Exception], bool]
"""Told of a poison entry and its error; ``True`` stops the fold there (it may also raise)."""

Stopped = tuple[LogEntry, Exception]
"""The poison entry a fold stopped at, and its error."""


def fold(
    apply: Callable[[State, Recorded], Any],
    state: State,
    entries: Iterable[LogEntry],
    failed: Failed,
) -> Stopped | None:
    """Apply ``entries`` to ``state`` in order; returns the entry the fold stopped at.

    ``apply`` updates ``state`` in place. At a poison entry ``failed`` is called with it and
    its error (the decoding error, or what ``apply`` raised); ``True`` stops the fold there
    and returns the entry with its error, ``False`` goes on with the next one.
    """
    for entry in entries:
        recorded, error = entry[1], entry[2]
        if recorded is not None:
            try:
                apply(state, recorded)
            except Exception as exc:  # a poison entry: whatever apply raised, isolate it
                error = exc
            else:
                continue
        assert error is not None  # noqa: S101  # an entry is decoded or holds its error
        if failed(entry, error):
            return entry, error
    return None


def stop(entry: LogEntry, error: Exception) -> bool:
    """A :data:`Failed` that stops the fold at the first poison entry."""
    return True


class FoldRun:
    """A fold in memory that isolates entries the projection cannot apply (module docstring).

    :meth:`take` hands out the documents changed since the last call, for a flush;
    ``failures`` lists the entries that could not be applied, with their errors. The state
    is a :class:`~projections.docs.JournalDocs` (a copy of the documents given): each entry
    is one step, undone if it fails, and the changes of all the steps since the last
    :meth:`take` accumulate there, so nothing is tracked or copied per entry beyond what
    ``apply`` puts. Entries of types the projection does not read
    (:attr:`~projections.Projection.reads`) are not handed to ``apply``, which would leave
    the state as it is; one that did not decode is a failure whatever its type.
    """

    def __init__(self, projection: Projection, docs: Docs[msgspec.Struct], *, fresh: bool) -> None:
        self.projection = projection
        self.docs: JournalDocs[msgspec.Struct] = JournalDocs(docs.kinds())
        # a fresh view writes its initial documents with its first flush
        self.pending: dict[Key, msgspec.Struct | None] = (
            {
                (kind, ident): doc
                for kind, by_id in self.docs.kinds().items()
                for ident, doc in by_id.items()
            }
            if fresh
            else {}
        )
        self.failures: list[tuple[Position, Exception]] = []
        self.applied = 0

    def apply_all(self, entries: Iterable[LogEntry]) -> None:
        """Apply decoded entries in order, isolating those that cannot be applied."""
        apply, reads = self.projection.apply, self.projection.reads
        docs = self.docs
        step_done = docs.step_done
        applied = 0
        for position, recorded, decode_error in entries:
            error = decode_error
            if recorded is not None:
                if reads is not None and type(recorded.event) not in reads:
                    continue
                try:
                    apply(docs, recorded)
                except Exception as exc:  # a poison entry: whatever apply raised, isolate it
                    error = exc
                else:
                    step_done()
                    applied += 1
                    continue
            assert error is not None  # noqa: S101  # an entry is decoded or holds its error
            docs.undo()
            self.failures.append((position, error))
        self.applied += applied

    def take(self) -> dict[Key, msgspec.Struct | None]:
        """The documents changed since the last call (``None``: deleted)."""
        pending, self.pending = self.pending, {}
        pending.update(self.docs.take_changes())
        return pending
