"""The Redis inbox: feeds that live on Redis submit events by ``XADD`` instead of HTTP.

A submission is one entry of the stream ``<prefix>:inbox`` with two fields: ``feed`` (the
feed's name) and ``event`` (the event as JSON, exactly as ``POST /v1/events`` takes it;
:mod:`services.ingest.submissions`)::

    XADD ledger:inbox * feed sohr event '{"type":"incident.reported", ...}'

The inbox reads the stream in the consumer group ``ledger-inbox`` (one consumer per
process) through a FastStream :class:`~faststream.redis.RedisBroker`, up to
:data:`MAX_RECORDS` entries at a time. For each entry:

1. the feed must be in ``settings.inbox_feeds`` and the event's ``source`` must equal it;
   the event must pass :func:`events.parse_submission`;
2. a valid event is appended to the store (a known ``event_id`` with the same body is a
   harmless duplicate);
3. an invalid one (dates after now included), or one the store refuses
   (:class:`AppendRejectedError`, :class:`ConflictError`, :class:`NotOwnerError` for
   another feed's incident, :class:`IdReusedError` for an id holding another body or
   another feed's event), is written to ``<prefix>:inbox:rejected`` (see
   :class:`RejectedEntry`);
4. the entry is acknowledged only once its append or its rejected-write succeeded.

When the store is unavailable (:class:`StoreUnavailableError`) nothing is acknowledged:
the handler retries the same batch with a capped backoff, so no later entry overtakes it
(a revision must not reach the store before its report), until the store answers or the
inbox stops; a stop leaves the entries pending. When a rejected-write fails, that entry is
left pending. A second subscriber of the same group reclaims entries pending longer than
``settings.claim_idle_ms`` with ``XAUTOCLAIM`` (from start-up on, and then periodically)
and handles them again; entries a crashed process left pending are reclaimed the same
way. Nothing is dropped silently: every entry ends appended, rejected with its problems,
or pending. An entry that keeps failing the inbox itself (an unexpected error, not a refusal)
is rejected as ``failed`` once delivered :data:`MAX_DELIVERIES` times, rather than reclaimed
for ever; the inbox shows as degraded in ``/readyz`` until a batch goes through.

The group is created at id ``0`` with ``MKSTREAM`` before the broker starts, so entries
written before the first start are consumed too (FastStream would create it at ``$``).

**Private text.** A submission holds its private text (notes, urls, speaker names) in the
clear, so an entry is deleted (``XDEL``, with its ``XACK``) once it is appended or rejected:
the text rests sealed in the log only (:mod:`services.store.sealing`). The rejected stream keeps
invalid submissions as they came, text included, for the feed's operators to read: it is
capped (``XADD MAXLEN ~ settings.inbox_rejected_maxlen``, ``LEDGER_INBOX_REJECTED_MAXLEN``)
and erasure does not reach it; its entries age out as new ones arrive.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import socket
from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.exceptions as rexc
import structlog
from faststream import AckPolicy, Context
from faststream.redis import RedisBroker, StreamSub
from faststream.redis.message import RedisBatchStreamMessage
from faststream.specification import AsyncAPI

from events import AnyEvent, Problem
from services.errors import LedgerError
from services.health import Part
from services.ingest.submissions import (
    InboxSubmission,
    RejectedEntry,
    Rejection,
    parse,
    validate,
)
from services.settings import Settings
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EventStore,
    IdReusedError,
    NotOwnerError,
    StoreError,
    StoreUnavailableError,
)
from services.store.connection import connect
from services.store.keys import INBOX_GROUP, Keys

GROUP: Final = INBOX_GROUP
"""The consumer group every inbox process reads in."""

MAX_RECORDS: Final = 100
"""Most entries read (and appended) in one batch."""

POLL_MS: Final = 1000
"""How long one ``XREADGROUP`` blocks waiting for new entries."""

MAX_DELIVERIES: Final = 3
"""Deliveries after which an entry that keeps failing the inbox goes to the rejected stream."""

RETRY_FIRST: Final = 0.05
RETRY_MAX: Final = 2.0
"""Seconds between append attempts while the store is unavailable: doubling, capped."""

_log = structlog.get_logger("ledger.inbox")


class InboxError(LedgerError):
    """Raised when the inbox cannot prepare its consumer group (Redis refused or is down)."""


class InboxStats(msgspec.Struct):
    """What this process's inbox did with the entries it handled, counted since start."""

    appended: int = 0
    duplicates: int = 0
    rejected: int = 0
    deferred: int = 0
    """Entries whose append or rejected-write failed (counted per failed attempt)."""


_problems_encoder: Final = msgspec.json.Encoder()


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
    ) -> None:
        self.keys = Keys(settings.key_prefix, settings.partitions)
        self.store = store
        self.consumer = consumer
        self.allowed = frozenset(settings.inbox_feeds)
        self.rejected_maxlen = settings.inbox_rejected_maxlen
        self.stats = InboxStats()
        self.part = Part("inbox")
        """The inbox's health (``/readyz``)."""
        self._stopping = False
        self._client = connect(redis_url)
        quiet = structlog.get_logger("ledger.inbox.broker")
        self.broker = RedisBroker(
            redis_url,
            logger=quiet,
            log_level=logging.DEBUG,  # FastStream's per-message lines; errors stay errors
            graceful_timeout=10.0,
            description="The Redis holding the ledger's streams",
        )
        inbox = self.keys.inbox
        handle = self._handle_message
        self.broker.subscriber(
            stream=StreamSub(
                inbox,
                group=GROUP,
                consumer=consumer,
                batch=True,
                max_records=MAX_RECORDS,
                polling_interval=poll_ms,
            ),
            parser=parse,
            ack_policy=AckPolicy.MANUAL,
            title="inbox",
            description=(
                "Raw submissions: XADD <prefix>:inbox * feed <feed> event <event JSON>. "
                "Read in the consumer group ledger-inbox; each entry is appended to the log "
                "or written to <prefix>:inbox:rejected, then acknowledged."
            ),
        )(handle)
        self.broker.subscriber(
            stream=StreamSub(
                inbox,
                group=GROUP,
                consumer=consumer,
                batch=True,
                min_idle_time=settings.claim_idle_ms,
                polling_interval=max(100, min(settings.claim_idle_ms // 2, 5000)),
            ),
            parser=parse,
            ack_policy=AckPolicy.MANUAL,
            include_in_schema=False,
        )(handle)
        self.broker.publisher(
            stream=self.keys.inbox_rejected,
            title="inbox-rejected",
            description=(
                "Invalid or refused inbox submissions, as plain stream fields: inbox_id, "
                "kind, errors (JSON list of field and message) and orig.<field> for every "
                "field of the original entry."
            ),
            schema=RejectedEntry,
        )

    # --- life cycle ----------------------------------------------------------------------

    async def ensure_group(self) -> None:
        """Create the consumer group at id ``0`` (with the stream) unless it exists."""
        try:
            await self._client.xgroup_create(self.keys.inbox, GROUP, id="0", mkstream=True)
        except rexc.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise InboxError(f"cannot create group {GROUP}: {exc}") from exc
        except rexc.RedisError as exc:
            raise InboxError(f"cannot create group {GROUP}: {exc}") from exc

    async def start(self) -> None:
        """Create the group, then start consuming and reclaiming."""
        await self.ensure_group()
        await self.broker.start()
        _log.info("inbox started", stream=self.keys.inbox, consumer=self.consumer)

    async def stop(self) -> None:
        """Stop consuming (the batch in hand finishes first) and close the connections."""
        self._stopping = True
        await self.broker.stop()
        await self._client.aclose()
        _log.info("inbox stopped", consumer=self.consumer)

    # --- handling ------------------------------------------------------------------------

    async def _handle_message(
        self,
        submissions: list[InboxSubmission],
        message: RedisBatchStreamMessage = Context("message"),  # noqa: B008
    ) -> None:
        """FastStream handler of a batch: ``submissions`` only documents the payload."""
        raw: Mapping[str, Any] = message.raw_message
        await self.handle(raw["message_ids"], raw["entries"])

    async def handle(
        self, entry_ids: Sequence[bytes], entries: Sequence[Mapping[bytes, bytes]]
    ) -> None:
        """Handle a batch of inbox entries: validate, append or reject, acknowledge.

        An unexpected error leaves the batch pending (a reclaim handles it again); an entry
        delivered :data:`MAX_DELIVERIES` times by then goes to the rejected stream as
        ``failed`` with the error, so it cannot fail the inbox for ever.
        """
        try:
            valid: list[tuple[bytes, Mapping[bytes, bytes], AnyEvent]] = []
            for entry_id, fields in zip(entry_ids, entries, strict=True):
                try:
                    now = dt.datetime.now(dt.UTC)
                    valid.append((entry_id, fields, validate(fields, self.allowed, now)))
                except Rejection as rejection:
                    await self._reject(entry_id, fields, rejection)
            await self._append(valid)
        except Exception as exc:
            self.part.failed(exc)
            _log.exception("inbox batch failed", entries=len(entry_ids), error=str(exc)[:500])
            await self._give_up_on(entry_ids, entries, exc)
        else:
            self.part.recovered()

    async def _give_up_on(
        self,
        entry_ids: Sequence[bytes],
        entries: Sequence[Mapping[bytes, bytes]],
        error: Exception,
    ) -> None:
        """Reject the entries of a failed batch that were delivered too often already."""
        problem = Problem("event", f"the inbox failed on it: {type(error).__name__}: {error}")
        for entry_id, fields in zip(entry_ids, entries, strict=True):
            try:
                found = await self._client.xpending_range(
                    self.keys.inbox, GROUP, entry_id, entry_id, 1
                )
            except rexc.RedisError:
                return  # pending still: the next reclaim tries again
            if found and int(found[0]["times_delivered"]) >= MAX_DELIVERIES:
                await self._reject(entry_id, fields, Rejection("failed", [problem]))

    async def _append(self, batch: list[tuple[bytes, Mapping[bytes, bytes], AnyEvent]]) -> None:
        """Append the valid events in order; a refused one goes to the rejected stream."""
        wait = RETRY_FIRST
        while batch:
            try:
                results = await self.store.append([event for _, _, event in batch])
            except AppendRejectedError as exc:
                entry_id, fields, _ = batch.pop(exc.index)
                await self._reject(
                    entry_id, fields, Rejection("rejected", [Problem(exc.field, exc.message)])
                )
                continue
            except ConflictError as exc:
                entry_id, fields, event = batch.pop(exc.index)
                field = "expected_version" if event.expected_version is not None else "type"
                message = f"{exc.message} ({exc.entity} is at version {exc.current})"
                await self._reject(
                    entry_id, fields, Rejection("conflict", [Problem(field, message)])
                )
                continue
            except NotOwnerError as exc:
                entry_id, fields, _ = batch.pop(exc.index)
                problem = Problem("source", exc.message)
                await self._reject(entry_id, fields, Rejection("forbidden", [problem]))
                continue
            except IdReusedError as exc:
                entry_id, fields, _ = batch.pop(exc.index)
                problem = Problem("event_id", exc.message)
                await self._reject(entry_id, fields, Rejection(exc.reason, [problem]))
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
            await self._ack([entry_id for entry_id, _, _ in batch])
            for result in results:
                if result.status == "appended":
                    self.stats.appended += 1
                else:
                    self.stats.duplicates += 1
            return

    async def _reject(
        self, entry_id: bytes, fields: Mapping[bytes, bytes], rejection: Rejection
    ) -> None:
        """Write the entry to the rejected stream, then acknowledge it."""
        errors = _problems_encoder.encode(rejection.problems)
        record: dict[str | bytes, str | bytes] = {
            "inbox_id": entry_id,
            "kind": rejection.kind,
            "errors": errors,
        }
        for name, value in fields.items():
            record[b"orig." + name] = value
        try:
            await self._client.xadd(
                self.keys.inbox_rejected,
                record,  # type: ignore[arg-type]
                maxlen=self.rejected_maxlen,
                approximate=True,
            )
        except rexc.RedisError as exc:
            self.stats.deferred += 1
            _log.warning("inbox rejected-write failed", inbox_id=entry_id, error=str(exc))
            return
        self.stats.rejected += 1
        _log.info(
            "inbox entry rejected",
            inbox_id=entry_id.decode(),
            kind=rejection.kind,
            errors=[f"{p.field}: {p.message}" for p in rejection.problems][:10],
        )
        await self._ack([entry_id])

    async def _ack(self, entry_ids: list[bytes]) -> None:
        """Acknowledge the entries and delete them: their raw text must not rest here."""
        try:
            async with self._client.pipeline(transaction=True) as pipe:
                pipe.xack(self.keys.inbox, GROUP, *entry_ids)
                pipe.xdel(self.keys.inbox, *entry_ids)
                await pipe.execute()
        except rexc.RedisError as exc:
            # The work is done and idempotent: a reclaim appends duplicates or rejects again.
            _log.warning("inbox ack failed", entries=len(entry_ids), error=str(exc))


def build_inbox(
    settings: Settings,
    store: EventStore,
    redis_url: str,
    *,
    consumer: str | None = None,
    poll_ms: int = POLL_MS,
) -> Inbox:
    """The inbox of this process, ready to :meth:`~Inbox.start`; nothing connects yet."""
    return Inbox(
        settings=settings,
        store=store,
        redis_url=redis_url,
        consumer=consumer or default_consumer(),
        poll_ms=poll_ms,
    )


def asyncapi_json(inbox: Inbox) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of the inbox stream (and the rejected stream)."""
    spec = AsyncAPI(
        inbox.broker,
        title="incident-ledger inbox",
        version="1.0.0",
        description=(
            "Redis-native feeds submit events by XADD to the inbox stream; invalid or refused "
            "submissions land on the rejected stream with their problems."
        ),
    )
    document: dict[str, Any] = spec.to_specification().to_jsonable()
    return document
