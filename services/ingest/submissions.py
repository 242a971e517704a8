"""What an inbox entry must be, and what the rejected stream records of one that is not.

A submission is one entry of the inbox stream with two fields: ``feed`` (the feed's name)
and ``event`` (the event as JSON, exactly as ``POST /v1/events`` takes it). The feed must be
allowed to submit through the inbox and the event's ``source`` must equal it; the event must
pass :func:`events.parse_submission` (:func:`validate`). An invalid entry, or one the store
refuses, is written to the rejected stream as a :class:`RejectedEntry`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from typing_extensions import TypedDict

from events import AnyEvent, InvalidEventError, Problem, parse_submission

__all__ = ["InboxSubmission", "RejectedEntry", "Rejection", "RejectionKind", "parse", "validate"]

RejectionKind = Literal[
    "invalid", "rejected", "conflict", "forbidden", "id_reused", "id_taken", "failed"
]


class InboxSubmission(TypedDict):
    """One raw submission as a feed writes it to the inbox stream."""

    feed: str
    """The submitting feed's name; must be allowed and equal the event's ``source``."""
    event: str
    """The event as JSON, as ``POST /v1/events`` takes one."""


class RejectedEntry(TypedDict):
    """An entry of the rejected stream; ``orig.<field>`` repeats each original field."""

    inbox_id: str
    """The id of the entry in the inbox stream."""
    kind: RejectionKind
    """``invalid`` (failed validation), or refused by the store: ``rejected`` (a rule of the
    log), ``conflict`` (a version), ``forbidden`` (another feed's entity), ``id_reused`` or
    ``id_taken`` (the event id holds another body, or another feed's event); ``failed`` (it
    kept failing the inbox itself)."""
    errors: str
    """JSON list of ``{"field", "message"}``, one per problem."""


class Rejection(Exception):  # noqa: N818  # the inbox's control flow, never escapes it
    """Raised by :func:`validate` (and by the inbox for a refused append): the entry goes to
    the rejected stream with ``problems``."""

    def __init__(self, kind: RejectionKind, problems: list[Problem]) -> None:
        self.kind, self.problems = kind, problems
        super().__init__(kind)


def _readable(value: bytes | None) -> str:
    return "" if value is None else value.decode("utf-8", "replace")


async def parse(
    raw: Mapping[str, Any], original: Callable[[Mapping[str, Any]], Awaitable[Any]]
) -> Any:
    """FastStream parser: hand it readable text, keep the original fields beside.

    FastStream's own parser JSON-dumps every field and fails on bytes that are not UTF-8,
    which would leave such an entry pending for ever instead of rejected.
    """
    entries: list[dict[bytes, bytes]] = raw["data"]
    readable = [
        InboxSubmission(feed=_readable(fields.get(b"feed")), event=_readable(fields.get(b"event")))
        for fields in entries
    ]
    return await original({**raw, "data": readable, "entries": entries})


def validate(
    fields: Mapping[bytes, bytes], allowed: frozenset[str], now: dt.datetime | None = None
) -> AnyEvent:
    """The entry's event in its stored form, or :class:`Rejection` with every problem.

    ``allowed`` are the feeds that may submit through the inbox; ``now`` is the moment of
    receipt (dates after it are refused)."""
    problems: list[Problem] = []
    feed_raw, data = fields.get(b"feed"), fields.get(b"event")
    feed = ""
    if feed_raw is None:
        problems.append(Problem("feed", "the entry has no feed field"))
    else:
        try:
            feed = feed_raw.decode()
        except UnicodeDecodeError:
            problems.append(Problem("feed", "the feed name is not UTF-8"))
        else:
            if feed not in allowed:
                problems.append(Problem("feed", f"feed {feed!r} may not submit through the inbox"))
    event: AnyEvent | None = None
    if data is None:
        problems.append(Problem("event", "the entry has no event field"))
    else:
        try:
            event = parse_submission(data, now=now)
        except InvalidEventError as exc:
            # the event field is the submission's body: name it as the entry does
            problems += [
                Problem("event", p.message) if p.field == "body" else p for p in exc.problems
            ]
    if event is not None and feed and event.source != feed:
        problems.append(
            Problem("source", f"must equal the entry's feed {feed!r}, got {event.source!r}")
        )
    if problems or event is None:
        raise Rejection("invalid", problems)
    return event
