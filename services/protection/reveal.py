"""Private text put back into view documents at request time, never stored in a view.

Views hold the placeholders the log holds (``"[sealed]"`` notes and speaker names, no
source urls; :mod:`services.store.sealing`). The read API shows the text by reading the entity's
events through the :class:`~services.store.sealing.SealingStore` when it answers:

- ``GET /v1/incidents/{id}``: the incident's ``notes`` and its sources' ``url`` from its
  report; ``"[erased]"`` for each once the incident was erased (also where a url was).
- ``GET /v1/projections/country-stance/{country}/timeline``: each entry's ``speaker``, the
  name the statement (the issue at the entry's position) gives for that country. The
  statements are read concurrently, a bounded number at a time.

When the process's store does not seal (``None``: a store without keys), documents are
shown as stored.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final

import msgspec

from events import ERASED, IncidentReported, StatementIssued
from projections.country_stance import TimelineEntry
from projections.incidents import IncidentView
from services.store.sealing import SealingStore, Unsealed

__all__ = ["reveal_incident", "reveal_timeline"]

CONCURRENT_READS: Final = 32
"""Statements read at once while a timeline's speaker names are restored."""


def _url_erased(unsealed: Unsealed, index: int) -> bool:
    return f"sources[{index}].url" in unsealed.erased


async def reveal_incident(store: SealingStore | None, view: IncidentView) -> IncidentView:
    """``view`` with the notes and source urls of its report restored (or ``"[erased]"``)."""
    if store is None or not view.reported:
        return view
    opened = await store.open_entity(f"incident:{view.incident_id}")
    reports = [
        u
        for u in opened
        if isinstance(u.recorded.event, IncidentReported)
        and u.recorded.event.incident_id == view.incident_id
    ]
    if not reports:
        return view
    report = reports[-1]
    event = report.recorded.event
    assert isinstance(event, IncidentReported)  # noqa: S101  # filtered just above
    sources = tuple(
        msgspec.structs.replace(source, url=ERASED) if _url_erased(report, i) else source
        for i, source in enumerate(event.sources)
    )
    return msgspec.structs.replace(view, notes=event.notes, sources=sources)


async def _speakers(store: SealingStore, statement_id: str) -> dict[str, dict[str, str]]:
    """Per issue position of the statement: speaker country → name (as readable now)."""
    found: dict[str, dict[str, str]] = {}
    for unsealed in await store.open_entity(f"statement:{statement_id}"):
        event = unsealed.recorded.event
        if isinstance(event, StatementIssued):
            found[unsealed.recorded.position] = {s.country: s.name for s in event.speakers}
    return found


async def reveal_timeline(
    store: SealingStore | None, country: str, entries: Sequence[TimelineEntry]
) -> list[TimelineEntry]:
    """``entries`` of ``country``'s timeline with each speaker's name restored."""
    if store is None:
        return list(entries)
    wanted = sorted({e.statement_id for e in entries if not e.erased})
    gate = asyncio.Semaphore(CONCURRENT_READS)

    async def one(statement_id: str) -> dict[str, dict[str, str]]:
        async with gate:
            return await _speakers(store, statement_id)

    names = dict(zip(wanted, await asyncio.gather(*(one(s) for s in wanted)), strict=True))
    shown: list[TimelineEntry] = []
    for entry in entries:
        name = names.get(entry.statement_id, {}).get(entry.position, {}).get(country)
        shown.append(entry if name is None else msgspec.structs.replace(entry, speaker=name))
    return shown
