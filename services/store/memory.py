"""The event store in memory, with exactly the semantics of the Redis store.

It is the reference for the rules an append checks (the Redis store runs the same rules in
one Lua script) and the store of unit tests and of ``ledger`` runs without Redis. Positions
are ``<milliseconds>-<sequence>`` from the wall clock, strictly increasing, as Redis assigns
stream ids; stored events go through the wire format, so what a read returns is what a
Redis read would return.

The rule helpers here (:func:`op_of`, :func:`conflict`, :func:`rejection`) are shared by
both stores so that they answer with the same errors and messages.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Sequence
from typing import Literal, cast

import msgspec

from events import (
    AnyEvent,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    Position,
    Recorded,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    from_fields,
    normalise,
    position_key,
    recorded_at_of,
    to_fields,
)
from services.store.base import Appended, AppendRejectedError, ConflictError, EntityState

__all__ = ["START", "InMemoryEventStore", "Op", "conflict", "op_of", "rejection", "stored_form"]

START = Position("0-0")
"""The position before the first event."""

Op = Literal["create", "revise", "retract", "merge", "redact"]
"""What an event does to its entity: create it, revise it, retract it, merge it away, or
redact its private text (allowed whatever the entity's status, which it keeps)."""


_OPS: dict[type, Op] = {
    IncidentReported: "create",
    StatementIssued: "create",
    IncidentRetracted: "retract",
    StatementRetracted: "retract",
    IncidentMerged: "merge",
    IncidentRedacted: "redact",
    StatementRedacted: "redact",
}


def op_of(event: AnyEvent) -> Op:
    """What ``event`` does to its entity."""
    op = _OPS.get(type(event))
    if op is not None:
        return op
    if isinstance(event, IncidentReported | StatementIssued):
        return "create"
    if isinstance(event, IncidentRetracted | StatementRetracted):
        return "retract"
    if isinstance(event, IncidentMerged):
        return "merge"
    if isinstance(event, IncidentRedacted | StatementRedacted):
        return "redact"
    return "revise"


def stored_form(event: AnyEvent) -> AnyEvent:
    """The event as the log stores it: normalised, without its ``expected_version``."""
    return cast("AnyEvent", normalise(event))


def _kind(event: AnyEvent) -> str:
    return event.entity.partition(":")[0]


def conflict(
    index: int, event: AnyEvent, current: int, reason: Literal["version", "exists"]
) -> ConflictError:
    """The error for an event that conflicts with its entity's version or existence."""
    if reason == "version":
        message = f"expected version {event.expected_version}"
    elif _kind(event) == "incident":
        message = "already reported; publish incident.casualties_revised"
    else:
        message = "already issued; retract it and issue a new statement"
    return ConflictError(index, event.entity, current, message)


def _gone(entity: str, status: str, into: str | None) -> str:
    kind = entity.partition(":")[0]
    if status == "missing":
        return "was never " + ("reported" if kind == "incident" else "issued")
    if status == "merged":
        return f"was merged into {kind}:{into}"
    return "was retracted" if kind == "incident" else "was retracted already"


def rejection(
    index: int,
    event: AnyEvent,
    which: Literal["self", "into"],
    status: str,
    into: str | None = None,
) -> AppendRejectedError:
    """The error for an event whose entity (``self``) or merge target (``into``) is not live.

    ``status`` is that entity's status (``missing``, ``retracted``, ``merged``, or ``self``
    for a merge into its own incident) and ``into`` where it was merged, if it was.
    """
    field = f"{_kind(event)}_id"
    if which == "self":
        return AppendRejectedError(
            index, field, f"{event.entity} {_gone(event.entity, status, into)}"
        )
    if status == "self":
        return AppendRejectedError(index, "into", "an incident cannot be merged into itself")
    target = event.into_entity if isinstance(event, IncidentMerged) else "its target"
    return AppendRejectedError(
        index, "into", f"cannot merge into {target}: it {_gone(target, status, into)}"
    )


class InMemoryEventStore:
    """An :class:`~services.store.base.EventStore` held in this process's memory."""

    def __init__(self) -> None:
        self._log: list[Recorded] = []
        self._keys: list[tuple[int, int]] = []
        self._ids: dict[str, Position] = {}
        self._entities: dict[str, EntityState] = {}
        self._history: dict[str, list[int]] = {}
        self._last = (0, 0)

    def _next_position(self) -> Position:
        millis = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        self._last = (millis, 0) if millis > last_ms else (last_ms, last_seq + 1)
        return Position(f"{self._last[0]}-{self._last[1]}")

    def _check(
        self, events: Sequence[AnyEvent]
    ) -> tuple[list[int | Position | None], dict[str, EntityState]]:
        """First pass: every event against the state plus the batch's earlier events.

        Returns per event ``None`` (to write), the batch index of the earlier event it
        duplicates, or the stored position it duplicates; and the entities' new states.
        """
        plan: list[int | Position | None] = []
        seen: dict[str, int] = {}
        changed: dict[str, EntityState] = {}

        def state_of(entity: str) -> EntityState | None:
            state = changed.get(entity)
            return self._entities.get(entity) if state is None else state

        for index, event in enumerate(events):
            event_id = str(event.event_id)
            if event_id in seen:
                plan.append(seen[event_id])
                continue
            if event_id in self._ids:
                plan.append(self._ids[event_id])
                continue
            seen[event_id] = index
            state = state_of(event.entity)
            version = 0 if state is None else state.version
            if event.expected_version is not None and event.expected_version != version:
                raise conflict(index, event, version, "version")
            op = op_of(event)
            if op == "create":
                if state is not None:
                    raise conflict(index, event, version, "exists")
                changed[event.entity] = EntityState(1, "live")
                plan.append(None)
                continue
            if op == "redact" and state is not None:  # erasure reaches every status
                changed[event.entity] = msgspec.structs.replace(state, version=version + 1)
                plan.append(None)
                continue
            if state is None or state.status != "live":
                status = "missing" if state is None else state.status
                into = None if state is None else state.merged_into
                raise rejection(index, event, "self", status, into)
            if isinstance(event, IncidentMerged):
                if event.into_entity == event.entity:
                    raise rejection(index, event, "into", "self")
                target = state_of(event.into_entity)
                if target is None or target.status != "live":
                    status = "missing" if target is None else target.status
                    into = None if target is None else target.merged_into
                    raise rejection(index, event, "into", status, into)
                changed[event.entity] = EntityState(version + 1, "merged", event.into)
            elif op == "retract":
                changed[event.entity] = EntityState(version + 1, "retracted")
            else:
                changed[event.entity] = EntityState(version + 1, "live")
            plan.append(None)
        return plan, changed

    async def append(
        self, events: Sequence[AnyEvent], *, sealed: Sequence[str | None] | None = None
    ) -> list[Appended]:
        """Append a batch atomically (see :class:`~services.store.base.EventStore`).

        ``sealed`` gives per event the sealed private text its entry keeps beside it (see
        :mod:`services.store.sealing`); ``None`` for none.
        """
        if sealed is not None and len(sealed) != len(events):
            raise ValueError(f"{len(sealed)} sealed blobs for {len(events)} events")
        plan, changed = self._check(events)
        answers: list[Appended] = []
        blobs = sealed if sealed is not None else [None] * len(events)
        for event, step, blob in zip(events, plan, blobs, strict=True):
            event_id = str(event.event_id)
            if isinstance(step, int):
                answers.append(Appended(event_id, answers[step].position, "duplicate"))
                continue
            if step is not None:
                answers.append(Appended(event_id, step, "duplicate"))
                continue
            position = self._next_position()
            stored = from_fields(to_fields(stored_form(event)))
            self._log.append(Recorded(position, recorded_at_of(position), stored, blob or None))
            self._keys.append(position_key(position))
            self._ids[event_id] = position
            at = len(self._log) - 1
            self._history.setdefault(event.entity, []).append(at)
            if isinstance(event, IncidentMerged):
                self._history.setdefault(event.into_entity, []).append(at)
            answers.append(Appended(event_id, position, "appended"))
        self._entities.update(changed)
        return answers

    async def read(self, after: Position = START, count: int = 1000) -> list[Recorded]:
        """Up to ``count`` events strictly after ``after``, in log order."""
        if count < 1:
            return []
        start = bisect.bisect_right(self._keys, position_key(after))
        return self._log[start : start + count]

    async def read_entity(self, entity: str) -> list[Recorded]:
        """Every event that touched ``entity``, in log order (a merge under both incidents)."""
        return [self._log[at] for at in self._history.get(entity, [])]

    async def entity(self, entity: str) -> EntityState | None:
        """The entity's version and status, or ``None`` when no event created it."""
        return self._entities.get(entity)

    async def head(self) -> Position | None:
        """The last position of the log, or ``None`` while it is empty."""
        return self._log[-1].position if self._log else None

    async def length(self) -> int:
        """How many events the log holds."""
        return len(self._log)
