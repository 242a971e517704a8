"""Incident events: reported, casualties revised, retracted, merged into a duplicate, disputed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, ClassVar, Literal

from msgspec import Meta

from .base import (
    Country,
    EntityId,
    Estimate,
    Event,
    Fatalities,
    Grading,
    Place,
    Reason,
    ShortText,
    Source,
    VictimLine,
)

ViolenceType = Literal["state_based", "non_state", "one_sided"]
"""UCDP's three types of organised violence."""

AcledEventType = Literal[
    "Battles",
    "Violence against civilians",
    "Protests",
    "Riots",
    "Strategic developments",
    "Explosions/Remote violence",
]
"""ACLED's six event types, spelled as ACLED spells them."""

Sources = Annotated[list[Source], Meta(min_length=1, max_length=100)]
Victims = Annotated[list[VictimLine], Meta(max_length=500)]


class IncidentEvent(Event, frozen=True, kw_only=True):
    """An event about one incident."""

    incident_id: EntityId

    @property
    def entity(self) -> str:
        return f"incident:{self.incident_id}"


class IncidentReported(IncidentEvent, frozen=True, kw_only=True, tag="incident.reported"):
    """A feed reports an incident for the first time.

    v3: a victim line may carry a qualifier (``at_least``, …) like ``fatalities`` does.
    """

    SCHEMA_VERSION: ClassVar[int] = 3

    occurred_start: dt.date
    occurred_end: dt.date | None = None
    date_precision: Annotated[int, Meta(ge=1, le=5, description="UCDP: 1 day … 5 year")] = 1
    country: Country
    place: Place
    geo_precision: Annotated[int, Meta(ge=1, le=7, description="UCDP: 1 exact … 7 water/air")]
    violence_type: ViolenceType
    event_type: AcledEventType
    sub_event_type: ShortText | None = None
    perpetrators: Annotated[list[ShortText], Meta(max_length=50)] = []
    civilian_targeting: bool
    fatalities: Fatalities
    victims: Victims = []
    injured: Estimate | None = None
    sources: Sources
    grading: Grading = "weak"
    notes: Annotated[str, Meta(max_length=4000)] | None = None


class CasualtiesRevised(
    IncidentEvent, frozen=True, kw_only=True, tag="incident.casualties_revised"
):
    """New figures for an incident; they replace the previous ones, never add to them.

    v2: a victim line may carry a qualifier, as in ``incident.reported`` v3.
    """

    SCHEMA_VERSION: ClassVar[int] = 2

    fatalities: Fatalities
    victims: Victims = []
    injured: Estimate | None = None
    sources: Sources
    reason: Reason


class IncidentRetracted(IncidentEvent, frozen=True, kw_only=True, tag="incident.retracted"):
    """The report was wrong; the incident no longer counts anywhere."""

    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Reason


class IncidentMerged(IncidentEvent, frozen=True, kw_only=True, tag="incident.merged"):
    """``incident_id`` duplicates ``into``; only ``into`` counts from now on."""

    SCHEMA_VERSION: ClassVar[int] = 1

    into: EntityId
    reason: Reason

    @property
    def into_entity(self) -> str:
        """The entity key of the canonical incident."""
        return f"incident:{self.into}"


class IncidentRedacted(IncidentEvent, frozen=True, kw_only=True, tag="incident.redacted"):
    """An operator erased the incident's private text (notes, source urls).

    Appended by ``ledger erase incident``, which then destroys the incident's data key: the
    sealed text of every earlier event of the incident becomes unreadable for good. The
    incident keeps its status, figures and place in the log; only the text is gone.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Reason


class IncidentDisputed(IncidentEvent, frozen=True, kw_only=True, tag="incident.disputed"):
    """A feed (``source``) disputes an incident it does not own, with its reason and sources.

    The incident belongs to the feed that reported it; another feed that disagrees says so
    with this event. It changes no figure, status or field of the incident: it is listed in
    the incident's history and flags the incident as disputed.
    """

    SCHEMA_VERSION: ClassVar[int] = 1

    reason: Reason
    sources: Sources


IncidentEvents = (
    IncidentReported
    | CasualtiesRevised
    | IncidentRetracted
    | IncidentMerged
    | IncidentRedacted
    | IncidentDisputed
)
