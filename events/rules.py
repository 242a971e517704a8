"""Rules no schema type can state: bounds between fields, known codes, sums across lines.

``problems(event)`` lists every rule an event breaks (an empty list means valid);
``normalise(event)`` gives the form the log stores. Both are pure.
"""

from __future__ import annotations

import msgspec

from .base import Estimate, Event
from .errors import Problem
from .incidents import CasualtiesRevised, IncidentMerged, IncidentReported
from .statements import StatementIssued
from .tables import goldstein, iso3_countries

_COMPONENTS = ("low", "best", "high")


def _estimate_problems(estimate: Estimate, field: str) -> list[Problem]:
    if estimate.low <= estimate.best <= estimate.high:
        return []
    return [
        Problem(
            field,
            f"must satisfy low ≤ best ≤ high (got low={estimate.low}, "
            f"best={estimate.best}, high={estimate.high})",
        )
    ]


def _country_problems(code: str | None, field: str) -> list[Problem]:
    if code is None or code in iso3_countries():
        return []
    return [Problem(field, f"{code!r} is not an ISO 3166-1 alpha-3 country code")]


def _figures_valid(event: IncidentReported | CasualtiesRevised) -> bool:
    """Whether the figures break no rule: one pass, no list built (the common case)."""
    fatalities, injured = event.fatalities, event.injured
    if not fatalities.low <= fatalities.best <= fatalities.high:
        return False
    if injured is not None and not injured.low <= injured.best <= injured.high:
        return False
    victims = event.victims
    if not victims:
        return True
    low = best = high = 0
    keys = set()
    for line in victims:
        if not line.low <= line.best <= line.high:
            return False
        low += line.low
        best += line.best
        high += line.high
        keys.add((line.community, line.status))
    return (
        len(keys) == len(victims)
        and low <= fatalities.low
        and best <= fatalities.best
        and high <= fatalities.high
    )


def _figures_problems(event: IncidentReported | CasualtiesRevised) -> list[Problem]:
    return [] if _figures_valid(event) else _each_figures_problem(event)


def _each_figures_problem(event: IncidentReported | CasualtiesRevised) -> list[Problem]:
    """Every rule the figures break, each named (the slow path behind :func:`_figures_valid`)."""
    found = _estimate_problems(event.fatalities, "fatalities")
    if event.injured is not None:
        found += _estimate_problems(event.injured, "injured")
    seen: set[tuple[str, str]] = set()
    for i, line in enumerate(event.victims):
        found += _estimate_problems(line, f"victims[{i}]")
        key = (line.community, line.status)
        if key in seen:
            found.append(
                Problem(f"victims[{i}]", f"a second line for {line.community}/{line.status}")
            )
        seen.add(key)
    for component in _COMPONENTS:
        lines = sum(getattr(line, component) for line in event.victims)
        total = getattr(event.fatalities, component)
        if lines > total:
            found.append(
                Problem(
                    f"victims.{component}",
                    f"community lines sum to {lines}, more than fatalities.{component}={total}",
                )
            )
    return found


def problems(event: Event) -> list[Problem]:
    """Every domain rule the event breaks, each naming its field."""
    found: list[Problem] = []
    if isinstance(event, IncidentReported | CasualtiesRevised):
        found += _figures_problems(event)
    if isinstance(event, IncidentReported):
        if event.country not in iso3_countries():
            found += _country_problems(event.country, "country")
        if event.occurred_end is not None and event.occurred_end < event.occurred_start:
            found.append(Problem("occurred_end", "must not be before occurred_start"))
        if (event.place.lat is None) != (event.place.lon is None):
            found.append(Problem("place", "lat and lon come together or not at all"))
    elif isinstance(event, IncidentMerged):
        if event.into == event.incident_id:
            found.append(Problem("into", "an incident cannot be merged into itself"))
    elif isinstance(event, StatementIssued):
        spoken = set()
        for i, speaker in enumerate(event.speakers):
            country = speaker.country
            found += _country_problems(country, f"speakers[{i}].country")
            if country in spoken:
                found.append(Problem(f"speakers[{i}].country", f"{country} speaks twice"))
            spoken.add(country)
        found += _country_problems(event.target.country, "target.country")
        if goldstein(event.cameo_code) is None:
            found.append(
                Problem("cameo_code", f"{event.cameo_code!r} is not in the CAMEO code table")
            )
    return found


def normalise(event: Event) -> Event:
    """The stored form: current schema version, no precondition, Goldstein filled in.

    An event in its stored form already is returned as it is (events are frozen).
    """
    if (
        event.expected_version is None
        and event.schema_version == type(event).SCHEMA_VERSION
        and not (isinstance(event, StatementIssued) and event.goldstein is None)
    ):
        return event
    changes: dict[str, object] = {
        "schema_version": type(event).SCHEMA_VERSION,
        "expected_version": None,
    }
    if isinstance(event, StatementIssued) and event.goldstein is None:
        changes["goldstein"] = goldstein(event.cameo_code)
    return msgspec.structs.replace(event, **changes)
