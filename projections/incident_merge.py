"""The merge of the incidents projection: the states of several log partitions as one.

An incident's own events are all in its partition; a merge into it is in the duplicate's.
So a part holds, per incident, either its own document or a *stub* (version 0, unreported,
holding only merges into it), and the history entries of that part, numbered from 0 in the
part's order. An incident only one part holds keeps its documents as they are; one held by
several is combined: its own document (at most one part has it) with the stubs' merges, the
entries of every part interleaved by log position (ties by event id) and numbered again,
its duplicates in the order of their merges, ``updated_at`` from the last entry. The marks
of cited sources come only from an incident's own events, so the parts hold distinct ones.
See :mod:`projections.incidents`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from events import Source, position_key

from .common import Readable, State, docs_of, union
from .docs import Docs
from .errors import MergeConflictError
from .incident_docs import HISTORY, INCIDENT, SOURCE, HistoryEntry, IncidentView, history_key
from .incident_queries import entries

__all__ = ["merge"]


def _entry_order(entry: HistoryEntry) -> tuple[tuple[int, int], str]:
    return position_key(entry.position), entry.event_id


def _combined(
    ident: str, held: Sequence[tuple[IncidentView, tuple[HistoryEntry, ...]]]
) -> tuple[IncidentView, tuple[HistoryEntry, ...]]:
    """One incident's documents from several parts, each with its part's entries, as one
    document and its whole history (see the module docstring)."""
    own = [view for view, _ in held if view.version > 0 or view.reported or view.disputed_by]
    if len(own) > 1:
        raise MergeConflictError(f"incident {ident!r} has its own events in {len(own)} parts")
    base = own[0] if own else IncidentView(incident_id=ident)
    history = tuple(sorted((e for _, part in held for e in part), key=_entry_order))
    duplicates = tuple(
        dict.fromkeys(e.duplicate for e in history if e.into == ident and e.duplicate)
    )
    view = msgspec.structs.replace(
        base,
        history_total=len(history),
        duplicates=duplicates,
        updated_at=history[-1].recorded_at if history else base.updated_at,
    )
    return view, history


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    An id held by one part keeps its documents; an id held by several is combined (see the
    module docstring; :class:`MergeConflictError` when two parts hold its own events). The
    parts are left as they are; the result is new, with no change pending, and the same
    whatever the order of ``parts``.
    """
    held: dict[str, list[tuple[Readable, IncidentView]]] = {}
    history: dict[str, HistoryEntry] = {}
    for part in parts:
        for ident, view in docs_of(part, INCIDENT, IncidentView).items():
            held.setdefault(ident, []).append((part, view))
        history.update(docs_of(part, HISTORY, HistoryEntry))
    incidents: dict[str, IncidentView] = {}
    for ident, group in held.items():
        if len(group) == 1:
            incidents[ident] = group[0][1]
            continue
        # every part's keys <ident>|0… lie within the combined range, so all are replaced
        view, combined = _combined(
            ident, [(one, entries(part, one, 0, one.history_total)) for part, one in group]
        )
        incidents[ident] = view
        for n, entry in enumerate(combined):
            history[history_key(ident, n)] = entry
    sources = union(parts, SOURCE, Source)
    return Docs({INCIDENT: incidents, HISTORY: history, SOURCE: sources})
