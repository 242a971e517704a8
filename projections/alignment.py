"""alignment: how closely each pair of countries speaks alike, subject by subject.

For a pair of countries and a subject both have spoken on (live statements only): 1 if they
co-signed a live statement on it (a joint statement counts for each of its speakers);
otherwise the :func:`~projections.stance_rule.agreement` of their stances on it, each
country's stance by the rule of :mod:`projections.stance_rule` (its highest-ranked
speaker's latest statement, or ``mixed``): 1 for stances of one family (a condemnation and
a demand for accountability agree), 0.5 when a side is ``mixed`` or procedural, 0 for
critical against supportive. A pair's score is the mean over its shared subjects, given
with their number and ``thin: true`` when they are fewer than :data:`THIN_BELOW`. A
retracted statement is removed as if it had never been issued.

Documents, by kind:

- ``statement``: a :class:`StatementRef` per live statement (subject, speakers);
- ``voice``: a :class:`Voice` per ``<country>|<subject>``: its live statements in order,
  and the countries it co-signed with;
- ``speakers``: a :class:`Speakers` per subject: the countries with a voice on it;
- ``pair``: a :class:`PairScore` per ``<a>|<b>|<subject>`` (a < b) for each subject both
  countries spoke on.

Each statement costs a constant amount of work per pair it touches (the voices keep the
latest stance and the co-signers, so a score never rescans a history); a retraction
recomputes only the voices of the retracted statement, from their own statements. Documents
are stored as JSON arrays (``array_like``).

Partitions: a statement's events are in its own partition, so the state of one partition
holds the voices of that partition's statements, and pair scores that see only those.
:func:`merge` interleaves the voices of one key (by ``issued_at``, position, then statement
id, so that equal positions of two partitions order the same way every time), joins their
co-signers and each subject's speakers, gathers the statements, then re-derives every pair
score from the merged voices.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Final

import msgspec

from events import Event, Recorded, StatementIssued, StatementRetracted, position_key

from . import stance_rule
from .common import Readable, State, docs_of, get_doc, joined, union
from .docs import Doc, Docs
from .errors import InconsistentStateError

NAME: Final = "alignment"
VERSION: Final = 3

THIN_BELOW: Final = 3
"""A pair's score resting on fewer shared subjects than this is ``thin``."""


class StatementRef(Doc, frozen=True, kw_only=True, array_like=True):
    """A live statement: its subject and its speaker countries."""

    subject: str
    countries: tuple[str, ...]


class Said(Doc, frozen=True, kw_only=True, array_like=True):
    """One live statement in a country's voice on a subject."""

    statement_id: str
    issued_at: dt.datetime
    position: str
    stance: str
    countries: tuple[str, ...]
    """Every speaker of the statement (this country included)."""
    role: str = "other_official"
    """This country's speaker's ranked role."""
    issued_precision: str = "exact"
    issued_end: dt.datetime | None = None


class Voice(Doc, frozen=True, kw_only=True, array_like=True):
    """A country's live statements on one subject, by (issued_at, position).

    ``cosigners`` (sorted) are the other countries of its live joint statements and
    ``stance`` the country's stance from ``said`` (:mod:`projections.stance_rule`): with
    them a pair is scored in constant time.
    """

    country: str
    subject: str
    said: tuple[Said, ...]
    cosigners: tuple[str, ...] = ()
    stance: str = ""


class Speakers(Doc, frozen=True, kw_only=True, array_like=True):
    """The countries with at least one live statement on a subject."""

    countries: tuple[str, ...]


class SubjectScore(Doc, frozen=True, kw_only=True):
    """A pair's agreement on one shared subject."""

    subject: str
    score: float
    cosigned: bool


class PairScore(Doc, frozen=True, kw_only=True, array_like=True):
    """A pair of countries (a < b) and their agreement on one subject both spoke on."""

    a: str
    b: str
    subject: str
    score: float
    cosigned: bool


class PairRow(Doc, frozen=True, kw_only=True):
    """A pair's alignment: the mean score over its shared subjects (or on one subject), how
    many there are, and ``thin`` when fewer than :data:`THIN_BELOW`."""

    a: str
    b: str
    score: float
    shared_subjects: int
    thin: bool = False


DOC_TYPES: Final[Mapping[str, type[msgspec.Struct]]] = {
    "statement": StatementRef,
    "voice": Voice,
    "speakers": Speakers,
    "pair": PairScore,
}


def initial() -> State:
    """The empty state."""
    return Docs()


def _voice_id(country: str, subject: str) -> str:
    return f"{country}|{subject}"


def _pair_id(a: str, b: str, subject: str) -> str:
    return f"{a}|{b}|{subject}"


def _order(said: Said) -> tuple[dt.datetime, tuple[int, int], str]:
    """Voice order: ``issued_at``, then log position, then statement id (the last only
    matters between partitions, whose positions may be equal)."""
    return said.issued_at, position_key(said.position), said.statement_id


def _inserted(said: tuple[Said, ...], new: Said) -> tuple[Said, ...]:
    """``said`` with ``new`` in its place by (issued_at, position); at the end, usually."""
    if not said or _order(said[-1]) < _order(new):
        return (*said, new)
    ordered = list(said)
    bisect.insort(ordered, new, key=_order)
    return tuple(ordered)


def _cosigners(country: str, said: Iterable[Said]) -> tuple[str, ...]:
    """The other countries of ``said``'s statements, sorted."""
    return tuple(sorted({c for s in said for c in s.countries if c != country}))


def stance_of(voice: Voice) -> str:
    """A country's stance on the voice's subject (:mod:`projections.stance_rule`)."""
    return voice.stance or stance_rule.verdict(stance_rule.basis(voice.said))[0]


def _voice(country: str, subject: str, said: tuple[Said, ...], cosigners: tuple[str, ...]) -> Voice:
    """A voice with its stance derived from ``said``."""
    stance = stance_rule.verdict(stance_rule.basis(said))[0]
    return Voice(country=country, subject=subject, said=said, cosigners=cosigners, stance=stance)


def score(mine: Voice, theirs: Voice, stances: tuple[str, str] | None = None) -> SubjectScore:
    """The agreement of two countries' voices on the same subject.

    ``stances`` are the two voices' stances when the caller has them already.
    """
    cosigned = theirs.country in mine.cosigners
    if cosigned:
        value = 1.0
    else:
        a, b = stances or (stance_of(mine), stance_of(theirs))
        value = stance_rule.agreement(a, b)
    return SubjectScore(subject=mine.subject, score=value, cosigned=cosigned)


def _rescore(state: State, subject: str, changed: Iterable[str]) -> None:
    """Recompute every pair that involves a country whose voice on ``subject`` changed.

    Only the changed countries' pairs on this one subject are touched: each costs constant
    time, whatever the length of the voices' histories.
    """
    old = get_doc(state, "speakers", subject, Speakers)
    known = old.countries if old else ()
    changed = set(changed)
    candidates = sorted(changed.union(known))
    voices = {
        country: voice
        for country in candidates
        if (voice := get_doc(state, "voice", _voice_id(country, subject), Voice)) is not None
    }
    speaking = tuple(voices)
    stances = {country: stance_of(voice) for country, voice in voices.items()}
    if speaking != known:
        if speaking:
            state.put("speakers", subject, Speakers(countries=speaking))
        else:
            state.delete("speakers", subject)
    for country in sorted(changed):
        for other in candidates:
            if other == country or (other in changed and other < country):
                continue  # each pair once
            a, b = (country, other) if country < other else (other, country)
            ident = _pair_id(a, b, subject)
            if a in voices and b in voices:
                one = score(voices[a], voices[b], (stances[a], stances[b]))
                doc = PairScore(a=a, b=b, subject=subject, score=one.score, cosigned=one.cosigned)
                if get_doc(state, "pair", ident, PairScore) != doc:
                    state.put("pair", ident, doc)
            else:
                state.delete("pair", ident)


def _issued(state: State, recorded: Recorded, event: StatementIssued) -> None:
    if get_doc(state, "statement", event.statement_id, StatementRef) is not None:
        _retracted(state, event.statement_id)  # issued again: the last issue holds
    countries = tuple(s.country for s in event.speakers)
    subject = event.subject
    for speaker in event.speakers:
        country = speaker.country
        said = Said(
            statement_id=event.statement_id,
            issued_at=event.issued_at,
            position=recorded.position,
            stance=event.stance,
            countries=countries,
            role=speaker.role,
            issued_precision=event.issued_precision,
            issued_end=event.issued_end,
        )
        ident = _voice_id(country, subject)
        voice = get_doc(state, "voice", ident, Voice)
        others = [c for c in countries if c != country]
        if voice is None:
            new = _voice(country, subject, (said,), tuple(sorted(others)))
        else:
            cosigners = voice.cosigners
            if others and not set(others).issubset(cosigners):
                cosigners = tuple(sorted(set(cosigners).union(others)))
            new = _voice(country, subject, _inserted(voice.said, said), cosigners)
        state.put("voice", ident, new)
    state.put("statement", event.statement_id, StatementRef(subject=subject, countries=countries))
    _rescore(state, subject, countries)


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
            state.put("voice", ident, _voice(country, ref.subject, kept, _cosigners(country, kept)))
        else:
            state.delete("voice", ident)
    state.delete("statement", statement_id)
    _rescore(state, ref.subject, ref.countries)


READS: Final[frozenset[type[Event]]] = frozenset({StatementIssued, StatementRetracted})
"""The event types ``apply`` reads, by exact type: it leaves the state as it is for any
other (a rebuild does not hand it those)."""


def apply(state: State, recorded: Recorded) -> State:
    """Fold one recorded event into ``state`` (in place) and return it."""
    event = recorded.event
    if isinstance(event, StatementIssued):
        _issued(state, recorded, event)
    elif isinstance(event, StatementRetracted):
        _retracted(state, event.statement_id)
    return state


# --- merging partitions --------------------------------------------------------------------


def _merged_voice(_: str, group: Sequence[Voice]) -> Voice:
    """One key's voices from several parts as one: statements in :func:`_order`, co-signers
    joined."""
    first = group[0]
    said = tuple(sorted((s for one in group for s in one.said), key=_order))
    cosigners = tuple(sorted({c for one in group for c in one.cosigners}))
    return _voice(first.country, first.subject, said, cosigners)


def merge(parts: Sequence[Readable]) -> State:
    """The state of a whole log from the states of its partitions, each folded on its own.

    See the module docstring. A statement is in one part only
    (:class:`~projections.errors.MergeConflictError` otherwise). The parts are left as they
    are; the result is new, with no change pending, and the same whatever the order of
    ``parts``.
    """
    statements = union(parts, "statement", StatementRef)
    voices = joined(parts, "voice", Voice, _merged_voice)
    speakers = joined(
        parts,
        "speakers",
        Speakers,
        lambda _, group: Speakers(countries=tuple(sorted({c for g in group for c in g.countries}))),
    )
    scores: dict[str, PairScore] = {}
    for subject, spoken in speakers.items():
        heard = []
        for country in spoken.countries:
            voice = voices.get(_voice_id(country, subject))
            if voice is None:
                raise InconsistentStateError(f"{country} speaks on {subject!r} without a voice")
            heard.append(voice)
        held = {voice.country: stance_of(voice) for voice in heard}
        for i, mine in enumerate(heard):
            for theirs in heard[i + 1 :]:
                one = score(mine, theirs, (held[mine.country], held[theirs.country]))
                a, b = mine.country, theirs.country
                scores[_pair_id(a, b, subject)] = PairScore(
                    a=a, b=b, subject=subject, score=one.score, cosigned=one.cosigned
                )
    return Docs({"statement": statements, "voice": voices, "speakers": speakers, "pair": scores})


# --- queries -------------------------------------------------------------------------------


def pairs(state: Readable, *, subject: str | None = None) -> list[PairRow]:
    """Every pair with a shared subject (or sharing ``subject``), sorted by (a, b)."""
    sums: dict[tuple[str, str], tuple[float, int]] = {}
    for one in docs_of(state, "pair", PairScore).values():
        if subject is None or one.subject == subject:
            key = (one.a, one.b)
            total, count = sums.get(key, (0.0, 0))
            sums[key] = (total + one.score, count + 1)
    rows = [
        PairRow(a=a, b=b, score=total / count, shared_subjects=count, thin=count < THIN_BELOW)
        for (a, b), (total, count) in sums.items()
    ]
    return sorted(rows, key=lambda row: (row.a, row.b))
