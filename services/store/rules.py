"""The rules an append checks, in one place for both stores.

What an event does to its entity (:func:`op_of`), the state an entity is in after a valid
event (:func:`state_after`), how the state is written in the ``entities`` hash, the form an
event is stored in and the digest of its body (:func:`body_digest`), the errors (with their
messages) an append answers, and the feed operators act as (:data:`OPERATOR_FEED`). The
in-memory store applies these rules in Python; the Redis store runs the same rules in its
append script (:mod:`services.store.append`) and builds its errors here, so both answer
alike.

**Ownership.** An incident belongs to the feed that reported it, a statement to the feed
that issued it (the entity state keeps the owner). A revision, retraction or merge (of the
duplicate) from any other feed than the owner or :data:`OPERATOR_FEED` is refused
(:class:`~services.store.base.NotOwnerError`). Another feed that disagrees files
``incident.disputed``: it needs an incident that was reported (any status), may not come
from the owner, and changes neither the version nor the status (as the incidents
projection counts it). Entities recorded before owners were kept have none, and are not
checked.

**Idempotency** is keyed by (feed, event id), the body compared. The ``ids`` index keeps,
per event id, its position and a short digest of the body (:func:`body_digest`: 6 bytes of
BLAKE2b over the stored JSON, plus 6 bytes keyed with the entity's data key over private
text; 8 or 16 characters). The same id and body again is a ``duplicate``; the same feed
with another body is ``id_reused`` (with the original position), another feed ``id_taken``
(:class:`~services.store.base.IdReusedError`). Private text is compared only when the
resent event carries some, none of it ``"[erased]"``: the re-import of an export taken
after an erasure is a duplicate. An id indexed before digests were kept answers
``duplicate`` as before.

**Citations.** A statement's ``incident_ids`` must name incidents some event reported
(earlier in the log or in the batch; any status), on any partition.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any, Final, Literal, cast

import msgspec

from events import (
    AnyEvent,
    IncidentDisputed,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    Position,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    normalise,
)
from services.resp import text
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EntityState,
    IdReusedError,
    NotOwnerError,
)

__all__ = [
    "DIGEST_CHARS",
    "OPERATOR_FEED",
    "Op",
    "body_digest",
    "conflict",
    "created_at",
    "digest_part",
    "may_change",
    "named_incidents",
    "not_owner",
    "op_of",
    "own_dispute",
    "parse_state",
    "rejection",
    "reused",
    "same_body",
    "state_after",
    "state_text",
    "stored_form",
    "unknown_incidents",
]

OPERATOR_FEED: Final = "ledger-operator"
"""The reserved feed operators act as: their redactions (``ledger erase``) and the events
they publish with an operator token, which may change any feed's incident. No feed token may
use it."""

Op = Literal["create", "revise", "retract", "merge", "redact", "dispute"]
"""What an event does to its entity: create it, revise it, retract it, merge it away,
redact its private text (allowed whatever the entity's status, which it keeps), or dispute
it (another feed's incident, any status; nothing changes but its history)."""

DIGEST_CHARS: Final = 8
"""Characters of one digest part: 6 bytes of BLAKE2b in unpadded base64url."""


_OPS: dict[type, Op] = {
    IncidentReported: "create",
    StatementIssued: "create",
    IncidentRetracted: "retract",
    StatementRetracted: "retract",
    IncidentMerged: "merge",
    IncidentRedacted: "redact",
    StatementRedacted: "redact",
    IncidentDisputed: "dispute",
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
    if isinstance(event, IncidentDisputed):
        return "dispute"
    return "revise"


def named_incidents(event: AnyEvent) -> list[str]:
    """The incident entities a statement names (none for other events)."""
    if isinstance(event, StatementIssued):
        return [f"incident:{ident}" for ident in event.incident_ids]
    return []


def digest_part(data: bytes, key: bytes | None = None) -> str:
    """One part of a body digest: 6 bytes of BLAKE2b of ``data`` (keyed with ``key``)."""
    raw = hashlib.blake2b(data, digest_size=6, key=key or b"", person=b"ledger-body").digest()
    return base64.urlsafe_b64encode(raw).decode()


def body_digest(data: bytes, private: str = "") -> str:
    """What the ``ids`` index keeps of an event's body: the digest of its stored JSON
    (``data``), followed by ``private``, the keyed digest of its private text when it is to
    be compared (see the module docstring)."""
    return digest_part(data) + private


def stored_form(event: AnyEvent) -> AnyEvent:
    """The event as the log stores it: normalised, without its ``expected_version``."""
    return cast("AnyEvent", normalise(event))


def state_after(state: EntityState | None, event: AnyEvent) -> EntityState | None:
    """``state`` after ``event`` when the event is valid (the rules are checked elsewhere)."""
    op = op_of(event)
    version = 0 if state is None else state.version
    if op == "create":
        return EntityState(1, "live", owner=event.source) if state is None else state
    if state is None or op == "dispute":
        return state
    if op == "retract":
        return EntityState(version + 1, "retracted", owner=state.owner)
    if op == "merge" and isinstance(event, IncidentMerged):
        return EntityState(version + 1, "merged", event.into, state.owner)
    return msgspec.structs.replace(state, version=version + 1)


def state_text(state: EntityState | None) -> str:
    """An entity state as the ``entities`` hash holds it ('' for none):
    ``version|status|into|owner`` (``into`` empty unless merged), or without the owner's
    part (and ``into``'s when empty) for an entity recorded before owners were kept."""
    if state is None:
        return ""
    written = f"{state.version}|{state.status}"
    if state.owner:
        return f"{written}|{state.merged_into or ''}|{state.owner}"
    return f"{written}|{state.merged_into}" if state.merged_into else written


def created_at(raw: Any) -> str | None:
    """The position of the event that created an entity, from its ``entities`` value: its
    fifth part, written since the ``history`` hash stopped keeping that first position
    (``None`` for an entity recorded before, whose history holds every position)."""
    if not raw:
        return None
    parts = text(raw).split("|", 4)
    return parts[4] or None if len(parts) == 5 else None


def parse_state(raw: Any) -> EntityState | None:
    """An entity state from the ``entities`` hash (``None`` for none)."""
    if not raw:
        return None
    version, status, *rest = text(raw).split("|", 4)
    return EntityState(
        int(version),
        cast("Literal['live', 'retracted', 'merged']", status),
        rest[0] or None if rest else None,
        rest[1] or None if len(rest) > 1 else None,
    )


def same_body(held: str, digest: str) -> bool:
    """Whether the digest ``held`` in the index and an incoming event's ``digest`` say the
    same body: an index entry without a digest (written before digests were kept) always
    does; the private part is compared only when the incoming digest has one."""
    if not held:
        return True
    if len(digest) == DIGEST_CHARS:
        return held[:DIGEST_CHARS] == digest
    return held == digest


def may_change(state: EntityState, event: AnyEvent) -> bool:
    """Whether ``event``'s feed may revise, retract or merge the entity in ``state``: its
    owner, an operator, or anyone when no owner is known."""
    return state.owner is None or event.source in (state.owner, OPERATOR_FEED)


def not_owner(index: int, event: AnyEvent, owner: str) -> NotOwnerError:
    """The error for a change of an entity by a feed that does not own it."""
    return NotOwnerError(index, event.entity, owner, event.source)


def own_dispute(index: int, event: AnyEvent) -> AppendRejectedError:
    """The error for a dispute filed by the incident's own feed."""
    return AppendRejectedError(
        index,
        "source",
        f"{event.entity} belongs to feed {event.source!r}: its owner revises or retracts it "
        f"rather than disputing it",
    )


def unknown_incidents(index: int, missing: list[str]) -> AppendRejectedError:
    """The error for a statement naming incidents no event reported (``missing`` ids)."""
    return AppendRejectedError(
        index, "incident_ids", f"no event reported these incidents: {', '.join(missing)}"
    )


def reused(
    index: int,
    event: AnyEvent,
    reason: Literal["id_reused", "id_taken"],
    position: str | None = None,
    earlier: int | None = None,
) -> IdReusedError:
    """The error for an event id held by another body or another feed's event."""
    return IdReusedError(
        index,
        str(event.event_id),
        reason,
        None if position is None else Position(position),
        earlier,
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
