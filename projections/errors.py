"""Errors of the projections package. All derive from :class:`ProjectionError`."""

from __future__ import annotations


class ProjectionError(Exception):
    """Root of every error raised by the ``projections`` package."""


class InvalidQueryError(ProjectionError, ValueError):
    """Raised when a query function is given a filter it cannot use.

    An ISO week that is not ``YYYY-Www`` or does not exist, an unknown grading, victim
    status, event type or violence type, ``from`` after ``to``, a page or limit below 1: the
    message starts with the parameter at fault, and ``parameter`` names it (as the HTTP API
    names it) when the query function knows it.
    """

    def __init__(self, message: str, *, parameter: str | None = None) -> None:
        super().__init__(message)
        self.parameter = parameter


class InconsistentStateError(ProjectionError):
    """Raised when a projection's state contradicts itself while an event is applied.

    A count would fall below zero, or a document has the wrong type for its kind: the state
    was not built by this projection's fold (or by another version of it). ``apply`` raises
    it before writing anything, so the state stays as it was.
    """


class MergeConflictError(ProjectionError):
    """Raised by a projection's ``merge`` when two partition states both hold a document that
    only one partition can hold.

    Each entity's events live in one partition, so documents built from one entity's own
    events (an incident's contribution, a statement's reference) appear in one part only:
    two parts holding one means they are not folds of distinct partitions of one log (the
    same partition twice, or a partition function that changed without a rebuild).
    """
