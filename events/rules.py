"""Rules no schema type can state: bounds between fields, known codes, sums across lines.

``problems(event, now=...)`` lists every rule an event breaks (an empty list means valid);
``normalise(event)`` gives the form the log stores. Both are pure: the time the service
takes as "now" is a parameter, never read here.

The rules:

- figures: ``low ≤ best ≤ high`` for every estimate; one line per (community, status); the
  lines sum to no more than the fatalities, component by component;
- countries are ISO 3166-1 alpha-3 codes; an incident's ``lat`` and ``lon`` come together;
- an end never before its start (``occurred_end``, a statement's ``issued_end``); only a
  statement of ``range`` precision has an ``issued_end``, and it must have one;
- with ``now`` given, nothing is dated after it, beyond :data:`CLOCK_SKEW`: times
  (``issued_at``, ``issued_end``, sources' ``published_at``) against ``now + CLOCK_SKEW``;
  dates (``occurred_start``, ``occurred_end``) against the calendar date at that moment in
  the earliest time zone (UTC+14), since a date names a day somewhere on Earth;
- a statement's CAMEO code is in GDELT's table and its ``goldstein``, when given, equals the
  table's score for the code (the problem names the expected value);
- a statement's stance does not contradict its CAMEO root (``events/data/cameo_stance.tsv``):
  no condemnation, warning or demand for accountability coded as cooperation (roots 03-09),
  no support or welcome coded as conflict (roots 11-20); roots 01, 02 and 10 go with any;
- a merge names another incident than its own.
"""

from __future__ import annotations

import datetime as dt
from typing import Final

import msgspec

from .base import Estimate, Event, Source
from .errors import Problem
from .incidents import CasualtiesRevised, IncidentDisputed, IncidentMerged, IncidentReported
from .statements import StatementIssued
from .tables import cameo_root, country_codes, goldstein

_COMPONENTS = ("low", "best", "high")

CLOCK_SKEW: Final = dt.timedelta(minutes=5)
"""How far after "now" a time may lie: the clocks of feeds and of the service differ."""
_EARLIEST_ZONE: Final = dt.timedelta(hours=14)
"""UTC+14, where a calendar day starts first."""
_GOLDSTEIN_TOLERANCE: Final = 1e-9


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
    if code is None or code in country_codes():
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
    found = [] if _figures_valid(event) else _each_figures_problem(event)
    return found + _party_problems(event) if event.parties else found


def _party_problems(event: IncidentReported | CasualtiesRevised) -> list[Problem]:
    """A party once; each line low ≤ best ≤ high; the lines' ``best`` summing to no more
    than the toll's ``best`` (UCDP's per-side deaths split ``best``), none above ``high``."""
    found: list[Problem] = []
    seen: set[str] = set()
    for i, line in enumerate(event.parties):
        found += _estimate_problems(line, f"parties[{i}]")
        if line.party in seen:
            found.append(Problem(f"parties[{i}]", f"a second line for {line.party}"))
        seen.add(line.party)
        if line.high > event.fatalities.high:
            found.append(
                Problem(
                    f"parties[{i}].high",
                    f"{line.high} is more than fatalities.high={event.fatalities.high}",
                )
            )
    best = sum(line.best for line in event.parties)
    if best > event.fatalities.best:
        found.append(
            Problem(
                "parties.best",
                f"party lines sum to {best}, more than fatalities.best={event.fatalities.best}",
            )
        )
    return found


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


def _future_time(value: dt.datetime | None, field: str, now: dt.datetime) -> list[Problem]:
    if value is None or value <= now + CLOCK_SKEW:
        return []
    return [Problem(field, f"{value.isoformat()} is in the future (now is {now.isoformat()})")]


def _future_date(value: dt.date | None, field: str, now: dt.datetime) -> list[Problem]:
    latest = (now.astimezone(dt.UTC) + CLOCK_SKEW + _EARLIEST_ZONE).date()
    if value is None or value <= latest:
        return []
    return [Problem(field, f"{value.isoformat()} is in the future (today is {latest.isoformat()})")]


def _sources_future(sources: list[Source], now: dt.datetime) -> list[Problem]:
    found: list[Problem] = []
    for i, source in enumerate(sources):
        found += _future_time(source.published_at, f"sources[{i}].published_at", now)
    return found


def future_problems(event: Event, now: dt.datetime) -> list[Problem]:
    """The dates and times of ``event`` that lie after ``now`` (see the module docstring)."""
    found: list[Problem] = []
    if isinstance(event, IncidentReported):
        found += _future_date(event.occurred_start, "occurred_start", now)
        found += _future_date(event.occurred_end, "occurred_end", now)
    elif isinstance(event, CasualtiesRevised):
        found += _future_date(event.occurred_start, "occurred_start", now)
    elif isinstance(event, StatementIssued):
        found += _future_time(event.issued_at, "issued_at", now)
        found += _future_time(event.issued_end, "issued_end", now)
    if isinstance(event, IncidentReported | CasualtiesRevised | StatementIssued | IncidentDisputed):
        found += _sources_future(event.sources, now)
    if isinstance(event, IncidentReported | CasualtiesRevised):
        found += _future_time(event.source_time, "source_time", now)
    return found


def _statement_problems(event: StatementIssued) -> list[Problem]:
    found: list[Problem] = []
    spoken = set()
    for i, speaker in enumerate(event.speakers):
        country = speaker.country
        found += _country_problems(country, f"speakers[{i}].country")
        if country in spoken:
            found.append(Problem(f"speakers[{i}].country", f"{country} speaks twice"))
        spoken.add(country)
    found += _country_problems(event.target.country, "target.country")
    if event.issued_precision == "range":
        if event.issued_end is None:
            found.append(Problem("issued_end", "a range of time needs its end"))
        elif event.issued_end < event.issued_at:
            found.append(Problem("issued_end", "must not be before issued_at"))
    elif event.issued_end is not None:
        found.append(
            Problem("issued_end", f"only a range has an end, not {event.issued_precision!r}")
        )
    code = event.cameo_code
    expected = goldstein(code)
    if expected is None:
        found.append(Problem("cameo_code", f"{code!r} is not in the CAMEO code table"))
    elif event.goldstein is not None and abs(event.goldstein - expected) > _GOLDSTEIN_TOLERANCE:
        found.append(
            Problem(
                "goldstein",
                f"must be {expected} for CAMEO {code} (GDELT's Goldstein table), "
                f"got {event.goldstein}; leave it out to have it filled in",
            )
        )
    root = cameo_root(code)
    if root is not None and event.stance in root.refused:
        kind = "cooperation" if root.quad_class <= 2 else "conflict"
        found.append(
            Problem(
                "stance",
                f"{event.stance!r} contradicts CAMEO {code}: root {root.root} "
                f"({root.name}) codes {kind}",
            )
        )
    return found


def problems(event: Event, *, now: dt.datetime | None = None) -> list[Problem]:
    """Every domain rule the event breaks, each naming its field.

    ``now`` (aware) is the moment the service receives the event: with it, dates and times
    after it are refused (see the module docstring); without it (replays, tests), they are
    not checked.
    """
    found: list[Problem] = []
    if isinstance(event, IncidentReported | CasualtiesRevised):
        found += _figures_problems(event)
    if isinstance(event, IncidentReported):
        if event.country not in country_codes():
            found += _country_problems(event.country, "country")
        if event.occurred_end is not None and event.occurred_end < event.occurred_start:
            found.append(Problem("occurred_end", "must not be before occurred_start"))
        if (event.place.lat is None) != (event.place.lon is None):
            found.append(Problem("place", "lat and lon come together or not at all"))
    elif isinstance(event, CasualtiesRevised):
        if event.place is not None and (event.place.lat is None) != (event.place.lon is None):
            found.append(Problem("place", "lat and lon come together or not at all"))
        for name in dict.fromkeys(event.cleared):
            if getattr(event, name) is not None:
                found.append(Problem("cleared", f"{name} is both given and cleared"))
    elif isinstance(event, IncidentMerged):
        if event.into == event.incident_id:
            found.append(Problem("into", "an incident cannot be merged into itself"))
    elif isinstance(event, StatementIssued):
        found += _statement_problems(event)
    if now is not None:
        found += future_problems(event, now)
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
