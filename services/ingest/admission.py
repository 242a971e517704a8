"""What an inbox entry must pass besides being valid: the feed's limits, and the store.

:func:`admit` applies the feed's limits to one entry, counted in the same budgets as the
API's (:mod:`services.protection.limits`): the entry is one batch against the feed rate
(``LEDGER_FEED_RATE``, bursts of ``LEDGER_FEED_BURST``; the bucket the feed's HTTP posts
spend) and waits for its turn, since the entry can wait in its stream where an HTTP client
would have to resend; its events then count against the feed's hourly quota
(``LEDGER_FEED_EVENTS_PER_HOUR``), and an entry that would pass it is refused like a 429:
:class:`~services.ingest.submissions.Rejection` ``rate_limited`` (field ``quota``).
:func:`refusal` is the rejection of an entry whose event the store refused.
"""

from __future__ import annotations

import asyncio

from events import AnyEvent, Problem
from services.ingest.outcomes import InboxStats
from services.ingest.submissions import Rejection
from services.protection.limits import LimitedError, Limits
from services.store.base import AppendRejectedError, ConflictError, IdReusedError, NotOwnerError

__all__ = ["admit", "refusal"]


async def admit(limits: Limits, feed: str, events: int, stats: InboxStats) -> None:
    """Wait for ``feed``'s rate to allow one more entry, then count its ``events`` in the
    feed's hourly quota: :class:`Rejection` (``rate_limited``) when they would pass it.
    Each wait is counted in ``stats.paced``."""
    while True:
        try:
            await limits.rate.take_feed(feed)
            break
        except LimitedError as exc:
            stats.paced += 1
            await asyncio.sleep(exc.retry_after)  # the feed's rate, not a synchronisation
    try:
        await limits.quota.take(feed, events)
    except LimitedError as exc:
        message = f"{exc}; retry after {exc.retry_after_header} s"
        raise Rejection("rate_limited", [Problem("quota", message)]) from exc


def refusal(
    exc: AppendRejectedError | ConflictError | NotOwnerError | IdReusedError, event: AnyEvent
) -> Rejection:
    """The rejection of an entry whose ``event`` the store refused with ``exc``."""
    if isinstance(exc, AppendRejectedError):
        return Rejection("rejected", [Problem(exc.field, exc.message)])
    if isinstance(exc, ConflictError):
        field = "expected_version" if event.expected_version is not None else "type"
        message = f"{exc.message} ({exc.entity} is at version {exc.current})"
        return Rejection("conflict", [Problem(field, message)])
    if isinstance(exc, NotOwnerError):
        return Rejection("forbidden", [Problem("source", exc.message)])
    return Rejection(exc.reason, [Problem("event_id", exc.message)])
