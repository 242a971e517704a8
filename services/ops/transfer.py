"""Moving events in and out of the log: JSON-lines export and import, and ACLED imports.

**Export** writes one JSON object per line and event, in log order (on several partitions,
every partition's events in the order of (position, partition))::

    {"position": "1741600000000-0", "recorded_at": "2025-03-10T09:46:40Z",
     "type": "incident.reported", "v": 2, "event": {...the event as stored...}}

**Import** reads such lines (or bare event objects) and appends them through the same
validated, idempotent path as the HTTP API: :func:`events.parse_submission`, then
``store.append`` in batches. Event ids make it idempotent: importing a file twice writes
nothing the second time. An import appends at new positions (the file's ``position`` is
informational). A bad line is reported with its line number; with ``on_error="stop"`` (the
default) nothing after it is written, with ``"skip"`` it is left out and the import goes on.

**ACLED** (:func:`import_acled`) maps rows of an ACLED export (its CSV column layout) to
``incident.reported`` events of one feed:

===================  ================================================================
``incident_id``      ``acled:<event_id_cnty>``
``event_id``         uuid5 of (feed, ``event_id_cnty``, ``timestamp``): a re-import writes
                     nothing; a row ACLED changed since (same ``event_id_cnty``, newer
                     ``timestamp``) becomes ``incident.casualties_revised`` of the incident
                     (the importer reads the incident's state to know it exists)
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
import heapq
import re
import unicodedata
import uuid
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from functools import cache
from typing import IO, Any, Final, Literal

import msgspec
import redis.asyncio as aioredis

from events import (
    AnyEvent,
    CodecError,
    InvalidEventError,
    Position,
    Problem,
    Recorded,
    encode,
    from_fields,
    iso3_countries,
    parse_submission,
    position_key,
    recorded_at_of,
)
from services.errors import LedgerError
from services.projector.replay import ProgressCallback
from services.store.base import AppendRejectedError, ConflictError, EventStore
from services.store.keys import Keys
from services.store.sealing import Keyring, open_records

__all__ = [
    "ACLED_NAMESPACE",
    "AcledRowError",
    "ImportReport",
    "LineProblem",
    "OnError",
    "TransferError",
    "acled_country",
    "acled_event_id",
    "acled_incident_id",
    "acled_rows",
    "acled_submission",
    "count_lines",
    "export_events",
    "import_acled",
    "import_lines",
    "parse_line",
    "violence_type",
]

OnError = Literal["stop", "skip"]

ACLED_NAMESPACE: Final = uuid.UUID("6f1c2a4e-4b0e-5b8e-9a51-1d7c1e0a5c3d")
"""The uuid5 namespace of event ids derived from ACLED rows."""

_PAGE: Final = 1000


class TransferError(LedgerError):
    """Root of the errors of export and import."""


class AcledRowError(TransferError):
    """Raised for an ACLED row that cannot become an event (a value missing or unusable)."""


class LineProblem(msgspec.Struct, frozen=True):
    """A line (or CSV row, by its line number) that was not imported, and why."""

    line: int
    message: str


class ImportReport(msgspec.Struct, kw_only=True):
    """What an import did."""

    lines: int = 0
    """Lines (or rows) read."""
    appended: int = 0
    duplicates: int = 0
    problems: list[LineProblem] = []
    stopped_at: int | None = None
    """The line the import stopped at (``on_error="stop"``), if it did."""

    @property
    def ok(self) -> bool:
        """Whether every line was imported (appended or already there)."""
        return not self.problems


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# --- export ------------------------------------------------------------------------------------


class _Line(msgspec.Struct, frozen=True):
    position: str
    recorded_at: dt.datetime
    type: str
    v: int
    event: msgspec.Raw


_line_encoder: Final = msgspec.json.Encoder()


def _bounds(bound: str | None, partitions: int, default: str) -> list[str]:
    """Per partition the bound ``bound`` names: one position for all, or one per partition
    joined by commas (``-``/``+`` or ``0-0`` for none)."""
    if bound is None:
        return [default] * partitions
    parts = bound.split(",")
    if len(parts) == 1:
        return parts * partitions
    if len(parts) != partitions:
        raise TransferError(f"{bound!r} does not name {partitions} partitions' positions")
    return parts


async def _entries(
    client: aioredis.Redis, log: str, low: str, high: str
) -> AsyncIterator[tuple[str, Mapping[Any, Any]]]:
    """The entries of one stream from ``low`` to ``high`` (both included), page by page."""
    while True:
        page = await client.xrange(log, low, high, count=_PAGE) or []
        for ident, raw in page:
            yield _text(ident), raw or {}
        if len(page) < _PAGE:
            return
        low = f"({_text(page[-1][0])}"


async def _merged(
    client: aioredis.Redis, keys: Keys, lows: Sequence[str], highs: Sequence[str]
) -> AsyncIterator[tuple[str, Mapping[Any, Any]]]:
    """The entries of every partition in the order of (position, partition)."""
    streams = [
        _entries(client, log, low, high)
        for log, low, high in zip(keys.logs, lows, highs, strict=True)
    ]
    heads: list[tuple[tuple[int, int], int, str, Mapping[Any, Any]]] = []

    async def take(partition: int) -> None:
        found = await anext(streams[partition], None)
        if found is not None:
            ident, raw = found
            heapq.heappush(heads, (position_key(ident), partition, ident, raw))

    for partition in range(len(streams)):
        await take(partition)
    while heads:
        _, partition, ident, raw = heapq.heappop(heads)
        yield ident, raw
        await take(partition)


async def export_events(
    client: aioredis.Redis,
    prefix: Keys | str,
    out: IO[bytes],
    *,
    start: str | None = None,
    end: str | None = None,
    progress: ProgressCallback | None = None,
    keyring: Keyring | None = None,
) -> int:
    """Write the log (positions ``start``..``end``, both included) as JSON lines; the count.

    With ``keyring`` the private text of sealed events is restored (``"[erased]"`` where an
    operator erased it, see :mod:`services.store.sealing`); without, events are written as stored,
    with placeholders, and an import of the file would not bring the text back.

    On several partitions the events of every partition are written in the order of
    (position, partition), each line as on one partition (positions are entry ids within
    their partition). ``start`` and ``end`` are then one position bounding every partition,
    or one per partition joined by commas (as :func:`services.views.stored.joined` writes them).
    """
    keys = Keys.of(prefix)
    lows = _bounds(start, keys.partitions, "-")
    highs = _bounds(end, keys.partitions, "+")
    total = 0
    for log in keys.logs:
        total += int(await client.xlen(log))
    written = 0
    since = 0
    async for position, raw in _merged(client, keys, lows, highs):
        fields = {_text(k): v for k, v in raw.items()}
        data = fields.get("data")
        if data is None:
            continue
        blob = fields.get("sealed")
        if keyring is not None and blob is not None:
            data = await _unsealed_data(keyring, position, fields, _text(blob))
        line = _Line(
            position=position,
            recorded_at=recorded_at_of(position),
            type=_text(fields.get("type", "")),
            v=int(_text(fields.get("v", "0")) or 0),
            event=msgspec.Raw(data if isinstance(data, bytes) else data.encode()),
        )
        out.write(_line_encoder.encode(line) + b"\n")
        written += 1
        since += 1
        if progress is not None and since >= _PAGE:
            since = 0
            progress(written, max(total, written))
    if progress is not None:
        progress(written, max(total, written))
    return written


async def _unsealed_data(
    keyring: Keyring, position: str, fields: Mapping[str, Any], blob: str
) -> bytes:
    """The event JSON of a sealed entry with its private text restored."""
    try:
        event = from_fields(fields)
    except CodecError as exc:
        raise CodecError(f"log entry {position}: {exc}") from exc
    recorded = Recorded(Position(position), recorded_at_of(position), event, blob)
    (opened,) = await open_records(keyring, [recorded])
    return encode(opened.recorded.event)


# --- import ------------------------------------------------------------------------------------

_raw_dict: Final = msgspec.json.Decoder(dict[str, Any])


def parse_line(line: bytes) -> AnyEvent:
    """One export line (or a bare event object) validated into its stored form.

    Raises :class:`InvalidEventError` naming what is wrong.
    """
    try:
        obj = _raw_dict.decode(line)
    except msgspec.DecodeError as exc:
        raise InvalidEventError([_problem("body", f"malformed JSON: {exc}")]) from exc
    event = obj.get("event", obj) if "event" in obj else obj
    if not isinstance(event, dict):
        raise InvalidEventError([_problem("event", "must be a JSON object")])
    version = obj.get("v")
    if "schema_version" not in event and isinstance(version, int) and version > 0:
        event = {**event, "schema_version": version}
    return parse_submission(msgspec.json.encode(event))


def _problem(field: str, message: str) -> Problem:
    return Problem(field, message)


class _Batcher:
    """Appends validated events in batches, handling store rejections per ``on_error``."""

    def __init__(
        self, store: EventStore, report: ImportReport, on_error: OnError, batch_size: int
    ) -> None:
        self.store, self.report, self.on_error = store, report, on_error
        self.batch_size = batch_size
        self.batch: list[tuple[int, AnyEvent]] = []

    @property
    def stopped(self) -> bool:
        return self.report.stopped_at is not None

    async def add(self, line: int, event: AnyEvent) -> None:
        self.batch.append((line, event))
        if len(self.batch) >= self.batch_size:
            await self.flush()

    def fail(self, line: int, message: str) -> None:
        self.report.problems.append(LineProblem(line, message))
        if self.on_error == "stop":
            self.report.stopped_at = line

    async def flush(self) -> None:
        while self.batch:
            events = [e for _, e in self.batch]
            try:
                results = await self.store.append(events)
            except (AppendRejectedError, ConflictError) as exc:
                line = self.batch[exc.index][0]
                if self.on_error == "stop":
                    before = self.batch[: exc.index]
                    self.batch = before
                    if before:
                        await self.flush()
                    self.fail(line, str(exc))
                    self.batch = []
                    return
                self.fail(line, str(exc))
                del self.batch[exc.index]
                continue
            for result in results:
                if result.status == "appended":
                    self.report.appended += 1
                else:
                    self.report.duplicates += 1
            self.batch = []


async def import_lines(
    store: EventStore,
    lines: Iterable[bytes],
    *,
    on_error: OnError = "stop",
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
    total: int = 0,
) -> ImportReport:
    """Import JSON lines (see the module docstring); blank lines are ignored."""
    report = ImportReport()
    batcher = _Batcher(store, report, on_error, batch_size)
    for number, raw in enumerate(lines, start=1):
        report.lines = number
        if not raw.strip():
            continue
        try:
            event = parse_line(raw)
        except (InvalidEventError, CodecError) as exc:
            await batcher.flush()
            batcher.fail(number, str(exc))
            if batcher.stopped:
                return report
            continue
        await batcher.add(number, event)
        if batcher.stopped:
            return report
        if progress is not None and number % batch_size == 0:
            progress(number, max(total, number))
    await batcher.flush()
    if progress is not None:
        progress(report.lines, max(total, report.lines))
    return report


# --- ACLED -----------------------------------------------------------------------------------

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
    batcher = _Batcher(store, report, on_error, batch_size)
    exists: dict[str, bool] = {}
    for start in range(0, len(rows), batch_size):
        chunk = rows[start : start + batch_size]
        unknown = {
            acled_incident_id(row)
            for _, row in chunk
            if (row.get("event_id_cnty") or "").strip() and acled_incident_id(row) not in exists
        }
        for incident in unknown:
            exists[incident] = await store.entity(f"incident:{incident}") is not None
        for line, row in chunk:
            report.lines += 1
            try:
                incident = acled_incident_id(row)
                submission = acled_submission(row, feed, exists=exists.get(incident, False))
                event = parse_submission(msgspec.json.encode(submission))
            except (AcledRowError, InvalidEventError) as exc:
                await batcher.flush()
                batcher.fail(line, str(exc))
                if batcher.stopped:
                    return report
                continue
            await batcher.add(line, event)
            if batcher.stopped:
                return report
            exists[incident] = True
        await batcher.flush()
        if batcher.stopped:
            return report
        if progress is not None:
            progress(report.lines, len(rows))
    return report


def count_lines(handle: IO[bytes]) -> int:
    """How many lines a file holds (for a progress total); the handle is rewound."""
    total = sum(1 for _ in handle)
    handle.seek(0)
    return total
