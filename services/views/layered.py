"""A mapping moved by a few changes without copying it: the changes laid over a base.

The read side keeps each view kind's documents by id and hands them to handlers, which may
still hold them while a later read moves the kind, so a moved kind is a new mapping, never
the old one updated in place. Copying every document at each commit of the view costs what
the view weighs (a million-event log's victims view: tens of milliseconds a commit, on the
read side of every live query); :meth:`Layered.moved` instead lays the changes over the
unchanged base, and folds them into a new base only once they outgrow a share of it
(:func:`overlay_limit`), so a move costs about what changed.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from typing import TypeVar

__all__ = ["Layered", "overlay_limit"]

V = TypeVar("V")


def overlay_limit(base: int) -> int:
    """How many changed ids may lie over a base of ``base`` entries before they are folded
    into a new base: four times its square root, at least 256 (a fold copies the base; a
    move copies the overlay; both stay near the square root of the base a move)."""
    return 256 + 4 * math.isqrt(base)


class Layered(Mapping[str, V]):
    """``base`` with ``over`` laid on it (``None`` there: the id was deleted); never changed
    once made. Made by :meth:`moved`."""

    __slots__ = ("_again", "_base", "_flat", "_len", "_over")

    def __init__(
        self, base: Mapping[str, V], over: dict[str, V | None], again: set[str], length: int
    ) -> None:
        self._base = base
        self._over = over
        self._again = again
        """Ids of the base deleted and put again: they come last, as in a dict."""
        self._len = length
        self._flat: dict[str, V] | None = None

    @classmethod
    def moved(cls, old: Mapping[str, V], changes: Mapping[str, V | None]) -> Mapping[str, V]:
        """``old`` with ``changes`` applied (``None``: delete the id), ``old`` left as it was.

        Costs the changes and the overlay already laid on ``old``, and once in a while (when
        the overlay outgrows :func:`overlay_limit`) a copy of the whole mapping.
        """
        if isinstance(old, Layered) and old._flat is None:
            base, over, again = old._base, dict(old._over), set(old._again)
        else:
            base = old._flat if isinstance(old, Layered) and old._flat is not None else old
            over, again = {}, set()
        length = len(old)
        for key, value in changes.items():
            present = over[key] is not None if key in over else key in base
            if value is None:
                if present:
                    length -= 1
                if key in base:
                    over[key] = None
                else:
                    over.pop(key, None)
            else:
                if not present:
                    length += 1
                    if key in over:  # an id of the base deleted before: now the last one
                        del over[key]
                        again.add(key)
                over[key] = value
        if len(over) > overlay_limit(len(base)):
            return _flatten(base, over, again)
        return cls(base, over, again, length)

    def __getitem__(self, key: str) -> V:
        over = self._over
        if key in over:
            value = over[key]
            if value is None:
                raise KeyError(key)
            return value
        return self._base[key]

    def __contains__(self, key: object) -> bool:
        over = self._over
        if key in over:
            return over[key] is not None
        return key in self._base

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        if self._flat is None:  # iterated whole: made flat once, and the next move builds on it
            self._flat = _flatten(self._base, self._over, self._again)
        return iter(self._flat)


def _flatten(base: Mapping[str, V], over: Mapping[str, V | None], again: set[str]) -> dict[str, V]:
    """The mapping as one dict, in the order a dict moved the same way would have."""
    flat = dict(base)
    for key, value in over.items():
        if value is None:
            flat.pop(key, None)
        else:
            if key in again:
                flat.pop(key, None)
            flat[key] = value
    return flat
