"""The Redis inbox: feeds that live on Redis submit events by ``XADD`` instead of HTTP.

Each feed has its own stream, ``<prefix>:inbox:<feed>``, and the feed of an entry is the
stream it arrived on, never a field it carries: on a Redis with the ledger's ACL users
(:mod:`services.runtime.acl`) only that feed's user may ``XADD`` there, so Redis itself
authenticates the writer. An entry holds one event or a JSON array of events, raw or in
FastStream's envelope (:mod:`services.ingest.submissions`)::

    XADD ledger:inbox:sohr * event '{"type":"incident.reported", ...}'
    await RedisBroker(url).publish(event_or_list, stream="ledger:inbox:sohr")

**Which streams are read.** One per inbox feed: ``settings.inbox_feeds``
(``LEDGER_INBOX_FEEDS``, by default the feed tokens' feeds) and the feeds registered in the set
``<prefix>:feeds`` (``ledger feeds add NAME`` adds there). The set is read at start-up and
then every :data:`FEEDS_EVERY` seconds: a feed added while the service runs is read from then
on, without a restart. The retired shared stream ``<prefix>:inbox`` is read too, and every
entry there is rejected (``invalid``, field ``feed``) naming the stream to use instead.

Each stream is read in the consumer group ``ledger-inbox`` (one consumer per process)
through a FastStream :class:`~faststream.redis.RedisBroker`, up to :data:`MAX_RECORDS`
entries at a time. For each entry:

1. the feed must be allowed and every event's ``source`` must equal it; the body must pass
   :func:`events.parse_batch`; the feed's limits apply as over HTTP, counted in the same
   Redis budgets (:mod:`services.protection.limits`): the entry waits for the feed's rate
   (``LEDGER_FEED_RATE`` entries/s, bursts of ``LEDGER_FEED_BURST``, shared with the feed's
   HTTP batches), and its events must fit the feed's hourly quota
   (``LEDGER_FEED_EVENTS_PER_HOUR``), else it is rejected whole as ``rate_limited``;
2. valid events are appended to the store (a known ``event_id`` with the same body is a
   harmless duplicate);
3. an invalid entry (dates after now included), or one with an event the store refuses
   (:class:`AppendRejectedError`, :class:`ConflictError`, :class:`NotOwnerError` for
   another feed's incident, :class:`IdReusedError` for an id holding another body or
   another feed's event), is written whole to ``<prefix>:inbox:rejected`` (see
   :class:`RejectedEntry`);
4. the entry is acknowledged only once its append or its rejected-write succeeded.

When the store is unavailable (:class:`StoreUnavailableError`) nothing is acknowledged:
the handler retries the same batch with a capped backoff, so no later entry overtakes it
(a revision must not reach the store before its report), until the store answers or the
inbox stops; a stop leaves the entries pending. When a rejected-write fails, that entry is
left pending. A second subscriber per stream reclaims entries pending longer than
``settings.claim_idle_ms`` with ``XAUTOCLAIM`` and handles them again; entries a crashed
process left pending are reclaimed the same way. Nothing is dropped silently: every entry
ends appended, rejected with its problems, or pending. An entry that keeps failing the inbox
itself (an unexpected error, not a refusal) is rejected as ``failed`` once delivered
:data:`MAX_DELIVERIES` times; the inbox shows as degraded in ``/readyz`` until a batch goes
through.

A read whose reply does not come within :data:`REPLY_MARGIN` seconds beyond its block drops
its connection and is retried at once on a new one; every other connection the broker opened
before that is renewed too before its next use
(:func:`~services.store.connection.renewing_connections`). A network fault that left the
connections half-open so costs each stream one reply margin, not one per connection it meets:
it delays the inbox, never stalls it.
(Entries a lost reply carried stay pending, and the reclaimer takes them once idle.)

Each group is created at id ``0`` with ``MKSTREAM`` first, so entries written before the
first start are consumed too (FastStream would create it at ``$``).
**Private text.** A submission holds its private text (notes, urls, speaker names) in the
clear, so an entry is deleted (``XDEL``, with its ``XACK``) once it is appended or rejected:
the text rests sealed in the log only (:mod:`services.store.sealing`). The rejected stream keeps
invalid submissions as they came, text included, for the feed's operators to read: it is
capped (``XADD MAXLEN ~ settings.inbox_rejected_maxlen``, ``LEDGER_INBOX_REJECTED_MAXLEN``)
and erasure does not reach it; its entries age out as new ones arrive.

**Counted** in ``ledger_inbox_entries_total{feed, result}`` (:mod:`services.metrics`):
``accepted``, ``invalid`` or ``rejected`` per entry.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

import redis.exceptions as rexc
import structlog
from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage

from events import AnyEvent
from services.errors import LedgerError
from services.health import Part
from services.ingest.admission import admit, refusal
from services.ingest.outcomes import MAX_DELIVERIES, InboxStats, Outcomes
from services.ingest.submissions import Rejection, parse, validate
from services.metrics import IngestMetrics
from services.protection.limits import limits_of
from services.settings import Settings, inbox_feeds_of
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EventStore,
    IdReusedError,
    NotOwnerError,
    StoreError,
    StoreUnavailableError,
)
from services.store.connection import connect, renewing_connections
from services.store.keys import INBOX_GROUP, RESERVED_INBOX_NAMES, Keys

__all__ = ["GROUP", "MAX_DELIVERIES", "Inbox", "InboxError", "InboxStats", "build_inbox"]

GROUP: Final = INBOX_GROUP
"""The consumer group every inbox process reads in."""

MAX_RECORDS: Final = 100
"""Most entries read (and appended) in one batch (fewer under a low feed rate)."""

POLL_MS: Final = 1000
"""How long one ``XREADGROUP`` blocks waiting for new entries."""

REPLY_MARGIN: Final = 5.0
"""Seconds the broker's client waits for a reply beyond a read's block (and for a
connection): a connection gone silent (half-open) is then dropped and the read retried on a
new one, instead of stalling its stream for ever."""

FEEDS_EVERY: Final = 2.0
"""Seconds between two reads of the registered feeds (``<prefix>:feeds``)."""

RETRY_FIRST: Final = 0.05
RETRY_MAX: Final = 2.0
"""Seconds between append attempts while the store is unavailable: doubling, capped."""

_log = structlog.get_logger("ledger.inbox")

Entry = tuple[bytes, Mapping[bytes, bytes], list[AnyEvent]]
"""An entry read: its id, its fields and its valid events."""


class InboxError(LedgerError):
    """Raised when the inbox cannot prepare a consumer group (Redis refused or is down)."""


def default_consumer() -> str:
    """This process's consumer name in the group: ``<host>-<pid>``."""
    return f"{socket.gethostname()}-{os.getpid()}"


class Inbox:
    """The running inbox of one process: the broker, its subscribers and a Redis client."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: EventStore,
        redis_url: str,
        consumer: str,
        poll_ms: int = POLL_MS,
        metrics: IngestMetrics | None = None,
        feeds_every: float = FEEDS_EVERY,
    ) -> None:
        self.keys = Keys(settings.key_prefix, settings.partitions)
        self.store = store
        self.consumer = consumer
        self.allowed: set[str] = set(settings.inbox_feeds or inbox_feeds_of(settings.tokens))
        """The feeds that may submit: configured, and registered in ``<prefix>:feeds``."""
        self.part = Part("inbox")
        """The inbox's health (``/readyz``)."""
        self._stopping = False
        self._client = connect(redis_url)
        self.outcomes = Outcomes(
            self._client, self.keys, GROUP, settings.inbox_rejected_maxlen, metrics
        )
        self.stats = self.outcomes.stats
        self.limits = limits_of(settings, self._client)
        """The feed rate and hourly quota, counted with the API's (:func:`admit`)."""
        self._poll_ms = poll_ms
        self._claim_idle_ms = settings.claim_idle_ms
        self._max_records = _batch_size(settings)
        self._feeds_every = feeds_every
        self._watcher: asyncio.Task[None] | None = None
        self._subscribers: dict[str, list[Any]] = {}
        """The subscribers (reader and reclaimer) per stream read."""
        self.broker = RedisBroker(
            redis_url,
            logger=structlog.get_logger("ledger.inbox.broker"),
            log_level=logging.DEBUG,  # FastStream's per-message lines; errors stay errors
            graceful_timeout=10.0,
            socket_timeout=poll_ms / 1000 + REPLY_MARGIN,
            socket_connect_timeout=REPLY_MARGIN,
            connection_class=renewing_connections(redis_url),
            retry_on_timeout=True,  # the broker only reads: a lost reply is read again
        )
        self._subscribe(None)
        for feed in sorted(self.allowed):
            self._subscribe(feed)

    @property
    def streams(self) -> tuple[str, ...]:
        """Every stream this inbox reads (the retired shared one first)."""
        return tuple(self._subscribers)

    def _stream(self, feed: str | None) -> str:
        return self.keys.inbox if feed is None else self.keys.inbox_of(feed)

    def _subscribe(self, feed: str | None) -> list[Any]:
        """Register the reader and the reclaimer of ``feed``'s stream (``None``: the retired
        shared stream) with the broker; returns them (started by the broker's start)."""
        stream = self._stream(feed)

        async def handler(
            submissions: list[Any],
            message: RedisBatchStreamMessage = Context("message"),  # noqa: B008
        ) -> None:
            raw: Mapping[str, Any] = message.raw_message
            await self.handle(raw["message_ids"], raw["entries"], feed=feed)

        reader = StreamSub(
            stream,
            group=GROUP,
            consumer=self.consumer,
            batch=True,
            max_records=self._max_records,
            polling_interval=self._poll_ms,
        )
        reclaimer = StreamSub(
            stream,
            group=GROUP,
            consumer=self.consumer,
            batch=True,
            min_idle_time=self._claim_idle_ms,
            polling_interval=max(100, min(self._claim_idle_ms // 2, 5000)),
        )
        subscribers = []
        for sub in (reader, reclaimer):
            subscriber = self.broker.subscriber(
                stream=sub, parser=parse, ack_policy=AckPolicy.MANUAL, include_in_schema=False
            )
            subscriber(handler)
            subscribers.append(subscriber)
        self._subscribers[stream] = subscribers
        return subscribers

    # --- life cycle ----------------------------------------------------------------------

    async def ensure_group(self, feed: str | None = None) -> None:
        """Create the consumer group of ``feed``'s stream at id ``0`` (with the stream)."""
        stream = self._stream(feed)
        try:
            await self._client.xgroup_create(stream, GROUP, id="0", mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise InboxError(f"cannot create group {GROUP} on {stream}: {exc}") from exc
        except rexc.RedisError as exc:
            raise InboxError(f"cannot create group {GROUP} on {stream}: {exc}") from exc

    async def start(self) -> None:
        """Read the registered feeds, create the groups, then start consuming and reclaiming,
        and watching the registry for new feeds."""
        for feed in await self._registered():
            if feed not in self.allowed:
                self.allowed.add(feed)
                self._subscribe(feed)
        await self.ensure_group(None)
        for feed in self.allowed:
            await self.ensure_group(feed)
        await self.broker.start()
        self._watcher = asyncio.create_task(self._watch(), name="inbox-feeds")
        _log.info("inbox started", streams=len(self.streams), consumer=self.consumer)

    async def stop(self) -> None:
        """Stop consuming (the batch in hand finishes first) and close the connections."""
        self._stopping = True
        if self._watcher is not None:  # as the read loops: a cancellation can be lost
            await _ended([self._watcher])
        subscribers = [sub for subs in self._subscribers.values() for sub in subs]
        readers = [task for sub in subscribers for task in sub.tasks]
        await self.broker.stop()
        await _ended(readers)
        await self._client.aclose()
        _log.info("inbox stopped", consumer=self.consumer)

    async def _registered(self) -> set[str]:
        """The feeds of ``<prefix>:feeds`` (reserved names left out)."""
        members: Any = await self._client.smembers(self.keys.inbox_feeds)
        names = {m.decode() if isinstance(m, bytes) else str(m) for m in members}
        return names - RESERVED_INBOX_NAMES

    async def add_feed(self, feed: str) -> bool:
        """Read ``feed``'s stream from now on (``False`` when it is read already)."""
        if feed in self.allowed or feed in RESERVED_INBOX_NAMES:
            return False
        await self.ensure_group(feed)
        self.allowed.add(feed)
        for subscriber in self._subscribe(feed):
            await subscriber.start()
        _log.info("inbox feed added", feed=feed, stream=self.keys.inbox_of(feed))
        return True

    async def _watch(self) -> None:
        """Every :data:`FEEDS_EVERY` seconds, start reading the newly registered feeds, until
        the inbox stops (a cancellation lost in the client ends the loop all the same)."""
        while True:
            await asyncio.sleep(self._feeds_every)
            if self._stopping:
                return
            try:
                for feed in sorted(await self._registered() - self.allowed):
                    await self.add_feed(feed)
            except (rexc.RedisError, OSError, InboxError) as exc:
                _log.warning("inbox feeds unread", error=str(exc))
            except Exception:  # the watcher outlives any fault: it tries again next round
                _log.exception("inbox feed watcher failed")

    # --- handling ------------------------------------------------------------------------

    async def handle(
        self,
        entry_ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        *,
        feed: str | None,
    ) -> None:
        """Handle a batch of ``feed``'s entries: validate, append or reject, acknowledge.

        An unexpected error leaves the batch pending (a reclaim handles it again); an entry
        delivered too often by then goes to the rejected stream as ``failed`` with the error,
        so it cannot fail the inbox for ever.
        """
        stream = self._stream(feed)
        try:
            valid: list[Entry] = []
            for entry_id, fields in zip(entry_ids, entries, strict=True):
                try:
                    now = dt.datetime.now(dt.UTC)
                    events = validate(fields, feed, self.allowed, now)
                    await admit(self.limits, feed or "", len(events), self.stats)
                    valid.append((entry_id, fields, events))
                except Rejection as rejection:
                    await self.outcomes.reject(stream, feed, entry_id, fields, rejection)
            await self._append(stream, feed or "", valid)
        except Exception as exc:
            self.part.failed(exc)
            _log.exception("inbox batch failed", entries=len(entry_ids), error=str(exc)[:500])
            await self.outcomes.give_up_on(stream, feed, entry_ids, entries, exc)
        else:
            self.part.recovered()

    async def _append(self, stream: str, feed: str, batch: list[Entry]) -> None:
        """Append the valid entries' events in order; an entry with a refused event goes
        whole to the rejected stream and the rest are tried again."""
        wait = RETRY_FIRST
        while batch:
            flat = [(n, event) for n, (_, _, events) in enumerate(batch) for event in events]
            try:
                results = await self.store.append([event for _, event in flat])
            except (AppendRejectedError, ConflictError, NotOwnerError, IdReusedError) as exc:
                owner, event = flat[exc.index]
                entry_id, fields, _ = batch.pop(owner)
                await self.outcomes.reject(stream, feed, entry_id, fields, refusal(exc, event))
                continue
            except StoreError as exc:
                # StoreUnavailableError, or a store fault: nothing is acked; retry in order.
                self.stats.deferred += len(batch)
                _log.warning(
                    "inbox append deferred",
                    entries=len(batch),
                    error=str(exc),
                    unavailable=isinstance(exc, StoreUnavailableError),
                    retry_in=wait,
                )
                if self._stopping:
                    return  # pending: a reclaim (here or in another process) takes them
                await asyncio.sleep(wait)
                wait = min(wait * 2, RETRY_MAX)
                continue
            await self.outcomes.accepted(stream, feed, [entry_id for entry_id, _, _ in batch])
            for result in results:
                if result.status == "appended":
                    self.stats.appended += 1
                else:
                    self.stats.duplicates += 1
            return


STOP_ROUNDS: Final = 3
"""How many times :meth:`Inbox.stop` cancels a read loop that goes on, a reply margin apart,
before it leaves it (logged)."""


async def _ended(tasks: list[asyncio.Task[Any]]) -> None:
    """Wait until the broker's read loops have ended, cancelling again any that goes on.

    The broker's stop cancels them without waiting; a cancellation that lands while a read
    is being retried can be lost in the client, and that loop would read on after the stop.
    Each loop's outcome is collected, so none is reported as never retrieved. A loop still
    running after :data:`STOP_ROUNDS` cancellations is logged and left.
    """
    pending = {task for task in tasks if not task.done()}
    for _ in range(STOP_ROUNDS):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=REPLY_MARGIN)
    if pending:
        _log.warning("inbox read loops still running", loops=len(pending))
    for task in tasks:
        if task.done() and not task.cancelled():
            task.exception()


def _batch_size(settings: Settings) -> int:
    """Entries read at once: :data:`MAX_RECORDS`, fewer under a low feed rate, so that the
    entries of one batch waiting their turn are handled within about half the reclaim time
    (no other reader takes them as abandoned meanwhile)."""
    if settings.feed_rate <= 0 or settings.feed_burst <= 0:
        return MAX_RECORDS
    waited = settings.feed_rate * settings.claim_idle_ms / 2000
    return max(1, min(MAX_RECORDS, int(settings.feed_burst + waited)))


def build_inbox(
    settings: Settings,
    store: EventStore,
    redis_url: str,
    *,
    consumer: str | None = None,
    poll_ms: int = POLL_MS,
    metrics: IngestMetrics | None = None,
    feeds_every: float = FEEDS_EVERY,
) -> Inbox:
    """The inbox of this process, ready to :meth:`~Inbox.start`; nothing connects yet."""
    return Inbox(
        settings=settings,
        store=store,
        redis_url=redis_url,
        consumer=consumer or default_consumer(),
        poll_ms=poll_ms,
        metrics=metrics,
        feeds_every=feeds_every,
    )
