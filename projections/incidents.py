"""incidents: the current state of every incident and the full history of what touched it.

One document per incident (kind ``incident``, an :class:`IncidentView`): every field of its
latest report, its current figures (those of the latest report or revision), its status
(``live``, ``retracted`` or ``merged``), the incident it was merged into, the duplicates
merged into it, its version, and its history, one :class:`HistoryEntry` per event in log
order. A merge appears in the history of both incidents.

``version`` counts the events whose entity is the incident (its report, revisions,
retraction, and its own merge into another), as the event store counts it; a merge *into*
the incident is listed in its history without bumping its version.

A merge may name a canonical incident whose report is folded later (the incidents live on
different partitions): the canonical's document then exists with ``reported`` false, holding
the duplicate and the merge, until its report fills it in. Such unreported documents are
left out of :func:`listing`.

Partitions: every event of an incident is in its own partition, and a merge in the
duplicate's. The state of one partition therefore holds, for a canonical incident of
another partition, a *stub*: a document with version 0, not reported, holding only the
merges into it (their history entries and duplicates). :func:`merge` combines the documents
that several parts hold under one id: the incident's own document (version 1 or more; at
most one part has it) with the stubs, histories interleaved by log position (ties by event
id), duplicates in the order of their merges, ``updated_at`` from the last entry.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Mapping, Sequence
from typing import Final, Literal

import msgspec

from events import (
    ERASED,
    CasualtiesRevised,
    Estimate,
    Fatalities,
    Grading,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    Place,
    Recorded,
    Source,
    VictimLine,
    position_key,
)

from .common import Readable, State, docs_of, get_doc, grouped
from .docs import Doc, Docs
from .errors import InvalidQueryError, MergeConflictError

NAME: Final = "incidents"
VERSION: Final = 1

Status = Literal["live", "retracted", "merged"]


class HistoryEntry(Doc, frozen=True, kw_only=True):
    """One event that touched an incident, as its history lists it.

    ``fatalities``/``victims``/``injured`` are set for reports and revisions; ``reason`` for
    revisions, retractions and merges; ``duplicate`` and ``into`` for merges.
    """

    type: str
    event_id: str
    position: str
    recorded_at: dt.datetime
    source: str
    reason: str | None = None
    fatalities: Fatalities | None = None
    victims: tuple[VictimLine, ...] | None = None
    injured: Estimate | None = None
    duplicate: str | None = None
    into: str | None = None


class IncidentView(Doc, frozen=True, kw_only=True):
    """An incident as it stands now, with its history."""

    incident_id: str
    status: Status = "live"
    reported: bool = False
    merged_into: str | None = None
    duplicates: tuple[str, ...] = ()
    version: int = 0
    occurred_start: dt.date | None = None
    occurred_end: dt.date | None = None
    date_precision: int | None = None
    country: str | None = None
    place: Place | None = None
    geo_precision: int | None = None
    violence_type: str | None = None
    event_type: str | None = None
    sub_event_type: str | None = None
    perpetrators: tuple[str, ...] = ()
    civilian_targeting: bool | None = None
    grading: Grading | None = None
    notes: str | None = None
    """The placeholder ``"[sealed]"`` (the read API restores the text), ``"[erased]"``."""
    fatalities: Fatalities | None = None
    victims: tuple[VictimLine, ...] = ()
    injured: Estimate | None = None
    sources: tuple[Source, ...] = ()
    reported_at: dt.datetime | None = None
    """When the report was recorded."""
    updated_at: dt.datetime | None = None
    """When the last event that touched the incident was recorded."""
    history: tuple[HistoryEntry, ...] = ()
    erased: bool = False
    """An operator erased the incident's private text (``incident.redacted``)."""


class IncidentRow(Doc, frozen=True, kw_only=True):
    """One incident in a :func:`listing`: what a list shows, without the history."""

    incident_id: str
    status: Status
    occurred_start: dt.date
    country: str
    adm1: str
    grading: Grading
    fatalities: Fatalities
    merged_into: str | None
    version: int


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {"incident": IncidentView}


def initial() -> State:
    """The empty state."""
    return Docs()


_json: Final = msgspec.json.Encoder()


def _uuid_text(value: uuid.UUID) -> str:
    """``str(value)`` (the canonical hyphenated form), four times faster."""
    return _json.encode(value)[1:-1].decode()


def _entry(recorded: Recorded, **fields: object) -> HistoryEntry:
    event = recorded.event
    return HistoryEntry(
        type=event.type,
        event_id=_uuid_text(event.event_id),
        position=recorded.position,
        recorded_at=recorded.recorded_at,
        source=event.source,
        **fields,  # type: ignore[arg-type]  # keyword fields of HistoryEntry
    )


def _touched(
    view: IncidentView, recorded: Recorded, entry: HistoryEntry, own: bool
) -> dict[str, object]:
    """The changes every event makes: history, time of update, and version if it is its own."""
    return {
        "history": (*view.history, entry),
        "updated_at": recorded.recorded_at,
        "version": view.version + (1 if own else 0),
    }


def _add_duplicate(
    state: State, recorded: Recorded, entry: HistoryEntry, into: str, duplicate: str
) -> None:
    """List a merge on its canonical incident (created unreported if not folded yet)."""
    canonical = get_doc(state, "incident", into, IncidentView) or IncidentView(incident_id=into)
    duplicates = canonical.duplicates
    if duplicate not in duplicates:
        duplicates = (*duplicates, duplicate)
    state.put(
        "incident",
        into,
        msgspec.structs.replace(
            canonical, **_touched(canonical, recorded, entry, own=False), duplicates=duplicates
        ),
    )


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if not isinstance(
        event,
        IncidentReported
        | CasualtiesRevised
        | IncidentRetracted
        | IncidentMerged
        | IncidentRedacted,
    ):
        return state
    ident = event.incident_id
    view = get_doc(state, "incident", ident, IncidentView) or IncidentView(incident_id=ident)
    if isinstance(event, IncidentRedacted):  # private text erased: status and figures stay
        entry = _entry(recorded, reason=event.reason)
        notes = None if view.notes is None else ERASED
        new = msgspec.structs.replace(
            view, **_touched(view, recorded, entry, own=True), erased=True, notes=notes
        )
    elif isinstance(event, IncidentReported):
        entry = _entry(
            recorded,
            fatalities=event.fatalities,
            victims=tuple(event.victims),
            injured=event.injured,
        )
        new = msgspec.structs.replace(
            view,
            **_touched(view, recorded, entry, own=True),
            reported=True,
            occurred_start=event.occurred_start,
            occurred_end=event.occurred_end,
            date_precision=event.date_precision,
            country=event.country,
            place=event.place,
            geo_precision=event.geo_precision,
            violence_type=event.violence_type,
            event_type=event.event_type,
            sub_event_type=event.sub_event_type,
            perpetrators=tuple(event.perpetrators),
            civilian_targeting=event.civilian_targeting,
            grading=event.grading,
            notes=event.notes,
            fatalities=event.fatalities,
            victims=tuple(event.victims),
            injured=event.injured,
            sources=tuple(event.sources),
            reported_at=recorded.recorded_at,
        )
    elif isinstance(event, CasualtiesRevised):
        entry = _entry(
            recorded,
            reason=event.reason,
            fatalities=event.fatalities,
            victims=tuple(event.victims),
            injured=event.injured,
        )
        new = msgspec.structs.replace(
            view,
            **_touched(view, recorded, entry, own=True),
            fatalities=event.fatalities,
            victims=tuple(event.victims),
            injured=event.injured,
        )
    elif isinstance(event, IncidentRetracted):
        entry = _entry(recorded, reason=event.reason)
        new = msgspec.structs.replace(
            view, **_touched(view, recorded, entry, own=True), status="retracted"
        )
    else:
        entry = _entry(recorded, reason=event.reason, duplicate=ident, into=event.into)
        touched = _touched(view, recorded, entry, own=True)
        if view.status == "retracted":  # a retracted incident stays retracted
            new = msgspec.structs.replace(view, **touched)
        else:
            new = msgspec.structs.replace(view, **touched, status="merged", merged_into=event.into)
            _add_duplicate(state, recorded, entry, event.into, ident)
    state.put("incident", ident, new)
    return state


# --- merging partitions --------------------------------------------------------------------


def _entry_order(entry: HistoryEntry) -> tuple[tuple[int, int], str]:
    return position_key(entry.position), entry.event_id


def _combined(ident: str, views: Sequence[IncidentView]) -> IncidentView:
    """One incident's documents from several parts as one (see the module docstring)."""
    own = [view for view in views if view.version > 0 or view.reported]
    if len(own) > 1:
        raise MergeConflictError(f"incident {ident!r} has its own events in {len(own)} parts")
    base = own[0] if own else IncidentView(incident_id=ident)
    history = tuple(sorted((e for view in views for e in view.history), key=_entry_order))
    duplicates = tuple(
        dict.fromkeys(e.duplicate for e in history if e.into == ident and e.duplicate)
    )
    return msgspec.structs.replace(
        base,
        history=history,
        duplicates=duplicates,
        updated_at=history[-1].recorded_at if history else base.updated_at,
    )


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    An id held by one part keeps its document; an id held by several is combined (see the
    module docstring; :class:`MergeConflictError` when two parts hold its own events). The
    parts are left as they are; the result is new, with no change pending, and the same
    whatever the order of ``parts``.
    """
    views: dict[str, IncidentView] = {}
    single, shared = grouped(parts, "incident", IncidentView)
    views.update(single)
    for ident, group in shared.items():
        views[ident] = _combined(ident, group)
    return Docs({"incident": views})


# --- queries -------------------------------------------------------------------------------


def get(state: Readable, incident_id: str) -> IncidentView | None:
    """The incident with its history, or ``None`` when no event named it."""
    return get_doc(state, "incident", incident_id, IncidentView)


def listing(
    state: Readable,
    *,
    country: str | None = None,
    adm1: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    page: int = 1,
    limit: int = 50,
) -> tuple[list[IncidentRow], int]:
    """One page of the reported incidents under the filters, and how many match in all.

    Newest ``occurred_start`` first, then by ``incident_id``. Dates are inclusive; ``status``
    (``live``, ``retracted``, ``merged``) is optional, every status is listed without it.
    """
    if page < 1:
        raise InvalidQueryError(f"page must be 1 or more, got {page}")
    if limit < 1:
        raise InvalidQueryError(f"limit must be 1 or more, got {limit}")
    if status is not None and status not in ("live", "retracted", "merged"):
        raise InvalidQueryError(f"status must be live, retracted or merged, got {status!r}")
    rows: list[IncidentRow] = []
    for view in docs_of(state, "incident", IncidentView).values():
        if (
            view.occurred_start is None
            or view.country is None
            or view.place is None
            or view.grading is None
            or view.fatalities is None
        ):
            continue  # not reported yet
        if (
            (country is not None and view.country != country)
            or (adm1 is not None and view.place.adm1 != adm1)
            or (date_from is not None and view.occurred_start < date_from)
            or (date_to is not None and view.occurred_start > date_to)
            or (status is not None and view.status != status)
        ):
            continue
        rows.append(
            IncidentRow(
                incident_id=view.incident_id,
                status=view.status,
                occurred_start=view.occurred_start,
                country=view.country,
                adm1=view.place.adm1,
                grading=view.grading,
                fatalities=view.fatalities,
                merged_into=view.merged_into,
                version=view.version,
            )
        )
    rows.sort(key=lambda row: row.incident_id)
    rows.sort(key=lambda row: row.occurred_start, reverse=True)
    start = (page - 1) * limit
    return rows[start : start + limit], len(rows)
