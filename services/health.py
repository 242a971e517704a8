"""The health of a process's long-running parts, for ``/readyz`` and the logs.

Every long-running part of a process (the projector workers, the snapshot writer, the inbox
consumer, the live hub's poll) keeps going after an unexpected error: it logs the reason,
waits (a back-off that doubles up to a cap) and starts over. While it has failed and not yet
made progress since, it is *degraded*: a :class:`Part` records that, with the last error,
and ``/readyz`` lists the degraded parts of its process (:class:`PartHealth`).
:func:`backoff` is the one back-off they share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Final, Literal

import msgspec

__all__ = ["ERROR_CHARS", "HealthOf", "Part", "PartHealth", "backoff", "degraded_of"]

ERROR_CHARS: Final = 500
"""How much of an error's text a part keeps."""

HealthOf = Callable[[], Mapping[str, "PartHealth"]]
"""Reports the degraded parts of a component, by name (empty: all healthy)."""


class PartHealth(msgspec.Struct, frozen=True, kw_only=True):
    """How a degraded part is doing: ``restarting`` after an error, or ``failed`` for good."""

    state: Literal["restarting", "failed"]
    error: str
    """The last unexpected error, as ``<type>: <text>``."""
    restarts: int = 0
    """How often the part started over after an error since the process started."""


class Part:
    """The health of one long-running part (see the module docstring)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.error: str | None = None
        """The last unexpected error, kept after recovery."""
        self.restarts = 0
        self.degraded = False

    def failed(self, error: BaseException) -> None:
        """Record an unexpected error: the part is degraded until :meth:`recovered`."""
        self.error = f"{type(error).__name__}: {error}"[:ERROR_CHARS]
        self.restarts += 1
        self.degraded = True

    def recovered(self) -> None:
        """The part made progress: healthy again."""
        self.degraded = False

    def health(self) -> dict[str, PartHealth]:
        """This part by name when it is degraded, else nothing (a :data:`HealthOf`)."""
        if not self.degraded or self.error is None:
            return {}
        return {self.name: PartHealth(state="restarting", error=self.error, restarts=self.restarts)}


def degraded_of(reporters: Iterator[HealthOf] | list[HealthOf]) -> dict[str, PartHealth]:
    """Every degraded part the ``reporters`` know of."""
    found: dict[str, PartHealth] = {}
    for report in reporters:
        found.update(report())
    return found


def backoff(current: float, *, first: float = 0.1, cap: float = 5.0) -> float:
    """The next wait after ``current`` (0: none yet): ``first``, then doubling up to ``cap``."""
    return first if current <= 0 else min(current * 2, cap)
