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

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import msgspec

from events import Position, Recorded
from projections import Projection, State
from projections.docs import Docs, Key
from services.store.log import LogEntry, decode_entry

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
    ``failures`` lists the entries that could not be applied, with their errors.
    """

    def __init__(self, projection: Projection, docs: Docs[msgspec.Struct], *, fresh: bool) -> None:
        self.projection = projection
        self.docs = docs
        docs.take_changes()
        self.known: dict[Key, msgspec.Struct] = {
            (kind, ident): doc
            for kind, by_id in docs.kinds().items()
            for ident, doc in by_id.items()
        }
        # a fresh view writes its initial documents with its first flush
        self.pending: dict[Key, msgspec.Struct | None] = dict(self.known) if fresh else {}
        self.failures: list[tuple[Position, Exception]] = []
        self.applied = 0

    def _apply(self, docs: State, recorded: Recorded) -> None:
        self.projection.apply(docs, recorded)
        changes = docs.take_changes()
        for key, doc in changes.items():
            if doc is None:
                self.known.pop(key, None)
            else:
                self.known[key] = doc
        self.pending.update(changes)
        self.applied += 1

    def _isolate(self, entry: LogEntry, error: Exception) -> bool:
        docs = self.docs
        for key in docs.take_changes():
            before = self.known.get(key)
            if before is None:
                docs.delete(*key)
            else:
                docs.put(*key, before)
        docs.take_changes()
        self.failures.append((entry[0], error))
        return False

    def apply_all(self, entries: Iterable[LogEntry]) -> None:
        """Apply decoded entries in order, isolating those that cannot be applied."""
        fold(self._apply, self.docs, entries, self._isolate)

    def apply(self, position: Position, fields: Mapping[Any, Any]) -> bool:
        """Apply one entry's fields; ``False`` (and the state unchanged) when it cannot be."""
        failures = len(self.failures)
        self.apply_all([decode_entry(position, fields)])
        return len(self.failures) == failures

    def take(self) -> dict[Key, msgspec.Struct | None]:
        """The documents changed since the last call (``None``: deleted)."""
        pending, self.pending = self.pending, {}
        return pending
