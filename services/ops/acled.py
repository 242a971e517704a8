"""ACLED exports, as ACLED publishes them: the mapping of one row to an incident's fields.

:mod:`services.ops.acled_import` plans an import (rows applied in ``timestamp`` order per
``event_id_cnty``, revisions, the deletions file); this module says what one row means:

======================  ==============================================================
``incident_id``         ``acled:<event_id_cnty>``
``event_id``            uuid5 of (``event_id_cnty``, ``timestamp``): one ACLED version of
                        one row is one event, whichever feed imports it
``source_time``         ``timestamp`` (Unix seconds of ACLED's last change of the row)
``occurred_start``      ``event_date`` (``2025-03-07`` or ``07 March 2025``)
``date_precision``      ``time_precision`` 1 (day) → 1, 2 (week) → 3, 3 (month) → 4 (UCDP)
``geo_precision``       ``geo_precision`` 1 → 1, 2 → 2, 3 (a provincial capital for a
                        larger region) → 4 (UCDP)
``country``             alpha-3 from ``country`` by the ISO 3166 names, the short form
                        before a comma (``Iran``) and ACLED's own spellings (``Syria``,
                        ``Russia``, ``Turkey``, …); Kosovo → ``XKX`` (user-assigned)
``place``               ``admin1`` (the country's name when empty), ``admin2``,
                        ``location`` (with ``admin3`` before it when given), lat/lon
``violence_type``       only for organised violence: ``Violence against civilians`` (or
                        ``civilian_targeting`` on Battles/Explosions) → ``one_sided``; else
                        a side coded state forces (``inter1``/``inter2`` 1 or 8, or their
                        labels) → ``state_based``; else ``non_state``. Protests, Riots and
                        Strategic developments carry none
``event_type``          ``event_type``; ``sub_event_type`` as is
``perpetrators``        ``actor1`` and the actors of ``assoc_actor_1`` (``;``-separated)
``sides``               side A ``actor1`` with ``assoc_actor_1`` and ``inter1``, side B
                        ``actor2`` with ``assoc_actor_2`` and ``inter2``, ``interaction``:
                        kept as data (a side "Civilians (Syria)" with an associated group
                        never becomes community counts)
``civilian_targeting``  ``Civilian targeting`` → true
``fatalities``          low = best = high = ``fatalities``; qualifier ``at_least`` when the
                        notes say ``at least``/``more than``/``over`` a number,
                        ``approximately`` for ``about``/``around``/…, else ``exact``
``sources``             the publishers of ``source`` (``;``-separated; ``ACLED`` if empty)
``notes``               ``notes`` (first 4,000 characters)
======================  ==============================================================
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
import uuid
from collections.abc import Mapping
from functools import cache
from typing import Any, Final, Literal

from events import country_codes
from services.ops.importer import RowRefusedError

__all__ = [
    "ACLED_NAMESPACE",
    "AcledRowError",
    "acled_country",
    "acled_event_id",
    "acled_incident_id",
    "acled_report",
    "source_time",
    "violence_type",
]

ACLED_NAMESPACE: Final = uuid.UUID("6f1c2a4e-4b0e-5b8e-9a51-1d7c1e0a5c3d")
"""The uuid5 namespace of event ids derived from ACLED rows."""


class AcledRowError(RowRefusedError):
    """Raised for an ACLED row that cannot become an event (a value missing or unusable),
    naming the column."""


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
    "kosovo": "XKX",
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
    for code, name in country_codes().items():
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
        raise AcledRowError("country", f"{name!r} has no ISO 3166-1 alpha-3 code")
    return code


_STATE_INTER: Final = {"1", "8", "state forces", "external/other forces"}
_ORGANISED: Final = frozenset(
    {"Battles", "Violence against civilians", "Explosions/Remote violence"}
)
"""ACLED's event types that are organised violence in UCDP's sense."""
_INTER_LABELS: Final = {
    "1": "State forces",
    "2": "Rebel group",
    "3": "Political militia",
    "4": "Identity militia",
    "5": "Rioters",
    "6": "Protesters",
    "7": "Civilians",
    "8": "External/Other forces",
}
"""ACLED's older numeric actor-type codes, as the current layout's labels."""


def violence_type(
    event_type: str, inter1: str, inter2: str, civilian_targeting: bool
) -> Literal["state_based", "non_state", "one_sided"] | None:
    """UCDP's type of violence for an ACLED event, ``None`` for what is not organised
    violence (Protests, Riots, Strategic developments; mapping in the module docstring)."""
    if event_type not in _ORGANISED:
        return None
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
    raise AcledRowError("event_date", f"{text!r} is not a date")


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
        raise AcledRowError(name, "is empty")
    return value


def acled_event_id(row: Mapping[str, str]) -> uuid.UUID:
    """The deterministic event id of one version of an ACLED row (its id and timestamp)."""
    key = f"{_required(row, 'event_id_cnty')}|{_required(row, 'timestamp')}"
    return uuid.uuid5(ACLED_NAMESPACE, key)


def legacy_event_id(feed: str, row: Mapping[str, str]) -> uuid.UUID:
    """The event id earlier imports gave a row (feed, id, timestamp): a log holding it holds
    that version of the row."""
    key = f"{feed}|{_required(row, 'event_id_cnty')}|{_required(row, 'timestamp')}"
    return uuid.uuid5(ACLED_NAMESPACE, key)


def acled_incident_id(row: Mapping[str, str]) -> str:
    """The incident id of an ACLED row."""
    return f"acled:{_required(row, 'event_id_cnty')}"


def source_time(row: Mapping[str, str], column: str = "timestamp") -> dt.datetime:
    """ACLED's Unix-seconds ``timestamp`` (or ``deleted_timestamp``) as a UTC time."""
    text = _required(row, column)
    try:
        return dt.datetime.fromtimestamp(int(text), tz=dt.UTC)
    except (ValueError, OverflowError, OSError):
        raise AcledRowError(column, f"{text!r} is not Unix seconds") from None


def _side(row: Mapping[str, str], actor: str, associates: str, inter: str) -> dict[str, Any] | None:
    name = (row.get(actor) or "").strip()[:200]
    if not name:
        return None
    side: dict[str, Any] = {"name": name}
    assoc = _split(row.get(associates) or "", 50)
    if assoc:
        side["associates"] = assoc
    kind = (row.get(inter) or "").strip()
    kind = _INTER_LABELS.get(kind, kind)[:200]
    if kind and kind != "0":
        side["kind"] = kind
    return side


def _sides(row: Mapping[str, str]) -> dict[str, Any] | None:
    sides: dict[str, Any] = {}
    for field, actor, assoc, inter in (
        ("side_a", "actor1", "assoc_actor_1", "inter1"),
        ("side_b", "actor2", "assoc_actor_2", "inter2"),
    ):
        side = _side(row, actor, assoc, inter)
        if side is not None:
            sides[field] = side
    interaction = (row.get("interaction") or "").strip()[:200]
    if interaction:
        sides["interaction"] = interaction
    return sides or None


def _place(row: Mapping[str, str], country_name: str) -> dict[str, Any]:
    place: dict[str, Any] = {"adm1": (row.get("admin1") or "").strip()[:200] or country_name}
    adm2 = (row.get("admin2") or "").strip()[:200]
    if adm2:
        place["adm2"] = adm2
    parts = [(row.get(c) or "").strip() for c in ("admin3", "location")]
    name = ", ".join(dict.fromkeys(p for p in parts if p))[:200]
    if name:
        place["name"] = name
    lat, lon = _float(row.get("latitude") or ""), _float(row.get("longitude") or "")
    if lat is not None and lon is not None:
        place["lat"], place["lon"] = lat, lon
    return place


def acled_report(row: Mapping[str, str], feed: str) -> dict[str, Any]:
    """The ``incident.reported`` submission an ACLED row means (module docstring).

    :class:`AcledRowError` names the column of a value that cannot become an event.
    """
    notes = (row.get("notes") or "").strip()
    text = _required(row, "fatalities")
    try:
        deaths = int(text)
    except ValueError:
        raise AcledRowError("fatalities", f"{text!r} is not a whole number") from None
    country_name = _required(row, "country")
    targeting = (row.get("civilian_targeting") or "").strip() == "Civilian targeting"
    event_type = _required(row, "event_type")
    submission: dict[str, Any] = {
        "type": "incident.reported",
        "event_id": str(acled_event_id(row)),
        "source": feed,
        "incident_id": acled_incident_id(row),
        "source_time": source_time(row).isoformat(),
        "occurred_start": _date(_required(row, "event_date")),
        "date_precision": _DATE_PRECISION.get((row.get("time_precision") or "1").strip(), 1),
        "country": acled_country(country_name),
        "place": _place(row, country_name),
        "geo_precision": _GEO_PRECISION.get((row.get("geo_precision") or "1").strip(), 1),
        "event_type": event_type,
        "perpetrators": _split(
            ";".join([row.get("actor1") or "", row.get("assoc_actor_1") or ""]), 50
        ),
        "civilian_targeting": targeting,
        "fatalities": {
            "low": deaths,
            "best": deaths,
            "high": deaths,
            "qualifier": _qualifier(notes),
        },
        "sources": [{"publisher": p} for p in _split(row.get("source") or "", 100)]
        or [{"publisher": "ACLED"}],
    }
    violence = violence_type(
        event_type, row.get("inter1") or "", row.get("inter2") or "", targeting
    )
    if violence is not None:
        submission["violence_type"] = violence
    sub = (row.get("sub_event_type") or "").strip()[:200]
    if sub:
        submission["sub_event_type"] = sub
    sides = _sides(row)
    if sides is not None:
        submission["sides"] = sides
    if notes:
        submission["notes"] = notes[:4000]
    return submission
