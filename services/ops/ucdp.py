"""UCDP GED and GED Candidate imports: one incident per GED ``id``, deaths by party.

``ledger import --ucdp FILE --feed NAME`` reads a GED or Candidate CSV (header row, 49
columns, UTF-8) and plans each row against what the log holds:

====================  ===============================================================
``incident_id``       ``ucdp:<id>``
``event_id``          uuid5 of (``id``, the row's content): the same row again is the
                      same event, so a re-import writes nothing
``occurred_start``    ``date_start`` (``2025-03-07 00:00:00.000`` or ``2025-03-07``);
``occurred_end``      ``date_end`` when later; ``date_precision`` ``date_prec`` (1-5)
``country``           alpha-3 from ``country_id``, GED's Gleditsch-Ward code (``652`` →
                      ``SYR``; ``data/gleditsch_ward.tsv``), refused when not a code
                      there; without one (an older or hand-made file) or for a state
                      with no ISO code, from ``country`` (GED's names, a former name in
                      brackets dropped: ``DR Congo (Zaire)`` → ``COD``), as ACLED's
                      names map
``place``             ``adm_1`` (the country when empty), ``adm_2``, ``where_coordinates``,
                      ``latitude``/``longitude``; ``geo_precision`` ``where_prec`` (1-7)
``violence_type``     ``type_of_violence`` 1 ``state_based``, 2 ``non_state``, 3
                      ``one_sided`` (civilian targeting); no ACLED event type
``perpetrators``      ``side_a`` (one-sided violence), else ``side_a`` and ``side_b``
``sides``             ``side_a``, ``side_b`` and the dyad (``dyad_name``)
``fatalities``        ``low``/``best``/``high``
``parties``           ``deaths_civilians`` → civilians, ``deaths_a`` → side A,
                      ``deaths_b`` → side B, ``deaths_unknown`` → unknown (GED splits
                      ``best``: each line low = best = high)
``event_clarity``     ``event_clarity`` (1 clear, 2 a summary of several)
``sources``           the offices of ``source_office`` (``;``-separated; ``UCDP GED``
                      when empty)
``notes``             ``source_article`` and ``where_description`` (private text)
====================  ===============================================================

A row of an ``id`` the ledger holds with other content (a later Candidate release) is an
``incident.casualties_revised`` carrying the figures, the parties and every other field that
changed; the same content is skipped. An ``id`` this feed holds live that a release covering
its dates no longer lists is reported (by id, in the summary), never silently kept or
dropped: retract it with an event if UCDP dropped it for good.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from collections.abc import Mapping
from functools import cache
from importlib import resources
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import CasualtiesRevised, IncidentReported
from services.ops.acled import acled_country
from services.ops.importer import (
    Held,
    Plan,
    RowRefusedError,
    checked,
    csv_table,
    fold,
    held_of,
    holdings,
    owned,
    revision_of,
)
from services.projector.replay import ProgressCallback
from services.resp import text
from services.store.base import EventStore
from services.store.keys import Keys

__all__ = [
    "UCDP_COLUMNS",
    "UCDP_NAMESPACE",
    "gw_countries",
    "plan_ucdp",
    "ucdp_incidents",
    "ucdp_report",
]

UCDP_NAMESPACE: Final = uuid.UUID("0b6f2a57-3c2d-5f7e-8e0a-6d7f1b9c4a21")
"""The uuid5 namespace of event ids derived from UCDP GED rows."""

UCDP_COLUMNS: Final = (
    "id",
    "type_of_violence",
    "side_a",
    "side_b",
    "where_prec",
    "country",
    "event_clarity",
    "date_prec",
    "date_start",
    "date_end",
    "deaths_a",
    "deaths_b",
    "deaths_civilians",
    "deaths_unknown",
    "best",
    "high",
    "low",
)
"""The columns of GED's 49 an import needs. ``country_id`` is read when the file has it (GED's
do); a file without it still imports, by the country's name."""

_VIOLENCE: Final = {"1": "state_based", "2": "non_state", "3": "one_sided"}
_PARTIES: Final = (
    ("civilians", "deaths_civilians"),
    ("side_a", "deaths_a"),
    ("side_b", "deaths_b"),
    ("unknown", "deaths_unknown"),
)
_GED_NAMES: Final = {
    "dr congo": "COD",
    "bosnia-herzegovina": "BIH",
    "kingdom of eswatini": "SWZ",
    "united states of america": "USA",
    "yemen": "YEM",
    "serbia": "SRB",
}
"""GED's country names that neither ISO nor ACLED spell so (after a bracket is dropped)."""
UNCHANGED: Final = "the same as the ledger holds"


def _text(row: Mapping[str, str], column: str, limit: int = 200) -> str:
    return (row.get(column) or "").strip()[:limit]


def _required(row: Mapping[str, str], column: str) -> str:
    value = _text(row, column, 10_000)
    if not value:
        raise RowRefusedError(column, "is empty")
    return value


def _count(row: Mapping[str, str], column: str) -> int:
    text = _required(row, column)
    try:
        value = int(float(text)) if "." in text else int(text)
    except ValueError:
        raise RowRefusedError(column, f"{text!r} is not a whole number") from None
    if value < 0:
        raise RowRefusedError(column, f"{value} is negative")
    return value


def _code(row: Mapping[str, str], column: str, allowed: range) -> int:
    value = _count(row, column)
    if value not in allowed:
        raise RowRefusedError(column, f"{value} is not {allowed.start}-{allowed.stop - 1}")
    return value


def _date(row: Mapping[str, str], column: str) -> dt.date:
    text = _required(row, column)
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        raise RowRefusedError(column, f"{text!r} is not a date") from None


@cache
def gw_countries() -> dict[int, str | None]:
    """Gleditsch-Ward state code → ISO 3166-1 alpha-3 code, or ``None`` for a state with none
    (``data/gleditsch_ward.tsv``, read on first use)."""
    table = resources.files(__package__).joinpath("data", "gleditsch_ward.tsv")
    lines = table.read_text(encoding="utf-8").splitlines()
    rows = [line.split("\t") for line in lines if line and not line.startswith("#")]
    return {int(code): None if iso == "-" else iso for code, iso, _ in rows[1:]}  # 1st: names


def _country(row: Mapping[str, str]) -> str:
    """The country of a row: GED's Gleditsch-Ward code decides when the row has one (over a
    name that maps elsewhere); the name when it has none or the code's state has no ISO code."""
    gw = _text(row, "country_id")
    if gw:
        if not (gw.isascii() and gw.isdigit()):
            raise RowRefusedError("country_id", f"{gw!r} is not a Gleditsch-Ward code (a number)")
        number, table = int(gw), gw_countries()
        if number not in table:
            raise RowRefusedError("country_id", f"{number} is not a Gleditsch-Ward state code")
        code = table[number]
        if code is not None:
            return code
    return _country_name(row)


def _country_name(row: Mapping[str, str]) -> str:
    name = _required(row, "country")
    plain = name.split("(", 1)[0].strip()
    code = _GED_NAMES.get(plain.lower())
    if code is not None:
        return code
    try:
        return acled_country(plain)
    except RowRefusedError:
        raise RowRefusedError("country", f"{name!r} has no ISO 3166-1 alpha-3 code") from None


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def ucdp_report(row: Mapping[str, str], feed: str) -> dict[str, Any]:
    """The ``incident.reported`` submission a GED row means (module docstring), its
    ``event_id`` derived from its content; :class:`RowRefusedError` names the column of a
    value that cannot become an event."""
    ident = _required(row, "id")
    violence = _VIOLENCE.get(_required(row, "type_of_violence"))
    if violence is None:
        raise RowRefusedError("type_of_violence", f"{row['type_of_violence']!r} is not 1, 2 or 3")
    start, end = _date(row, "date_start"), _date(row, "date_end")
    side_a, side_b = _text(row, "side_a"), _text(row, "side_b")
    place: dict[str, Any] = {"adm1": _text(row, "adm_1") or _required(row, "country")[:200]}
    for field, column in (("adm2", "adm_2"), ("name", "where_coordinates")):
        if _text(row, column):
            place[field] = _text(row, column)
    lat, lon = _float(_text(row, "latitude")), _float(_text(row, "longitude"))
    if lat is not None and lon is not None:
        place["lat"], place["lon"] = lat, lon
    sides: dict[str, Any] = {}
    if side_a:
        sides["side_a"] = {"name": side_a}
    if side_b:
        sides["side_b"] = {"name": side_b}
    if _text(row, "dyad_name"):
        sides["dyad"] = _text(row, "dyad_name")
    offices = [o.strip()[:200] for o in (row.get("source_office") or "").split(";") if o.strip()]
    notes = "\n".join(
        f"{label}: {value}"
        for label, value in (
            ("source_article", _text(row, "source_article", 3000)),
            ("where_description", _text(row, "where_description", 800)),
        )
        if value
    )
    report: dict[str, Any] = {
        "type": "incident.reported",
        "source": feed,
        "incident_id": f"ucdp:{ident}",
        "occurred_start": start.isoformat(),
        "date_precision": _code(row, "date_prec", range(1, 6)),
        "country": _country(row),
        "place": place,
        "geo_precision": _code(row, "where_prec", range(1, 8)),
        "violence_type": violence,
        "perpetrators": [side_a] if violence == "one_sided" else [s for s in (side_a, side_b) if s],
        "civilian_targeting": violence == "one_sided",
        "fatalities": {
            "low": _count(row, "low"),
            "best": _count(row, "best"),
            "high": _count(row, "high"),
        },
        "parties": [
            {"party": party, **dict.fromkeys(("low", "best", "high"), _count(row, column))}
            for party, column in _PARTIES
        ],
        "sources": [{"publisher": o} for o in dict.fromkeys(offices)][:100]
        or [{"publisher": "UCDP GED"}],
        "event_clarity": _code(row, "event_clarity", range(1, 3)),
    }
    if end > start:
        report["occurred_end"] = end.isoformat()
    if sides:
        report["sides"] = sides
    if notes:
        report["notes"] = notes[:4000]
    content = {k: v for k, v in report.items() if k != "source"}  # the same under any feed
    digest = hashlib.sha256(msgspec.json.encode(content, order="sorted")).hexdigest()[:32]
    report["event_id"] = str(uuid.uuid5(UCDP_NAMESPACE, f"{ident}|{digest}"))
    return report


def _gone(
    held_by: Mapping[str, Held | None], listed: set[str], dates: tuple[dt.date, dt.date] | None
) -> list[str]:
    """What to report of incidents this feed holds that the release does not list."""
    if dates is None:
        return []
    low, high = dates
    gone = []
    for ident, held in held_by.items():
        if ident in listed or held is None or not held.live:
            continue
        start = held.fields.get("occurred_start")
        if isinstance(start, str) and low.isoformat() <= start <= high.isoformat():
            gone.append(ident)
    return [
        f"{ident}: in the ledger, not in this release (which covers {low} to {high})"
        for ident in sorted(gone)
    ]


_UCDP_MATCH: Final = "incident:ucdp:*"


async def ucdp_incidents(client: aioredis.Redis, keys: Keys, feed: str) -> list[str]:
    """The ids of the UCDP incidents ``feed`` reported, from the entities hashes."""
    found: list[str] = []
    for partition in range(keys.partitions):
        # the entities recorded before buckets, then the buckets
        names = [keys.entities_of(partition), *keys.entity_buckets(partition)]
        for start in range(0, len(names), 1024):
            chunk = names[start : start + 1024]
            async with client.pipeline(transaction=False) as pipe:
                for name in chunk:
                    pipe.hscan(name, 0, match=_UCDP_MATCH, count=1000)
                replies = await pipe.execute()
            for name, (cursor, pairs) in zip(chunk, replies, strict=True):
                states = dict(pairs)
                if cursor:  # a big hash answers in several calls
                    states.update(
                        [
                            pair
                            async for pair in client.hscan_iter(name, match=_UCDP_MATCH, count=1000)
                        ]
                    )
                for entity, state in states.items():
                    parts = text(state).split("|")
                    if len(parts) > 3 and parts[3] == feed:
                        found.append(text(entity).removeprefix("incident:"))
    return sorted(set(found))


async def plan_ucdp(
    store: EventStore,
    text: str,
    feed: str,
    *,
    progress: ProgressCallback | None = None,
    known: list[str] | None = None,
) -> Plan:
    """The events a GED or Candidate CSV (``text``) means for ``feed`` given what ``store``
    holds (module docstring); nothing is written. ``known``: incident ids of earlier UCDP
    imports, checked for ids this release no longer lists."""
    rows = csv_table(text, kind="a UCDP GED file", required=UCDP_COLUMNS)
    plan = Plan()
    plan.summary.read = len(rows)
    listed = {f"ucdp:{(row.get('id') or '').strip()}" for _, row in rows}
    held_by = await holdings(store, sorted(listed | set(known or ())), progress)
    now = dt.datetime.now(dt.UTC)
    seen: list[dt.date] = []
    for line, row in rows:
        try:
            report = checked(ucdp_report(row, feed), now)
            assert isinstance(report, IncidentReported)  # noqa: S101  # ucdp_report's type
            seen.append(report.occurred_start)
            ident = report.incident_id
            held = held_by.get(ident)
            revision = None
            if held is not None:
                revision = revision_of(
                    report,
                    held,
                    event_id=str(report.event_id),
                    reason="a later UCDP release revised the event",
                )
                if revision is not None and held.live:
                    owned(held, ident, feed)
        except RowRefusedError as exc:
            plan.summary.refuse(line, str(exc))
            continue
        if held is None:
            held_by[ident] = held_of([report])
            plan.events.append((line, report))
        elif not held.live:
            plan.summary.skip("incident retracted or merged in the ledger")
        elif revision is None:
            plan.summary.skip(UNCHANGED)
        else:
            event = checked(revision, now)
            assert isinstance(event, CasualtiesRevised)  # noqa: S101  # the revision's type
            fold(held, event)
            plan.events.append((line, event))
    span = (min(seen), max(seen)) if seen else None
    plan.summary.reported += _gone(held_by, listed, span)
    return plan
