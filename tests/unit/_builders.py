"""Event builders for the projection tests: valid events with deterministic ids, and a log.

``reported``/``revised``/``retracted``/``merged``/``disputed``/``statement``/
``statement_retracted`` each return a valid, normalised event; keyword overrides replace any
field. :class:`Log` gives events the positions and record times a store would, in the order
they are added.
"""

from __future__ import annotations

import datetime as dt
import itertools
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, TypeVar

import msgspec

from events import (
    CasualtiesRevised,
    Event,
    Fatalities,
    IncidentDisputed,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Place,
    Position,
    Recorded,
    Source,
    Speaker,
    StatementIssued,
    StatementRetracted,
    VictimLine,
    normalise,
    problems,
    recorded_at_of,
)
from projections import PROJECTIONS, State, fold

E = TypeVar("E", bound=Event)
_ids = itertools.count(1)
SOURCES = [Source(publisher="SOHR", url="https://www.syriahr.com/en/")]
LOG_START_MS = 1_741_600_000_000  # 2025-03-10, after the reference incident


def _event_id() -> uuid.UUID:
    return uuid.UUID(int=next(_ids))


def _valid(event: E) -> E:
    found = problems(event)
    if found:
        raise AssertionError(f"the builder made an invalid event: {found}")
    result = normalise(event)
    assert isinstance(result, type(event))
    return result


def line(
    community: str,
    best: int,
    status: str = "civilian",
    *,
    qualifier: str = "exact",
    **bounds: int,
) -> VictimLine:
    """A victim line; ``low``/``high`` default to ``best``."""
    return msgspec.convert(
        {
            "community": community,
            "status": status,
            "low": bounds.get("low", best),
            "best": best,
            "high": bounds.get("high", best),
            "qualifier": qualifier,
        },
        VictimLine,
    )


def fatalities(best: int, qualifier: str = "exact", **bounds: int) -> Fatalities:
    """A fatalities estimate; ``low``/``high`` default to ``best``."""
    return msgspec.convert(
        {
            "low": bounds.get("low", best),
            "best": best,
            "high": bounds.get("high", best),
            "qualifier": qualifier,
        },
        Fatalities,
    )


def reported(
    incident_id: str = "i-1",
    best: int = 10,
    *,
    victims: Sequence[VictimLine] = (),
    adm1: str = "Latakia",
    **overrides: Any,
) -> IncidentReported:
    """An ``incident.reported`` of ``best`` dead (exact unless overridden)."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "sohr",
        "incident_id": incident_id,
        "occurred_start": dt.date(2025, 3, 6),
        "country": "SYR",
        "place": Place(adm1=adm1),
        "geo_precision": 4,
        "violence_type": "one_sided",
        "event_type": "Violence against civilians",
        "civilian_targeting": True,
        "fatalities": fatalities(best),
        "victims": list(victims),
        "sources": SOURCES,
        "grading": "fair",
    }
    fields.update(overrides)
    return _valid(IncidentReported(**fields))


def revised(
    incident_id: str = "i-1",
    best: int = 10,
    *,
    victims: Sequence[VictimLine] = (),
    **overrides: Any,
) -> CasualtiesRevised:
    """An ``incident.casualties_revised`` to ``best`` dead."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "sohr",
        "incident_id": incident_id,
        "fatalities": fatalities(best),
        "victims": list(victims),
        "sources": SOURCES,
        "reason": "new count",
    }
    fields.update(overrides)
    return _valid(CasualtiesRevised(**fields))


def retracted(incident_id: str = "i-1", **overrides: Any) -> IncidentRetracted:
    """An ``incident.retracted``."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "sohr",
        "incident_id": incident_id,
        "reason": "the report was wrong",
    }
    fields.update(overrides)
    return _valid(IncidentRetracted(**fields))


def merged(duplicate: str, into: str, **overrides: Any) -> IncidentMerged:
    """An ``incident.merged`` of ``duplicate`` into ``into``."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "sohr",
        "incident_id": duplicate,
        "into": into,
        "reason": "same incident",
    }
    fields.update(overrides)
    return _valid(IncidentMerged(**fields))


def statement(
    statement_id: str = "s-1",
    *countries: str,
    subject: str = "syria-coast-2025",
    stance: str = "condemn",
    cameo_code: str | None = None,
    issued_at: dt.datetime | None = None,
    role: str = "other_official",
    title: str | None = None,
    **overrides: Any,
) -> StatementIssued:
    """A ``statement.issued`` by ``countries`` (default ``USA``); joint when several, every
    speaker with ``role`` and ``title``.

    Without ``cameo_code``: 111 (criticize or denounce), or 051 (praise or endorse) for a
    supportive stance, which 111 contradicts.
    """
    if cameo_code is None:
        cameo_code = "051" if stance in ("support", "welcome") else "111"
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "gdelt",
        "statement_id": statement_id,
        "issued_at": issued_at or dt.datetime(2025, 3, 9, 12, tzinfo=dt.UTC),
        "speakers": [
            msgspec.convert(
                {"country": c, "name": f"Minister of {c}", "role": role, "title": title},
                Speaker,
            )
            for c in (countries or ("USA",))
        ],
        "subject": subject,
        "cameo_code": cameo_code,
        "stance": stance,
        "sources": SOURCES,
    }
    fields.update(overrides)
    return _valid(StatementIssued(**fields))


def disputed(incident_id: str = "i-1", **overrides: Any) -> IncidentDisputed:
    """An ``incident.disputed`` by feed ``acled`` (not the reporting feed ``sohr``)."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "acled",
        "incident_id": incident_id,
        "reason": "our sources count fewer dead",
        "sources": [Source(publisher="ACLED", url="https://acleddata.com/")],
    }
    fields.update(overrides)
    return _valid(IncidentDisputed(**fields))


def statement_retracted(statement_id: str = "s-1", **overrides: Any) -> StatementRetracted:
    """A ``statement.retracted``."""
    fields: dict[str, Any] = {
        "event_id": _event_id(),
        "source": "gdelt",
        "statement_id": statement_id,
        "reason": "misattributed",
    }
    fields.update(overrides)
    return _valid(StatementRetracted(**fields))


class Log:
    """Gives events positions (``ms-seq``, one millisecond apart) as the store would."""

    def __init__(self, start_ms: int = LOG_START_MS) -> None:
        self._next = start_ms

    def record(self, event: Event) -> Recorded:
        """The event as the log holds it, at the next position."""
        position = Position(f"{self._next}-0")
        self._next += 1
        return Recorded(position, recorded_at_of(position), event)

    def records(self, events: Iterable[Event]) -> list[Recorded]:
        """Every event recorded in order."""
        return [self.record(e) for e in events]


def folded(name: str, *events: Event, log: Log | None = None) -> State:
    """The state of projection ``name`` after the events, recorded in order."""
    return fold(PROJECTIONS[name], (log or Log()).records(events))


def roundtrip(name: str, state: State) -> State:
    """The state as the runner would store and load it again (JSON per document)."""
    projection = PROJECTIONS[name]
    stored = {
        kind: {ident: projection.encode(doc) for ident, doc in docs.items()}
        for kind, docs in state.kinds().items()
    }
    return projection.load(stored)
