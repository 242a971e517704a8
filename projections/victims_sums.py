"""A community-victims query's answer kept up to date cell by cell, as the view moves.

Every part of :func:`projections.community_victims.query`'s answer is a sum over the cells
the filter keeps (:class:`~projections.community_victims.Tally`), so when some cells change
the answer moves by their difference alone (:class:`VictimsSums`); the read side keeps one
per query asked of the view now. :class:`KeptSums` is the sums as stored beside an as-of
snapshot, so a reader starts from them instead of summing every cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final

import msgspec

from events import Position
from projections.community_victims import Cell, VictimsAnswer, tally
from projections.filters import DEFAULT_MIN_GRADING, VictimsFilter, select
from projections.suppression import ProtectedAnswer, small_in_cell, suppress

__all__ = ["SUMS_FORMAT", "KeptSums", "VictimsSums"]

SUMS_FORMAT: Final = 1
"""The meaning of a :class:`KeptSums`: raised whenever what a filter selects or how a cell
adds to an answer changes, so sums stored before are summed afresh rather than read."""


class KeptSums(msgspec.Struct, frozen=True, array_like=True, gc=False):
    """:class:`VictimsSums` as stored: its threshold, filter and checkpoint, the tally
    (``total`` low/best/high, ``incidents``, ``at_least``, and per community ``[low, best,
    high, incidents, at_least]``) and how many kept cells make each community small."""

    format: int
    k: int
    where: VictimsFilter
    checkpoint: str | None
    total: tuple[int, int, int]
    incidents: int
    at_least: int
    rows: dict[str, tuple[int, int, int, int, int]]
    small: dict[str, int]


class VictimsSums:
    """A community-victims query's sums over the ``total`` cells, kept up to date by cell.

    The sums are a :class:`~projections.community_victims.Tally` of the filter, and the
    communities :func:`projections.suppression.small_communities` withholds are a union
    over the same cells (:func:`~projections.suppression.small_in_cell`, with the same
    selection), kept as a count per community; so when cells change, the answer moves by
    the changed cells alone and equals :func:`~projections.community_victims.query` (and
    :func:`~projections.suppression.protected_query`) exactly. The filter is checked here
    (:class:`~projections.errors.InvalidQueryError`).
    """

    def __init__(self, k: int, where: VictimsFilter) -> None:
        self.k, self.where = k, where
        self.selection = select(where, DEFAULT_MIN_GRADING)
        self.checkpoint: Position | None = None
        self.tally = tally(where)
        self.small: dict[str, int] = {}
        """community → how many kept cells make it small."""

    def copy(self) -> VictimsSums:
        """An independent copy (moving one leaves the other as it was)."""
        other = VictimsSums(self.k, self.where)
        other.checkpoint = self.checkpoint
        other.tally = self.tally.copy()
        other.small = dict(self.small)
        return other

    def kept(self) -> KeptSums:
        """The sums as stored (:meth:`of_kept` reads them back)."""
        held = self.tally
        low, best, high = held.total
        return KeptSums(
            format=SUMS_FORMAT,
            k=self.k,
            where=self.where,
            checkpoint=self.checkpoint,
            total=(low, best, high),
            incidents=held.incidents,
            at_least=held.at_least,
            rows={c: (r[0], r[1], r[2], r[3], r[4]) for c, r in held.rows.items()},
            small=dict(self.small),
        )

    @classmethod
    def of_kept(cls, kept: KeptSums) -> VictimsSums | None:
        """The sums ``kept`` stored (``None``: stored with another :data:`SUMS_FORMAT`)."""
        if kept.format != SUMS_FORMAT:
            return None
        sums = cls(kept.k, kept.where)
        sums.checkpoint = None if kept.checkpoint is None else Position(kept.checkpoint)
        held = sums.tally
        held.total = list(kept.total)
        held.incidents, held.at_least = kept.incidents, kept.at_least
        held.rows = {community: list(row) for community, row in kept.rows.items()}
        sums.small = dict(kept.small)
        return sums

    def rebuild(self, cells: Mapping[str, msgspec.Struct], checkpoint: Position) -> None:
        """Sum every cell afresh (:meth:`move` keeps the sums after that)."""
        self.tally, self.small = tally(self.where), {}
        for cell in cells.values():
            self._add(cell, 1)
        self.checkpoint = checkpoint

    def move(
        self,
        changed: Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]],
        checkpoint: Position,
    ) -> None:
        """Take the sums from the previous checkpoint to ``checkpoint`` by the changed cells."""
        for before, now in changed.values():
            if before is not None:
                self._add(before, -1)
            if now is not None:
                self._add(now, 1)
        self.checkpoint = checkpoint

    def _add(self, cell: msgspec.Struct, sign: int) -> None:
        if not isinstance(cell, Cell):
            return
        self.tally.add(cell, sign)
        lines = cell.parties if self.selection.by_party else cell.lines
        if not any(one.best < self.k for one in lines.values()):
            return  # no small line: nothing to withhold (the common case, checked first)
        for community in small_in_cell(cell, self.selection, self.k):
            count = self.small.get(community, 0) + sign
            if count:
                self.small[community] = count
            else:
                del self.small[community]

    def answer(self) -> VictimsAnswer:
        """The query's answer at :attr:`checkpoint`."""
        return self.tally.answer()

    def protected(self) -> ProtectedAnswer:
        """The answer a reader gets (:func:`projections.suppression.protected_query`'s)."""
        return suppress(self.answer(), self.k, frozenset(self.small))
