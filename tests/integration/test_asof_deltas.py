"""Property: as-of answers from base + deltas + tail equal the fold of the log, byte for byte.

Hypothesis draws a history (reports, revisions, retractions, merges, redactions, statements
and their retractions, from several feeds), appends it to a real Redis in a few parts, and
after each part runs the snapshot writer with a drawn interval, chain length and retention
(so chains are resumed, bases and deltas alternate, and retention leaves removed snapshots'
blobs that kept chains need). Then, for every as-of projection and at positions in a drawn
order (so the reader's kept states end chains at random places), the state as of each
position equals the pure fold up to it (documents in the same order), and every answer the
query API computes from it encodes to the same bytes. Each example has its own key prefix.
"""

from __future__ import annotations

import asyncio
import os
import uuid

import hypothesis.strategies as st
import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, assume, given, settings

from events import Event, Recorded
from projections import PROJECTIONS, State, fold
from projections.alignment import pairs
from projections.community_victims import query
from projections.country_stance import stances, timeline
from projections.filters import VictimsFilter
from projections.suppression import protected_query
from services.projector.snapshots import Snapshotter
from services.store.redis import RedisEventStore
from services.views.asof import ASOF_PROJECTIONS, AsOfReader
from services.views.snapshots import SnapshotStore
from tests.support.strategies import PARTITIONED, histories

EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "25"))
"""Examples per run: modest for CI; raise it locally to search harder."""


def answers(name: str, state: State) -> list[bytes]:
    """Every answer the query API computes from a state of ``name``, encoded."""
    encode = msgspec.json.encode
    if name == "community-victims":
        return [
            encode(query(state)),
            encode(protected_query(state, 5)),
            encode(protected_query(state, 2, VictimsFilter(status="civilian"))),
        ]
    if name == "country-stance":
        return [
            encode(stances(state)),
            *(encode(timeline(state, c)) for c in PARTITIONED.countries),
        ]
    return [encode(pairs(state))]


def ordered(state: State) -> dict[str, list[tuple[str, object]]]:
    """Every kind's documents as a list, in the state's order (empty kinds left out)."""
    return {kind: list(docs.items()) for kind, docs in state.kinds().items() if docs}


class Plan(msgspec.Struct, frozen=True):
    """Where the history is cut into appends, how the snapshots are written, and in what
    order the positions are asked (``order``: the rotation, and reversed when odd)."""

    cuts: list[int]
    every: int
    chain: int
    keep: int
    order: int


plans = st.builds(
    Plan,
    cuts=st.lists(st.integers(0, 60), max_size=3).map(sorted),
    every=st.integers(1, 5),
    chain=st.sampled_from([0, 1, 2, 3, 8]),
    keep=st.integers(1, 6),
    order=st.integers(0, 1000),
)


async def _scenario(url: str, events: list[Event], plan: Plan) -> None:
    client = aioredis.Redis.from_url(url)
    prefix = f"t-asof-{uuid.uuid4().hex[:12]}"
    store = RedisEventStore(client, prefix=prefix)
    try:
        writer = Snapshotter(
            client, prefix=prefix, every=plan.every, keep=plan.keep, chain=plan.chain
        )
        start = 0
        for cut in [*(min(c, len(events)) for c in plan.cuts), len(events)]:
            if events[start:cut]:
                await store.append(events[start:cut])  # type: ignore[arg-type]
                start = cut
            await writer.run_once()
        log: list[Recorded] = await store.read(count=10_000)
        snapshots = SnapshotStore(client, prefix)
        for name in ASOF_PROJECTIONS:
            projection = PROJECTIONS[name]
            assert len(await snapshots.refs(projection)) <= plan.keep
            reader = AsOfReader(client, prefix, cache_size=1 + plan.order % 3)
            positions = list(range(len(log)))
            positions = positions[plan.order % len(log) :] + positions[: plan.order % len(log)]
            if plan.order % 2:
                positions.reverse()
            for i in positions:
                state = await reader.state_until(projection, log[i].position)
                whole = fold(projection, log[: i + 1])
                assert ordered(state) == ordered(whole), (name, i)
                assert answers(name, state) == answers(name, whole), (name, i)
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()


class TestAsOfFromDeltasEqualsTheFold:
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(events=histories(PARTITIONED), plan=plans)
    def test_as_of_answers_from_snapshots_equal_the_fold(
        self, redis_url: str, events: list[Event], plan: Plan
    ) -> None:
        """At every position, in any order, base + deltas + tail give the fold's answers."""
        assume(events)
        asyncio.run(_scenario(redis_url, events, plan))
