"""Diplomatic statement events, coded after CAMEO with a Goldstein score."""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

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


class Speaker(Value, frozen=True):
    """One country's official speaking; several speakers make a joint statement."""

    country: Country
    name: ShortText
    role: ShortText | None = None


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
    """A country's official (or several countries' jointly) made a statement."""

    SCHEMA_VERSION: ClassVar[int] = 2

    issued_at: AwareDatetime
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
