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
    """An entity's version (events that changed it), status and owner as the store tracks it.

    ``owner`` is the feed that reported the incident or issued the statement (``None`` for
    an entity recorded before the store kept owners: its changes are not checked).
    """

    version: int
    status: Literal["live", "retracted", "merged"]
    merged_into: str | None = None
    owner: str | None = None


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
    retraction of an unknown statement, a dispute of an unknown incident or by its own
    feed, a statement naming incidents no event reported. ``index`` is the event's place in
    the batch and ``field`` the field at fault. Nothing of the batch was written (but see
    ``written``).
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


class NotOwnerError(BatchError):
    """Raised when a feed revises, retracts or merges an entity another feed owns.

    An incident belongs to the feed that reported it, a statement to the feed that issued
    it; only that feed or an operator (the reserved feed ``ledger-operator``) may change it
    (a merge: the duplicate's owner). ``owner`` names the owner, ``feed`` the feed that
    tried. Nothing of the batch was written (but see ``written``).
    """

    def __init__(self, index: int, entity: str, owner: str, feed: str) -> None:
        self.index, self.entity, self.owner, self.feed = index, entity, owner, feed
        self.message = (
            f"{entity} belongs to feed {owner!r}: only that feed or an operator may change "
            f"it; file incident.disputed to disagree"
            if entity.startswith("incident:")
            else f"{entity} belongs to feed {owner!r}: only that feed or an operator may retract it"
        )
        super().__init__(f"[{index}] {self.message}")


class IdReusedError(BatchError):
    """Raised when an event id the log holds comes again with another body or feed.

    Event ids are idempotency keys per (feed, event id), the body compared: the same body
    again is a ``duplicate``, but ``reason`` ``id_reused`` says the feed sent this id before
    with a different body (``position`` the original's; ``None`` when the first use is
    ``earlier`` in this very batch), and ``id_taken`` that another feed's event holds the
    id (its position is not told). Nothing of the batch was written (but see ``written``).
    """

    def __init__(
        self,
        index: int,
        event_id: str,
        reason: Literal["id_reused", "id_taken"],
        position: Position | None = None,
        earlier: int | None = None,
    ) -> None:
        self.index, self.event_id, self.reason = index, event_id, reason
        self.position, self.earlier = position, earlier
        if reason == "id_taken":
            self.message = f"event id {event_id} is taken by another feed's event; use a new id"
        elif position is not None:
            self.message = (
                f"event id {event_id} was appended at {position} with a different body; "
                f"an event is never changed: publish a new event with a new id"
            )
        else:
            self.message = (
                f"event id {event_id} is used by event [{earlier}] of this batch with a "
                f"different body"
            )
        super().__init__(f"[{index}] {self.message}")


class StoreUnavailableError(StoreError):
    """Raised when the store's backend cannot be reached or answered with a server error.

    Nothing is known to be written; the publisher should retry with the same event ids.
    """


@runtime_checkable
class EventStore(Protocol):
    """An append-only log of events with idempotent, version-checked, atomic batch appends."""

    async def append(self, events: Sequence[AnyEvent]) -> list[Appended]:
        """Append a batch atomically: all events, or none (raising).

        Per event: a known ``event_id`` with the same body writes nothing and answers the
        original position (``duplicate``), with another body or feed it raises
        :class:`IdReusedError`; ``expected_version``, when given, must equal the entity's
        version; only the entity's owner or an operator changes it
        (:class:`NotOwnerError`); the entity's version is bumped (not by a dispute). Raises
        :class:`AppendRejectedError`, :class:`ConflictError`, :class:`NotOwnerError`,
        :class:`IdReusedError` or :class:`StoreUnavailableError`.
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
