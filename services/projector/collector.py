"""The cyclic garbage collector's pace in a process that folds: few long young collections
while it catches up, many short ones while it follows the live log.

A fold allocates many short-lived containers (decoded entries, changed keys, a document's
dicts) while it keeps a whole view alive. With the default thresholds (700, 10, 10) the
collector ran so often that it cost a fifth of a catch-up, even with the documents
themselves untracked (``gc=False``, :class:`projections.docs.Doc`): a process that folds
runs its young generation every 50,000 allocations (:data:`COLLECTOR_THRESHOLDS`,
:func:`tune_collector`, called once by each process's wiring).

Following the live log, a young collection of that size held a commit up for 50 ms, a
middle one for 45 ms, and a batch's latency with it. So while a pool's workers follow the
log the young generation is collected every 5,000 allocations
(:data:`FOLLOWING_THRESHOLDS`, :func:`pace_collector`); a backlog read in pages sets the
catch-up pace back.
"""

from __future__ import annotations

import gc
from typing import Final

__all__ = ["COLLECTOR_THRESHOLDS", "FOLLOWING_THRESHOLDS", "pace_collector", "tune_collector"]

COLLECTOR_THRESHOLDS: Final = (50_000, 20, 10)
"""The collector's thresholds in a process that folds, catching up (:func:`tune_collector`)."""

FOLLOWING_THRESHOLDS: Final = (5_000, 20, 10)
"""The thresholds while following the live log: young and middle collections ten times as
often and about a tenth as long (each object is still examined once per generation it passes
through: the work is the same, in shorter pauses)."""


def tune_collector() -> None:
    """Set the catch-up pace (:data:`COLLECTOR_THRESHOLDS`): each process's wiring, once."""
    pace_collector(following=False)


def pace_collector(*, following: bool) -> None:
    """Set the pace for following the live log, or for catching up (see the module
    docstring); a call that changes nothing costs a comparison."""
    wanted = FOLLOWING_THRESHOLDS if following else COLLECTOR_THRESHOLDS
    if gc.get_threshold() != wanted:
        gc.set_threshold(*wanted)
