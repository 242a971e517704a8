"""Small factories of valid events for tests.

Each returns an event in its stored form (current schema version, Goldstein filled in) with
a fresh uuid4 ``event_id`` and source ``sohr``; keyword overrides replace any field, e.g.
``reported("i-2", best=3, expected_version=0)`` or ``revised(event_id=same_id)``.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, TypeVar

import msgspec

from events import (
    CasualtiesRevised,
    Event,
    Fatalities,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Place,
    Source,
    Speaker,
    StatementIssued,
    StatementRetracted,
    normalise,
    problems,
)

E = TypeVar("E", bound=Event)

SOURCE = "sohr"
"""The feed the factories publish as unless told otherwise."""


def _build(cls: type[E], fields: dict[str, Any], overrides: dict[str, Any]) -> E:
    fields = {"event_id": uuid.uuid4(), "source": SOURCE, **fields, **overrides}
    event = cls(**fields)
    found = problems(event)
    if found:
        raise ValueError(f"factory built an invalid {event.type}: {found}")
    stored = normalise(event)
    return msgspec.structs.replace(stored, expected_version=event.expected_version)  # type: ignore[return-value]


def fatalities(best: int, low: int | None = None, high: int | None = None) -> Fatalities:
    """An estimate of deaths: ``low`` and ``high`` default to ``best``."""
    return Fatalities(
        low=best if low is None else low, best=best, high=best if high is None else high
    )


def reported(incident_id: str = "i-1", best: int = 10, **overrides: Any) -> IncidentReported:
    """``incident.reported`` of a shelling in Idlib with ``best`` deaths."""
    fields = {
        "incident_id": incident_id,
        "occurred_start": dt.date(2024, 3, 1),
        "country": "SYR",
        "place": Place(adm1="Idlib", adm2="Maarrat al-Nu'man"),
        "geo_precision": 2,
        "violence_type": "state_based",
        "event_type": "Explosions/Remote violence",
        "civilian_targeting": True,
        "fatalities": fatalities(best),
        "sources": [Source(publisher="SOHR", url="https://example.org/r/1")],
    }
    return _build(IncidentReported, fields, overrides)


def revised(incident_id: str = "i-1", best: int = 12, **overrides: Any) -> CasualtiesRevised:
    """``incident.casualties_revised`` to ``best`` deaths."""
    fields = {
        "incident_id": incident_id,
        "fatalities": fatalities(best),
        "sources": [Source(publisher="SOHR")],
        "reason": "hospital records",
    }
    return _build(CasualtiesRevised, fields, overrides)


def retracted(incident_id: str = "i-1", **overrides: Any) -> IncidentRetracted:
    """``incident.retracted``."""
    fields = {"incident_id": incident_id, "reason": "the report was wrong"}
    return _build(IncidentRetracted, fields, overrides)


def merged(dup: str = "i-2", into: str = "i-1", **overrides: Any) -> IncidentMerged:
    """``incident.merged``: ``dup`` duplicates ``into``."""
    fields = {"incident_id": dup, "into": into, "reason": "the same shelling reported twice"}
    return _build(IncidentMerged, fields, overrides)


def statement(statement_id: str = "s-1", **overrides: Any) -> StatementIssued:
    """``statement.issued``: France condemns (CAMEO 111), about Syrian civilians."""
    fields = {
        "statement_id": statement_id,
        "issued_at": dt.datetime(2024, 3, 2, 10, 0, tzinfo=dt.UTC),
        "speakers": [Speaker(country="FRA", name="Ministry for Europe and Foreign Affairs")],
        "subject": "syria-civilians",
        "cameo_code": "111",
        "stance": "condemn",
        "sources": [Source(publisher="France Diplomatie")],
    }
    return _build(StatementIssued, fields, overrides)


def statement_retracted(statement_id: str = "s-1", **overrides: Any) -> StatementRetracted:
    """``statement.retracted``."""
    fields = {"statement_id": statement_id, "reason": "misattributed"}
    return _build(StatementRetracted, fields, overrides)
