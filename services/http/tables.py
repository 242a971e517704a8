"""Answers as CSV: ``format=csv`` or ``Accept: text/csv`` on ``/v1/incidents`` and on every
projection answer (:func:`services.http.query.wants_csv`).

The layout (RFC 4180, UTF-8, ``\\r\\n`` line ends, ``text/csv; charset=utf-8``):

1. the first line says what was read, as one CSV record: ``#ledger``, then
   ``position=<position>``, ``read_at=<ISO 8601 UTC time the answer was read>``,
   ``lag=<entries not yet applied>`` and, for an as-of answer, ``as_of=<its time>``, e.g.
   ``#ledger,position=1741600000000-0,read_at=2025-03-10T12:00:00Z,lag=0`` (a position on
   several partitions holds commas, so that cell is quoted);
2. a header row naming the columns;
3. one row per row of the JSON answer, in its order, from the very answer the JSON would
   be: a reader's CSV withholds exactly what its JSON withholds (empty cells where the JSON
   has null, ``suppressed`` true).

Cells: empty for null, ``true``/``false``, ISO 8601 dates and times, lists joined by ``;``.
The rows of each answer (columns in :data:`COLUMNS`):

- community-victims: a ``total`` row, an ``unattributed`` row, then one ``community`` row
  per line (column ``line`` says which);
- incidents behind a figure: one row per incident id;
- country-stance: one row per (country, subject), ``basis`` the statement ids it rests on;
- a country's timeline: one row per statement, its sources' publishers and urls in two
  columns, aligned;
- alignment: one row per pair;
- ``/v1/incidents``: one row per incident, its current figures in four columns.

``pandas.read_csv(url, skiprows=1)`` reads the rows; the first line read alone gives the
position and time.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable, Sequence
from typing import Any, Final

from litestar import Response

from projections.community_victims import Figures
from services.http.query import wants_csv
from services.http.schemas import (
    AlignmentBody,
    BehindBody,
    IncidentsPage,
    StanceBody,
    TimelineBody,
    VictimsBody,
)

__all__ = ["COLUMNS", "CSV_MEDIA_TYPE", "answer", "as_csv", "cell", "with_csv_answers"]

CSV_MEDIA_TYPE: Final = "text/csv"
"""Answered with ``; charset=utf-8`` (the framework adds it to text types)."""

COLUMNS: Final[dict[str, tuple[str, ...]]] = {
    "victims": (
        "line",
        "community",
        "low",
        "best",
        "high",
        "at_least",
        "incidents",
        "suppressed",
    ),
    "behind": ("incident_id",),
    "stance": (
        "country",
        "subject",
        "stance",
        "family",
        "stances",
        "role",
        "statements",
        "goldstein_mean",
        "first_statement_at",
        "latest_statement_at",
        "reaction_latency_hours",
        "latest_statement_id",
        "basis",
    ),
    "timeline": (
        "statement_id",
        "subject",
        "issued_at",
        "issued_precision",
        "issued_end",
        "stance",
        "cameo_code",
        "goldstein",
        "speaker",
        "role",
        "title",
        "co_speakers",
        "incident_ids",
        "position",
        "erased",
        "feed",
        "source_publishers",
        "source_urls",
    ),
    "alignment": ("a", "b", "score", "shared_subjects", "thin"),
    "incidents": (
        "incident_id",
        "status",
        "occurred_start",
        "occurred_end",
        "date_precision",
        "country",
        "adm1",
        "place",
        "event_type",
        "violence_type",
        "fatalities_low",
        "fatalities_best",
        "fatalities_high",
        "fatalities_qualifier",
        "grading",
        "feed",
        "sources",
        "disputed",
        "merged_into",
        "version",
    ),
}
"""The columns of each answer's CSV, in order."""


def cell(value: Any) -> str:
    """One value as a CSV cell (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, list | tuple):
        return ";".join(cell(one) for one in value)
    return str(value)


def _figures(line: str, figures: Figures | None, incidents: int | None) -> list[Any]:
    if figures is None:
        return [line, None, None, None, None, None, incidents, True]
    return [line, None, figures.low, figures.best, figures.high, figures.at_least, incidents, False]


def _victims(body: VictimsBody) -> Iterable[Sequence[Any]]:
    yield _figures("total", body.total, body.incidents)
    yield _figures("unattributed", body.unattributed, None)
    for row in body.communities:
        yield [
            "community",
            row.community,
            row.low,
            row.best,
            row.high,
            row.at_least,
            row.incidents,
            row.suppressed,
        ]


def _stance(body: StanceBody) -> Iterable[Sequence[Any]]:
    for r in body.countries:
        yield [
            r.country,
            r.subject,
            r.stance,
            r.family,
            r.stances,
            r.role,
            r.statements,
            r.goldstein_mean,
            r.first_statement_at,
            r.latest_statement_at,
            r.reaction_latency_hours,
            r.latest_statement_id,
            [b.statement_id for b in r.basis],
        ]


def _timeline(body: TimelineBody) -> Iterable[Sequence[Any]]:
    for e in body.entries:
        yield [
            e.statement_id,
            e.subject,
            e.issued_at,
            e.issued_precision,
            e.issued_end,
            e.stance,
            e.cameo_code,
            e.goldstein,
            e.speaker,
            e.role,
            e.title,
            e.co_speakers,
            e.incident_ids,
            e.position,
            e.erased,
            e.feed,
            [s.publisher for s in e.sources],
            [s.url or "" for s in e.sources],
        ]


def _incidents(body: IncidentsPage) -> Iterable[Sequence[Any]]:
    for r in body.data:
        f = r.fatalities
        yield [
            r.incident_id,
            r.status,
            r.occurred_start,
            r.occurred_end,
            r.date_precision,
            r.country,
            r.adm1,
            None if r.place is None else r.place.name,
            r.event_type,
            r.violence_type,
            f.low,
            f.best,
            f.high,
            f.qualifier,
            r.grading,
            r.feed,
            r.sources,
            r.disputed,
            r.merged_into,
            r.version,
        ]


Answer = VictimsBody | BehindBody | StanceBody | TimelineBody | AlignmentBody | IncidentsPage


def _rows(body: Answer) -> tuple[str, Iterable[Sequence[Any]]]:
    if isinstance(body, VictimsBody):
        return "victims", _victims(body)
    if isinstance(body, BehindBody):
        return "behind", ([one] for one in body.incident_ids)
    if isinstance(body, StanceBody):
        return "stance", _stance(body)
    if isinstance(body, TimelineBody):
        return "timeline", _timeline(body)
    if isinstance(body, AlignmentBody):
        return "alignment", ([p.a, p.b, p.score, p.shared_subjects, p.thin] for p in body.pairs)
    return "incidents", _incidents(body)


def answer(accept: str | None, body: Answer, format_: str | None) -> Response[Any]:
    """``body`` as JSON, or as CSV when asked for (``format``, else ``Accept``)."""
    if wants_csv(accept, format_):
        return as_csv(body)
    return Response(body)


def as_csv(body: Answer, *, read_at: dt.datetime | None = None) -> Response[str]:
    """``body`` as a CSV answer (see the module docstring)."""
    kind, rows = _rows(body)
    when = (read_at or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    first = [
        "#ledger",
        f"position={body.position or ''}",
        f"read_at={when.isoformat(timespec='seconds').replace('+00:00', 'Z')}",
        f"lag={body.lag}",
    ]
    as_of = getattr(body, "as_of", None)
    if as_of is not None:
        first.append(f"as_of={as_of.isoformat()}")
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(first)
    writer.writerow(COLUMNS[kind])
    writer.writerows([cell(value) for value in row] for row in rows)
    return Response(out.getvalue(), media_type=CSV_MEDIA_TYPE)


_CSV_CONTENT: Final = {
    "schema": {"type": "string"},
    "example": "#ledger,position=1741600000000-0,read_at=2025-03-10T12:00:00Z,lag=0\r\n"
    "a,b,score,shared_subjects,thin\r\nRUS,USA,1.0,1,true\r\n",
}


def with_csv_answers(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` (an OpenAPI document) with a ``text/csv`` answer beside the JSON one of
    every operation that takes ``format``."""
    for item in document.get("paths", {}).values():
        operation = item.get("get")
        if operation is None:
            continue
        names = {p.get("name") for p in operation.get("parameters", [])}
        ok = operation.get("responses", {}).get("200")
        if "format" in names and ok is not None:
            ok.setdefault("content", {})["text/csv"] = {
                **_CSV_CONTENT,
                "schema": {
                    "type": "string",
                    "description": "first line: #ledger,position=…,read_at=…,lag=…[,as_of=…]; "
                    "then a header row and one row per row of the JSON answer",
                },
            }
    return document
