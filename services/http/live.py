"""Live updates: Server-Sent Events whenever a stored view's checkpoint moves.

``GET /v1/live/{projection}`` (reader or operator token) answers ``text/event-stream``. Each
time the view's checkpoint moves past what the client last got, it receives one small
notice::

    event: view
    id: <position>
    data: {"projection": "<name>", "position": "<position>", "lag": <n>, "lag_seconds": <s>}

``lag`` and ``lag_seconds`` are the view's freshness at that position, computed as every
answer's is (:func:`services.views.freshness.lag_after`), once per position for every
client; they are left out when Redis cannot say.

Notices are throttled: at most one per :data:`MIN_GAP` seconds (about 4 per second) per
client; a client that falls behind gets the latest position, never a backlog. A quiet
stream carries a comment every :data:`HEARTBEAT` seconds so proxies keep it open.

**Resume.** A client reconnecting with ``Last-Event-ID: <position>`` (what ``EventSource``
sends by itself) gets one notice at once when the view has moved past that position since;
without the header the stream starts from the view's position at connection time.

**One poll for everyone.** :class:`LiveHub` reads every projection's checkpoint once per
:data:`POLL_INTERVAL` (about 250 ms), through the view store
(:meth:`~services.views.store.ViewStore.checkpoint`), while at least one client is
connected, and wakes the clients whose view moved. The number of connected clients is the
``ledger_sse_clients`` gauge. :meth:`LiveHub.close` ends every
stream (the service calls it when it begins to stop, so open streams do not hold up the
shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final

import msgspec
import redis.exceptions as rexc
import structlog
from litestar.response import ServerSentEventMessage

from events import Position
from projections import Projection
from services.health import Part, backoff
from services.store.positions import newer
from services.views.freshness import Lag
from services.views.store import ViewStore

__all__ = ["HEARTBEAT", "MIN_GAP", "POLL_INTERVAL", "LiveHub", "Notice"]

log = structlog.get_logger(__name__)

POLL_INTERVAL: Final = 0.25
"""Seconds between two reads of the checkpoints (shared by every client)."""
MIN_GAP: Final = 0.25
"""Least seconds between two notices to one client."""
HEARTBEAT: Final = 15.0
"""Seconds of silence after which a comment line is sent."""

_POSITION_SHAPE: Final = r"^\d+-\d+$"


class Notice(msgspec.Struct, frozen=True, omit_defaults=True):
    """The data of one ``view`` event."""

    projection: str
    position: str
    lag: int | None = None
    lag_seconds: float | None = None


LagOf = Callable[[Projection, Position], Awaitable[Lag]]
"""Computes a view's lag at a position (the read side's :func:`lag_after`)."""


_newer = newer


def parse_last_event_id(value: str | None) -> Position | None:
    """A ``Last-Event-ID`` header as a position (on several partitions, one per partition,
    joined by commas); anything else counts as no position."""
    if not value:
        return None
    found = []
    for one in value.strip().split(","):
        ms, sep, seq = one.strip().partition("-")
        if not sep or not ms.isdigit() or not seq.isdigit():
            return None
        found.append(f"{int(ms)}-{int(seq)}")
    return Position(",".join(found))


class LiveHub:
    """Polls the views' checkpoints for every connected client at once (module docstring)."""

    def __init__(
        self,
        views: ViewStore,
        projections: Iterable[Projection],
        *,
        interval: float = POLL_INTERVAL,
        min_gap: float = MIN_GAP,
        heartbeat: float = HEARTBEAT,
        on_clients: Any = None,
    ) -> None:
        self.views = views
        self.projections = {p.name: p for p in projections}
        self.interval = interval
        self.min_gap = min_gap
        self.heartbeat = heartbeat
        self.on_clients = on_clients
        """Called with the number of connected clients whenever it changes (the gauge)."""
        self.lag_of: LagOf | None = None
        """Computes the freshness the notices carry (set by the read side)."""
        self._lags: dict[str, tuple[Position, Lag]] = {}
        self.part = Part("live")
        """The health of the shared poll (``/readyz``)."""
        self.positions: dict[str, Position | None] = {}
        self.clients = 0
        self.polls = 0
        self._moved = asyncio.Event()
        self._closed = False
        self._task: asyncio.Task[None] | None = None

    # --- the shared poll ------------------------------------------------------------------------

    async def poll_once(self) -> None:
        """Read every checkpoint once and wake the clients if one moved."""
        names = list(self.projections)
        found = await asyncio.gather(*(self.views.checkpoint(self.projections[n]) for n in names))
        self.polls += 1
        moved = False
        for name, position in zip(names, found, strict=True):
            if position != self.positions.get(name):
                self.positions[name] = position
                moved = True
        if moved:
            self._wake()

    def _wake(self) -> None:
        event, self._moved = self._moved, asyncio.Event()
        event.set()

    async def _poll(self) -> None:
        """Poll while clients are connected; after any error, log it and poll again after a
        back-off (the hub is degraded until a poll succeeds)."""
        wait = 0.0
        while self.clients > 0 and not self._closed:
            try:
                await self.poll_once()
            except (rexc.RedisError, OSError) as exc:
                log.warning("live.poll_failed", error=str(exc))
            except Exception as exc:  # a fault of ours: keep the streams alive regardless
                self.part.failed(exc)
                wait = backoff(wait)
                log.exception("live.poll_restarting", error=str(exc)[:500], retry_in=wait)
                await asyncio.sleep(wait)  # the back-off of a failed poll
                continue
            wait = 0.0
            self.part.recovered()
            await asyncio.sleep(self.interval)  # the poll cadence itself, not a synchronisation

    def _ensure_polling(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="live-poll")

    def close(self) -> None:
        """End every open stream (their generators return at their next wake-up)."""
        self._closed = True
        self._wake()

    # --- one client -----------------------------------------------------------------------------

    def _count(self, delta: int) -> None:
        self.clients += delta
        if self.on_clients is not None:
            self.on_clients(self.clients)

    async def stream(
        self, name: str, last_event_id: str | None
    ) -> AsyncIterator[ServerSentEventMessage]:
        """The notices of one client for the view ``name``, until it disconnects."""
        projection = self.projections[name]
        seen = parse_last_event_id(last_event_id)
        current = await self.views.checkpoint(projection)
        if last_event_id is None:
            seen = current
        self._count(1)
        self._ensure_polling()
        try:
            yield ServerSentEventMessage(data=None, retry=2000, comment="connected")
            if _newer(current, self.positions.get(name)):
                self.positions[name] = current
                self._wake()
            while not self._closed:
                position = self.positions.get(name)
                if position is not None and _newer(position, seen):
                    seen = position
                    notice = await self._notice(projection, position)
                    yield ServerSentEventMessage(
                        event="view", id=position, data=msgspec.json.encode(notice).decode()
                    )
                    await asyncio.sleep(self.min_gap)  # the per-client throttle
                    continue
                moved = self._moved
                try:
                    await asyncio.wait_for(moved.wait(), self.heartbeat)
                except TimeoutError:
                    yield ServerSentEventMessage(data=None, comment="keep-alive")
        finally:
            self._count(-1)

    async def _notice(self, projection: Projection, position: Position) -> Notice:
        """The notice of ``projection``'s view at ``position``, with its lag (computed once
        per position for every client)."""
        name = projection.name
        known = self._lags.get(name)
        if self.lag_of is not None and (known is None or known[0] != position):
            try:
                known = (position, await self.lag_of(projection, position))
            except (rexc.RedisError, OSError) as exc:
                log.warning("live.lag_failed", projection=name, error=str(exc))
                known = None
            else:
                self._lags[name] = known
        if known is None or known[0] != position:
            return Notice(projection=name, position=position)
        lag = known[1]
        return Notice(projection=name, position=position, lag=lag.entries, lag_seconds=lag.seconds)

    async def aclose(self) -> None:
        """Close the streams and end the poll task."""
        self.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
