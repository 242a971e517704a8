"""Pads taken back quickly: figures a feed recorded and withdrew within a short window.

A feed can pad a cell above the suppression threshold (report an incident with a community
line, or revise one upwards), read the answers that now show the cell, and take the pad back
(retract the incident, or revise it down again). Small-count suppression cannot see that
across moments (README, *Data protection*); this report makes it visible to operators
(``ledger audit --pads``): every retraction of an incident within ``within`` of its report,
and every revision lowering an incident's ``best`` within ``within`` of the event that
raised it, with the feed that did it. It reads the log (placeholders, never private text).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Final

import msgspec

from events import CasualtiesRevised, IncidentReported, IncidentRetracted, Recorded
from services.store.base import EventStore
from services.store.positions import START

__all__ = ["DEFAULT_WINDOW", "QuickWithdrawal", "quick_withdrawals", "read_quick_withdrawals"]

DEFAULT_WINDOW: Final = dt.timedelta(hours=1)
"""What counts as quick: taken back within an hour of being recorded."""
_PAGE: Final = 5000


class QuickWithdrawal(msgspec.Struct, frozen=True, kw_only=True):
    """An incident's figures raised and taken back within the window."""

    incident_id: str
    feed: str
    kind: str
    """``retracted`` or ``revised_down``."""
    raised_at: dt.datetime
    withdrawn_at: dt.datetime
    seconds: float
    best_before: int
    best_after: int
    position: str
    """The position of the withdrawing event."""


class _Last(msgspec.Struct):
    best: int
    raised_at: dt.datetime


def quick_withdrawals(
    records: Iterable[Recorded], within: dt.timedelta = DEFAULT_WINDOW
) -> list[QuickWithdrawal]:
    """The quick withdrawals among ``records`` (in log order). Pure."""
    last: dict[str, _Last] = {}
    found: list[QuickWithdrawal] = []
    for recorded in records:
        event = recorded.event
        at = recorded.recorded_at
        if isinstance(event, IncidentReported):
            last[event.incident_id] = _Last(event.fatalities.best, at)
            continue
        if not isinstance(event, CasualtiesRevised | IncidentRetracted):
            continue
        before = last.get(event.incident_id)
        if before is None:
            continue
        after = event.fatalities.best if isinstance(event, CasualtiesRevised) else 0
        lowered = after < before.best
        if lowered and at - before.raised_at <= within:
            found.append(
                QuickWithdrawal(
                    incident_id=event.incident_id,
                    feed=event.source,
                    kind="retracted" if isinstance(event, IncidentRetracted) else "revised_down",
                    raised_at=before.raised_at,
                    withdrawn_at=at,
                    seconds=(at - before.raised_at).total_seconds(),
                    best_before=before.best,
                    best_after=after,
                    position=recorded.position,
                )
            )
        last[event.incident_id] = _Last(after, at)
    return found


async def read_quick_withdrawals(
    store: EventStore, within: dt.timedelta = DEFAULT_WINDOW
) -> list[QuickWithdrawal]:
    """:func:`quick_withdrawals` over the whole log, read page by page."""
    records: list[Recorded] = []
    after = START
    while page := await store.read(after, _PAGE):
        records += page
        after = page[-1].position
    return quick_withdrawals(records, within)
