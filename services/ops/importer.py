"""What every importer of a source's file shares: reading the file as the source ships it,
planning every event before anything is written, and publishing the plan.

An import runs in two steps. **Planning** reads the whole file (UTF-8, with or without a
byte-order mark), checks its layout (a row with more or fewer fields than the header, a
byte that is not UTF-8: :class:`MalformedFileError`, naming line and column, and nothing is
written) and turns each row into the event it means, or counts it as *skipped* (with why:
not newer than what the ledger holds, not a statement, …) or *refused* (a value that
cannot become an event, named by line and column). **Publishing** appends the planned
events in batches through the validated, idempotent path of every other publisher; with
``on_error="stop"`` (the default) a plan with any refused row writes nothing, and with
``dry_run`` nothing is written at all (the summary says what would be).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import msgspec

from events import (
    AMENDABLE,
    CLEARABLE,
    AnyEvent,
    CasualtiesRevised,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    InvalidEventError,
    amendments,
    parse_submission,
)
from services.ops.transfer import LineProblem, OnError, TransferError
from services.projector.replay import ProgressCallback
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EventStore,
    IdReusedError,
    NotOwnerError,
)
from services.store.sealing import SealingStore

__all__ = [
    "MalformedFileError",
    "Plan",
    "RowRefusedError",
    "Summary",
    "checked",
    "csv_table",
    "fold",
    "held_events",
    "held_of",
    "holdings",
    "owned",
    "publish",
    "read_text",
    "revision_of",
]


class MalformedFileError(TransferError):
    """Raised when a file is not in its source's layout (a row whose field count is not the
    header's, a byte that is not UTF-8, a missing column): the message names the line and
    column; nothing of the file is written."""


class RowRefusedError(TransferError):
    """Raised for a row whose value cannot become an event; ``column`` names the column.
    The importer reports the row as refused, with its line, column and reason."""

    def __init__(self, column: str, message: str) -> None:
        super().__init__(f"column {column}: {message}")
        self.column = column


class Summary(msgspec.Struct, kw_only=True):
    """What an import read, wrote, skipped and refused."""

    read: int = 0
    """Rows read (the header not counted)."""
    written: int = 0
    """Events appended (with ``dry_run``: that would be appended)."""
    already: int = 0
    """Events the log held already (the same event id and body)."""
    skipped: dict[str, int] = {}
    """Rows that write nothing on purpose, counted by reason."""
    refused: list[LineProblem] = []
    """Rows that could not become an event, each with its line and reason."""
    reported: list[str] = []
    """What the operator should know that is no row's fault (an id gone from a release)."""
    dry_run: bool = False
    stopped: bool = False
    """Nothing was written because a row was refused (``on_error="stop"``)."""

    def skip(self, reason: str) -> None:
        """Count one row skipped for ``reason``."""
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def refuse(self, line: int, message: str) -> None:
        """Record one row refused at ``line``."""
        self.refused.append(LineProblem(line, message))


class Plan(msgspec.Struct, kw_only=True):
    """The events an import will append (with the line each comes from) and its summary."""

    summary: Summary = msgspec.field(default_factory=Summary)
    events: list[tuple[int, AnyEvent]] = []


def read_text(path: Path) -> str:
    """The file as text: UTF-8, a leading byte-order mark dropped (spreadsheet exports carry
    one). :class:`MalformedFileError` names the line and column of a byte that is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = data[: exc.start]
        line = before.count(b"\n") + 1
        column = exc.start - (before.rfind(b"\n") + 1) + 1
        raise MalformedFileError(
            f"line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 "
            "(the source ships UTF-8; re-export the file as UTF-8)"
        ) from None


_MAX_FIELD: Final = 1 << 20
CONCURRENT_READS: Final = 32
"""Incidents whose events planning reads at once."""


def csv_table(
    text: str,
    *,
    kind: str,
    required: Collection[str] = (),
    columns: Sequence[str] | None = None,
    delimiter: str = ",",
) -> list[tuple[int, dict[str, str]]]:
    """The rows of a delimited file, each with the line it starts on, as column → value.

    With ``columns`` the file has no header and every row must have exactly those fields
    (GDELT); otherwise the first row is the header and must name every ``required`` column.
    A row with another number of fields, or a field the CSV rules cannot read (an
    unterminated quote), raises :class:`MalformedFileError` naming line and column.
    """
    csv.field_size_limit(_MAX_FIELD)
    handle = io.StringIO(text, newline="")
    reader = (
        csv.reader(handle, delimiter=delimiter)
        if columns is None
        else csv.reader(handle, delimiter=delimiter, quoting=csv.QUOTE_NONE)
    )
    rows: list[tuple[int, dict[str, str]]] = []
    line = 1
    try:
        if columns is None:
            header = [name.strip() for name in next(reader, [])]
            missing = [name for name in required if name not in header]
            if missing:
                raise MalformedFileError(
                    f"line 1: not {kind}: no column {', '.join(missing)} in the header"
                )
        else:
            header = list(columns)
        line = reader.line_num + 1
        for fields in reader:
            if fields and len(fields) != len(header):
                column = min(len(fields), len(header)) + 1
                raise MalformedFileError(
                    f"line {line}, column {column}: {len(fields)} fields where {kind} has "
                    f"{len(header)} ({'the header' if columns is None else 'its layout'})"
                )
            if fields:
                rows.append((line, dict(zip(header, fields, strict=True))))
            line = reader.line_num + 1
    except csv.Error as exc:
        raise MalformedFileError(f"line {line}: {exc}") from None
    return rows


async def held_events(store: EventStore, entity: str) -> list[AnyEvent]:
    """The events of ``entity`` in log order, private text restored when the store can."""
    if isinstance(store, SealingStore):
        return [u.recorded.event for u in await store.open_entity(entity)]  # type: ignore[misc]
    return [r.event for r in await store.read_entity(entity)]  # type: ignore[misc]


FIGURES: Final = ("fatalities", "parties", "sources")
"""The fields a revision always carries (the figures, and what they rest on)."""


class Held(msgspec.Struct, kw_only=True):
    """What the log (and the rows planned so far) hold of one incident."""

    owner: str | None = None
    live: bool = True
    time: dt.datetime | None = None
    """The latest ``source_time`` of its events."""
    legacy_ids: set[str] = set()
    """Ids of its events written before events carried a source time."""
    fields: dict[str, Any] = {}
    """The report's fields as they stand (JSON builtins), to tell what a row changes."""


def held_of(events: Sequence[AnyEvent]) -> Held:
    """What ``events`` (an incident's, in log order) hold; a retracted incident, or one
    merged into another as its duplicate, is no longer live."""
    held = Held()
    reported: str | None = None
    for event in events:
        if isinstance(event, IncidentReported | CasualtiesRevised):
            fold(held, event)
            if event.source_time is None:
                held.legacy_ids.add(str(event.event_id))
            if isinstance(event, IncidentReported):
                reported = event.incident_id
        elif isinstance(event, IncidentRetracted) or (
            isinstance(event, IncidentMerged) and event.incident_id == reported
        ):
            held.live = False
    return held


def _fields(event: IncidentReported | CasualtiesRevised) -> dict[str, Any]:
    """Every field of ``event`` as JSON builtins, defaults included (``None`` when not
    given), so that a field set back to its default is seen to change."""
    return {k: msgspec.to_builtins(v) for k, v in msgspec.structs.asdict(event).items()}


def fold(held: Held, event: IncidentReported | CasualtiesRevised) -> None:
    """Take one report or revision into ``held``."""
    fields = _fields(event)
    if isinstance(event, IncidentReported):
        held.owner = event.source
        held.fields = {k: fields.get(k) for k in (*AMENDABLE, *FIGURES)}
    else:
        held.fields.update({k: fields.get(k) for k in FIGURES})
        held.fields.update(msgspec.to_builtins(amendments(event)))
    if event.source_time is not None and (held.time is None or event.source_time > held.time):
        held.time = event.source_time


def checked(submission: Mapping[str, Any], now: dt.datetime) -> AnyEvent:
    """The validated event; :class:`RowRefusedError` naming the fields at fault."""
    try:
        return parse_submission(msgspec.json.encode(submission), now=now)
    except InvalidEventError as exc:
        fields = ", ".join(dict.fromkeys(p.field for p in exc.problems))
        raise RowRefusedError(fields, str(exc)) from None


def revision_of(
    report: IncidentReported, held: Held, *, event_id: str, reason: str
) -> dict[str, Any] | None:
    """The ``incident.casualties_revised`` a newer version of a source's row means: its
    figures, sources and source time, and every other field of the report that changed
    from what ``held`` holds, and the fields it no longer gives (``cleared``); ``None`` when
    it changes nothing the ledger keeps."""
    now = _fields(report)
    changed = {
        k: now[k] for k in AMENDABLE if now.get(k) is not None and now.get(k) != held.fields.get(k)
    }
    if "occurred_start" in changed or "date_precision" in changed:
        changed["occurred_start"] = now["occurred_start"]
        changed["date_precision"] = now.get("date_precision", 1)
    cleared = [k for k in CLEARABLE if now.get(k) is None and held.fields.get(k) is not None]
    if not changed and not cleared and all(now.get(k) == held.fields.get(k) for k in FIGURES):
        return None
    revision = {
        "type": "incident.casualties_revised",
        "event_id": event_id,
        "source": report.source,
        "incident_id": report.incident_id,
        "reason": reason,
        **{k: now[k] for k in FIGURES if now.get(k) is not None},
        **changed,
    }
    if cleared:
        revision["cleared"] = cleared
    if now.get("source_time") is not None:
        revision["source_time"] = now["source_time"]
    return revision


async def holdings(
    store: EventStore, ids: Sequence[str], progress: ProgressCallback | None
) -> dict[str, Held | None]:
    """What the log holds of each incident id (``None``: not reported), read
    :data:`CONCURRENT_READS` at a time."""
    found: dict[str, Held | None] = {}
    for start in range(0, len(ids), CONCURRENT_READS):
        chunk = ids[start : start + CONCURRENT_READS]
        read = await asyncio.gather(*(held_events(store, f"incident:{i}") for i in chunk))
        for ident, events in zip(chunk, read, strict=True):
            held = held_of(events)
            found[ident] = held if held.owner is not None else None
        if progress is not None:
            progress(start + len(chunk), len(ids))
    return found


def owned(held: Held, ident: str, feed: str) -> None:
    """:class:`RowRefusedError` unless ``feed`` reported the incident (only the owner
    changes an incident)."""
    if held.owner is not None and held.owner != feed:
        raise RowRefusedError(
            "id",
            f"incident {ident} was reported by feed {held.owner!r}; only that feed changes "
            "it (import its newer rows as that feed)",
        )


async def publish(
    store: EventStore,
    plan: Plan,
    *,
    on_error: OnError = "stop",
    dry_run: bool = False,
    batch_size: int = 500,
    progress: ProgressCallback | None = None,
) -> Summary:
    """Append the plan's events in batches (see the module docstring); its summary.

    A batch the store refuses (a rule of the log: an incident of another feed, …) is
    refused row by row: with ``"stop"`` nothing after it is written (what was written
    stays: every batch is all-or-nothing, the file as a whole was valid), with ``"skip"``
    the row is left out and the rest goes on.
    """
    summary = plan.summary
    summary.dry_run = dry_run
    pending = list(plan.events)
    if summary.refused and on_error == "stop":
        summary.stopped = True
        return summary
    if dry_run:
        summary.written = len(pending)
        return summary
    done, total = 0, len(pending)
    while pending:
        batch = pending[:batch_size]
        try:
            results = await store.append([event for _, event in batch])
        except (AppendRejectedError, ConflictError, NotOwnerError, IdReusedError) as exc:
            line = batch[exc.index][0]
            summary.refuse(line, str(exc))
            written = batch[: exc.index]
            if written:
                results = await store.append([event for _, event in written])
                _count(summary, results)
            if on_error == "stop":
                summary.stopped = True
                return summary
            del pending[: exc.index + 1]
            continue
        _count(summary, results)
        del pending[: len(batch)]
        done += len(batch)
        if progress is not None:
            progress(done, total)
    if progress is not None:
        progress(total, total)
    return summary


def _count(summary: Summary, results: Sequence[object]) -> None:
    for result in results:
        if getattr(result, "status", None) == "appended":
            summary.written += 1
        else:
            summary.already += 1
