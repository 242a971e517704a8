"""Incident events: reported, casualties revised, retracted, merged into a duplicate, disputed."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, ClassVar, Literal, get_args

from msgspec import Meta

from .base import (
    AwareDatetime,
    Country,
    EntityId,
    Estimate,
    Event,
    Fatalities,
    Grading,
    PartyLine,
    Place,
    Reason,
    ShortText,
    Sides,
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
PartyLines = Annotated[list[PartyLine], Meta(max_length=4)]
SourceTime = Annotated[
    AwareDatetime,
    Meta(description="when the source published these figures (ACLED's row timestamp)"),
]
Clarity = Annotated[int, Meta(ge=1, le=2, description="UCDP: 1 clear event, 2 a summary")]
DatePrecision = Annotated[int, Meta(ge=1, le=5, description="UCDP: 1 day … 5 year")]
GeoPrecision = Annotated[int, Meta(ge=1, le=7, description="UCDP: 1 exact … 7 water/air")]
Actors = Annotated[list[ShortText], Meta(max_length=50)]


class IncidentEvent(Event, frozen=True, kw_only=True):
    """An event about one incident."""

    incident_id: EntityId

    @property
    def entity(self) -> str:
        return f"incident:{self.incident_id}"


class IncidentReported(IncidentEvent, frozen=True, kw_only=True, tag="incident.reported"):
    """A feed reports an incident for the first time.

    v3: a victim line may carry a qualifier (``at_least``, …) like ``fatalities`` does.
    v4: the deaths by party (``parties``: civilians, side A, side B, unknown, as UCDP GED
    splits them), the sides, the source's own time of the figures (``source_time``) and
    UCDP's ``event_clarity``; ``violence_type`` and ``event_type`` may be left out (an ACLED
    protest is no organised violence; a UCDP event has no ACLED type).
    """

    SCHEMA_VERSION: ClassVar[int] = 4

    occurred_start: dt.date
    occurred_end: dt.date | None = None
    date_precision: DatePrecision = 1
    country: Country
    place: Place
    geo_precision: GeoPrecision
    violence_type: ViolenceType | None = None
    event_type: AcledEventType | None = None
    sub_event_type: ShortText | None = None
    perpetrators: Actors = []
    civilian_targeting: bool
    fatalities: Fatalities
    victims: Victims = []
    parties: PartyLines = []
    injured: Estimate | None = None
    sources: Sources
    grading: Grading = "weak"
    notes: Annotated[str, Meta(max_length=4000)] | None = None
    sides: Sides | None = None
    source_time: SourceTime | None = None
    event_clarity: Clarity | None = None


Clearable = Literal[
    "violence_type", "event_type", "sub_event_type", "sides", "event_clarity", "notes"
]
"""A field of an incident's report that may be absent, and so cleared by a revision."""


class CasualtiesRevised(
    IncidentEvent, frozen=True, kw_only=True, tag="incident.casualties_revised"
):
    """New figures for an incident; they replace the previous ones, never add to them.

    v2: a victim line may carry a qualifier, as in ``incident.reported`` v3.
    v3: the deaths by party and ``source_time`` as in ``incident.reported`` v4, and the
    report's other fields a source changed with the figures (a revised ACLED row: its notes,
    place, actors, types), each given only when it changed; a field left out keeps its value.
    v4: ``cleared`` names the report's optional fields the source no longer gives (a row
    that became a protest has no violence type any more); they are set to none.
    """

    SCHEMA_VERSION: ClassVar[int] = 4

    fatalities: Fatalities
    victims: Victims = []
    parties: PartyLines = []
    injured: Estimate | None = None
    sources: Sources
    reason: Reason
    source_time: SourceTime | None = None
    occurred_start: dt.date | None = None
    date_precision: DatePrecision | None = None
    place: Place | None = None
    geo_precision: GeoPrecision | None = None
    violence_type: ViolenceType | None = None
    event_type: AcledEventType | None = None
    sub_event_type: ShortText | None = None
    perpetrators: Actors | None = None
    civilian_targeting: bool | None = None
    sides: Sides | None = None
    event_clarity: Clarity | None = None
    notes: Annotated[str, Meta(max_length=4000)] | None = None
    cleared: tuple[Clearable, ...] = ()


AMENDABLE: tuple[str, ...] = (
    "occurred_start",
    "date_precision",
    "place",
    "geo_precision",
    "violence_type",
    "event_type",
    "sub_event_type",
    "perpetrators",
    "civilian_targeting",
    "sides",
    "event_clarity",
    "notes",
)
"""The report's fields a revision may change beside the figures (``incident.casualties_revised``
v3)."""


CLEARABLE: tuple[str, ...] = get_args(Clearable)
"""The report's optional fields a revision may clear (``cleared``, v4)."""


def amendments(event: CasualtiesRevised) -> dict[str, Any]:
    """The report's fields ``event`` changes, by name: those it gives (see :data:`AMENDABLE`)
    and, set to ``None``, those it clears."""
    found = {name: value for name in AMENDABLE if (value := getattr(event, name)) is not None}
    found.update(dict.fromkeys(event.cleared))
    return found


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
