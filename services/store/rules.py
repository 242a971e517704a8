"""The rules an append checks, in one place for both stores.

What an event does to its entity (:func:`op_of`), the state an entity is in after a valid
event (:func:`state_after`), how the state is written in the ``entities`` hash, the form an
event is stored in, the errors (with their messages) an append answers, and the feed only
operators' redactions come from (:data:`OPERATOR_FEED`). The in-memory
store applies these rules in Python; the Redis store runs the same rules in its append
script (:mod:`services.store.append`) and builds its errors here, so both answer alike.
"""

from __future__ import annotations

from typing import Any, Final, Literal, cast

import msgspec

from events import (
    AnyEvent,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    normalise,
)
from services.resp import text
from services.store.base import AppendRejectedError, ConflictError, EntityState

__all__ = [
    "OPERATOR_FEED",
    "Op",
    "conflict",
    "op_of",
    "parse_state",
    "rejection",
    "state_after",
    "state_text",
    "stored_form",
]

OPERATOR_FEED: Final = "ledger-operator"
"""The reserved feed name of events operators append (``ledger erase``); no feed may use it:
a feed token of that name could publish redactions, which only operators may."""

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


def state_after(state: EntityState | None, event: AnyEvent) -> EntityState | None:
    """``state`` after ``event`` when the event is valid (the rules are checked elsewhere)."""
    op = op_of(event)
    version = 0 if state is None else state.version
    if op == "create":
        return EntityState(1, "live") if state is None else state
    if state is None:
        return None
    if op == "retract":
        return EntityState(version + 1, "retracted")
    if op == "merge" and isinstance(event, IncidentMerged):
        return EntityState(version + 1, "merged", event.into)
    return msgspec.structs.replace(state, version=version + 1)


def state_text(state: EntityState | None) -> str:
    """An entity state as the ``entities`` hash holds it ('' for none)."""
    if state is None:
        return ""
    written = f"{state.version}|{state.status}"
    return f"{written}|{state.merged_into}" if state.merged_into else written


def parse_state(raw: Any) -> EntityState | None:
    """An entity state from the ``entities`` hash (``None`` for none)."""
    if not raw:
        return None
    version, status, *into = text(raw).split("|", 2)
    return EntityState(
        int(version),
        cast("Literal['live', 'retracted', 'merged']", status),
        into[0] if into else None,
    )


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
