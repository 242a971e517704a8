"""Property: a rebuild stores byte for byte the views the live projectors store.

Hypothesis draws a valid history (reports, revisions, merges, retractions, redactions,
statements; :func:`tests.support.strategies.histories`) and a poison entry written straight
into the log at a drawn place. The live pool folds it under one key prefix; a copy of the
same log (same positions) under a second prefix is rebuilt by ``ledger replay all``'s path
(:func:`~services.projector.replay.replay_together`), with drawn batch sizes and, in some
examples, documents written in chunks of two; in some, the live workers and the rebuild keep
no own documents (most of a view) after a commit, reading back each one an event names.
Every stored document (its JSON, as stored), the listing indexes, every checkpoint and the
dead letters (which projection, which entry, which error, the entry's fields) must be the
same; and every incident listing the live index answers must be the pure listing of the
stored rows.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import uuid
from typing import Any, Final, cast
from unittest import mock

import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
from events import AnyEvent, Event
from projections import PROJECTIONS, VictimsFilter
from projections.common import docs_of
from projections.incident_docs import INCIDENT, IncidentView
from projections.incident_queries import LISTED, index_query, listing, listing_rows
from services.projector import replay_flush
from services.projector.pool import ProjectorPool
from services.projector.replay import replay_together
from services.projector.replay_records import ReplayRecord
from services.resp import text
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import active_generation, view_keys
from services.views.listing import index_keys
from services.views.own import RESIDENT
from services.views.redis import RedisViewStore
from tests.support.strategies import PARTITIONED, histories
from tests.support.streams import added, entries

DEADLINE = 60.0
EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "25"))
"""Examples per run: modest for CI; raise it locally to search harder."""

VIEWS = list(PROJECTIONS.values())
INCIDENTS = PROJECTIONS["incidents"]

POISONS: dict[str, dict[str, Any]] = {
    "garbage": {"type": "incident.reported", "event_id": "x", "v": "2", "data": b"\xff{"},
    "unknown-type": {"type": "incident.exploded", "event_id": "y", "v": "1", "data": "{}"},
    "future-version": {"type": "statement.retracted", "event_id": "z", "v": "99", "data": "{}"},
    "no-data": {"type": "statement.issued", "event_id": "w"},
}
"""Entries no projection can apply (each dead-lettered by every one)."""

Stored = dict[str, Any]


async def _stored(client: aioredis.Redis, prefix: str) -> Stored:
    """Every view's documents as stored, its checkpoint, and the dead letters."""
    keys = Keys(prefix)
    found: Stored = {}
    for projection in VIEWS:
        generation = await active_generation(client, keys, projection)
        view = view_keys(keys, projection, generation)
        for kind, key in view.kinds.items():
            found[f"{projection.name}/{kind}"] = await client.hgetall(key)
        for name in await index_keys(client, view):  # the listing indexes, as stored
            held = text(await client.type(name))
            if held == "none":  # a part of a day that holds no id
                continue
            base = next(key for key in view.kinds.values() if name.startswith(f"{key}:"))
            found[f"{projection.name}/{name.removeprefix(base)}"] = (
                await client.zrange(name, 0, -1)
                if held == "zset"
                else await client.hgetall(name)
                if held == "hash"
                else await client.smembers(name)
            )
        found[f"{projection.name}/checkpoint"] = await client.hget(view.meta, "position")
    letters = set()
    for _, fields in await entries(client, keys.dlq):
        letter = {text(k): v for k, v in fields.items()}  # an entry's copy: any bytes
        kept = ("projection", "version", "position", "error_type")
        entry = tuple(sorted((k, v) for k, v in letter.items() if k.startswith("entry.")))
        letters.add((*(letter.get(k) for k in kept), entry))
    found["dead letters"] = letters
    return found


RANGES: Final = [
    (None, None),
    (dt.date(2025, 3, 10), None),
    (None, dt.date(2025, 3, 5)),
    (dt.date(2025, 3, 4), dt.date(2025, 3, 12)),
    (dt.date(2025, 4, 2), dt.date(2025, 4, 2)),
    (dt.date(2026, 1, 5), None),
]
"""Ranges of days asked of the index: inside the histories' days, at their edges, and past
them (reached only by windows of a month, a year, or an end)."""


async def _listings_are_the_folds(client: aioredis.Redis, prefix: str) -> None:
    """Every incident listing the index answers (each status, with and without each
    country and adm1, over ranges of days, a few pages) is what the pure listing of the
    stored rows answers."""
    views = RedisViewStore(client, prefix)
    state, checkpoint = await views.load(INCIDENTS)
    rows = docs_of(state, INCIDENT, IncidentView).values()
    places = sorted({(row.country, row.place.adm1) for row in rows if row.place and row.country})
    wheres = [
        VictimsFilter(country=country, adm1=adm1, date_from=low, date_to=high)
        for country, adm1 in [(None, None), *((c, None) for c, _ in places), *places]
        for low, high in RANGES
    ]
    for status, where in itertools.product(LISTED, dict.fromkeys(wheres)):
        query = index_query(where, status)
        assert query is not None
        for page, limit in ((1, 2), (2, 2), (3, 1), (1, 1000)):
            found = await views.listing(
                INCIDENTS,
                INCIDENT,
                query.groups,
                first=(page - 1) * limit,
                limit=limit,
                days=(query.low, query.high),
            )
            expected = listing(state, where, status=status, page=page, limit=limit)
            assert found.checkpoint == checkpoint
            shown = listing_rows(cast("list[IncidentView]", found.docs))
            assert (shown, found.total) == expected, (status, where, page, limit)


async def _scenario(
    url: str,
    history: list[Event],
    *,
    poison: str,
    at: int,
    sizes: tuple[int, int],
    chunked: bool,
    resident: int,
) -> None:
    client = aioredis.Redis.from_url(url)
    live, rebuilt = (f"t-rebuild-{uuid.uuid4().hex[:12]}" for _ in range(2))
    try:
        store = RedisEventStore(client, prefix=live)
        logged = cast("list[AnyEvent]", history)
        before, after = logged[:at], logged[at:]
        if before:
            await store.append(before)
        await added(client, Keys(live).log, POISONS[poison])
        if after:
            await store.append(after)
        pool = ProjectorPool(
            client,
            prefix=live,
            projections=VIEWS,
            batch_size=sizes[0],
            claim_idle_ms=100,
            lease_ms=1000,
            block_ms=20,
            resident=resident,
        )
        await asyncio.wait_for(pool.run_until_caught_up(), DEADLINE)

        for ident, fields in await entries(client, Keys(live).log):  # the same log, elsewhere
            await client.xadd(Keys(rebuilt).log, dict(fields), id=ident)  # type: ignore[arg-type]
        with mock.patch.object(replay_flush, "CHUNK", 2 if chunked else replay_flush.CHUNK):
            records = await asyncio.wait_for(
                replay_together(
                    client, VIEWS, prefix=rebuilt, batch_size=sizes[1], resident=resident
                ),
                DEADLINE,
            )
        assert all(isinstance(record, ReplayRecord) for record in records), records

        await _listings_are_the_folds(client, live)
        expected, found = await _stored(client, live), await _stored(client, rebuilt)
        assert found.keys() == expected.keys()
        for name, value in expected.items():
            assert found[name] == value, name
        assert len(expected["dead letters"]) == len(VIEWS)  # the poison, by every view
    finally:
        for prefix in (live, rebuilt):
            keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
            if keys:
                await client.unlink(*keys)
        await client.aclose()


class TestRebuildEqualsLive:
    """Whatever the history, a rebuild stores what the live projectors store."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        history=histories(msgspec.structs.replace(PARTITIONED, windows=True)),
        poison=st.sampled_from(sorted(POISONS)),
        place=st.floats(0, 1),
        sizes=st.tuples(st.sampled_from([1, 5, 1000]), st.sampled_from([1, 3, 50_000])),
        chunked=st.booleans(),
        resident=st.sampled_from([0, RESIDENT]),
    )
    def test_stored_views_checkpoints_and_dead_letters_are_equal(
        self,
        redis_url: str,
        *,
        history: list[Event],
        poison: str,
        place: float,
        sizes: tuple[int, int],
        chunked: bool,
        resident: int,
    ) -> None:
        """Documents (as stored), checkpoints and dead letters: rebuilt equal to live."""
        at = round(place * len(history))
        asyncio.run(
            _scenario(
                redis_url,
                history,
                poison=poison,
                at=at,
                sizes=sizes,
                chunked=chunked,
                resident=resident,
            )
        )


def test_poison_fields_are_not_events() -> None:
    """Each drawn poison is one the log's decoder refuses (else the property proves less)."""
    for fields in POISONS.values():
        try:
            events.from_fields(fields)
        except events.CodecError:
            continue
        raise AssertionError(fields)
