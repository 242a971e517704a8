"""What an inbox entry must be, and what the rejected stream records of one that is not.

A submission is one entry of a feed's own inbox stream ``<prefix>:inbox:<feed>``; the feed
is the stream it arrived on, never a field it carries (a ``feed`` field, which the retired
shared inbox needed, is ignored). Its body, one event or a JSON array of events exactly as
``POST /v1/events`` takes them, comes in either of two forms:

- raw: the field ``event`` holds the body (``XADD <prefix>:inbox:<feed> * event <json>``);
- FastStream: the field ``__data__`` holds FastStream's envelope, as
  ``RedisBroker(url).publish(body, stream=<prefix>:inbox:<feed>)`` writes it by default
  (a binary frame with the headers and the JSON body in FastStream 0.6 and later, or the older
  JSON form ``{"data": "<body>", "headers": {…}}``); it is opened with FastStream's own
  :class:`~faststream.redis.parser.BinaryMessageFormatV1`, which reads both.

The feed must be allowed to submit through the inbox and every event's ``source`` must equal
it; every event must pass :func:`events.parse_batch` (:func:`validate`). An entry is one unit:
when any of its events is invalid or refused, none of them is written and the whole entry is
written to the rejected stream as a :class:`RejectedEntry`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any, Final, Literal

from faststream.redis.parser import BinaryMessageFormatV1
from typing_extensions import TypedDict

from events import AnyEvent, InvalidBatchError, Problem, parse_batch

__all__ = [
    "ENVELOPE_FIELD",
    "EVENT_FIELD",
    "RETIRED",
    "RejectedEntry",
    "Rejection",
    "RejectionKind",
    "body_of",
    "parse",
    "validate",
]

RejectionKind = Literal[
    "invalid",
    "rejected",
    "conflict",
    "forbidden",
    "id_reused",
    "id_taken",
    "rate_limited",
    "failed",
]

EVENT_FIELD: Final = b"event"
"""The field of a raw submission: the body itself."""
ENVELOPE_FIELD: Final = b"__data__"
"""The field FastStream's Redis broker writes its envelope to."""


class RejectedEntry(TypedDict):
    """An entry of the rejected stream; ``orig.<field>`` repeats each original field."""

    inbox_id: str
    """The id of the entry in its inbox stream."""
    feed: str
    """The feed whose stream the entry came from (empty for the retired shared inbox)."""
    kind: RejectionKind
    """``invalid`` (failed validation, a feed not allowed, the retired shared inbox), or
    refused by the store: ``rejected`` (a rule of the log), ``conflict`` (a version),
    ``forbidden`` (another feed's entity), ``id_reused`` or ``id_taken`` (the event id holds
    another body, or another feed's event); ``rate_limited`` (over the feed's hourly quota,
    the problem's field ``quota``); ``failed`` (it kept failing the inbox itself)."""
    errors: str
    """JSON list of ``{"field", "message"}``, one per problem."""


class Rejection(Exception):  # noqa: N818  # the inbox's control flow, never escapes it
    """Raised by :func:`validate` (and by the inbox for a refused append): the entry goes to
    the rejected stream with ``problems``."""

    def __init__(self, kind: RejectionKind, problems: list[Problem]) -> None:
        self.kind, self.problems = kind, problems
        super().__init__(kind)


async def parse(
    raw: Mapping[str, Any], original: Callable[[Mapping[str, Any]], Awaitable[Any]]
) -> Any:
    """FastStream parser: the inbox reads the raw fields itself (:meth:`Inbox.handle`).

    FastStream's own parser JSON-dumps every field and fails on bytes that are not UTF-8,
    which would leave such an entry pending for ever instead of rejected; the message it
    builds here carries an empty body per entry, the fields stay in ``entries``.
    """
    entries: list[dict[bytes, bytes]] = raw["data"]
    return await original({**raw, "data": [{} for _ in entries], "entries": entries})


def body_of(fields: Mapping[bytes, bytes]) -> bytes:
    """The submission's body: the raw ``event`` field, or the body of FastStream's envelope.

    Raises :class:`Rejection` when the entry has neither.
    """
    raw = fields.get(EVENT_FIELD)
    if raw is not None:
        return raw
    envelope = fields.get(ENVELOPE_FIELD)
    if envelope is not None:
        body, _headers = BinaryMessageFormatV1.parse(envelope)
        return body
    problem = Problem(
        "event", "the entry has no event field (raw) and no __data__ field (FastStream)"
    )
    raise Rejection("invalid", [problem])


def _named(problem: Problem, is_array: bool) -> Problem:
    """A problem named as the entry has it: the body is the ``event`` field; a single
    event's fields without the ``[0].`` of a batch."""
    field = problem.field
    if not is_array:
        field = field.removeprefix("[0].")
    if field == "body":
        field = "event"
    return Problem(field, problem.message)


RETIRED: Final = Problem(
    "feed",
    "the shared inbox no longer takes submissions: XADD to <prefix>:inbox:<feed>, the stream "
    "of your feed, as your feed's Redis user (the feed is the stream, never a field)",
)
"""Why every entry of the retired shared stream ``<prefix>:inbox`` is rejected."""


def validate(
    fields: Mapping[bytes, bytes],
    feed: str | None,
    allowed: AbstractSet[str],
    now: dt.datetime | None = None,
) -> list[AnyEvent]:
    """The entry's events in their stored form, or :class:`Rejection` with every problem.

    ``feed`` is the feed whose stream the entry arrived on (``None``: the retired shared
    stream, whose entries are all rejected, :data:`RETIRED`); ``allowed`` are the feeds that
    may submit through the inbox; ``now`` is the moment of receipt (dates after it are
    refused)."""
    if feed is None:
        raise Rejection("invalid", [RETIRED])
    if feed not in allowed:
        raise Rejection(
            "invalid", [Problem("feed", f"feed {feed!r} may not submit through the inbox")]
        )
    body = body_of(fields)
    is_array = body.lstrip()[:1] == b"["
    try:
        events, _ = parse_batch(body, now=now)
    except InvalidBatchError as exc:
        raise Rejection("invalid", [_named(p, is_array) for p in exc.problems]) from None
    problems = [
        Problem(
            f"[{index}].source" if is_array else "source",
            f"must equal the feed of the stream {feed!r}, got {event.source!r}",
        )
        for index, event in enumerate(events)
        if event.source != feed
    ]
    if problems:
        raise Rejection("invalid", problems)
    return events
