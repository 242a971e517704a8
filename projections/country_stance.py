"""country-stance: what each country has said on each subject, and how fast it reacted.

Per (speaker country, subject), a :class:`StanceRow`: the country's stance by the rule of
:mod:`projections.stance_rule` — its highest-ranked speaker's latest statement, ``mixed``
when statements of that rank that cannot be put in order (their times overlap within their
precision) disagree — with the statements it rests on (:class:`Basis`: id, speaker role and
title, CAMEO code, Goldstein, time and precision), the number of statements, the mean
Goldstein score, the first and latest statement times, and the reaction latency. Timelines
are in order of ``issued_at`` (the start of a day or range), ties by log position. A joint
statement counts for each of its speakers, each with its own role. A retracted statement is
removed as if it had never been issued: the entries of every (country, subject) it touched
are recomputed from the remaining statements.

Reaction latency, in hours: the country's first statement on the subject minus the earliest
``occurred_start`` (taken as midnight UTC) among the incidents named (``incident_ids``) by
any live statement on that subject, by any country, counting only incidents whose report has
been folded and which are not retracted (a merged duplicate still dates the events it
describes, so it keeps counting). ``None`` when no such incident is known, or when the first
statement's time is known only within a range. It can be negative when a statement predates
the incident it names.

The documents, by kind, are described in :mod:`projections.stance_docs`.

A statement costs constant work per speaker (the timelines keep running Goldstein sums and
the subject its named incidents and earliest date), plus one row per speaking country when
the subject's earliest incident moves; a retraction recomputes only the timelines of the
retracted statement, from their own entries. Internal documents are stored as JSON arrays
(``array_like``); ``stance`` rows and timeline entries keep their field names.

Partitions: a statement's entries, reference and named incidents come from its own events,
an incident's date from the incident's, so the state of one partition holds the timelines,
subjects and mentions of that partition's statements and the dates of its incidents; its
``earliest`` dates and ``stance`` rows see only those. :func:`merge` interleaves timelines
of one key (by ``issued_at``, position, then statement id, so that equal positions of two
partitions order the same way every time), joins the subjects (countries, named counts)
and mentions, gathers statements and incident dates, then re-derives every subject's
``earliest`` and every ``stance`` row from the merged documents.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from events import (
    ERASED,
    Event,
    IncidentReported,
    IncidentRetracted,
    Recorded,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
)

from .common import Readable, State, get_doc, joined, union
from .docs import Docs
from .stance_docs import (
    Basis,
    IncidentDate,
    Mention,
    StanceRow,
    StatementRef,
    Subject,
    Timeline,
    TimelineEntry,
    appended,
    order,
    pair_id,
    row_of,
    stances,
    timeline,
    timeline_of,
)

NAME: Final = "country-stance"
VERSION: Final = 4
"""4: the same documents; the stored view keeps its incident dates in small hashes (a new
layout of the stored view, so it is built again)."""


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


# --- the fold ------------------------------------------------------------------------------


def _entries(recorded: Recorded, event: StatementIssued) -> dict[str, TimelineEntry]:
    """The timeline entry of a statement for each of its speakers, by country."""
    countries = [s.country for s in event.speakers]
    incident_ids = tuple(event.incident_ids)
    return {
        speaker.country: TimelineEntry(
            statement_id=event.statement_id,
            subject=event.subject,
            issued_at=event.issued_at,
            issued_precision=event.issued_precision,
            issued_end=event.issued_end,
            stance=event.stance,
            cameo_code=event.cameo_code,
            goldstein=event.goldstein,
            speaker=speaker.name,
            role=speaker.role,
            title=speaker.title,
            co_speakers=tuple(c for c in countries if c != speaker.country),
            venue=event.venue,
            target=event.target,
            incident_ids=incident_ids,
            position=recorded.position,
        )
        for speaker in event.speakers
    }


def _restance(state: State, country: str, subject_name: str) -> None:
    """Recompute one (country, subject) row from its timeline and the subject."""
    ident = pair_id(country, subject_name)
    row = row_of(
        get_doc(state, "timeline", ident, Timeline),
        get_doc(state, "subject", subject_name, Subject),
    )
    if row is None:
        state.delete("stance", ident)
    else:
        state.put("stance", ident, row)


def _earliest(state: State, named: Iterable[str]) -> dt.date | None:
    """The earliest start among the dated incidents of ``named``."""
    starts = [
        doc.occurred_start
        for ident in named
        if (doc := get_doc(state, "incident", ident, IncidentDate)) is not None
    ]
    return min(starts) if starts else None


def _mentioned(state: State, incident_id: str, subject_name: str, *, named: bool) -> None:
    """Add ``subject_name`` to (or remove it from) the subjects naming ``incident_id``."""
    mention = get_doc(state, "mention", incident_id, Mention)
    subjects = set(mention.subjects if mention else ())
    if named:
        subjects.add(subject_name)
    else:
        subjects.discard(subject_name)
    if subjects:
        state.put("mention", incident_id, Mention(subjects=tuple(sorted(subjects))))
    else:
        state.delete("mention", incident_id)


def _resubject(
    state: State,
    subject_name: str,
    *,
    speaking: Mapping[str, bool],
    named: Iterable[str] = (),
    unnamed: Iterable[str] = (),
) -> None:
    """Update a subject after one statement changed, and recompute the rows it affects.

    ``speaking`` maps each speaker country of the statement to whether it still has a live
    statement on the subject; ``named``/``unnamed`` are the incidents the statement names,
    counted up or down. Only those countries' rows are recomputed, unless the subject's
    earliest incident moved (then every speaking country's latency changed).
    """
    old = get_doc(state, "subject", subject_name, Subject)
    countries = set(old.countries) if old else set()
    counts = dict(old.named) if old else {}
    earliest = old.earliest if old else None
    for country, live in speaking.items():
        if live:
            countries.add(country)
        else:
            countries.discard(country)
    recompute = False
    for incident in named:
        counts[incident] = counts.get(incident, 0) + 1
        if counts[incident] == 1:
            _mentioned(state, incident, subject_name, named=True)
            dated = get_doc(state, "incident", incident, IncidentDate)
            if dated is not None and (earliest is None or dated.occurred_start < earliest):
                earliest = dated.occurred_start
    for incident in unnamed:
        left = counts.get(incident, 0) - 1
        if left > 0:
            counts[incident] = left
            continue
        counts.pop(incident, None)
        _mentioned(state, incident, subject_name, named=False)
        dated = get_doc(state, "incident", incident, IncidentDate)
        recompute = recompute or (dated is not None and dated.occurred_start == earliest)
    if recompute:
        earliest = _earliest(state, counts)
    if countries:
        new = Subject(countries=tuple(sorted(countries)), named=counts, earliest=earliest)
        if new != old:
            state.put("subject", subject_name, new)
    else:
        state.delete("subject", subject_name)
    moved = earliest != (old.earliest if old else None)
    for country in sorted(countries.union(speaking) if moved else speaking):
        _restance(state, country, subject_name)


def _statement_issued(state: State, recorded: Recorded, event: StatementIssued) -> None:
    if get_doc(state, "statement", event.statement_id, StatementRef) is not None:
        _statement_retracted(state, event.statement_id)  # issued again: the last issue holds
    entries = _entries(recorded, event)
    for country, entry in entries.items():
        ident = pair_id(country, event.subject)
        timeline = get_doc(state, "timeline", ident, Timeline)
        state.put("timeline", ident, appended(timeline, country, entry))
    state.put(
        "statement",
        event.statement_id,
        StatementRef(subject=event.subject, countries=tuple(entries)),
    )
    _resubject(
        state,
        event.subject,
        speaking=dict.fromkeys(entries, True),
        named=dict.fromkeys(event.incident_ids),
    )


def _statement_retracted(state: State, statement_id: str) -> None:
    ref = get_doc(state, "statement", statement_id, StatementRef)
    if ref is None:
        return
    speaking: dict[str, bool] = {}
    unnamed: tuple[str, ...] = ()
    for country in ref.countries:
        ident = pair_id(country, ref.subject)
        timeline = get_doc(state, "timeline", ident, Timeline)
        if timeline is None:
            continue
        gone = [e for e in timeline.entries if e.statement_id == statement_id]
        if gone:
            unnamed = gone[0].incident_ids
        kept = tuple(e for e in timeline.entries if e.statement_id != statement_id)
        speaking[country] = bool(kept)
        if kept:
            state.put("timeline", ident, timeline_of(country, ref.subject, kept))
        else:
            state.delete("timeline", ident)
    state.delete("statement", statement_id)
    _resubject(state, ref.subject, speaking=speaking, unnamed=dict.fromkeys(unnamed))


def _statement_redacted(state: State, statement_id: str) -> None:
    """Mark a live statement's entries erased; its stance, counts and scores stay."""
    ref = get_doc(state, "statement", statement_id, StatementRef)
    if ref is None:  # retracted already: nothing of it is shown
        return
    for country in ref.countries:
        ident = pair_id(country, ref.subject)
        timeline = get_doc(state, "timeline", ident, Timeline)
        if timeline is None:
            continue
        entries = tuple(
            msgspec.structs.replace(e, speaker=ERASED, erased=True)
            if e.statement_id == statement_id
            else e
            for e in timeline.entries
        )
        state.put("timeline", ident, msgspec.structs.replace(timeline, entries=entries))


def _incident_dated(state: State, incident_id: str, before: dt.date | None) -> None:
    """Recompute the rows whose latency an incident's (new, changed or removed) date moves."""
    mention = get_doc(state, "mention", incident_id, Mention)
    if mention is None:
        return
    now = get_doc(state, "incident", incident_id, IncidentDate)
    after = now.occurred_start if now else None
    for subject_name in mention.subjects:
        subject = get_doc(state, "subject", subject_name, Subject)
        if subject is None:
            continue
        earliest = subject.earliest
        if after is not None and (earliest is None or after < earliest):
            earliest = after
        elif before is not None and before == earliest and after != before:
            earliest = _earliest(state, subject.named)
        if earliest != subject.earliest:
            state.put("subject", subject_name, msgspec.structs.replace(subject, earliest=earliest))
            for country in subject.countries:
                _restance(state, country, subject_name)


def _incident_date(state: State, incident_id: str) -> dt.date | None:
    doc = get_doc(state, "incident", incident_id, IncidentDate)
    return doc.occurred_start if doc else None


READS: Final[frozenset[type[Event]]] = frozenset(
    {StatementIssued, StatementRetracted, StatementRedacted, IncidentReported, IncidentRetracted}
)
"""The event types ``apply`` reads, by exact type: it leaves the state as it is for any
other (a rebuild does not hand it those)."""


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if isinstance(event, StatementIssued):
        _statement_issued(state, recorded, event)
    elif isinstance(event, StatementRetracted):
        _statement_retracted(state, event.statement_id)
    elif isinstance(event, StatementRedacted):
        _statement_redacted(state, event.statement_id)
    elif isinstance(event, IncidentReported):
        before = _incident_date(state, event.incident_id)
        state.put("incident", event.incident_id, IncidentDate(occurred_start=event.occurred_start))
        _incident_dated(state, event.incident_id, before)
    elif isinstance(event, IncidentRetracted):
        before = _incident_date(state, event.incident_id)
        state.delete("incident", event.incident_id)
        _incident_dated(state, event.incident_id, before)
    return state


# --- merging partitions --------------------------------------------------------------------


def _merged_timeline(_: str, group: Sequence[Timeline]) -> Timeline:
    """One key's timelines from several parts as one, entries in timeline order."""
    first = group[0]
    entries = tuple(sorted((e for one in group for e in one.entries), key=order))
    return timeline_of(first.country, first.subject, entries)


def _merged_subject(_: str, group: Sequence[Subject]) -> Subject:
    """One subject's documents from several parts: countries joined, named counts summed
    (``earliest`` is re-derived by the caller)."""
    countries: set[str] = set()
    named: dict[str, int] = {}
    for one in group:
        countries.update(one.countries)
        for incident, count in one.named.items():
            named[incident] = named.get(incident, 0) + count
    return Subject(countries=tuple(sorted(countries)), named=named)


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    See the module docstring. Statements and incident dates are each in one part only
    (:class:`~projections.errors.MergeConflictError` otherwise). The parts are left as they
    are; the result is new, with no change pending, and the same whatever the order of
    ``parts``.
    """
    statements = union(parts, "statement", StatementRef)
    dates = union(parts, "incident", IncidentDate)
    timelines = joined(parts, "timeline", Timeline, _merged_timeline)
    mentions = joined(
        parts,
        "mention",
        Mention,
        lambda _, group: Mention(subjects=tuple(sorted({s for g in group for s in g.subjects}))),
    )
    subjects_by_name: dict[str, Subject] = {}
    for name, subject in joined(parts, "subject", Subject, _merged_subject).items():
        starts = [dates[i].occurred_start for i in subject.named if i in dates]
        earliest = min(starts) if starts else None
        subjects_by_name[name] = (
            subject
            if earliest == subject.earliest
            else msgspec.structs.replace(subject, earliest=earliest)
        )
    rows: dict[str, StanceRow] = {}
    for ident, one in timelines.items():
        row = row_of(one, subjects_by_name.get(one.subject))
        if row is not None:
            rows[ident] = row
    return Docs(
        {
            "timeline": timelines,
            "stance": rows,
            "subject": subjects_by_name,
            "statement": statements,
            "incident": dates,
            "mention": mentions,
        }
    )


__all__ = [
    "DOC_TYPES",
    "NAME",
    "READS",
    "VERSION",
    "Basis",
    "IncidentDate",
    "Mention",
    "StanceRow",
    "StatementRef",
    "Subject",
    "Timeline",
    "TimelineEntry",
    "apply",
    "initial",
    "merge",
    "pair_id",
    "stances",
    "timeline",
]
