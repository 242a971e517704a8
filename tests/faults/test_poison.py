"""Poison entries in the log end in the dead-letter stream; the events after them still apply.

Raw entries are written straight to the log (bypassing the store, as a buggy writer or a
hand-edited stream would): garbage ``data``, an unknown ``type``, a ``type`` that does not
match its data, a schema version from the future, an entry without ``data``, and a valid
event that breaks an invariant a projection checks (a revision of an incident never reported,
which a strict test-only projection refuses by raising). Every one must be dead-lettered
after exactly three deliveries, by every projection that cannot apply it and only by those,
with its original fields, while the pool goes on with the events after it.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

import events
from events import CasualtiesRevised, IncidentReported, Recorded, from_fields, recorded_at_of
from events.errors import CodecError
from projections import PROJECTIONS, Projection, State, fold
from projections.docs import Docs
from projections.errors import InconsistentStateError
from services.projector.pool import ProjectorPool
from services.projector.worker import MAX_DELIVERIES
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import view_keys
from services.views.redis import load_view
from tests.support import builders as f
from tests.support.streams import added
from tests.support.streams import entries as stream_entries

DEADLINE = 60.0


class Known(msgspec.Struct, frozen=True):
    """An incident the strict projection has seen reported, with its revisions."""

    revisions: int


def _strict_apply(state: State, recorded: Recorded) -> State:
    event = recorded.event
    if isinstance(event, IncidentReported):
        state.put("known", event.incident_id, Known(0))
    elif isinstance(event, CasualtiesRevised):
        known = state.get("known", event.incident_id)
        if not isinstance(known, Known):
            raise InconsistentStateError(f"revision of unknown incident {event.incident_id}")
        state.put("known", event.incident_id, Known(known.revisions + 1))
    return state


STRICT = Projection(
    name="test-strict",
    version=1,
    doc_types={"known": Known},
    initial=Docs,
    apply=_strict_apply,
)
"""Counts revisions per incident and refuses (raises on) a revision of an unknown incident."""

EVERY = (*PROJECTIONS.values(), STRICT)


def decodable(entries: list[tuple[bytes, dict[bytes, bytes]]]) -> list[Recorded]:
    """The entries that decode, as Recorded events, in log order."""
    found = []
    for ident, fields in entries:
        position = ident.decode()
        try:
            event = from_fields(fields)
        except CodecError:
            continue
        found.append(Recorded(position, recorded_at_of(position), event))  # type: ignore[arg-type]
    return found


class TestPoisonEntries:
    """Each kind of poison is dead-lettered after three deliveries, and nothing else is."""

    @pytest.mark.parametrize("batch_size", [1, 3, 1000], ids=["one", "small", "whole"])
    async def test_every_poison_kind_is_dead_lettered_and_later_events_apply(
        self,
        redis_client: aioredis.Redis,
        redis_store: RedisEventStore,
        key_prefix: str,
        batch_size: int,
    ) -> None:
        """Poison between valid events: DLQ after 3 deliveries, views equal the fold of the rest."""
        keys = Keys(key_prefix)
        reported = f.reported("i-1", 5)
        mismatched = events.to_fields(f.reported("i-9", 1))
        mismatched["type"] = "incident.retracted"
        future = events.to_fields(f.reported("i-8", 1))
        future["v"] = "99"
        ghost = f.revised("ghost", 3)
        raw: dict[str, dict[Any, Any]] = {
            "garbage": {"type": "incident.reported", "event_id": "x", "v": "2", "data": b"\xff{"},
            "unknown-type": {"type": "incident.exploded", "event_id": "y", "v": "1", "data": "{}"},
            "type-mismatch": mismatched,
            "future-version": future,
            "no-data": {"type": "incident.reported", "event_id": "z"},
            "invariant": events.to_fields(ghost),
        }
        await redis_store.append([reported, f.statement("s-1", incident_ids=["i-1"])])
        positions: dict[str, bytes] = {}
        for name, fields in raw.items():
            positions[name] = await added(redis_client, keys.log, fields)
            await redis_store.append([f.revised("i-1", 6 + len(positions))])
        await redis_store.append([f.reported("i-2", 2), f.merged("i-2", "i-1")])

        pool = ProjectorPool(
            redis_client,
            prefix=key_prefix,
            projections=EVERY,
            batch_size=batch_size,
            claim_idle_ms=200,
            lease_ms=1000,
            block_ms=50,
        )
        async with asyncio.timeout(DEADLINE):
            await pool.run_until_caught_up()

        letters = [fields for _, fields in await stream_entries(redis_client, keys.dlq)]
        by_entry: dict[bytes, set[bytes]] = {}
        for letter in letters:
            assert letter[b"deliveries"] == str(MAX_DELIVERIES).encode()
            by_entry.setdefault(letter[b"position"], set()).add(letter[b"projection"])
        everyone = {p.name.encode() for p in EVERY}
        expected = {positions[name]: everyone for name in raw if name != "invariant"}
        expected[positions["invariant"]] = {STRICT.name.encode()}
        assert by_entry == expected
        assert len(letters) == sum(len(v) for v in expected.values())  # none dead-lettered twice
        for letter in letters:
            original = raw[next(n for n, p in positions.items() if p == letter[b"position"])]
            for name, value in original.items():
                stored = value if isinstance(value, bytes) else str(value).encode()
                assert letter[f"entry.{name}".encode()] == stored
        (strict_letter,) = [x for x in letters if x[b"position"] == positions["invariant"]]
        assert strict_letter[b"error_type"] == b"InconsistentStateError"

        entries = await stream_entries(redis_client, keys.log)
        log = decodable(entries)
        head = entries[-1][0].decode()
        for projection in EVERY:
            applied = log
            if projection is STRICT:
                applied = [r for r in log if r.event.event_id != ghost.event_id]
            docs, checkpoint = await load_view(redis_client, key_prefix, projection)
            assert docs == fold(projection, applied), projection.name
            assert checkpoint == head, projection.name
            pending = await redis_client.xpending(keys.log, view_keys(key_prefix, projection).group)
            assert pending["pending"] == 0, projection.name
        strict_docs, _ = await load_view(redis_client, key_prefix, STRICT)
        assert strict_docs.get("known", "i-1") == Known(len(raw))  # every later revision applied

    async def test_a_poison_entry_never_blocks_a_fresh_pool_twice(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Once dead-lettered, a poison entry is behind the checkpoint: a new pool skips it."""
        keys = Keys(key_prefix)
        await added(redis_client, keys.log, {"type": "nope", "data": b"{"})
        await redis_store.append([f.reported(f"i-{uuid.uuid4().hex[:6]}")])
        options: dict[str, Any] = {"projections": EVERY, "claim_idle_ms": 200, "lease_ms": 1000,
                                   "block_ms": 50}  # fmt: skip
        async with asyncio.timeout(DEADLINE):
            await ProjectorPool(redis_client, prefix=key_prefix, **options).run_until_caught_up()
        first = await redis_client.xlen(keys.dlq)
        await redis_store.append([f.reported("later")])
        async with asyncio.timeout(DEADLINE):
            await ProjectorPool(redis_client, prefix=key_prefix, **options).run_until_caught_up()
        assert first == len(EVERY)
        assert await redis_client.xlen(keys.dlq) == first
        docs, _ = await load_view(redis_client, key_prefix, PROJECTIONS["incidents"])
        assert docs == fold(
            PROJECTIONS["incidents"], decodable(await stream_entries(redis_client, keys.log))
        )
