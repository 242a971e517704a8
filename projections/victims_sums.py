"""A community-victims query's answer kept up to date cell by cell, as the view moves.

Every part of :func:`projections.community_victims.query`'s answer is a sum over the cells
the filters keep, so when some cells change the answer moves by their difference alone
(:class:`VictimsSums`); the read side keeps one per query asked of the view now.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from events import Position
from projections import community_victims as victims_projection
from projections.community_victims import Cell, CommunityRow, Figures, VictimsAnswer
from projections.suppression import ProtectedAnswer, small_communities, suppress

__all__ = ["VictimsSums"]


class VictimsSums:
    """A community-victims query's sums over the ``total`` cells, kept up to date by cell.

    Every part of :func:`projections.community_victims.query`'s answer is a sum over the
    cells the filters keep (totals, incidents, per-community figures), and the communities
    :func:`projections.suppression.small_communities` withholds are a union over those cells;
    so when cells change, the answer moves by the difference of the changed cells alone
    (each computed by those same functions over a one-cell state), instead of a pass over
    every cell per checkpoint.
    """

    def __init__(self, k: int, filters: Mapping[str, Any]) -> None:
        self.k, self.filters = k, dict(filters)
        self.checkpoint: Position | None = None
        self.total = [0, 0, 0]
        self.incidents = 0
        self.sums: dict[str, list[int]] = {}
        self.small: dict[str, int] = {}
        """community → how many kept cells make it small."""

    def rebuild(self, cells: Mapping[str, msgspec.Struct], checkpoint: Position) -> None:
        """Sum every cell afresh (:meth:`move` keeps the sums after that)."""
        self.total, self.incidents, self.sums, self.small = [0, 0, 0], 0, {}, {}
        whole = victims_projection.query({"total": cells}, **self.filters)
        self.total = [whole.total.low, whole.total.best, whole.total.high]
        self.incidents = whole.incidents
        for row in whole.communities:
            self.sums[row.community] = [row.low, row.best, row.high, row.incidents]
        for ident, cell in cells.items():
            self._small(ident, cell, 1)
        self.checkpoint = checkpoint

    def move(
        self,
        changed: Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]],
        checkpoint: Position,
    ) -> None:
        """Take the sums from the previous checkpoint to ``checkpoint`` by the changed cells."""
        for ident, (before, now) in changed.items():
            if before is not None:
                self._add(ident, before, -1)
            if now is not None:
                self._add(ident, now, 1)
        self.checkpoint = checkpoint

    def _add(self, ident: str, cell: msgspec.Struct, sign: int) -> None:
        part = victims_projection.query({"total": {ident: cell}}, **self.filters)
        self.total[0] += sign * part.total.low
        self.total[1] += sign * part.total.best
        self.total[2] += sign * part.total.high
        self.incidents += sign * part.incidents
        for row in part.communities:
            held = self.sums.setdefault(row.community, [0, 0, 0, 0])
            held[0] += sign * row.low
            held[1] += sign * row.best
            held[2] += sign * row.high
            held[3] += sign * row.incidents
            if held[3] == 0:  # no kept cell has the community any more
                del self.sums[row.community]
        self._small(ident, cell, sign)

    def _small(self, ident: str, cell: msgspec.Struct, sign: int) -> None:
        if not isinstance(cell, Cell) or not any(one[1] < self.k for one in cell.lines.values()):
            return
        for community in small_communities({"total": {ident: cell}}, self.k, **self.filters):
            count = self.small.get(community, 0) + sign
            if count:
                self.small[community] = count
            else:
                del self.small[community]

    def answer(self) -> VictimsAnswer:
        """The query's answer at :attr:`checkpoint`."""
        total = Figures(self.total[0], self.total[1], self.total[2])
        rows = [
            CommunityRow(community=name, low=low, best=best, high=high, incidents=count)
            for name, (low, best, high, count) in self.sums.items()
        ]
        rows.sort(key=lambda row: (-row.best, row.community))
        shown = Figures(
            sum(r.low for r in rows), sum(r.best for r in rows), sum(r.high for r in rows)
        )
        return VictimsAnswer(
            total=total,
            unattributed=total.plus(shown, -1),
            incidents=self.incidents,
            communities=rows,
        )

    def protected(self) -> ProtectedAnswer:
        """The answer a reader gets (:func:`projections.suppression.protected_query`'s)."""
        return suppress(self.answer(), self.k, frozenset(self.small))
