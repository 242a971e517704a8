"""Errors of the event vocabulary. All derive from :class:`EventsError`."""

from __future__ import annotations

import msgspec


class Problem(msgspec.Struct, frozen=True):
    """One thing wrong with a submitted event: where (a dotted field path) and what."""

    field: str
    message: str


class EventsError(Exception):
    """Root of every error raised by the ``events`` package."""


class CodecError(EventsError):
    """Raised when bytes or a stored entry cannot be decoded into an event at all.

    Random bytes, truncated JSON, a stored entry whose ``type`` is unknown or whose
    schema version has no upcaster: the input is not an event this code understands.
    """


class InvalidEventError(EventsError):
    """Raised when a submission is a well-formed document but breaks the schema or a rule.

    ``problems`` names each field at fault, so an HTTP answer or a rejected-stream
    entry can point the publisher at exactly what to fix.
    """

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{p.field}: {p.message}" for p in problems))
