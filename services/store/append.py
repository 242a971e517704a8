"""One append script per batch and partition: what it is given and what its answer means.

:data:`APPEND_SCRIPT` (``append.lua`` beside this module) runs over one partition's keys
(``log``, ``ids``, ``entities``, ``history``; see :mod:`services.store.keys`). It first
checks every event of the batch against the stored state plus the batch's own earlier
events, and returns the first problem without writing anything; only then does it write, so
a batch is all-or-nothing and no other client sees half of it. The rules are those of
:mod:`services.store.rules`, which also builds the errors its answers turn into
(:func:`answers`).

The batch travels as one MessagePack argument (:func:`pack_batch`, unpacked by the script
with ``cmsgpack``), not as ten arguments per event: packing a command's arguments one by one
was most of the client's time. The script reads and writes the entities and history hashes
with one command per 1,000 fields, and each bucket of the idempotency index the batch
touches with one command (about one per event: ids are spread over 8,192 buckets, see
:mod:`services.store.keys`), besides one ``XADD`` per event. What an entry holds is exactly
:func:`events.to_fields` of the event's stored form.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from importlib import resources
from typing import Any, Final, Literal, cast

import msgspec

from events import AnyEvent, IncidentMerged, Position, encode, entry_values, id_texts
from services.resp import text
from services.store.base import Appended
from services.store.keys import bucket_of, id_bucket
from services.store.rules import (
    body_digest,
    conflict,
    named_incidents,
    not_owner,
    op_of,
    own_dispute,
    rejection,
    reused,
    stored_form,
    unknown_incidents,
)

__all__ = ["APPEND_SCRIPT", "Part", "answers", "pack", "pack_batch"]

pack = msgspec.msgpack.Encoder().encode
"""MessagePack, as the script's ``cmsgpack.unpack`` reads it."""

APPEND_SCRIPT: Final = resources.files(__package__).joinpath("append.lua").read_text("utf-8")
"""The append script (``services/store/append.lua``): its header says what it takes and
answers."""


class Part(msgspec.Struct):
    """The events of one batch that go to one partition, with their batch indexes."""

    partition: int
    indexes: list[int]
    first: bool = False
    """Whether the part creates a merge target of another part: it is written first."""
    foreign: dict[int, str] = msgspec.field(default_factory=dict)
    """Index in the part (from 1) of a merge into an incident of another partition → that
    incident's state when the merge is checked."""
    elsewhere: dict[int, dict[str, bool]] = msgspec.field(default_factory=dict)
    """Index in the part (from 0) of a statement naming incidents of another partition →
    whether each was reported by then."""


_NOWHERE: dict[str, bool] = {}


_ID_HEAD: Final = b"\xd9\x10"
"""A MessagePack string of 16 bytes: an event id (see :func:`_as_str`)."""


def _as_str(value: bytes) -> msgspec.Raw:
    """Bytes packed as a MessagePack string: the script's ``cmsgpack`` (Redis 7.0) refuses
    the bin type, and a Lua string holds any bytes."""
    size = len(value)
    if size < 256:
        head = b"\xd9" + bytes((size,))
    elif size < 65536:
        head = b"\xda" + size.to_bytes(2, "big")
    else:
        head = b"\xdb" + size.to_bytes(4, "big")
    return msgspec.Raw(head + value)


def pack_batch(
    events: Sequence[AnyEvent],
    sealed: Sequence[str | None] | None = None,
    private: Sequence[str] | None = None,
    ids: Sequence[str] | None = None,
    elsewhere: Mapping[int, dict[str, bool]] | None = None,
) -> bytes:
    """The script's one argument (see :data:`APPEND_SCRIPT`).

    The entry's fields are those of :func:`events.entry_values` of the stored form;
    ``private`` gives the keyed digests of private text (:func:`~services.store.rules.body_digest`),
    ``ids`` the events' ids as text (:func:`events.id_texts`; worked out here when not given)
    and ``elsewhere`` per event the named incidents held by other partitions.
    """
    rows: list[tuple[Any, ...]] = []
    blobs = sealed if sealed is not None else [None] * len(events)
    secrets = private if private is not None else [""] * len(events)
    texts = ids if ids is not None else id_texts(events)
    others = elsewhere or {}
    for at, (event, blob, secret, ident) in enumerate(
        zip(events, blobs, secrets, texts, strict=True)
    ):
        stored = stored_form(event)
        expected = event.expected_version
        if isinstance(event, IncidentMerged):
            into_entity, into = event.into_entity, event.into
        else:
            into_entity = into = ""
        entry: list[str | bytes | msgspec.Raw] = entry_values(stored)
        entry[-1] = _as_str(entry[-1])  # type: ignore[arg-type]  # the data, the only bytes
        named = named_incidents(event)
        buckets = [
            bucket_of(event.entity),
            bucket_of(into_entity) if into_entity else "",
            *map(bucket_of, named),
        ]
        rows.append(
            (
                entry,
                msgspec.Raw(_ID_HEAD + stored.event_id.bytes),
                event.entity,
                "" if expected is None else str(expected),
                op_of(event),
                into_entity,
                into,
                blob or "",
                event.source,
                body_digest(encode(stored), secret),  # the JSON, as for entries before codecs
                named,
                others.get(at, _NOWHERE),
                id_bucket(stored.event_id),
                ident,
                buckets,
            )
        )
    return pack(rows)


def answers(
    part: Part, events: Sequence[AnyEvent], reply: Any, ids: Sequence[str]
) -> list[Appended]:
    """The script's answer for ``part``, or its first problem raised with batch indexes
    (``ids``: the batch's event ids as text)."""
    head = text(reply[0])
    if head == "ok":
        flags = text(reply[1])
        return [
            Appended(
                ids[index],
                Position(text(pos)),
                "appended" if flag == "a" else "duplicate",
                part.partition,
            )
            for index, flag, pos in zip(part.indexes, flags, reply[2:], strict=True)
        ]
    index = part.indexes[int(reply[1])]
    event = events[index]
    if head == "conflict":
        reason = cast("Literal['version', 'exists']", text(reply[4]))
        raise conflict(index, event, int(reply[3]), reason)
    if head == "forbidden":
        raise not_owner(index, event, text(reply[2]))
    if head == "own_dispute":
        raise own_dispute(index, event)
    if head == "unknown":
        raise unknown_incidents(index, text(reply[2]).split(","))
    if head == "taken":
        raise reused(index, event, "id_taken")
    if head == "reused":
        earlier = int(reply[3])
        if earlier >= 0:
            raise reused(index, event, "id_reused", earlier=part.indexes[earlier])
        raise reused(index, event, "id_reused", text(reply[2]))
    which = cast("Literal['self', 'into']", text(reply[2]))
    into = text(reply[4]) or None
    raise rejection(index, event, which, text(reply[3]), into)
