"""incidents: the current state of every incident; its history read from the log.

One document per incident (kind ``incident``, an :class:`IncidentView`): every field of its
latest report, the feed that reported it, its current figures (those of the latest report
or revision, with their qualifiers), its status (``live``, ``retracted`` or ``merged``),
the incident it was merged into, the duplicates merged into it, the feeds that dispute it,
its version, and how many entries its history has. The history itself (one
:class:`HistoryEntry` per event in log order, with the feed that published it and its own
sources) is not stored in the view: the log holds the incident's events, the store reads
them by its per-entity index, and :func:`history_of` folds them with this same fold into a
:class:`~projections.incident_docs.Traced` state, which keeps the entries the view only
counts. Each distinct source its revisions cite beside its report's is marked once (kind
``source``), so the document counts them all (a listing's ``sources``). A merge is in the
history of both incidents. A dispute (``incident.disputed``, by a feed that does not own
the incident) appears in its history and flags it (``disputed``); it changes no figure.

``version`` counts the events of the incident's owner and operators that change it (its
report, revisions, retraction, redaction and its own merge into another), as the event
store counts them; a merge *into* the incident and a dispute are listed in its history
without bumping its version (another feed's dispute must not move the version its owner
publishes against).

A merge may name a canonical incident whose report is folded later (the incidents live on
different partitions): the canonical's document then exists with ``reported`` false, holding
the duplicate and the merge, until its report fills it in. Such unreported documents are
left out of :func:`listing`.

Queries: :func:`listing` pages the incidents under a
:class:`~projections.filters.VictimsFilter` and a status (live ones by default);
:func:`behind` pages the ids of the incidents behind a community-victims figure (the
incidents it sums, under the same filter, of one community or all).

Partitions: every event of an incident is in its own partition, and a merge in the
duplicate's. The state of one partition therefore holds, for a canonical incident of
another partition, a *stub*: a document with version 0, not reported, holding only the
merges into it (counted in its history, its duplicates). :func:`merge`
(:mod:`projections.incident_merge`) combines the documents that several parts hold under one
id: the incident's own document (version 1 or more; at most one part has it) with the stubs,
histories counted together, duplicates in the order of their merges, ``updated_at`` the
latest.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

import msgspec

from events import (
    ERASED,
    CasualtiesRevised,
    Event,
    IncidentDisputed,
    IncidentEvent,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    Recorded,
    Source,
    amendments,
    position_key,
)

from .common import Readable, State
from .docs import VALUES, Docs, Key, keep_values_bounded
from .errors import InconsistentStateError
from .incident_docs import (
    INCIDENT,
    SOURCE,
    HistoryEntry,
    IncidentFields,
    IncidentRow,
    IncidentView,
    Status,
    Traced,
    add_entry,
    cite,
    report_sources,
    source_key,
)
from .incident_merge import merge
from .incident_queries import LISTED, behind, document, listed, listing, said_at

NAME: Final = "incidents"
VERSION: Final = 7
"""5: the history is no longer stored in the view (read from the log, :func:`history_of`);
6: the rows are kept in a listing index (:data:`LISTED_KINDS`); 7: the index's groups
name the adm1 too, and each row the days its window of occurrence spans."""

DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    INCIDENT: IncidentView,
    SOURCE: Source,
}

ROW_LEAVES: Final = frozenset(
    (
        "notes",
        "sub_event_type",
        "parties",
        "sides",
        "source_time",
        "event_clarity",
        "reported_at",
        "updated_at",
    )
)
"""The fields of an incident that only its single answer shows: the view's row leaves them
at their defaults (the answer folds the incident's events from the log, :func:`incident_of`)."""

OWN_KINDS: Final = frozenset((INCIDENT, SOURCE))
"""The kinds of one incident's documents (:attr:`projections.Projection.own_kinds`): its
row and the sources its revisions cite."""


def own_keys(event: Event) -> tuple[Key, ...]:
    """The documents an event may read: its incident's row, the marks of the sources a
    revision cites, and for a merge the row of the incident it goes into."""
    if not isinstance(event, IncidentEvent):
        return ()
    ident = event.incident_id
    if isinstance(event, IncidentMerged):
        return ((INCIDENT, ident), (INCIDENT, event.into))
    if isinstance(event, CasualtiesRevised):
        return ((INCIDENT, ident), *((SOURCE, source_key(ident, s)) for s in event.sources))
    return ((INCIDENT, ident),)


LISTED_KINDS: Final = {INCIDENT: listed}
"""The kinds kept in a listing index (:attr:`projections.Projection.listed`): the rows,
which :func:`listing` pages."""

READ_KINDS: Final = (INCIDENT,)
"""The kinds the read side holds of this view (its answers read the incidents only)."""


def initial() -> State:
    """The empty state."""
    return Docs()


def _uuid_text(value: uuid.UUID) -> str:
    """``str(value)`` (the canonical hyphenated form), four times faster."""
    text: str = msgspec.to_builtins(value)
    return text


def _tag(cls: type[Event]) -> str:
    """The permanent tag of an event class, as its history entries name it."""
    return str(cls.__struct_config__.tag)


_REPORTED: Final = _tag(IncidentReported)
_REVISED: Final = _tag(CasualtiesRevised)
_RETRACTED: Final = _tag(IncidentRetracted)
_MERGED: Final = _tag(IncidentMerged)
_REDACTED: Final = _tag(IncidentRedacted)
_DISPUTED: Final = _tag(IncidentDisputed)


def _view(state: State, ident: str) -> IncidentView:
    """The incident's document, or a new unreported one when no event named it yet."""
    view = state.get(INCIDENT, ident)
    if view is None:
        return IncidentView(incident_id=ident)
    if not isinstance(view, IncidentView):
        raise InconsistentStateError(f"incident {ident!r} is a {type(view).__name__}")
    return view


# Each fold below spells out its history entry and its replace() in full, on purpose: one
# helper taking the fields as **kwargs (entry head, history append, version bump) halved
# this fold's speed (183k against 367k events/s, measured side by side).


def _reported(state: State, recorded: Recorded, event: IncidentReported) -> None:
    ident = event.incident_id
    view = _view(state, ident)
    at = recorded.recorded_at
    keep_values_bounded()
    share = VALUES.setdefault  # one object per value many incidents repeat (REPEATED)
    fatalities, victims, injured = event.fatalities, tuple(event.victims), event.injured
    fatalities, victims = share(fatalities, fatalities), share(victims, victims)
    perpetrators, place = tuple(event.perpetrators), event.place
    entry = (
        HistoryEntry(
            type=_REPORTED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            sources=tuple(event.sources),
            fatalities=fatalities,
            victims=victims,
            injured=injured,
            parties=tuple(event.parties) or None,
            source_time=event.source_time,
        )
        if type(state) is Traced
        else None
    )
    new = msgspec.structs.replace(
        view,
        history_total=add_entry(state, view, entry),
        updated_at=at if entry else None,
        version=view.version + 1,
        reported=True,
        source_count=report_sources(event.sources),
        feed=share(event.source, event.source),
        occurred_start=share(event.occurred_start, event.occurred_start),
        occurred_end=event.occurred_end and share(event.occurred_end, event.occurred_end),
        date_precision=event.date_precision,
        country=share(event.country, event.country),
        place=share(place, place),
        geo_precision=event.geo_precision,
        violence_type=event.violence_type and share(event.violence_type, event.violence_type),
        event_type=event.event_type and share(event.event_type, event.event_type),
        perpetrators=share(perpetrators, perpetrators),
        civilian_targeting=event.civilian_targeting,
        grading=event.grading,
        fatalities=fatalities,
        victims=victims,
        injured=injured and share(injured, injured),
        sources=tuple(event.sources),
    )
    if entry is not None:  # the whole incident, as an answer shows it
        new = msgspec.structs.replace(
            new,
            parties=tuple(event.parties),
            sides=event.sides,
            source_time=event.source_time,
            event_clarity=event.event_clarity,
            sub_event_type=event.sub_event_type,
            notes=event.notes,
            reported_at=at,
        )
    state.put(INCIDENT, ident, new)


def _revised(state: State, recorded: Recorded, event: CasualtiesRevised) -> None:
    ident = event.incident_id
    view = _view(state, ident)
    at = recorded.recorded_at
    amended = amendments(event)
    if "perpetrators" in amended:
        amended["perpetrators"] = tuple(amended["perpetrators"])
    changed = tuple(amended)
    if type(state) is not Traced:  # the view's row keeps what listings read
        for name in ROW_LEAVES.intersection(changed):
            del amended[name]
    fatalities, victims, injured = event.fatalities, tuple(event.victims), event.injured
    share = VALUES.setdefault  # as a report's (REPEATED)
    fatalities, victims = share(fatalities, fatalities), share(victims, victims)
    entry = (
        HistoryEntry(
            type=_REVISED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            sources=tuple(event.sources),
            reason=event.reason,
            fatalities=fatalities,
            victims=victims,
            injured=injured,
            parties=tuple(event.parties) or None,
            source_time=event.source_time,
            changed=changed,
        )
        if type(state) is Traced
        else None
    )
    new = msgspec.structs.replace(
        view,
        history_total=add_entry(state, view, entry),
        updated_at=at if entry else None,
        version=view.version + 1,
        fatalities=fatalities,
        victims=victims,
        injured=injured,
        source_count=cite(state, view, event.sources),
        **amended,
    )
    if entry is not None:  # the whole incident, as an answer shows it
        new = msgspec.structs.replace(
            new,
            parties=tuple(event.parties),
            source_time=event.source_time or view.source_time,
        )
    state.put(INCIDENT, ident, new)


def _retracted(state: State, recorded: Recorded, event: IncidentRetracted) -> None:
    ident = event.incident_id
    view = _view(state, ident)
    at = recorded.recorded_at
    entry = (
        HistoryEntry(
            type=_RETRACTED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            reason=event.reason,
        )
        if type(state) is Traced
        else None
    )
    new = msgspec.structs.replace(
        view,
        history_total=add_entry(state, view, entry),
        updated_at=at if entry else None,
        version=view.version + 1,
        status="retracted",
    )
    state.put(INCIDENT, ident, new)


def _merged(state: State, recorded: Recorded, event: IncidentMerged) -> None:
    ident, into = event.incident_id, event.into
    view = _view(state, ident)
    at = recorded.recorded_at
    entry = (
        HistoryEntry(
            type=_MERGED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            reason=event.reason,
            duplicate=ident,
            into=into,
        )
        if type(state) is Traced
        else None
    )
    total, version = add_entry(state, view, entry), view.version + 1
    if view.status == "retracted":  # a retracted incident stays retracted
        new = msgspec.structs.replace(
            view, history_total=total, updated_at=at if entry else None, version=version
        )
    else:
        new = msgspec.structs.replace(
            view,
            history_total=total,
            updated_at=at if entry else None,
            version=version,
            status="merged",
            merged_into=into,
        )
        # The canonical incident lists the merge (created unreported if not folded yet);
        # a merge into it does not bump its version.
        canonical = _view(state, into)
        duplicates, merges = canonical.duplicates, canonical.merges
        if ident not in duplicates:
            duplicates = (*duplicates, ident)
            merges = (*merges, (recorded.position, _uuid_text(event.event_id)))
        state.put(
            "incident",
            into,
            msgspec.structs.replace(
                canonical,
                history_total=add_entry(state, canonical, entry),
                updated_at=at if entry else None,
                duplicates=duplicates,
                merges=merges,
            ),
        )
    state.put(INCIDENT, ident, new)


def _redacted(state: State, recorded: Recorded, event: IncidentRedacted) -> None:
    """Private text erased: status and figures stay."""
    ident = event.incident_id
    view = _view(state, ident)
    at = recorded.recorded_at
    entry = (
        HistoryEntry(
            type=_REDACTED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            reason=event.reason,
        )
        if type(state) is Traced
        else None
    )
    new = msgspec.structs.replace(
        view,
        history_total=add_entry(state, view, entry),
        updated_at=at if entry else None,
        version=view.version + 1,
        erased=True,
        notes=None if view.notes is None else ERASED,
    )
    state.put(INCIDENT, ident, new)


def _disputed(state: State, recorded: Recorded, event: IncidentDisputed) -> None:
    """Another feed disputes the incident: listed and flagged; figures, status and version
    stay."""
    ident = event.incident_id
    view = _view(state, ident)
    at = recorded.recorded_at
    entry = (
        HistoryEntry(
            type=_DISPUTED,
            event_id=_uuid_text(event.event_id),
            position=recorded.position,
            recorded_at=at,
            source=event.source,
            sources=tuple(event.sources),
            reason=event.reason,
        )
        if type(state) is Traced
        else None
    )
    feeds = view.disputed_by
    if event.source not in feeds:
        feeds = (*feeds, event.source)
    new = msgspec.structs.replace(
        view,
        history_total=add_entry(state, view, entry),
        updated_at=at if entry else None,
        disputed_by=feeds,
    )
    state.put(INCIDENT, ident, new)


_FOLDS: Final[dict[type[Event], Callable[[State, Recorded, Any], None]]] = {
    IncidentReported: _reported,
    CasualtiesRevised: _revised,
    IncidentRetracted: _retracted,
    IncidentMerged: _merged,
    IncidentRedacted: _redacted,
    IncidentDisputed: _disputed,
}
"""How each event type the projection reads changes the state, by exact type (the decoded
events are of these classes, never subclasses)."""


READS: Final[frozenset[type[Event]]] = frozenset(_FOLDS)
"""The event types ``apply`` reads, by exact type: it leaves the state as it is for any
other (a rebuild does not hand it those)."""


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    fold = _FOLDS.get(type(event))
    if fold is not None:
        fold(state, recorded, event)
    return state


def _log_order(recorded: Recorded) -> tuple[tuple[int, int], str]:
    return position_key(recorded.position), _uuid_text(recorded.event.event_id)


def history_of(incident_id: str, recorded: Iterable[Recorded]) -> tuple[HistoryEntry, ...]:
    """The history of an incident from the events that touched it (its own and the merges
    into it, as the store's per-entity index lists them, in any order): this projection's
    fold applied to them alone, in log order (position, then event id, as :func:`merge`
    orders the entries of several partitions).

    It equals the history the fold of the whole log makes for the incident: each entry
    depends only on its event. (A merge of a retracted duplicate, which the store refuses,
    would be listed here though the whole fold leaves it out of the canonical's history.)
    """
    state = Traced()
    for one in sorted(recorded, key=_log_order):
        apply(state, one)
    return tuple(state.history.get(incident_id, ()))


def incident_of(
    incident_id: str, recorded: Iterable[Recorded], entries: int | None = None
) -> IncidentView | None:
    """The whole incident, as its single answer shows it (every field of its latest report,
    its whole history), from the events that touched it (as :func:`history_of` takes them):
    this projection's fold applied to them alone, in log order, stopping once its history
    holds ``entries`` (the count of the view's row, so the answer stands where the view
    does); ``None`` when no event named it."""
    state = Traced()
    for one in sorted(recorded, key=_log_order):
        if entries is not None and len(state.history.get(incident_id, ())) >= entries:
            break
        apply(state, one)
    return get(state, incident_id)


def get(state: Readable, incident_id: str) -> IncidentView | None:
    """The incident with the history a :class:`~projections.incident_docs.Traced` state
    kept of it (none in a view's state: :func:`history_of`), or ``None`` when no event named
    it."""
    view = document(state, incident_id)
    if view is None or not isinstance(state, Traced):
        return view
    return msgspec.structs.replace(view, history=tuple(state.history.get(incident_id, ())))


__all__ = [
    "DOC_TYPES",
    "INCIDENT",
    "LISTED",
    "LISTED_KINDS",
    "NAME",
    "OWN_KINDS",
    "READS",
    "READ_KINDS",
    "ROW_LEAVES",
    "SOURCE",
    "VERSION",
    "HistoryEntry",
    "IncidentFields",
    "IncidentRow",
    "IncidentView",
    "Status",
    "Traced",
    "apply",
    "behind",
    "document",
    "get",
    "history_of",
    "incident_of",
    "initial",
    "listing",
    "merge",
    "own_keys",
    "said_at",
]
