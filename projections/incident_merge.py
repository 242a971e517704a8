"""The merge of the incidents projection: the states of several log partitions as one.

An incident's own events are all in its partition; a merge into it is in the duplicate's.
So a part holds, per incident, either its own document or a *stub* (version 0, unreported,
holding only merges into it). An incident only one part holds keeps its document as it is;
one held by several is combined: its own document (at most one part has it) with the
stubs' merges, its history counted over every part, its duplicates in the order of their
merges (log position, then event id), ``updated_at`` the latest of the parts' (the time of
the last entry: a position's time grows with it). The marks of cited sources come only
from an incident's own events, so the parts hold distinct ones. The history itself is read
from the log (:func:`projections.incidents.history_of`). See :mod:`projections.incidents`.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from events import Source, position_key

from .common import Readable, State, docs_of, union
from .docs import Docs
from .errors import MergeConflictError
from .incident_docs import INCIDENT, SOURCE, IncidentView

__all__ = ["merge"]


def _merge_order(merge: tuple[str, tuple[str, str]]) -> tuple[tuple[int, int], str]:
    _, (position, event_id) = merge
    return position_key(position), event_id


def _combined(ident: str, held: Sequence[IncidentView]) -> IncidentView:
    """One incident's documents from several parts as one (see the module docstring)."""
    own = [view for view in held if view.version > 0 or view.reported or view.disputed_by]
    if len(own) > 1:
        raise MergeConflictError(f"incident {ident!r} has its own events in {len(own)} parts")
    base = own[0] if own else IncidentView(incident_id=ident)
    merges = sorted(
        (pair for view in held for pair in zip(view.duplicates, view.merges, strict=True)),
        key=_merge_order,
    )
    first = dict(reversed(merges))  # each duplicate's first merge
    ordered = [(dup, at) for dup, at in merges if first[dup] == at]
    times = [view.updated_at for view in held if view.updated_at is not None]
    return msgspec.structs.replace(
        base,
        history_total=sum(view.history_total for view in held),
        duplicates=tuple(dup for dup, _ in ordered),
        merges=tuple(at for _, at in ordered),
        updated_at=max(times) if times else base.updated_at,
    )


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    An id held by one part keeps its document; an id held by several is combined (see the
    module docstring; :class:`MergeConflictError` when two parts hold its own events). The
    parts are left as they are; the result is new, with no change pending, and the same
    whatever the order of ``parts``.
    """
    held: dict[str, list[IncidentView]] = {}
    for part in parts:
        for ident, view in docs_of(part, INCIDENT, IncidentView).items():
            held.setdefault(ident, []).append(view)
    incidents = {
        ident: group[0] if len(group) == 1 else _combined(ident, group)
        for ident, group in held.items()
    }
    sources = union(parts, SOURCE, Source)
    return Docs({INCIDENT: incidents, SOURCE: sources})
