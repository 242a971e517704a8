"""Where a country stands on a subject, from its live statements on it; and when two agree.

**The stance rule.** A country's stance on a subject is the stance of its highest-ranked
speaker's latest statement (ranks: ``events.SPEAKER_ROLES``, a head of state first). The
statements it rests on — its *basis* — are that latest statement and every other statement
of a speaker of the same rank whose time, within its precision, overlaps the latest one's
(an exact moment, a whole day, or a range of time: ``events.issued_window``): statements
that cannot be put in order. When the basis disagrees — two stances of different families
(``events.STANCE_FAMILY``: critical, supportive, procedural) — the stance is ``mixed``;
when it agrees (a condemnation and a demand for accountability made the same day) the
stance is the latest statement's, and every stance of the basis is listed.

**Agreement of two stances** (:func:`agreement`): 1 when both are of one family; 0.5 when
either is ``mixed`` or either is procedural (a call for a meeting or for restraint, a
neutral remark takes no side on the substance, so it neither agrees nor disagrees with
one that does); 0 when one is critical and the other supportive.

**Reaction latency** counts only from a first statement whose time is precise enough: an
exact moment, or a day (counted from its start). A first statement known only within a
range of time gives no latency.

Pure functions over anything that has the fields of :class:`Dated`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final, Protocol, TypeVar

from events import ROLE_RANK, STANCE_FAMILY, issued_window

MIXED: Final = "mixed"
"""The stance (and family) of a basis that disagrees."""
_OTHER_RANK: Final = max(ROLE_RANK.values())


class Dated(Protocol):
    """What the rule reads of one statement as one of its speakers made it."""

    @property
    def role(self) -> str: ...
    @property
    def stance(self) -> str: ...
    @property
    def issued_at(self) -> dt.datetime: ...
    @property
    def issued_precision(self) -> str: ...
    @property
    def issued_end(self) -> dt.datetime | None: ...


D = TypeVar("D", bound=Dated)


def rank(one: Dated) -> int:
    """The rank of the statement's speaker: 1 (head of state) … 6 (another official)."""
    return ROLE_RANK.get(one.role, _OTHER_RANK)


def window(one: Dated) -> tuple[dt.datetime, dt.datetime]:
    """The span the statement's time stands for, both ends included."""
    return issued_window(one.issued_at, one.issued_precision, one.issued_end)


def overlap(a: tuple[dt.datetime, dt.datetime], b: tuple[dt.datetime, dt.datetime]) -> bool:
    """Whether two spans share a moment."""
    return a[0] <= b[1] and b[0] <= a[1]


def basis(entries: Sequence[D]) -> tuple[D, ...]:
    """The statements a stance rests on (see the module docstring), in the order given.

    ``entries`` are one country's live statements on one subject in timeline order (time,
    then log position); empty in, empty out.
    """
    if not entries:
        return ()
    top = min(rank(one) for one in entries)
    ranked = [one for one in entries if rank(one) == top]
    latest = window(ranked[-1])
    return tuple(one for one in ranked if overlap(window(one), latest))


def family(stance: str) -> str:
    """The family of a stance, or ``mixed``."""
    return STANCE_FAMILY.get(stance, MIXED)


def verdict(rests_on: Sequence[Dated]) -> tuple[str, str, tuple[str, ...]]:
    """``(stance, family, stances)`` of a basis: the latest statement's stance and family, or
    ``mixed`` twice when its families differ; ``stances`` are the basis's, first seen first.
    """
    stances = tuple(dict.fromkeys(one.stance for one in rests_on))
    families = {family(stance) for stance in stances}
    if len(families) > 1:
        return MIXED, MIXED, stances
    latest = rests_on[-1].stance
    return latest, family(latest), stances


def agreement(mine: str, theirs: str) -> float:
    """How far two countries' stances (or ``mixed``) agree: 1, 0.5 or 0."""
    a, b = family(mine), family(theirs)
    if MIXED in (a, b):
        return 0.5
    if a == b:
        return 1.0
    if "procedural" in (a, b):
        return 0.5
    return 0.0


def latency_hours(first: Dated, since: dt.date | None) -> float | None:
    """Hours from midnight UTC of ``since`` to the first statement, when its precision
    allows it (exact or day); ``None`` otherwise or without ``since``."""
    if since is None or first.issued_precision == "range":
        return None
    at = window(first)[0]
    midnight = dt.datetime.combine(since, dt.time(), tzinfo=dt.UTC)
    return (at - midnight).total_seconds() / 3600
