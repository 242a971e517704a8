"""The event store contract: one Protocol, implemented in memory and on Redis Streams.

Both implementations pass the same contract suite (``tests/contract/test_event_store.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol, runtime_checkable

import msgspec

from events import AnyEvent, Position, Recorded
from services.errors import LedgerError


class Appended(msgspec.Struct, frozen=True, omit_defaults=True):
    """What became of one event of an append: its position, and whether it was a duplicate.

    ``position`` is the entry id in the event's log partition, ``partition`` (omitted when 0)
    which partition that is.
    """

    event_id: str
    position: Position
    status: Literal["appended", "duplicate"]
    partition: int = 0


class EntityState(msgspec.Struct, frozen=True):
    """An entity's version (events that touched it) and status as the store tracks it."""

    version: int
    status: Literal["live", "retracted", "merged"]
    merged_into: str | None = None


class StoreError(LedgerError):
    """Root of the event store's errors."""


class BatchError(StoreError):
    """Root of the errors that refuse an event of a batch.

    ``written`` lists the events that were appended all the same: empty on one partition
    (a batch is all-or-nothing), and on several partitions the parts written before another
    part was refused by a concurrent change (see :mod:`services.store.redis`).
    """

    written: tuple[Appended, ...] = ()


class AppendRejectedError(BatchError):
    """Raised when an event of a batch breaks a rule that depends on the log's state.

    A revision, retraction or merge of an incident that does not exist (or was retracted,
    or was merged away), a merge into a missing, retracted or merged incident, a
    retraction of an unknown statement. ``index`` is the event's place in the batch and
    ``field`` the field at fault. Nothing of the batch was written (but see ``written``).
    """

    def __init__(self, index: int, field: str, message: str) -> None:
        self.index, self.field, self.message = index, field, message
        super().__init__(f"[{index}].{field}: {message}")


class ConflictError(BatchError):
    """Raised when an event conflicts with the entity's current version.

    Either ``expected_version`` differs from the entity's version, or the event would
    create an entity that exists already (a second ``incident.reported``). ``current``
    is the entity's version now. Nothing of the batch was written (but see ``written``).
    """

    def __init__(self, index: int, entity: str, current: int, message: str) -> None:
        self.index, self.entity, self.current, self.message = index, entity, current, message
        super().__init__(f"[{index}] {entity}: {message} (current version {current})")


class StoreUnavailableError(StoreError):
    """Raised when the store's backend cannot be reached or answered with a server error.

    Nothing is known to be written; the publisher should retry with the same event ids.
    """


@runtime_checkable
class EventStore(Protocol):
    """An append-only log of events with idempotent, version-checked, atomic batch appends."""

    async def append(self, events: Sequence[AnyEvent]) -> list[Appended]:
        """Append a batch atomically: all events, or none (raising).

        Per event: a known ``event_id`` writes nothing and answers the original position
        (``duplicate``); ``expected_version``, when given, must equal the entity's version;
        the entity's version is bumped. Raises :class:`AppendRejectedError`,
        :class:`ConflictError` or :class:`StoreUnavailableError`.
        """
        ...

    async def read(self, after: Position = Position("0-0"), count: int = 1000) -> list[Recorded]:  # noqa: B008
        """Up to ``count`` events strictly after ``after``, in log order."""
        ...

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity`` (``incident:<id>``), in log order.

        A merge is listed under both the duplicate and the incident it was merged into.
        """
        ...

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status, or ``None`` when no event created it."""
        ...

    async def head(self) -> Position | None:
        """The last position of the log, or ``None`` while it is empty."""
        ...

    async def length(self) -> int:
        """How many events the log holds."""
        ...
