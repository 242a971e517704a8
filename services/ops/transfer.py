"""Moving events in and out of the log: JSON-lines export and import.

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

The sources' own files (ACLED, UCDP GED, GDELT) are planned whole and then appended through
the same path (:mod:`services.ops.importer`).
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import IO, Any, Final, Literal

import msgspec
import redis.asyncio as aioredis

from events import (
    AnyEvent,
    CodecError,
    InvalidEventError,
    Problem,
    encode,
    entry_data,
    parse_submission,
    position_key,
    recorded_at_of,
)
from services.errors import LedgerError
from services.projector.replay import ProgressCallback
from services.resp import text
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EventStore,
    IdReusedError,
    NotOwnerError,
)
from services.store.keyring import Keyring
from services.store.keys import Keys
from services.store.log import LogReader, recorded_of, stream_pages
from services.store.sealing import open_records

__all__ = [
    "ImportReport",
    "LineProblem",
    "OnError",
    "TransferError",
    "count_lines",
    "export_events",
    "import_lines",
    "parse_line",
]

OnError = Literal["stop", "skip"]

_PAGE: Final = 1000


class TransferError(LedgerError):
    """Root of the errors of export and import."""


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
    """The entries of one partition from ``low`` to ``high`` (both included)."""
    async for page in stream_pages(client, log, low=low, high=high):
        for entry in page:
            yield entry


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
    operator erased it, see :mod:`services.protection.erasure`); without, events are written
    as stored, with placeholders, and an import of the file would not bring the text back.

    On several partitions the events of every partition are written in the order of
    (position, partition), each line as on one partition (positions are entry ids within
    their partition). ``start`` and ``end`` are then one position bounding every partition,
    or one per partition joined by commas (as :func:`services.store.positions.joined` writes
    them).
    """
    keys = Keys.of(prefix)
    lows = _bounds(start, keys.partitions, "-")
    highs = _bounds(end, keys.partitions, "+")
    total = 0
    for partition in range(keys.partitions):
        total += await LogReader(client, keys, partition).length()
    written = 0
    since = 0
    async for position, raw in _merged(client, keys, lows, highs):
        fields = {text(k): v for k, v in raw.items()}
        if "data" not in fields and "d" not in fields:
            continue
        data = entry_data(fields)
        blob = fields.get("sealed")
        if keyring is not None and blob is not None:
            data = await _unsealed_data(keyring, position, fields)
        line = _Line(
            position=position,
            recorded_at=recorded_at_of(position),
            type=text(fields.get("type", "")),
            v=int(text(fields.get("v", "0")) or 0),
            event=msgspec.Raw(data),
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


async def _unsealed_data(keyring: Keyring, position: str, fields: Mapping[str, Any]) -> bytes:
    """The event JSON of a sealed entry with its private text restored."""
    recorded = recorded_of(position, fields)
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
    return parse_submission(msgspec.json.encode(event), now=dt.datetime.now(dt.UTC))


def _problem(field: str, message: str) -> Problem:
    return Problem(field, message)


class Batcher:
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
            except (AppendRejectedError, ConflictError, NotOwnerError, IdReusedError) as exc:
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
    batcher = Batcher(store, report, on_error, batch_size)
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


def count_lines(handle: IO[bytes]) -> int:
    """How many lines a file holds (for a progress total); the handle is rewound."""
    total = sum(1 for _ in handle)
    handle.seek(0)
    return total
