"""country-stance: what each country has said on each subject, and how fast it reacted.

Per (speaker country, subject), a :class:`StanceRow`: the latest stance (by ``issued_at``,
ties by log position), the number of statements, the mean Goldstein score, the first and
latest statement times, and the reaction latency. A joint statement counts for each of its
speakers. A retracted statement is removed as if it had never been issued: the entries of
every (country, subject) it touched are recomputed from the remaining statements.

Reaction latency, in hours: the country's first statement on the subject minus the earliest
``occurred_start`` (taken as midnight UTC) among the incidents named (``incident_ids``) by
any live statement on that subject, by any country, counting only incidents whose report has
been folded and which are not retracted (a merged duplicate still dates the events it
describes, so it keeps counting). ``None`` when no such incident is known. It can be
negative when a statement predates the incident it names.

Documents, by kind (``<pair>`` is ``<country>|<subject>``):

- ``timeline``: a :class:`Timeline` per pair, its live statements in order;
- ``stance``: the :class:`StanceRow` per pair, derived from its timeline;
- ``subject``: a :class:`Subject` per subject: countries that spoke, incidents named;
- ``statement``: a :class:`StatementRef` per live statement, to find its entries again;
- ``incident``: an :class:`IncidentDate` per reported, unretracted incident;
- ``mention``: a :class:`Mention` per incident named: the subjects naming it, so a late
  report or a retraction of the incident recomputes exactly the rows it dates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from events import (
    IncidentReported,
    IncidentRetracted,
    Recorded,
    StatementIssued,
    StatementRetracted,
    Target,
    position_key,
)

from .common import Readable, State, docs_of, get_doc
from .docs import Docs

NAME: Final = "country-stance"
VERSION: Final = 1


class TimelineEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One live statement as one of its speakers' timelines shows it."""

    statement_id: str
    subject: str
    issued_at: dt.datetime
    stance: str
    cameo_code: str
    goldstein: float | None
    speaker: str
    """The name of this country's speaker."""
    co_speakers: tuple[str, ...]
    """The other countries of a joint statement."""
    venue: str | None
    target: Target
    incident_ids: tuple[str, ...]
    position: str


class Timeline(msgspec.Struct, frozen=True, kw_only=True):
    """The live statements of one country on one subject, by (issued_at, position)."""

    country: str
    subject: str
    entries: tuple[TimelineEntry, ...]


class StanceRow(msgspec.Struct, frozen=True, kw_only=True):
    """Where one country stands on one subject."""

    country: str
    subject: str
    stance: str
    latest_statement_id: str
    statements: int
    mean_goldstein: float | None
    first_at: dt.datetime
    latest_at: dt.datetime
    latency_hours: float | None


class Subject(msgspec.Struct, frozen=True, kw_only=True):
    """The countries that spoke on a subject and the incidents its statements name."""

    countries: tuple[str, ...]
    incident_ids: tuple[str, ...]


class StatementRef(msgspec.Struct, frozen=True, kw_only=True):
    """Where a live statement's entries are: its subject and speaker countries."""

    subject: str
    countries: tuple[str, ...]


class IncidentDate(msgspec.Struct, frozen=True, kw_only=True):
    """When a reported, unretracted incident started."""

    occurred_start: dt.date


class Mention(msgspec.Struct, frozen=True, kw_only=True):
    """The subjects whose live statements name an incident."""

    subjects: tuple[str, ...]


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "timeline": Timeline,
    "stance": StanceRow,
    "subject": Subject,
    "statement": StatementRef,
    "incident": IncidentDate,
    "mention": Mention,
}


def initial() -> State:
    """The empty state."""
    return Docs()


def pair_id(country: str, subject: str) -> str:
    """The id of a (country, subject) document."""
    return f"{country}|{subject}"


def _order(entry: TimelineEntry) -> tuple[dt.datetime, tuple[int, int]]:
    return entry.issued_at, position_key(entry.position)


# --- the fold ------------------------------------------------------------------------------


def _entries(recorded: Recorded, event: StatementIssued) -> dict[str, TimelineEntry]:
    """The timeline entry of a statement for each of its speakers, by country."""
    countries = [s.country for s in event.speakers]
    return {
        speaker.country: TimelineEntry(
            statement_id=event.statement_id,
            subject=event.subject,
            issued_at=event.issued_at,
            stance=event.stance,
            cameo_code=event.cameo_code,
            goldstein=event.goldstein,
            speaker=speaker.name,
            co_speakers=tuple(c for c in countries if c != speaker.country),
            venue=event.venue,
            target=event.target,
            incident_ids=tuple(event.incident_ids),
            position=recorded.position,
        )
        for speaker in event.speakers
    }


def _latency(state: State, subject: Subject, first_at: dt.datetime) -> float | None:
    starts = [
        doc.occurred_start
        for ident in subject.incident_ids
        if (doc := get_doc(state, "incident", ident, IncidentDate)) is not None
    ]
    if not starts:
        return None
    midnight = dt.datetime.combine(min(starts), dt.time(), tzinfo=dt.UTC)
    return (first_at - midnight).total_seconds() / 3600


def _restance(state: State, country: str, subject_name: str) -> None:
    """Recompute one (country, subject) row from its timeline and the subject's incidents."""
    ident = pair_id(country, subject_name)
    timeline = get_doc(state, "timeline", ident, Timeline)
    subject = get_doc(state, "subject", subject_name, Subject)
    if timeline is None or not timeline.entries or subject is None:
        state.delete("stance", ident)
        return
    entries = timeline.entries
    scores = [e.goldstein for e in entries if e.goldstein is not None]
    state.put(
        "stance",
        ident,
        StanceRow(
            country=country,
            subject=subject_name,
            stance=entries[-1].stance,
            latest_statement_id=entries[-1].statement_id,
            statements=len(entries),
            mean_goldstein=sum(scores) / len(scores) if scores else None,
            first_at=entries[0].issued_at,
            latest_at=entries[-1].issued_at,
            latency_hours=_latency(state, subject, entries[0].issued_at),
        ),
    )


def _resubject(state: State, subject_name: str, countries: Iterable[str]) -> None:
    """Recompute a subject's countries and named incidents, and the incidents' mentions.

    ``countries`` are those whose timelines on the subject just changed (plus the known ones).
    """
    countries = set(countries)
    old = get_doc(state, "subject", subject_name, Subject)
    candidates = countries | set(old.countries if old else ())
    speaking: list[str] = []
    named: set[str] = set()
    for country in sorted(candidates):
        timeline = get_doc(state, "timeline", pair_id(country, subject_name), Timeline)
        if timeline is not None and timeline.entries:
            speaking.append(country)
            for entry in timeline.entries:
                named.update(entry.incident_ids)
    before = set(old.incident_ids if old else ())
    for incident in sorted(before | named):
        mention = get_doc(state, "mention", incident, Mention)
        subjects = set(mention.subjects if mention else ())
        if incident in named:
            subjects.add(subject_name)
        else:
            subjects.discard(subject_name)
        if subjects:
            state.put("mention", incident, Mention(subjects=tuple(sorted(subjects))))
        else:
            state.delete("mention", incident)
    if speaking:
        state.put(
            "subject",
            subject_name,
            Subject(countries=tuple(speaking), incident_ids=tuple(sorted(named))),
        )
    else:
        state.delete("subject", subject_name)
    # the others' latency changes only when the subject's incidents do
    for country in sorted(candidates if named != before else set(countries)):
        _restance(state, country, subject_name)


def _statement_issued(state: State, recorded: Recorded, event: StatementIssued) -> None:
    if get_doc(state, "statement", event.statement_id, StatementRef) is not None:
        _statement_retracted(state, event.statement_id)  # issued again: the last issue holds
    entries = _entries(recorded, event)
    for country, entry in entries.items():
        ident = pair_id(country, event.subject)
        timeline = get_doc(state, "timeline", ident, Timeline)
        ordered = tuple(sorted([*(timeline.entries if timeline else ()), entry], key=_order))
        state.put(
            "timeline", ident, Timeline(country=country, subject=event.subject, entries=ordered)
        )
    state.put(
        "statement",
        event.statement_id,
        StatementRef(subject=event.subject, countries=tuple(entries)),
    )
    _resubject(state, event.subject, entries)


def _statement_retracted(state: State, statement_id: str) -> None:
    ref = get_doc(state, "statement", statement_id, StatementRef)
    if ref is None:
        return
    for country in ref.countries:
        ident = pair_id(country, ref.subject)
        timeline = get_doc(state, "timeline", ident, Timeline)
        if timeline is None:
            continue
        kept = tuple(e for e in timeline.entries if e.statement_id != statement_id)
        if kept:
            state.put("timeline", ident, msgspec.structs.replace(timeline, entries=kept))
        else:
            state.delete("timeline", ident)
    state.delete("statement", statement_id)
    _resubject(state, ref.subject, ref.countries)


def _incident_dated(state: State, incident_id: str) -> None:
    """Recompute every row whose latency an incident's date can change."""
    mention = get_doc(state, "mention", incident_id, Mention)
    for subject_name in mention.subjects if mention else ():
        subject = get_doc(state, "subject", subject_name, Subject)
        for country in subject.countries if subject else ():
            _restance(state, country, subject_name)


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if isinstance(event, StatementIssued):
        _statement_issued(state, recorded, event)
    elif isinstance(event, StatementRetracted):
        _statement_retracted(state, event.statement_id)
    elif isinstance(event, IncidentReported):
        state.put("incident", event.incident_id, IncidentDate(occurred_start=event.occurred_start))
        _incident_dated(state, event.incident_id)
    elif isinstance(event, IncidentRetracted):
        state.delete("incident", event.incident_id)
        _incident_dated(state, event.incident_id)
    return state


# --- queries -------------------------------------------------------------------------------


def stances(
    state: Readable, *, subject: str | None = None, country: str | None = None
) -> list[StanceRow]:
    """Every (country, subject) row under the filters, sorted by (country, subject)."""
    rows = [
        row
        for row in docs_of(state, "stance", StanceRow).values()
        if (subject is None or row.subject == subject)
        and (country is None or row.country == country)
    ]
    return sorted(rows, key=lambda row: (row.country, row.subject))


def timeline(state: Readable, country: str, *, subject: str | None = None) -> list[TimelineEntry]:
    """A country's live statements (on one subject, or all), by (issued_at, position)."""
    docs = docs_of(state, "timeline", Timeline)
    if subject is not None:
        one = docs.get(pair_id(country, subject))
        return list(one.entries) if one else []
    entries = [e for t in docs.values() if t.country == country for e in t.entries]
    return sorted(entries, key=_order)
