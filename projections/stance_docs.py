"""The documents of country-stance, and how a stance row is derived from a timeline.

See :mod:`projections.country_stance` for how the fold keeps them; :func:`row_of` applies
the rule of :mod:`projections.stance_rule` to a timeline; :func:`stances` and
:func:`timeline` are the queries.

Documents, by kind (``<pair>`` is ``<country>|<subject>``):

- ``timeline``: a :class:`Timeline` per pair, its live statements in order;
- ``stance``: the :class:`StanceRow` per pair, derived from its timeline;
- ``subject``: a :class:`Subject` per subject: countries that spoke, incidents named (with
  the number of live statements naming each) and the earliest date among them;
- ``statement``: a :class:`StatementRef` per live statement, to find its entries again;
- ``incident``: an :class:`IncidentDate` per reported, unretracted incident;
- ``mention``: a :class:`Mention` per incident named: the subjects naming it, so a late
  report or a retraction of the incident recomputes exactly the rows it dates.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable

from events import Target, position_key

from . import stance_rule
from .common import Readable, docs_of
from .docs import Doc


class TimelineEntry(Doc, frozen=True, kw_only=True):
    """One live statement as one of its speakers' timelines shows it."""

    statement_id: str
    subject: str
    issued_at: dt.datetime
    issued_precision: str = "exact"
    """``exact``, ``day`` or ``range`` (then ``issued_end`` ends it)."""
    issued_end: dt.datetime | None = None
    stance: str
    cameo_code: str
    goldstein: float | None
    speaker: str
    """The name of this country's speaker: ``"[sealed]"`` as stored (the read API restores
    it), ``"[erased]"`` once the statement's private text was erased."""
    role: str = "other_official"
    """The speaker's ranked role (``events.SPEAKER_ROLES``)."""
    title: str | None = None
    """The speaker's office as the source names it."""
    co_speakers: tuple[str, ...]
    """The other countries of a joint statement."""
    venue: str | None
    target: Target
    incident_ids: tuple[str, ...]
    position: str
    erased: bool = False
    """An operator erased the statement's private text (``statement.redacted``)."""


class Timeline(Doc, frozen=True, kw_only=True, array_like=True):
    """The live statements of one country on one subject, by (issued_at, position).

    ``goldstein_sum`` (added left to right in timeline order) and ``goldstein_n`` are the
    running aggregates of the entries' Goldstein scores, so a row never rescans them.
    """

    country: str
    subject: str
    entries: tuple[TimelineEntry, ...]
    goldstein_sum: float = 0.0
    goldstein_n: int = 0


class Basis(Doc, frozen=True, kw_only=True):
    """One statement a stance rests on, as the analyst needs it to see why."""

    statement_id: str
    stance: str
    role: str
    title: str | None
    cameo_code: str
    goldstein: float | None
    issued_at: dt.datetime
    issued_precision: str
    issued_end: dt.datetime | None


class StanceRow(Doc, frozen=True, kw_only=True):
    """Where one country stands on one subject, and the statements that say so.

    ``stance`` is the stance of the latest statement of the highest-ranked speaker, or
    ``mixed`` when ``basis`` (that statement and those of the same rank it cannot be put in
    order with) disagrees; ``family`` is its family (``critical``, ``supportive``,
    ``procedural`` or ``mixed``), ``stances`` every stance of the basis, ``role`` the rank it
    speaks at. ``latest_statement_id`` is the basis's latest statement.
    """

    country: str
    subject: str
    stance: str
    family: str
    stances: tuple[str, ...]
    role: str
    basis: tuple[Basis, ...]
    latest_statement_id: str
    statements: int
    mean_goldstein: float | None
    first_at: dt.datetime
    latest_at: dt.datetime
    latency_hours: float | None


class Subject(Doc, frozen=True, kw_only=True, array_like=True):
    """The countries that spoke on a subject and the incidents its statements name."""

    countries: tuple[str, ...]
    """Sorted."""
    named: dict[str, int]
    """Each incident named, with the number of live statements naming it."""
    earliest: dt.date | None = None
    """The earliest ``occurred_start`` of the named incidents that are reported and live."""


class StatementRef(Doc, frozen=True, kw_only=True, array_like=True):
    """Where a live statement's entries are: its subject and speaker countries."""

    subject: str
    countries: tuple[str, ...]


class IncidentDate(Doc, frozen=True, kw_only=True, array_like=True):
    """When a reported, unretracted incident started."""

    occurred_start: dt.date


class Mention(Doc, frozen=True, kw_only=True, array_like=True):
    """The subjects whose live statements name an incident."""

    subjects: tuple[str, ...]


def pair_id(country: str, subject: str) -> str:
    """The id of a (country, subject) document."""
    return f"{country}|{subject}"


def order(entry: TimelineEntry) -> tuple[dt.datetime, tuple[int, int], str]:
    """Timeline order: ``issued_at``, then log position, then statement id (the last only
    matters between partitions, whose positions may be equal)."""
    return entry.issued_at, position_key(entry.position), entry.statement_id


def summed(entries: Iterable[TimelineEntry]) -> tuple[float, int]:
    """The Goldstein scores of ``entries`` added left to right, and how many there are."""
    total, count = 0.0, 0
    for entry in entries:
        if entry.goldstein is not None:
            total += entry.goldstein
            count += 1
    return total, count


def timeline_of(country: str, subject: str, entries: tuple[TimelineEntry, ...]) -> Timeline:
    """A timeline with its aggregates computed from ``entries`` (already in order)."""
    total, count = summed(entries)
    return Timeline(
        country=country, subject=subject, entries=entries, goldstein_sum=total, goldstein_n=count
    )


def appended(timeline: Timeline | None, country: str, entry: TimelineEntry) -> Timeline:
    """``timeline`` with ``entry`` in its place; the aggregates grow in constant time when it
    goes last (the usual case), else they are recomputed from the key's own entries."""
    if timeline is None or not timeline.entries:
        return timeline_of(country, entry.subject, (entry,))
    entries = timeline.entries
    if order(entries[-1]) < order(entry):
        total, count = timeline.goldstein_sum, timeline.goldstein_n
        if entry.goldstein is not None:
            total += entry.goldstein
            count += 1
        return Timeline(
            country=country,
            subject=entry.subject,
            entries=(*entries, entry),
            goldstein_sum=total,
            goldstein_n=count,
        )
    ordered = list(entries)
    bisect.insort(ordered, entry, key=order)
    return timeline_of(country, entry.subject, tuple(ordered))


def row_of(timeline: Timeline | None, subject: Subject | None) -> StanceRow | None:
    """The row of a (country, subject) from its timeline's aggregates and the subject."""
    if timeline is None or not timeline.entries or subject is None:
        return None
    entries = timeline.entries
    first, latest = entries[0], entries[-1]
    rests_on = stance_rule.basis(entries)
    stance, family, stances = stance_rule.verdict(rests_on)
    n = timeline.goldstein_n
    return StanceRow(
        country=timeline.country,
        subject=timeline.subject,
        stance=stance,
        family=family,
        stances=stances,
        role=rests_on[-1].role,
        basis=tuple(
            Basis(
                statement_id=e.statement_id,
                stance=e.stance,
                role=e.role,
                title=e.title,
                cameo_code=e.cameo_code,
                goldstein=e.goldstein,
                issued_at=e.issued_at,
                issued_precision=e.issued_precision,
                issued_end=e.issued_end,
            )
            for e in rests_on
        ),
        latest_statement_id=rests_on[-1].statement_id,
        statements=len(entries),
        mean_goldstein=timeline.goldstein_sum / n if n else None,
        first_at=first.issued_at,
        latest_at=latest.issued_at,
        latency_hours=stance_rule.latency_hours(first, subject.earliest),
    )


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
    return sorted(entries, key=order)
