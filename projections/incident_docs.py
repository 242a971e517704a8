"""The documents of the incidents projection: an incident as it stands, the entries of its
history, and the row a listing shows of it. See :mod:`projections.incidents`.

An incident's history is not stored in the view: the log holds it (every event that touched
the incident, read through the store's per-entity index), and the same fold applied to
those events alone gives its entries (:func:`projections.incidents.history_of`, which folds
into a :class:`Traced` state). The incident's document counts them (``history_total``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Final, Literal

import msgspec

from events import Estimate, Fatalities, Grading, PartyLine, Place, Sides, Source, VictimLine

from .common import State
from .docs import Doc, Docs, share_fields

Status = Literal["live", "retracted", "merged"]

INCIDENT: Final = "incident"
"""The kind of an incident's document (an :class:`IncidentView`)."""
SOURCE: Final = "source"
"""The kind that marks a source an incident's revisions cite beside those of its report,
once per distinct source (the :class:`~events.Source` itself, keyed by :func:`source_key`)."""


def source_key(incident_id: str, source: Source) -> str:
    """The id under which ``source`` is marked as cited by the incident: its publisher, url
    and publication date, the identity by which a listing counts distinct sources."""
    published = source.published_at
    at = None if published is None else published.astimezone(dt.UTC)
    cited = _key_encoder.encode((source.publisher, source.url, at))
    return f"{incident_id}|{cited.decode()}"


_key_encoder: Final = msgspec.json.Encoder()


class HistoryEntry(Doc, frozen=True, kw_only=True):
    """One event that touched an incident, as its history lists it.

    ``source`` is the feed that published the event. ``fatalities``/``victims``/``injured``
    are set for reports and revisions; ``sources`` (what the event rests on: name, url,
    publication date) for reports, revisions and disputes; ``reason`` for revisions,
    retractions, merges, redactions and disputes; ``duplicate`` and ``into`` for merges.
    """

    type: str
    event_id: str
    position: str
    recorded_at: dt.datetime
    source: str
    sources: tuple[Source, ...] | None = None
    reason: str | None = None
    fatalities: Fatalities | None = None
    victims: tuple[VictimLine, ...] | None = None
    injured: Estimate | None = None
    duplicate: str | None = None
    into: str | None = None
    parties: tuple[PartyLine, ...] | None = None
    """The deaths by party of a report or revision that gives them."""
    source_time: dt.datetime | None = None
    """When the source published what the event says (ACLED's row timestamp)."""
    changed: tuple[str, ...] = ()
    """The report's fields a revision changed besides the figures (``notes``, ``place``, …)."""


class IncidentFields(Doc, frozen=True, kw_only=True):
    """An incident as it stands now, as stored and as answered.

    ``history`` is empty in the stored document (the log holds it);
    :func:`projections.incidents.history_of` gives it.
    """

    incident_id: str
    status: Status = "live"
    reported: bool = False
    feed: str | None = None
    """The feed that reported the incident (its owner)."""
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
    disputed_by: tuple[str, ...] = ()
    """The feeds that dispute the incident, in the order of their first dispute."""
    parties: tuple[PartyLine, ...] = ()
    """The current deaths by party (civilians, side A, side B, unknown), when a source
    splits them."""
    sides: Sides | None = None
    source_time: dt.datetime | None = None
    """When the source published the current figures (ACLED's row timestamp)."""
    event_clarity: int | None = None

    @property
    def disputed(self) -> bool:
        """Whether another feed disputes the incident."""
        return bool(self.disputed_by)


ROW_NAMES: Final = {
    "incident_id": "i",
    "status": "s",
    "reported": "r",
    "feed": "f",
    "merged_into": "m",
    "duplicates": "d",
    "version": "v",
    "occurred_start": "os",
    "occurred_end": "oe",
    "date_precision": "dp",
    "country": "c",
    "place": "p",
    "geo_precision": "gp",
    "violence_type": "vt",
    "event_type": "et",
    "sub_event_type": "st",
    "perpetrators": "pe",
    "civilian_targeting": "ct",
    "grading": "g",
    "notes": "n",
    "fatalities": "fa",
    "victims": "vi",
    "injured": "in",
    "sources": "so",
    "reported_at": "ra",
    "updated_at": "u",
    "history": "h",
    "erased": "e",
    "disputed_by": "db",
    "parties": "pa",
    "sides": "si",
    "source_time": "t",
    "event_clarity": "ec",
    "history_total": "ht",
    "source_count": "sc",
    "merges": "mg",
}
"""The short name under which the view stores each field of an incident's row (its JSON
keys were a third of it); answers keep the full names."""


class IncidentView(IncidentFields, frozen=True, kw_only=True, omit_defaults=True, rename=ROW_NAMES):
    """An incident's document: its fields and the counts that stand for what is kept apart.

    As the view stores it (a row), the fields only the single answer shows are left at their
    defaults (:data:`projections.incidents.ROW_LEAVES`), no field at its default is written
    and the others are written under short names (:data:`ROW_NAMES`); the answer folds the
    incident's events (:func:`projections.incidents.incident_of`).
    """

    # Every field of IncidentFields declared again: a rename applies to a class's own fields.
    incident_id: str
    status: Status = "live"
    reported: bool = False
    feed: str | None = None
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
    fatalities: Fatalities | None = None
    victims: tuple[VictimLine, ...] = ()
    injured: Estimate | None = None
    sources: tuple[Source, ...] = ()
    reported_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    history: tuple[HistoryEntry, ...] = ()
    erased: bool = False
    disputed_by: tuple[str, ...] = ()
    parties: tuple[PartyLine, ...] = ()
    sides: Sides | None = None
    source_time: dt.datetime | None = None
    event_clarity: int | None = None
    history_total: int = 0
    """How many entries its history has (the log holds them)."""
    source_count: int = 0
    """How many distinct sources its report and revisions cite (kind ``source``)."""
    merges: tuple[tuple[str, str], ...] = ()
    """The log position and event id of each merge into it, beside ``duplicates`` (what
    orders the duplicates when partitions are merged)."""

    def settled(self) -> IncidentView:
        """The row holding the :data:`~projections.docs.VALUES` object of each value many
        incidents repeat, in place (its decoder made fresh ones)."""
        share_fields(self, REPEATED)
        return self


REPEATED: Final = (
    "feed",
    "occurred_start",
    "occurred_end",
    "country",
    "place",
    "violence_type",
    "event_type",
    "perpetrators",
    "fatalities",
    "victims",
    "injured",
)
"""The fields of an incident's row whose values many incidents repeat (the fold shares them
as it makes a row, :meth:`IncidentView.settled` as a row is read)."""


class IncidentRow(Doc, frozen=True, kw_only=True):
    """One incident in a :func:`listing`: what a list shows, without the history.

    ``place`` and ``adm1`` are as reported; ``fatalities`` and ``injured`` are the current
    figures with their qualifiers; ``sources`` counts the distinct sources of its report and
    revisions; ``disputed`` says whether another feed disputes it.
    """

    incident_id: str
    status: Status
    occurred_start: dt.date
    country: str
    adm1: str
    grading: Grading
    fatalities: Fatalities
    merged_into: str | None
    version: int
    occurred_end: dt.date | None = None
    date_precision: int | None = None
    event_type: str | None = None
    violence_type: str | None = None
    place: Place | None = None
    geo_precision: int | None = None
    """UCDP's precision of the place: 1 exact, 4 the first-order division, 6 the country."""
    injured: Estimate | None = None
    feed: str | None = None
    sources: int = 0
    disputed: bool = False


class Traced(Docs[msgspec.Struct]):
    """A fold's state that also keeps the history entries the fold makes, by incident
    (:func:`projections.incidents.history_of`); the view's state keeps only their count."""

    __slots__ = ("history",)

    def __init__(self) -> None:
        super().__init__()
        self.history: dict[str, list[HistoryEntry]] = {}
        """The entries of each incident's history, in the order they were folded."""


def add_entry(state: State, view: IncidentView, entry: HistoryEntry | None) -> int:
    """Count the next entry of the incident's history, kept when given (a fold builds it in
    a :class:`Traced` state only); the new count."""
    if entry is not None and type(state) is Traced:
        state.history.setdefault(view.incident_id, []).append(entry)
    return view.history_total + 1


def _identity(source: Source) -> tuple[str, str | None, dt.datetime | None]:
    """What makes two cited sources the same: publisher, url and publication date."""
    return source.publisher, source.url, source.published_at


def report_sources(sources: Sequence[Source]) -> int:
    """How many distinct sources a report cites (they stay in its document's ``sources``)."""
    if len(sources) < 2:  # most reports: nothing to compare
        return len(sources)
    return len({_identity(source) for source in sources})


def cite(state: State, view: IncidentView, sources: Sequence[Source]) -> int:
    """Mark each source of a revision that neither its report nor an earlier revision cites
    (kind ``source``); the count of distinct sources the incident cites now."""
    count = view.source_count
    if not sources:
        return count
    reported = {_identity(source) for source in view.sources}
    for source in sources:
        if _identity(source) in reported:
            continue
        key = source_key(view.incident_id, source)
        if state.get(SOURCE, key) is None:
            state.put(SOURCE, key, source)
            count += 1
    return count
