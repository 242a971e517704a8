"""Property: whatever the events and wherever the projector crashes, the views equal the fold.

Hypothesis draws a valid event sequence, cuts it into appends, and for each append runs a pool
that is crashed at a drawn point: an exception before the commit or between commit and ack, a
hang there followed by an abrupt cancel, or a cancel once caught up (a batch boundary). Pools
alternate between consumer names, so both redelivery to the same consumer and take-over by
another are exercised, and between how many own documents (most of a view) their workers keep
after a commit (none: each is read back from the view before an event names it). A last pool
then catches up, and every stored view must equal the pure fold of the log, with each
position applied exactly once. Each example has its own key prefix.
"""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from typing import Literal

import msgspec
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import AnyEvent, Speaker
from projections import fold
from services.projector.pool import ProjectorPool, Step
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.generations import view_keys
from services.views.own import RESIDENT
from services.views.redis import load_checkpoint, load_kind, load_view
from tests.support import builders as f
from tests.support.runner import COUNTING, EVERY, SimulatedCrashError

DEADLINE = 30.0
EXAMPLES = int(os.environ.get("LEDGER_PROPERTY_EXAMPLES", "25"))
"""Examples per run: modest for CI; raise it locally to search harder."""
COUNTRIES = ("FRA", "DEU", "USA", "RUS", "TUR")
SUBJECTS = ("syria-civilians", "gaza-aid", "sudan-ceasefire")
STANCES = ("condemn", "support", "neutral", "welcome")
CAMEO = {"condemn": "111", "support": "051", "neutral": "010", "welcome": "051"}
"""A CAMEO code each stance goes with (one its root does not contradict)."""

Op = tuple[str, int, int]

ops = st.lists(
    st.tuples(
        st.sampled_from(["report", "report", "revise", "retract", "merge", "state", "unstate"]),
        st.integers(0, 1000),
        st.integers(0, 1000),
    ),
    min_size=1,
    max_size=30,
)


class Plan(msgspec.Struct, frozen=True):
    """How the pool of one segment runs and where it crashes."""

    mode: Literal["raise", "hang", "none"]
    step: Step
    nth: int
    projection: str
    consumer: str
    batch_size: int
    resident: int
    """Own documents a worker holds after a commit (0: it reads every one back)."""


plans = st.builds(
    Plan,
    mode=st.sampled_from(["raise", "hang", "none"]),
    step=st.sampled_from(["before_commit", "after_commit"]),
    nth=st.integers(1, 3),
    projection=st.sampled_from([p.name for p in EVERY]),
    consumer=st.sampled_from(["c-a", "c-b"]),
    batch_size=st.sampled_from([1, 2, 5, 1000]),
    resident=st.sampled_from([0, 1, RESIDENT]),
)


def events_of(drawn: list[Op]) -> list[AnyEvent]:
    """Interpret drawn operations as a sequence of events the store accepts."""
    live: list[str] = []
    statements: list[str] = []
    events: list[AnyEvent] = []
    for n, (op, a, b) in enumerate(drawn):
        if op == "report" or (op in ("revise", "retract") and not live):
            live.append(f"i-{n}")
            events.append(f.reported(f"i-{n}", a % 60))
        elif op == "revise":
            events.append(f.revised(live[a % len(live)], b % 60))
        elif op == "retract":
            events.append(f.retracted(live.pop(a % len(live))))
        elif op == "merge" and len(live) >= 2:
            dup = live.pop(a % len(live))
            events.append(f.merged(dup, live[b % len(live)]))
        elif op == "unstate" and statements:
            events.append(f.statement_retracted(statements.pop(a % len(statements))))
        else:
            first, second = COUNTRIES[a % 5], COUNTRIES[(a + 1 + b % 4) % 5]
            speakers = [first] if b % 3 else [first, second]
            statements.append(f"s-{n}")
            events.append(
                f.statement(
                    f"s-{n}",
                    speakers=[Speaker(country=c, name="Foreign ministry") for c in speakers],
                    subject=SUBJECTS[b % 3],
                    stance=STANCES[(a + b) % 4],
                    cameo_code=CAMEO[STANCES[(a + b) % 4]],
                    incident_ids=[live[b % len(live)]] if live and a % 2 else [],
                )
            )
    return events


class _Crasher:
    """The step hook of one segment's pool, carrying out its :class:`Plan`."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.seen = 0
        self.hit = asyncio.Event()

    async def __call__(self, name: str, step: Step) -> None:
        plan = self.plan
        if plan.mode == "none" or name != plan.projection or step != plan.step:
            return
        self.seen += 1
        if self.seen != plan.nth:
            return
        self.hit.set()
        if plan.mode == "raise":
            raise SimulatedCrashError(f"{step} #{plan.nth}")
        await asyncio.Event().wait()  # hang here until the pool is cancelled


async def _caught_up(client: aioredis.Redis, prefix: str) -> bool:
    head = await RedisEventStore(client, prefix=prefix).head()
    for projection in EVERY:
        if await load_checkpoint(client, prefix, projection) != head:
            return False
        summary = await client.xpending(Keys(prefix).log, view_keys(prefix, projection).group)
        if int(summary["pending"]):
            return False
    return True


async def _run_segment(client: aioredis.Redis, prefix: str, plan: Plan) -> None:
    crasher = _Crasher(plan)
    pool = ProjectorPool(
        client,
        prefix=prefix,
        projections=EVERY,
        consumer=plan.consumer,
        batch_size=plan.batch_size,
        resident=plan.resident,
        claim_idle_ms=100,
        lease_ms=200,
        block_ms=20,
        hook=crasher,
    )
    await pool.start()
    deadline = time.monotonic() + DEADLINE
    while not crasher.hit.is_set() and not await _caught_up(client, prefix):
        assert time.monotonic() < deadline, f"segment under {plan} did not settle"
        await asyncio.sleep(0.01)
    await pool.abort()


async def _scenario(
    url: str, events: list[AnyEvent], cuts: list[int], segments: list[Plan]
) -> None:
    client = aioredis.Redis.from_url(url)
    prefix = f"t-prop-{uuid.uuid4().hex[:12]}"
    store = RedisEventStore(client, prefix=prefix)
    try:
        start = 0
        for cut, plan in zip(cuts, segments, strict=False):
            chunk = events[start : start + cut]
            start += cut
            if chunk:
                await store.append(chunk)
            await _run_segment(client, prefix, plan)
        if events[start:]:
            await store.append(events[start:])
        final = ProjectorPool(
            client,
            prefix=prefix,
            projections=EVERY,
            claim_idle_ms=100,
            lease_ms=200,
            block_ms=20,
            resident=segments[-1].resident if segments else RESIDENT,
        )
        await asyncio.wait_for(final.run_until_caught_up(), DEADLINE)

        log = await store.read(count=10_000)
        for projection in EVERY:
            docs, checkpoint = await load_view(client, prefix, projection)
            assert docs == fold(projection, log), projection.name
            assert checkpoint == log[-1].position
        seen = await load_kind(client, prefix, COUNTING, "seen")
        assert sorted(seen) == sorted(r.position for r in log)
        assert {s.times for s in seen.values()} == {1}  # type: ignore[attr-defined]
    finally:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:*", count=1000)]
        if keys:
            await client.unlink(*keys)
        await client.aclose()


class TestCrashesNeverChangeTheFold:
    """Random events and random crash points: the stored views still equal the pure fold."""

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(
        drawn=ops,
        cuts=st.lists(st.integers(1, 12), min_size=1, max_size=4),
        segments=st.lists(plans, min_size=4, max_size=4),
    )
    def test_views_equal_the_fold_after_random_crashes(
        self, redis_url: str, drawn: list[Op], cuts: list[int], segments: list[Plan]
    ) -> None:
        """Crashes before commit, between commit and ack, or by cancel never lose or repeat."""
        asyncio.run(_scenario(redis_url, events_of(drawn), cuts, segments))
