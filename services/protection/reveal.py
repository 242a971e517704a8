"""Private text put back into view documents at request time, never stored in a view.

Views hold the placeholders the log holds (``"[sealed]"`` notes and speaker names, no
source urls; :mod:`services.store.sealing`). The read API shows the text by reading the entity's
events through the :class:`~services.store.sealing.SealingStore` when it answers:

- ``GET /v1/incidents/{id}``: the incident's ``notes`` and its sources' ``url`` from its
  report, and the urls of the sources and the ``reason`` of every history entry
  (revisions, retractions, merges, disputes, redactions) from the event at the entry's
  position; ``"[erased]"`` for each once the incident was erased
  (also where a url was).
- ``GET /v1/projections/country-stance/{country}/timeline``: each entry's ``speaker``, the
  name the statement (the issue at the entry's position) gives for that country, and the
  statement's feed and sources (urls restored). The statements are read concurrently, a
  bounded number at a time.

With a store that does not seal (an :class:`~services.store.base.EventStore` without
keys) the events are read as stored; without a store (``None``) documents are shown as
stored, and timeline entries without sources.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, NamedTuple

import msgspec

from events import ERASED, SEALED, CasualtiesRevised, IncidentReported, Source, StatementIssued
from projections.country_stance import TimelineEntry
from projections.incidents import HistoryEntry, IncidentView
from services.store.base import EventStore
from services.store.sealing import SealingStore, Unsealed

__all__ = [
    "Said",
    "Sources",
    "opened_incident",
    "reveal_incident",
    "reveal_timeline",
    "shows_text",
    "text_in",
]

CONCURRENT_READS: Final = 32
"""Statements read at once while a timeline's speaker names are restored."""

Sources = SealingStore | EventStore | None
"""Where private text is read from (see the module docstring)."""


class Said(NamedTuple):
    """A timeline entry as revealed: the entry (speaker restored), and the feed and sources
    of its statement (empty when they could not be read)."""

    entry: TimelineEntry
    feed: str | None
    sources: tuple[Source, ...]


async def _opened(store: SealingStore | EventStore, entity: str) -> list[Unsealed]:
    if isinstance(store, SealingStore):
        return await store.open_entity(entity)
    return [Unsealed(recorded) for recorded in await store.read_entity(entity)]


def _url_erased(unsealed: Unsealed, index: int) -> bool:
    return f"sources[{index}].url" in unsealed.erased


def _sources_of(unsealed: Unsealed) -> tuple[Source, ...] | None:
    """The event's sources, urls restored (``"[erased]"`` where erased); ``None`` if it has
    none."""
    sources: list[Source] | None = getattr(unsealed.recorded.event, "sources", None)
    if sources is None:
        return None
    return tuple(
        msgspec.structs.replace(source, url=ERASED) if _url_erased(unsealed, i) else source
        for i, source in enumerate(sources)
    )


def _entry(entry: HistoryEntry, opened: dict[str, Unsealed]) -> HistoryEntry:
    """``entry`` with its sources' urls and its reason restored from its event."""
    found = opened.get(entry.position)
    if found is None:
        return entry
    changes: dict[str, object] = {}
    sources = None if entry.sources is None else _sources_of(found)
    if sources is not None:
        changes["sources"] = sources
    reason = getattr(found.recorded.event, "reason", None)
    if entry.reason is not None and isinstance(reason, str):
        changes["reason"] = reason
    return msgspec.structs.replace(entry, **changes) if changes else entry


async def opened_incident(store: Sources, incident_id: str) -> list[Unsealed]:
    """Every event that touched the incident (its own and the merges into it), in log order,
    its private text restored; none without a store."""
    if store is None:
        return []
    return await _opened(store, f"incident:{incident_id}")


async def reveal_incident(
    store: Sources, view: IncidentView, opened: list[Unsealed] | None = None
) -> IncidentView:
    """``view`` with the notes and source urls of its report and the source urls of every
    history entry restored (or ``"[erased]"``), from ``opened`` (:func:`opened_incident`,
    read here when not given)."""
    if store is None:
        return view
    if opened is None:
        opened = await _opened(store, f"incident:{view.incident_id}")
    by_position: dict[str, Unsealed] = {u.recorded.position: u for u in opened}
    history = tuple(_entry(entry, by_position) for entry in view.history)
    view = msgspec.structs.replace(view, history=history)
    reports = [
        u
        for u in opened
        if isinstance(u.recorded.event, IncidentReported)
        and u.recorded.event.incident_id == view.incident_id
    ]
    if not view.reported or not reports:
        return view
    report = reports[-1]
    event = report.recorded.event
    assert isinstance(event, IncidentReported)  # noqa: S101  # filtered just above
    notes = event.notes
    for u in opened[opened.index(report) + 1 :]:  # a later revision's notes replace them
        later = u.recorded.event
        if isinstance(later, CasualtiesRevised) and later.notes is not None:
            notes = later.notes
    return msgspec.structs.replace(view, notes=notes, sources=_sources_of(report) or ())


class _Statement(NamedTuple):
    feed: str
    speakers: dict[str, str]
    sources: tuple[Source, ...]


async def _statements(store: SealingStore | EventStore, statement_id: str) -> dict[str, _Statement]:
    """Per issue position of the statement: its feed, speaker country → name (as readable
    now) and sources."""
    found: dict[str, _Statement] = {}
    for unsealed in await _opened(store, f"statement:{statement_id}"):
        event = unsealed.recorded.event
        if isinstance(event, StatementIssued):
            found[unsealed.recorded.position] = _Statement(
                event.source,
                {s.country: s.name for s in event.speakers},
                _sources_of(unsealed) or (),
            )
    return found


async def reveal_timeline(
    store: Sources, country: str, entries: Sequence[TimelineEntry]
) -> list[Said]:
    """``entries`` of ``country``'s timeline with each speaker's name restored, and the
    feed and sources of each statement."""
    if store is None:
        return [Said(entry, None, ()) for entry in entries]
    wanted = sorted({e.statement_id for e in entries})
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def one(statement_id: str) -> dict[str, _Statement]:
        async with gate:
            return await _statements(store, statement_id)

    read = dict(zip(wanted, await asyncio.gather(*(one(s) for s in wanted)), strict=True))
    shown: list[Said] = []
    for entry in entries:
        said = read.get(entry.statement_id, {}).get(entry.position)
        if said is None:
            shown.append(Said(entry, None, ()))
            continue
        name = said.speakers.get(country)
        if name is not None and not entry.erased:
            shown.append(
                Said(msgspec.structs.replace(entry, speaker=name), said.feed, said.sources)
            )
        else:
            shown.append(Said(entry, said.feed, said.sources))
    return shown


_HIDDEN: Final = frozenset({SEALED, ERASED})


def _shown(text: str | None) -> bool:
    return text is not None and text not in _HIDDEN


def text_in(store: Sources, view: IncidentView) -> bool:
    """Whether ``view``, revealed from ``store``, carries decrypted private text: ``store``
    seals, and notes, a url or a reason is not a placeholder. Such an answer is audited,
    whoever reads it."""
    if not isinstance(store, SealingStore):
        return False
    sources = [*view.sources, *(s for h in view.history for s in h.sources or ())]
    return (
        _shown(view.notes)
        or any(_shown(s.url) for s in sources)
        or any(_shown(h.reason) for h in view.history)
    )


def shows_text(store: Sources, said: Sequence[Said]) -> bool:
    """Whether timeline entries revealed from ``store`` carry decrypted private text (a
    speaker's name, a url)."""
    return isinstance(store, SealingStore) and any(
        (one.feed is not None and not one.entry.erased and _shown(one.entry.speaker))
        or any(_shown(s.url) for s in one.sources)
        for one in said
    )
