"""The event store in memory, with exactly the semantics of the Redis store.

It is the reference for the rules an append checks (the Redis store runs the same rules in
one Lua script) and the store of unit tests and of ``ledger`` runs without Redis. Positions
are ``<milliseconds>-<sequence>`` from the wall clock, strictly increasing, as Redis assigns
stream ids; stored events go through the wire format, so what a read returns is what a
Redis read would return.

It applies the rules of :mod:`services.store.rules`, which the Redis store's append script
runs too, and answers with the same errors and messages.
"""

from __future__ import annotations

import bisect
import time
from collections.abc import Callable, Sequence
from typing import NamedTuple

from events import (
    AnyEvent,
    IncidentMerged,
    Position,
    Recorded,
    encode,
    from_fields,
    position_key,
    recorded_at_of,
    to_fields,
)
from services.store.base import Appended, EntityState
from services.store.positions import START
from services.store.rules import (
    body_digest,
    conflict,
    may_change,
    named_incidents,
    not_owner,
    op_of,
    own_dispute,
    rejection,
    reused,
    same_body,
    state_after,
    stored_form,
    unknown_incidents,
)


class _Indexed(NamedTuple):
    """What the idempotency index holds of an event id (the feed kept here for speed; the
    Redis store reads it from the entry when it needs it)."""

    position: Position
    digest: str
    feed: str


__all__ = ["InMemoryEventStore"]


class InMemoryEventStore:
    """An :class:`~services.store.base.EventStore` held in this process's memory."""

    def __init__(self) -> None:
        self._log: list[Recorded] = []
        self._keys: list[tuple[int, int]] = []
        self._ids: dict[str, _Indexed] = {}
        self._entities: dict[str, EntityState] = {}
        self._history: dict[str, list[int]] = {}
        self._last = (0, 0)

    def _next_position(self) -> Position:
        millis = time.time_ns() // 1_000_000
        last_ms, last_seq = self._last
        self._last = (millis, 0) if millis > last_ms else (last_ms, last_seq + 1)
        return Position(f"{self._last[0]}-{self._last[1]}")

    def _check(
        self, events: Sequence[AnyEvent], private: Sequence[str]
    ) -> tuple[list[int | Position | None], dict[str, EntityState], list[str]]:
        """First pass: every event against the state plus the batch's earlier events.

        Returns per event ``None`` (to write), the batch index of the earlier event it
        duplicates, or the stored position it duplicates; the entities' new states; and
        the events' body digests.
        """
        plan: list[int | Position | None] = []
        seen: dict[str, int] = {}
        changed: dict[str, EntityState] = {}
        digests: list[str] = []

        def state_of(entity: str) -> EntityState | None:
            state = changed.get(entity)
            return self._entities.get(entity) if state is None else state

        for index, event in enumerate(events):
            event_id = str(event.event_id)
            digest = body_digest(encode(stored_form(event)), private[index])
            digests.append(digest)
            if event_id in seen:
                first = seen[event_id]
                if not same_body(digests[first], digest):
                    raise reused(index, event, "id_reused", earlier=first)
                plan.append(first)
                continue
            known = self._ids.get(event_id)
            if known is not None:
                if not same_body(known.digest, digest):
                    if known.feed != event.source:
                        raise reused(index, event, "id_taken")
                    raise reused(index, event, "id_reused", known.position)
                plan.append(known.position)
                continue
            seen[event_id] = index
            changed[event.entity] = _after(index, event, state_of)
            plan.append(None)
        return plan, changed, digests

    async def append(
        self,
        events: Sequence[AnyEvent],
        *,
        sealed: Sequence[str | None] | None = None,
        private: Sequence[str] | None = None,
    ) -> list[Appended]:
        """Append a batch atomically (see :class:`~services.store.base.EventStore`).

        ``sealed`` gives per event the sealed private text its entry keeps beside it (see
        :mod:`services.store.sealing`); ``None`` for none. ``private`` gives per event the
        keyed digest of its private text to compare when its id comes again ('' for none;
        see :mod:`services.store.rules`).
        """
        if sealed is not None and len(sealed) != len(events):
            raise ValueError(f"{len(sealed)} sealed blobs for {len(events)} events")
        if private is not None and len(private) != len(events):
            raise ValueError(f"{len(private)} private digests for {len(events)} events")
        plan, changed, digests = self._check(events, private or [""] * len(events))
        answers: list[Appended] = []
        blobs = sealed if sealed is not None else [None] * len(events)
        for event, step, blob, digest in zip(events, plan, blobs, digests, strict=True):
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
            self._ids[event_id] = _Indexed(position, digest, event.source)
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


def _after(
    index: int, event: AnyEvent, state_of: Callable[[str], EntityState | None]
) -> EntityState:
    """The state of ``event``'s entity after it, once the rules of
    :mod:`services.store.rules` are checked (raising the first one it breaks)."""
    state = state_of(event.entity)
    version = 0 if state is None else state.version
    if event.expected_version is not None and event.expected_version != version:
        raise conflict(index, event, version, "version")
    op = op_of(event)
    if op == "create":
        if state is not None:
            raise conflict(index, event, version, "exists")
        missing = [
            entity.partition(":")[2]
            for entity in named_incidents(event)
            if state_of(entity) is None
        ]
        if missing:
            raise unknown_incidents(index, missing)
    elif state is None:
        raise rejection(index, event, "self", "missing")
    elif op == "dispute":
        if state.owner == event.source:
            raise own_dispute(index, event)
    elif op != "redact":  # erasure reaches every status (its feed is checked by sealing)
        if not may_change(state, event):
            raise not_owner(index, event, state.owner or "")
        if state.status != "live":
            raise rejection(index, event, "self", state.status, state.merged_into)
    if isinstance(event, IncidentMerged):
        if event.into_entity == event.entity:
            raise rejection(index, event, "into", "self")
        target = state_of(event.into_entity)
        if target is None or target.status != "live":
            status = "missing" if target is None else target.status
            into = None if target is None else target.merged_into
            raise rejection(index, event, "into", status, into)
    after = state_after(state, event)
    assert after is not None  # noqa: S101  # the event was checked valid
    return after
