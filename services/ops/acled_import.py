"""ACLED imports: an export, or ACLED's deletions list, planned against what the log holds.

``ledger import --acled FILE --feed NAME`` takes either file; it is recognised by its
header: ``event_id_cnty,deleted_timestamp`` is the deletions list, anything naming
``event_id_cnty``, ``event_date``, ``event_type``, ``country``, ``fatalities`` and
``timestamp`` an export (what each column becomes: :mod:`services.ops.acled`).

**An export.** ACLED overwrites a row in place under the same ``event_id_cnty`` with a newer
``timestamp``, so the rows of each event are applied in ``timestamp`` order, whatever the
file's order. A row not newer than what the ledger holds for that event (the latest
``source_time`` of the incident's events) writes nothing and is counted as skipped, so the
same file again, under any feed, writes nothing new. The first version of an event becomes
``incident.reported``; a newer one ``incident.casualties_revised`` carrying the figures, the
sources, ACLED's timestamp as ``source_time`` and every other field of the report that
changed (notes, place, actors, types, date). A newer row of an incident another feed
reported is refused (only the owner revises an incident).

**The deletions list.** Each listed event the ledger holds live is retracted with the
reason ``deleted by ACLED at <deleted_timestamp>``; one not in the ledger, or retracted
already, is skipped.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping
from typing import Any, Final

from events import CasualtiesRevised, IncidentReported
from services.ops.acled import (
    ACLED_NAMESPACE,
    AcledRowError,
    acled_event_id,
    acled_incident_id,
    acled_report,
    legacy_event_id,
    source_time,
)
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
from services.store.base import EventStore

__all__ = ["DELETIONS_COLUMNS", "EXPORT_COLUMNS", "plan_acled"]

EXPORT_COLUMNS: Final = (
    "event_id_cnty",
    "event_date",
    "event_type",
    "country",
    "fatalities",
    "timestamp",
)
"""The columns an ACLED export must have (of its 31)."""
DELETIONS_COLUMNS: Final = ("event_id_cnty", "deleted_timestamp")
"""The columns of ACLED's deletions list."""

NOT_NEWER: Final = "not newer than what the ledger holds for that event"
UNCHANGED: Final = "changed nothing the ledger keeps"
NOT_HELD: Final = "deleted event not in the ledger"
GONE: Final = "deleted event retracted already"


def _revision(
    report: IncidentReported, held: Held, row: Mapping[str, str]
) -> dict[str, Any] | None:
    when = source_time(row)
    return revision_of(
        report,
        held,
        event_id=str(acled_event_id(row)),
        reason=f"ACLED updated the row at {when:%Y-%m-%dT%H:%M:%SZ}",
    )


def _incident_of(row: Mapping[str, str]) -> str:
    return acled_incident_id(row)


async def _plan_export(
    store: EventStore,
    rows: list[tuple[int, dict[str, str]]],
    feed: str,
    progress: ProgressCallback | None,
) -> Plan:
    plan = Plan()
    plan.summary.read = len(rows)
    versions: dict[str, list[tuple[dt.datetime, int, dict[str, str]]]] = {}
    for line, row in rows:
        try:
            versions.setdefault(_incident_of(row), []).append((source_time(row), line, row))
        except AcledRowError as exc:
            plan.summary.refuse(line, str(exc))
    held_by = await holdings(store, list(versions), progress)
    now = dt.datetime.now(dt.UTC)
    for ident, found in versions.items():
        held = held_by[ident]
        for when, line, row in sorted(found, key=lambda one: (one[0], one[1])):
            if held is not None and (
                (held.time is not None and when <= held.time)
                or str(legacy_event_id(held.owner or feed, row)) in held.legacy_ids
            ):
                plan.summary.skip(NOT_NEWER)
                continue
            try:
                report = checked(acled_report(row, feed), now)
                assert isinstance(report, IncidentReported)  # noqa: S101  # acled_report's type
                if held is not None:
                    owned(held, ident, feed)
                if held is not None and not held.live:
                    plan.summary.skip("incident retracted or merged in the ledger")
                    continue
                revision = None if held is None else _revision(report, held, row)
            except RowRefusedError as exc:
                plan.summary.refuse(line, str(exc))
                continue
            if held is None:
                held = held_of([report])
                plan.events.append((line, report))
                continue
            if revision is None:
                plan.summary.skip(UNCHANGED)
                continue
            event = checked(revision, now)
            assert isinstance(event, CasualtiesRevised)  # noqa: S101  # the revision's type
            fold(held, event)
            plan.events.append((line, event))
    return plan


async def _plan_deletions(
    store: EventStore,
    rows: list[tuple[int, dict[str, str]]],
    feed: str,
    progress: ProgressCallback | None,
) -> Plan:
    plan = Plan()
    plan.summary.read = len(rows)
    ids = list(dict.fromkeys(_incident_of(row) for _, row in rows if row.get("event_id_cnty")))
    held_by = await holdings(store, ids, progress)
    now = dt.datetime.now(dt.UTC)
    for line, row in rows:
        try:
            ident = _incident_of(row)
            when = source_time(row, "deleted_timestamp")
            held = held_by.get(ident)
            if held is None:
                plan.summary.skip(NOT_HELD)
                continue
            if not held.live:
                plan.summary.skip(GONE)
                continue
            owned(held, ident, feed)
            key = f"{row['event_id_cnty'].strip()}|deleted|{row['deleted_timestamp'].strip()}"
            event = checked(
                {
                    "type": "incident.retracted",
                    "event_id": str(uuid.uuid5(ACLED_NAMESPACE, key)),
                    "source": feed,
                    "incident_id": ident,
                    "reason": f"deleted by ACLED at {when:%Y-%m-%dT%H:%M:%SZ}",
                },
                now,
            )
        except RowRefusedError as exc:
            plan.summary.refuse(line, str(exc))
            continue
        held.live = False
        plan.events.append((line, event))
    return plan


async def plan_acled(
    store: EventStore, text: str, feed: str, *, progress: ProgressCallback | None = None
) -> Plan:
    """The events an ACLED export or deletions list (``text``) means for ``feed``, given
    what ``store`` holds (see the module docstring); nothing is written."""
    first = text.split("\n", 1)[0]
    header = {name.strip().strip('"') for name in first.split(",")}
    if set(DELETIONS_COLUMNS) <= header and "event_date" not in header:
        rows = csv_table(text, kind="an ACLED deletions list", required=DELETIONS_COLUMNS)
        return await _plan_deletions(store, rows, feed, progress)
    rows = csv_table(text, kind="an ACLED export", required=EXPORT_COLUMNS)
    return await _plan_export(store, rows, feed, progress)
