"""Positions in the log: the start, order against a checkpoint, and one position for many
partitions.

A position is a stream entry id ``<ms>-<seq>`` of one log partition. On several partitions a
view's checkpoint (and a ``position`` in answers) names every partition's position at once:
the entry ids joined by commas in partition order (:func:`joined`).
"""

from __future__ import annotations

from collections.abc import Sequence

from events import Position, position_key

__all__ = ["START", "above", "joined", "newer", "split"]

START = Position("0-0")
"""The position before the first event."""


def above(position: str, checkpoint: Position | None) -> bool:
    """Whether the entry at ``position`` comes after ``checkpoint`` (``None``: nothing yet)."""
    return checkpoint is None or position_key(position) > position_key(checkpoint)


def joined(positions: Sequence[Position | None]) -> Position | None:
    """One position for the checkpoints of every partition, in partition order.

    On one partition it is that partition's position; on several, the entry ids joined by
    commas (``0-0`` for a partition with none yet), ``None`` while no partition has one.
    """
    if len(positions) == 1:
        return positions[0]
    if all(p is None for p in positions):
        return None
    return Position(",".join(p or "0-0" for p in positions))


def newer(position: Position | None, than: Position | None) -> bool:
    """Whether ``position`` is past ``than``: on several partitions, past it in any one."""
    if position is None:
        return False
    if than is None:
        return True
    mine, theirs = position.split(","), than.split(",")
    if len(mine) != len(theirs):
        return position != than
    return any(position_key(a) > position_key(b) for a, b in zip(mine, theirs, strict=True))


def split(position: Position | None, partitions: int) -> list[Position | None]:
    """The per-partition positions of a :func:`joined` one (``None`` for none)."""
    if position is None:
        return [None] * partitions
    parts = [None if p == "0-0" and partitions > 1 else Position(p) for p in position.split(",")]
    if len(parts) != partitions:
        raise ValueError(f"{position!r} does not name {partitions} partitions' positions")
    return parts
