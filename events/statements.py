"""Diplomatic statement events, coded after CAMEO with a Goldstein score.

A speaker has a ``role`` from a closed vocabulary with a rank (:data:`SPEAKER_ROLES`,
highest first: a head of state outranks a head of government, who outranks a foreign
minister, then a UN representative, a spokesperson, any other official) and the free-text
``title`` it holds. A statement's time has a precision (``issued_precision``): the exact
moment, the day only, or a range of time (``issued_at`` to ``issued_end``) within which it
was made; :func:`issued_window` gives the span a time of each precision stands for.
Stances come in families (:data:`STANCE_FAMILY`), which say which stances agree.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Final, Literal

from msgspec import Meta

from .base import AwareDatetime, Country, EntityId, Event, Reason, ShortText, Slug, Source, Value

Stance = Literal[
    "condemn",
    "support",
    "demand_accountability",
    "call_for_meeting",
    "call_for_restraint",
    "warn",
    "welcome",
    "neutral",
]

StanceFamily = Literal["critical", "supportive", "procedural"]

STANCE_FAMILY: Final[dict[str, StanceFamily]] = {
    "condemn": "critical",
    "demand_accountability": "critical",
    "warn": "critical",
    "support": "supportive",
    "welcome": "supportive",
    "call_for_meeting": "procedural",
    "call_for_restraint": "procedural",
    "neutral": "procedural",
}
"""Which stances agree. *Critical* stances disapprove of what happened or of those who did
it (a condemnation, a demand for accountability, a warning of its dangers: CAMEO's verbal
conflict and pessimistic comments); *supportive* ones approve (support, welcome: verbal
cooperation); *procedural* ones take no side on the substance (a call for a meeting or for
restraint, a neutral remark: appeals and plain statements). Two stances of one family agree,
so a condemnation and a demand for accountability made together are one position."""

SpeakerRole = Literal[
    "head_of_state",
    "head_of_government",
    "foreign_minister",
    "un_representative",
    "spokesperson",
    "other_official",
]

SPEAKER_ROLES: Final[tuple[SpeakerRole, ...]] = (
    "head_of_state",
    "head_of_government",
    "foreign_minister",
    "un_representative",
    "spokesperson",
    "other_official",
)
"""Every speaker role, highest rank first. ``spokesperson`` speaks for a foreign ministry or
a government; ``other_official`` is anyone else who speaks for a country (intelligence,
defence, legislators, envoys)."""

ROLE_RANK: Final[dict[str, int]] = {role: rank for rank, role in enumerate(SPEAKER_ROLES, 1)}
"""A role's rank: 1 for a head of state (the highest) … 6 for another official."""

IssuedPrecision = Literal["exact", "day", "range"]
"""How precisely ``issued_at`` is known: the moment itself, its day only, or a range of
time ending at ``issued_end``."""

_DAY: Final = dt.timedelta(days=1)
_TICK: Final = dt.timedelta(microseconds=1)


def issued_window(
    issued_at: dt.datetime, precision: str = "exact", end: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """The span a statement's time stands for, both ends included.

    ``exact``: the moment itself; ``day``: the whole calendar day of ``issued_at`` in its own
    UTC offset; ``range``: ``issued_at`` to ``end``.
    """
    if precision == "day":
        midnight = issued_at.replace(hour=0, minute=0, second=0, microsecond=0)
        return midnight, midnight + _DAY - _TICK
    if precision == "range" and end is not None:
        return issued_at, end
    return issued_at, issued_at


class Speaker(Value, frozen=True):
    """One country's official speaking; several speakers make a joint statement.

    ``role`` is the rank of the office (see :data:`SPEAKER_ROLES`), ``title`` the office as
    the source names it ("Secretary of State").
    """

    country: Country
    name: ShortText
    role: SpeakerRole = "other_official"
    title: ShortText | None = None


class Target(Value, frozen=True):
    """Whom a statement addresses: a country, an actor, or both."""

    country: Country | None = None
    actor: ShortText | None = None


class StatementEvent(Event, frozen=True, kw_only=True):
    """An event about one statement."""

    statement_id: EntityId

    @property
    def entity(self) -> str:
        return f"statement:{self.statement_id}"


class StatementIssued(StatementEvent, frozen=True, kw_only=True, tag="statement.issued"):
    """A country's official (or several countries' jointly) made a statement.

    v3: speakers' ``role`` is a ranked vocabulary (the free text moved to ``title``), and the
    time has a precision (``issued_precision``, ``issued_end``).
    """

    SCHEMA_VERSION: ClassVar[int] = 3

    issued_at: AwareDatetime
    issued_precision: IssuedPrecision = "exact"
    issued_end: AwareDatetime | None = None
    """The end of the range the statement was made in (``issued_precision`` ``range`` only)."""
    speakers: Annotated[list[Speaker], Meta(min_length=1, max_length=50)]
    target: Target = Target()
    venue: (
        Annotated[str, Meta(pattern=r"^[A-Z0-9]{2,12}$(?!\n)", description="CAMEO actor code")]
        | None
    ) = None
    subject: Slug
    incident_ids: Annotated[list[EntityId], Meta(max_length=500)] = []
    cameo_code: Annotated[str, Meta(pattern=r"^[0-9]{2,4}$(?!\n)", description="CAMEO event code")]
    goldstein: Annotated[float, Meta(ge=-10, le=10)] | None = None
    stance: Stance
    sources: Annotated[list[Source], Meta(min_length=1, max_length=100)]

    @property
    def window(self) -> tuple[dt.datetime, dt.datetime]:
        """The span its time stands for (:func:`issued_window`)."""
        return issued_window(self.issued_at, self.issued_precision, self.issued_end)


class StatementRetracted(StatementEvent, frozen=True, kw_only=True, tag="statement.retracted"):
    """The statement was misattributed or never made; it is removed as if never issued."""

    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Reason


class StatementRedacted(StatementEvent, frozen=True, kw_only=True, tag="statement.redacted"):
    """An operator erased the statement's private text (speaker names, source urls).

    Appended by ``ledger erase statement``, which then destroys the statement's data key.
    The statement keeps counting; only its private text is gone.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Reason


StatementEvents = StatementIssued | StatementRetracted | StatementRedacted
