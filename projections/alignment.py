"""alignment: how closely each pair of countries speaks alike, subject by subject.

For a pair of countries and a subject both have spoken on (live statements only): 1 if they
co-signed a live statement on it, or if their latest stances (by ``issued_at``, ties by log
position) are equal; else 0.5 if either latest stance is ``neutral``; else 0. A pair's
score is the mean over its shared subjects. A retracted statement is removed as if it had
never been issued.

Documents, by kind:

- ``statement``: a :class:`StatementRef` per live statement (subject, speakers);
- ``voice``: a :class:`Voice` per ``<country>|<subject>``: its live statements in order;
- ``speakers``: a :class:`Speakers` per subject: the countries with a voice on it;
- ``pair``: a :class:`Pair` per ``<a>|<b>`` (a < b) with one :class:`SubjectScore` per
  shared subject; a pair with no shared subject has no document.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Final

import msgspec

from events import Recorded, StatementIssued, StatementRetracted, position_key

from .common import Readable, State, docs_of, get_doc
from .docs import Docs

NAME: Final = "alignment"
VERSION: Final = 1


class StatementRef(msgspec.Struct, frozen=True, kw_only=True):
    """A live statement: its subject and its speaker countries."""

    subject: str
    countries: tuple[str, ...]


class Said(msgspec.Struct, frozen=True, kw_only=True):
    """One live statement in a country's voice on a subject."""

    statement_id: str
    issued_at: dt.datetime
    position: str
    stance: str
    countries: tuple[str, ...]
    """Every speaker of the statement (this country included)."""


class Voice(msgspec.Struct, frozen=True, kw_only=True):
    """A country's live statements on one subject, by (issued_at, position)."""

    country: str
    subject: str
    said: tuple[Said, ...]


class Speakers(msgspec.Struct, frozen=True, kw_only=True):
    """The countries with at least one live statement on a subject."""

    countries: tuple[str, ...]


class SubjectScore(msgspec.Struct, frozen=True, kw_only=True):
    """A pair's agreement on one shared subject."""

    subject: str
    score: float
    cosigned: bool


class Pair(msgspec.Struct, frozen=True, kw_only=True):
    """A pair of countries (a < b) and their scores on the subjects they share."""

    a: str
    b: str
    subjects: tuple[SubjectScore, ...]


class PairRow(msgspec.Struct, frozen=True, kw_only=True):
    """A pair's alignment: the mean score over its shared subjects (or on one subject)."""

    a: str
    b: str
    score: float
    shared_subjects: int


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "statement": StatementRef,
    "voice": Voice,
    "speakers": Speakers,
    "pair": Pair,
}


def initial() -> State:
    """The empty state."""
    return Docs()


def _voice_id(country: str, subject: str) -> str:
    return f"{country}|{subject}"


def _order(said: Said) -> tuple[dt.datetime, tuple[int, int]]:
    return said.issued_at, position_key(said.position)


def score(mine: Voice, theirs: Voice) -> SubjectScore:
    """The agreement of two countries' voices on the same subject."""
    cosigned = any(theirs.country in s.countries for s in mine.said)
    a, b = mine.said[-1].stance, theirs.said[-1].stance
    if cosigned or a == b:
        value = 1.0
    elif "neutral" in (a, b):
        value = 0.5
    else:
        value = 0.0
    return SubjectScore(subject=mine.subject, score=value, cosigned=cosigned)


def _rescore(state: State, subject: str, changed: Iterable[str]) -> None:
    """Recompute every pair that involves a country whose voice on ``subject`` changed."""
    old = get_doc(state, "speakers", subject, Speakers)
    known = set(old.countries if old else ())
    changed = set(changed)
    voices = {
        country: voice
        for country in sorted(known | changed)
        if (voice := get_doc(state, "voice", _voice_id(country, subject), Voice)) is not None
    }
    if voices:
        state.put("speakers", subject, Speakers(countries=tuple(voices)))
    else:
        state.delete("speakers", subject)
    for country in sorted(changed):
        for other in sorted(known | changed):
            if other == country or (other in changed and other < country):
                continue  # each pair once
            a, b = sorted((country, other))
            ident = f"{a}|{b}"
            pair = get_doc(state, "pair", ident, Pair)
            rest = [s for s in (pair.subjects if pair else ()) if s.subject != subject]
            if a in voices and b in voices:
                rest.append(score(voices[a], voices[b]))
            if rest:
                subjects = tuple(sorted(rest, key=lambda s: s.subject))
                state.put("pair", ident, Pair(a=a, b=b, subjects=subjects))
            else:
                state.delete("pair", ident)


def _issued(state: State, recorded: Recorded, event: StatementIssued) -> None:
    if get_doc(state, "statement", event.statement_id, StatementRef) is not None:
        _retracted(state, event.statement_id)  # issued again: the last issue holds
    countries = tuple(s.country for s in event.speakers)
    said = Said(
        statement_id=event.statement_id,
        issued_at=event.issued_at,
        position=recorded.position,
        stance=event.stance,
        countries=countries,
    )
    for country in countries:
        ident = _voice_id(country, event.subject)
        voice = get_doc(state, "voice", ident, Voice)
        ordered = tuple(sorted([*(voice.said if voice else ()), said], key=_order))
        state.put("voice", ident, Voice(country=country, subject=event.subject, said=ordered))
    state.put(
        "statement", event.statement_id, StatementRef(subject=event.subject, countries=countries)
    )
    _rescore(state, event.subject, countries)


def _retracted(state: State, statement_id: str) -> None:
    ref = get_doc(state, "statement", statement_id, StatementRef)
    if ref is None:
        return
    for country in ref.countries:
        ident = _voice_id(country, ref.subject)
        voice = get_doc(state, "voice", ident, Voice)
        if voice is None:
            continue
        kept = tuple(s for s in voice.said if s.statement_id != statement_id)
        if kept:
            state.put("voice", ident, msgspec.structs.replace(voice, said=kept))
        else:
            state.delete("voice", ident)
    state.delete("statement", statement_id)
    _rescore(state, ref.subject, ref.countries)


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if isinstance(event, StatementIssued):
        _issued(state, recorded, event)
    elif isinstance(event, StatementRetracted):
        _retracted(state, event.statement_id)
    return state


# --- queries -------------------------------------------------------------------------------


def pairs(state: Readable, *, subject: str | None = None) -> list[PairRow]:
    """Every pair with a shared subject (or sharing ``subject``), sorted by (a, b)."""
    rows: list[PairRow] = []
    for pair in docs_of(state, "pair", Pair).values():
        scores = [s.score for s in pair.subjects if subject is None or s.subject == subject]
        if scores:
            rows.append(
                PairRow(
                    a=pair.a, b=pair.b, score=sum(scores) / len(scores), shared_subjects=len(scores)
                )
            )
    return sorted(rows, key=lambda row: (row.a, row.b))
