"""ACLED imports: rows of an ACLED export (its CSV column layout) as events of one feed.

(:func:`import_acled`) maps each row to ``incident.reported`` (or, for a row ACLED changed
since, ``incident.casualties_revised``), and appends them as :mod:`services.ops.transfer`
imports JSON lines:

===================  ================================================================
``incident_id``      ``acled:<event_id_cnty>``
``event_id``         uuid5 of (feed, ``event_id_cnty``, ``timestamp``): a re-import writes
                     nothing (the importer reads the incident's events and skips a row
                     whose event is there, counted as a duplicate); a row ACLED changed
                     since (same ``event_id_cnty``, newer ``timestamp``) becomes
                     ``incident.casualties_revised`` of the incident
``occurred_start``   ``event_date`` (``2025-03-07`` or ``07 March 2025``)
``date_precision``   ``time_precision`` 1 (day) → 1, 2 (week) → 3, 3 (month) → 4 (UCDP)
``geo_precision``    ``geo_precision`` 1 (the place itself) → 1, 2 (near it, part of a
                     region) → 2, 3 (a provincial capital for a larger region) → 4 (UCDP)
``country``          alpha-3 from ``country`` by the ISO 3166 names of
                     ``events/data/iso3166_alpha3.tsv``, the short form before a comma
                     (``Iran``), and ACLED's own spellings (``Syria``, ``Russia``,
                     ``Democratic Republic of Congo``, ``Turkey``, ...)
``place``            ``admin1`` (the country's name when empty), ``admin2``, ``location``,
                     ``latitude``/``longitude``
``violence_type``    ``Violence against civilians``, or ``civilian_targeting`` set →
                     ``one_sided``; else a side coded state forces (``inter1``/``inter2``
                     1, or 8 external forces, or their text labels) → ``state_based``; else
                     ``non_state``
``event_type``       ``event_type``; ``sub_event_type`` as is
``perpetrators``     ``actor1`` and the actors of ``assoc_actor_1`` (``;``-separated)
``civilian_targeting`` ``Civilian targeting`` → true
``fatalities``       low = best = high = ``fatalities``; qualifier ``exact`` unless
                     ``notes`` put ``at least``/``more than``/``over`` (``at_least``) or
                     ``about``/``around``/``approximately``/``an estimated``/``some``
                     (``approximately``) before a number; no split by community
``sources``          the publishers of ``source`` (``;``-separated; ``ACLED`` when empty)
``notes``            ``notes`` (first 4,000 characters)
===================  ================================================================
"""

from __future__ import annotations

import csv
import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import cache
from typing import IO, Any, Final, Literal

import msgspec

from events import InvalidEventError, iso3_countries, parse_submission
from services.ops.transfer import (
    Batcher,
    ImportReport,
    OnError,
    TransferError,
)
from services.projector.replay import ProgressCallback
from services.store.base import EventStore

__all__ = [
    "ACLED_NAMESPACE",
    "AcledRowError",
    "acled_country",
    "acled_event_id",
    "acled_incident_id",
    "acled_rows",
    "acled_submission",
    "import_acled",
    "violence_type",
]

ACLED_NAMESPACE: Final = uuid.UUID("6f1c2a4e-4b0e-5b8e-9a51-1d7c1e0a5c3d")
"""The uuid5 namespace of event ids derived from ACLED rows."""


class AcledRowError(TransferError):
    """Raised for an ACLED row that cannot become an event (a value missing or unusable)."""


_ACLED_ALIASES: Final = {
    "bolivia": "BOL",
    "bosnia and herzegovina": "BIH",
    "brunei": "BRN",
    "cape verde": "CPV",
    "czech republic": "CZE",
    "democratic republic of congo": "COD",
    "democratic republic of the congo": "COD",
    "east timor": "TLS",
    "eswatini": "SWZ",
    "swaziland": "SWZ",
    "iran": "IRN",
    "ivory coast": "CIV",
    "laos": "LAO",
    "macedonia": "MKD",
    "micronesia": "FSM",
    "moldova": "MDA",
    "north korea": "PRK",
    "palestine": "PSE",
    "republic of congo": "COG",
    "russia": "RUS",
    "south korea": "KOR",
    "syria": "SYR",
    "taiwan": "TWN",
    "tanzania": "TZA",
    "turkey": "TUR",
    "vatican city": "VAT",
    "venezuela": "VEN",
    "vietnam": "VNM",
    "united states": "USA",
    "united kingdom": "GBR",
}
"""ACLED's spellings of country names that differ from the ISO 3166 short names."""


def _fold_name(name: str) -> str:
    plain = unicodedata.normalize("NFKD", name)
    plain = "".join(c for c in plain if not unicodedata.combining(c))
    return re.sub(r"\s+", " ", plain.strip().lower().removeprefix("the "))


@cache
def _country_index() -> dict[str, str]:
    index: dict[str, str] = {}
    short: dict[str, set[str]] = {}
    for code, name in iso3_countries().items():
        index[_fold_name(name)] = code
        head = name.partition(",")[0]
        short.setdefault(_fold_name(head), set()).add(code)
    for head, codes in short.items():
        if len(codes) == 1:
            index.setdefault(head, next(iter(codes)))
    index.update({_fold_name(k): v for k, v in _ACLED_ALIASES.items()})
    return index


def acled_country(name: str) -> str:
    """The ISO 3166-1 alpha-3 code of an ACLED country name (:class:`AcledRowError` if none)."""
    code = _country_index().get(_fold_name(name))
    if code is None:
        raise AcledRowError(f"country {name!r} has no ISO 3166-1 alpha-3 code")
    return code


_STATE_INTER: Final = {"1", "8", "state forces", "external/other forces"}


def violence_type(
    event_type: str, inter1: str, inter2: str, civilian_targeting: bool
) -> Literal["state_based", "non_state", "one_sided"]:
    """UCDP's type of violence for an ACLED event (mapping in the module docstring)."""
    if event_type == "Violence against civilians" or civilian_targeting:
        return "one_sided"
    sides = {inter1.strip().lower(), inter2.strip().lower()}
    if sides & _STATE_INTER:
        return "state_based"
    return "non_state"


_DATE_PRECISION: Final = {"1": 1, "2": 3, "3": 4}
_GEO_PRECISION: Final = {"1": 1, "2": 2, "3": 4}
_AT_LEAST: Final = re.compile(r"\b(at least|more than|over|no fewer than)\s+\d", re.IGNORECASE)
_ABOUT: Final = re.compile(
    r"\b(about|around|approximately|an estimated|roughly|some)\s+\d", re.IGNORECASE
)


def _qualifier(notes: str) -> str:
    if _AT_LEAST.search(notes):
        return "at_least"
    if _ABOUT.search(notes):
        return "approximately"
    return "exact"


def _date(text: str) -> str:
    text = text.strip()
    for fmt in ("%Y-%m-%d", "%d %B %Y", "%d-%B-%Y", "%d/%m/%Y"):
        try:
            return dt.datetime.strptime(text, fmt).date().isoformat()
        except ValueError:
            continue
    raise AcledRowError(f"event_date {text!r} is not a date")


def _split(text: str, limit: int) -> list[str]:
    seen: list[str] = []
    for part in text.split(";"):
        item = part.strip()[:200]
        if item and item not in seen:
            seen.append(item)
    return seen[:limit]


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _required(row: Mapping[str, str], name: str) -> str:
    value = (row.get(name) or "").strip()
    if not value:
        raise AcledRowError(f"column {name} is empty")
    return value


def acled_event_id(feed: str, row: Mapping[str, str]) -> uuid.UUID:
    """The deterministic event id of an ACLED row (feed, event_id_cnty, timestamp)."""
    key = f"{feed}|{_required(row, 'event_id_cnty')}|{_required(row, 'timestamp')}"
    return uuid.uuid5(ACLED_NAMESPACE, key)


def acled_incident_id(row: Mapping[str, str]) -> str:
    """The incident id of an ACLED row."""
    return f"acled:{_required(row, 'event_id_cnty')}"


def acled_submission(row: Mapping[str, str], feed: str, *, exists: bool) -> dict[str, Any]:
    """The event an ACLED row becomes, as a submission dict (see the module docstring).

    ``exists``: whether the incident is already in the log (the row is then a revision).
    """
    notes = (row.get("notes") or "").strip()
    try:
        deaths = int(_required(row, "fatalities"))
    except ValueError:
        raise AcledRowError(f"fatalities {row.get('fatalities')!r} is not a number") from None
    fatalities = {"low": deaths, "best": deaths, "high": deaths, "qualifier": _qualifier(notes)}
    sources = [{"publisher": p} for p in _split(row.get("source") or "", 100)] or [
        {"publisher": "ACLED"}
    ]
    base = {
        "event_id": str(acled_event_id(feed, row)),
        "source": feed,
        "incident_id": acled_incident_id(row),
    }
    if exists:
        return {
            **base,
            "type": "incident.casualties_revised",
            "fatalities": fatalities,
            "sources": sources,
            "reason": f"ACLED updated the row (timestamp {_required(row, 'timestamp')})",
        }
    country_name = _required(row, "country")
    lat, lon = _float(row.get("latitude") or ""), _float(row.get("longitude") or "")
    place: dict[str, Any] = {"adm1": (row.get("admin1") or "").strip()[:200] or country_name}
    for field, column in (("adm2", "admin2"), ("name", "location")):
        value = (row.get(column) or "").strip()[:200]
        if value:
            place[field] = value
    if lat is not None and lon is not None:
        place["lat"], place["lon"] = lat, lon
    targeting = (row.get("civilian_targeting") or "").strip() == "Civilian targeting"
    event_type = _required(row, "event_type")
    submission: dict[str, Any] = {
        **base,
        "type": "incident.reported",
        "occurred_start": _date(_required(row, "event_date")),
        "date_precision": _DATE_PRECISION.get((row.get("time_precision") or "1").strip(), 1),
        "country": acled_country(country_name),
        "place": place,
        "geo_precision": _GEO_PRECISION.get((row.get("geo_precision") or "1").strip(), 1),
        "violence_type": violence_type(
            event_type, row.get("inter1") or "", row.get("inter2") or "", targeting
        ),
        "event_type": event_type,
        "perpetrators": _split(
            ";".join([row.get("actor1") or "", row.get("assoc_actor_1") or ""]), 50
        ),
        "civilian_targeting": targeting,
        "fatalities": fatalities,
        "sources": sources,
    }
    sub = (row.get("sub_event_type") or "").strip()[:200]
    if sub:
        submission["sub_event_type"] = sub
    if notes:
        submission["notes"] = notes[:4000]
    return submission


def acled_rows(handle: IO[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """The rows of an ACLED CSV export with the line number each ends on."""
    reader = csv.DictReader(handle)
    missing = {"event_id_cnty", "event_date", "event_type", "country", "fatalities", "timestamp"}
    missing -= set(reader.fieldnames or ())
    if missing:
        raise TransferError(f"not an ACLED export: no column {', '.join(sorted(missing))}")
    for row in reader:
        yield reader.line_num, {k: v or "" for k, v in row.items() if k is not None}


async def import_acled(
    store: EventStore,
    rows: Sequence[tuple[int, Mapping[str, str]]],
    feed: str,
    *,
    on_error: OnError = "stop",
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
) -> ImportReport:
    """Import ACLED rows as events of ``feed`` (see the module docstring)."""
    report = ImportReport()
    batcher = Batcher(store, report, on_error, batch_size)
    held: dict[str, set[str] | None] = {}
    """incident → the event ids of its events in the log (``None``: not reported)."""
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        unknown = {
            acled_incident_id(row)
            for _, row in chunk
            if (row.get("event_id_cnty") or "").strip() and acled_incident_id(row) not in held
        }
        for incident in unknown:
            events = await store.read_entity(f"incident:{incident}")
            held[incident] = {str(r.event.event_id) for r in events} if events else None
        for line, row in chunk:
            report.lines += 1
            try:
                incident = acled_incident_id(row)
                ids = held.get(incident)
                if ids is not None and str(acled_event_id(feed, row)) in ids:
                    report.duplicates += 1  # this very row was imported before
                    continue
                submission = acled_submission(row, feed, exists=ids is not None)
                event = parse_submission(msgspec.json.encode(submission), now=_now())
            except (AcledRowError, InvalidEventError) as exc:
                await batcher.flush()
                batcher.fail(line, str(exc))
                if batcher.stopped:
                    return report
                continue
            await batcher.add(line, event)
            if batcher.stopped:
                return report
            held.setdefault(incident, set())
            known = held[incident]
            if known is not None:
                known.add(str(event.event_id))
        await batcher.flush()
        if batcher.stopped:
            return report
        if progress is not None:
            progress(report.lines, len(rows))
    return report


def _now() -> dt.datetime:
    """The moment a row is received: dates after it are refused (``events.rules``)."""
    return dt.datetime.now(dt.UTC)
