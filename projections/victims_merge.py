"""Merging community-victims states of several partitions into one (see
:mod:`projections.community_victims`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import msgspec

from .common import Readable, State, joined, union
from .docs import Docs
from .victims_cells import Cell, Contribution, Sums

__all__ = ["merge"]


def _add_sums(into: dict[str, Sums], sums: Mapping[str, Sums]) -> None:
    get = into.get
    for key, one in sums.items():
        was = get(key)
        into[key] = (
            one
            if was is None
            else Sums(
                was.low + one.low,
                was.best + one.best,
                was.high + one.high,
                was.incidents + one.incidents,
                was.at_least + one.at_least,
            )
        )


def _sum_cells(cells: Sequence[Cell]) -> Cell:
    """One cell summing cells of the same id (of disjoint sets of incidents)."""
    first = cells[0]
    communities, lines, statuses, parties = (
        dict(first.communities),
        dict(first.lines),
        dict(first.statuses),
        dict(first.parties),
    )
    for cell in cells[1:]:
        _add_sums(communities, cell.communities)
        _add_sums(lines, cell.lines)
        _add_sums(statuses, cell.statuses)
        _add_sums(parties, cell.parties)
    return msgspec.structs.replace(
        first,
        low=sum(cell.low for cell in cells),
        best=sum(cell.best for cell in cells),
        high=sum(cell.high for cell in cells),
        incidents=sum(cell.incidents for cell in cells),
        at_least=sum(cell.at_least for cell in cells),
        communities=communities,
        lines=lines,
        statuses=statuses,
        parties=parties,
    )


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    Contributions are gathered (an incident is in one part only; :class:`MergeConflictError`
    otherwise) and cells of the same id summed. The parts are left as they are; the result
    is new, with no change pending. Integer sums: the order of ``parts`` does not matter.
    """
    kinds: dict[str, Mapping[str, msgspec.Struct]] = {
        "incident": union(parts, "incident", Contribution)
    }
    for kind in ("total", "community", "line"):
        cells: dict[str, Cell] = joined(parts, kind, Cell, lambda _, group: _sum_cells(group))
        kinds[kind] = cells
    return Docs(kinds)
