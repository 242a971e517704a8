"""GDELT 2.0 event imports: the statements of countries' officials, on one subject.

``ledger import --gdelt FILE --subject SLUG [--root 01,02,…] [--actor-country USA,…]``
reads a GDELT 2.0 events export (tab-separated, no header, 61 columns, UTF-8) and turns
each row that is a statement by a country's officials into ``statement.issued`` on the
subject the operator chose:

=================  ===================================================================
``statement_id``   ``gdelt:<GLOBALEVENTID>``; ``event_id`` uuid5 of ``GLOBALEVENTID``
                   (a re-import, under any subject, writes nothing new)
``speakers``       ``Actor1CountryCode`` (an ISO 3166 alpha-3 code, or ``XKX``), named
                   ``Actor1Name``, role ``other_official``, title the role code's name
``target``         ``Actor2CountryCode`` when it is a country code, ``Actor2Name``
``cameo_code``     ``EventCode``; ``goldstein`` from GDELT's table (filled in on append)
``stance``         from the CAMEO code (below)
``issued_at``      ``SQLDATE`` at day precision
``sources``        the host of ``SOURCEURL``, with the url
=================  ===================================================================

Skipped and counted, each with its reason: material conflict (``QuadClass`` 4: force,
assault, fight, …), an ``Actor1`` that is no country's officials (no country code, or a
role other than ``GOV`` government, ``MIL`` military, ``LEG`` legislature: rebels,
opposition, civilians, …), roots or countries the options leave out, and rows whose
statement is in the ledger already.

Stance from the CAMEO code: ``026`` (appeal to meet) and root ``04`` (consult)
``call_for_meeting``; ``051`` (praise or endorse) ``support``; roots ``11`` (disapprove),
``12`` (reject) and ``14`` (protest) ``condemn``; ``13`` (threaten) ``warn``; anything else
``neutral`` (which every root accepts).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from events import AnyEvent, country_codes
from services.ops.importer import Plan, RowRefusedError, checked, csv_table
from services.projector.replay import ProgressCallback
from services.store.base import EventStore

__all__ = ["GDELT_COLUMNS", "GDELT_FEED", "GDELT_NAMESPACE", "gdelt_statement", "plan_gdelt"]

GDELT_FEED: Final = "gdelt"
"""The feed GDELT statements are published as unless ``--feed`` names another."""
GDELT_NAMESPACE: Final = uuid.UUID("3d0c5e8a-7b1f-5a42-9c6e-2f4b8d1a7e93")
"""The uuid5 namespace of event ids derived from GDELT rows."""

GDELT_COLUMNS: Final = (
    "GLOBALEVENTID",
    "SQLDATE",
    "MonthYear",
    "Year",
    "FractionDate",
    "Actor1Code",
    "Actor1Name",
    "Actor1CountryCode",
    "Actor1KnownGroupCode",
    "Actor1EthnicCode",
    "Actor1Religion1Code",
    "Actor1Religion2Code",
    "Actor1Type1Code",
    "Actor1Type2Code",
    "Actor1Type3Code",
    "Actor2Code",
    "Actor2Name",
    "Actor2CountryCode",
    "Actor2KnownGroupCode",
    "Actor2EthnicCode",
    "Actor2Religion1Code",
    "Actor2Religion2Code",
    "Actor2Type1Code",
    "Actor2Type2Code",
    "Actor2Type3Code",
    "IsRootEvent",
    "EventCode",
    "EventBaseCode",
    "EventRootCode",
    "QuadClass",
    "GoldsteinScale",
    "NumMentions",
    "NumSources",
    "NumArticles",
    "AvgTone",
    "Actor1Geo_Type",
    "Actor1Geo_FullName",
    "Actor1Geo_CountryCode",
    "Actor1Geo_ADM1Code",
    "Actor1Geo_ADM2Code",
    "Actor1Geo_Lat",
    "Actor1Geo_Long",
    "Actor1Geo_FeatureID",
    "Actor2Geo_Type",
    "Actor2Geo_FullName",
    "Actor2Geo_CountryCode",
    "Actor2Geo_ADM1Code",
    "Actor2Geo_ADM2Code",
    "Actor2Geo_Lat",
    "Actor2Geo_Long",
    "Actor2Geo_FeatureID",
    "ActionGeo_Type",
    "ActionGeo_FullName",
    "ActionGeo_CountryCode",
    "ActionGeo_ADM1Code",
    "ActionGeo_ADM2Code",
    "ActionGeo_Lat",
    "ActionGeo_Long",
    "ActionGeo_FeatureID",
    "DATEADDED",
    "SOURCEURL",
)
"""GDELT 2.0's 61 columns, in order (the files have no header)."""

OFFICIALS: Final = {"GOV": "government", "MIL": "military", "LEG": "legislature"}
"""CAMEO actor role codes of a country's officials, and their names (the speaker's title)."""

_STANCES: Final = (
    ("026", "call_for_meeting"),
    ("04", "call_for_meeting"),
    ("051", "support"),
    ("11", "condemn"),
    ("12", "condemn"),
    ("14", "condemn"),
    ("13", "warn"),
)
"""CAMEO code prefixes and the stance they carry (the first that fits); else ``neutral``."""

MATERIAL_CONFLICT: Final = "material conflict, not a statement"
NOT_OFFICIALS: Final = "not a statement by a country's officials"
ROOT_LEFT_OUT: Final = "CAMEO root not asked for (--root)"
COUNTRY_LEFT_OUT: Final = "speaker's country not asked for (--actor-country)"
HELD: Final = "statement in the ledger already"


def stance_of(cameo_code: str) -> str:
    """The stance a CAMEO code carries (module docstring)."""
    for prefix, stance in _STANCES:
        if cameo_code.startswith(prefix):
            return stance
    return "neutral"


def _field(row: Mapping[str, str], column: str) -> str:
    value = (row.get(column) or "").strip()
    if not value:
        raise RowRefusedError(column, "is empty")
    return value


def gdelt_statement(row: Mapping[str, str], subject: str, feed: str) -> dict[str, Any]:
    """The ``statement.issued`` submission a GDELT row means (module docstring).

    :class:`RowRefusedError` names the column of a value that cannot become an event."""
    ident = _field(row, "GLOBALEVENTID")
    day = _field(row, "SQLDATE")
    try:
        issued = dt.datetime.strptime(day, "%Y%m%d").replace(tzinfo=dt.UTC)
    except ValueError:
        raise RowRefusedError("SQLDATE", f"{day!r} is not YYYYMMDD") from None
    code = _field(row, "EventCode")
    url = _field(row, "SOURCEURL")
    host = urlsplit(url).hostname
    if not host:
        raise RowRefusedError("SOURCEURL", f"{url[:200]!r} is not a url")
    country = _field(row, "Actor1CountryCode")
    speaker: dict[str, Any] = {
        "country": country,
        "name": (row.get("Actor1Name") or country).strip()[:200],
        "role": "other_official",
        "title": OFFICIALS.get((row.get("Actor1Type1Code") or "").strip(), "official"),
    }
    statement: dict[str, Any] = {
        "type": "statement.issued",
        "event_id": str(uuid.uuid5(GDELT_NAMESPACE, ident)),
        "source": feed,
        "statement_id": f"gdelt:{ident}",
        "issued_at": issued.isoformat(),
        "issued_precision": "day",
        "speakers": [speaker],
        "subject": subject,
        "cameo_code": code,
        "stance": stance_of(code),
        "sources": [{"publisher": host[:200], "url": url}],
    }
    target: dict[str, str] = {}
    other = (row.get("Actor2CountryCode") or "").strip()
    if other in country_codes() and other != country:
        target["country"] = other
    name = (row.get("Actor2Name") or "").strip()[:200]
    if name:
        target["actor"] = name
    if target:
        statement["target"] = target
    return statement


def _skipped(row: Mapping[str, str], roots: Collection[str], countries: Collection[str]) -> str:
    """Why a row is not imported ("" when it is)."""
    if (row.get("QuadClass") or "").strip() == "4":
        return MATERIAL_CONFLICT
    country = (row.get("Actor1CountryCode") or "").strip()
    role = (row.get("Actor1Type1Code") or "").strip()
    if country not in country_codes() or role not in OFFICIALS:
        return NOT_OFFICIALS
    root = (row.get("EventRootCode") or "").strip().zfill(2)
    if roots and root not in roots:
        return ROOT_LEFT_OUT
    if countries and country not in countries:
        return COUNTRY_LEFT_OUT
    return ""


async def plan_gdelt(
    store: EventStore,
    text: str,
    subject: str,
    *,
    feed: str = GDELT_FEED,
    roots: Collection[str] = (),
    countries: Collection[str] = (),
    progress: ProgressCallback | None = None,
) -> Plan:
    """The statements a GDELT 2.0 events file (``text``) means on ``subject`` (module
    docstring), given what ``store`` holds; nothing is written."""
    rows = csv_table(text, kind="a GDELT 2.0 events file", columns=GDELT_COLUMNS, delimiter="\t")
    wanted = {r.zfill(2) for r in roots}
    plan = Plan()
    plan.summary.read = len(rows)
    now = dt.datetime.now(dt.UTC)
    seen: set[str] = set()
    for done, (line, row) in enumerate(rows, start=1):
        if progress is not None and (done % 500 == 0 or done == len(rows)):
            progress(done, len(rows))
        why = _skipped(row, wanted, countries)
        if why:
            plan.summary.skip(why)
            continue
        try:
            event: AnyEvent = checked(gdelt_statement(row, subject, feed), now)
        except RowRefusedError as exc:
            plan.summary.refuse(line, str(exc))
            continue
        entity = event.entity
        if entity in seen or await store.entity(entity) is not None:
            plan.summary.skip(HELD)
            continue
        seen.add(entity)
        plan.events.append((line, event))
    return plan
