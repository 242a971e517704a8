"""Projector workers heal themselves: an unexpected error restarts the worker, never stops it.

The errors are injected: through the pool's step hook (an exception before or after a
commit, as a bug would raise), through a projection whose documents cannot be encoded (the
same entry fails every commit), and through a stored view that does not decode. Each test
waits for conditions with deadlines, never by sleeping.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
import redis.asyncio as aioredis

from events import Recorded, from_fields
from projections import PROJECTIONS, Projection, State
from projections.docs import Docs
from services import bootstrap
from services.projector.healing import FAILURES_BEFORE_DEAD_LETTER
from services.projector.pool import ProjectorPool, Step
from services.resp import text
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.freshness import lag_after
from services.views.generations import view_keys
from services.views.redis import load_checkpoint, load_view
from tests.support import builders as f
from tests.support.http import client_of
from tests.support.runner import COUNTING, EVERY, FAST, Pools, assert_views_match_fold
from tests.support.tokens import TOKENS
from tests.support.waiting import until

DEADLINE = 30.0


class InjectedError(Exception):
    """Raised by the tests' step hook where a bug would raise."""


@pytest.fixture
async def pools(redis_client: aioredis.Redis, key_prefix: str) -> AsyncIterator[Pools]:
    """Pools on this test's prefix, aborted at its end."""
    made = Pools(redis_client, key_prefix, **FAST)
    try:
        yield made
    finally:
        await made.abort()


async def caught_up(
    client: aioredis.Redis, prefix: str, projections: tuple[Projection, ...] = EVERY
) -> bool:
    """Whether every view lags by nothing (and nothing is pending in its group)."""
    keys = Keys(prefix)
    for projection in projections:
        checkpoint = await load_checkpoint(client, keys, projection)
        if (await lag_after(client, keys, projection, checkpoint)).entries:
            return False
        pending = await client.xpending(keys.log, keys.group(projection.name, projection.version))
        if int(pending["pending"]):
            return False
    return True


class TestInjectedErrors:
    """A worker meeting an unexpected error restarts; nothing is lost or applied twice."""

    async def test_errors_before_and_after_commits_restart_workers_and_views_equal_the_fold(
        self, pools: Pools, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Errors before a commit (nothing written) and after one (written, not acked) end
        the workers' terms; they restart by themselves and every view equals the fold.

        The log grows in rounds, each caught up before the next, so every projection makes
        at least one commit a round (30 in all) whether its worker reads a round in batches,
        follows the log or catches up in one commit; the hook's chosen commits all come."""
        raised: list[tuple[str, Step]] = []
        seen: dict[tuple[str, Step], int] = {}
        chosen = {
            (COUNTING.name, "before_commit"): {2, 5},
            (COUNTING.name, "after_commit"): {3, 7},
            ("incidents", "after_commit"): {2},
            ("community-victims", "before_commit"): {4},
        }

        async def hook(name: str, step: Step) -> None:
            seen[(name, step)] = seen.get((name, step), 0) + 1
            if seen[(name, step)] in chosen.get((name, step), set()):
                raised.append((name, step))
                raise InjectedError(f"{name} {step} #{seen[(name, step)]}")

        store = RedisEventStore(redis_client, prefix=key_prefix)
        pool = pools(projections=EVERY, hook=hook, batch_size=20)
        await pool.start()
        for n in range(30):  # each round caught up: at least one commit each, however read
            await store.append([f.reported(f"i-{n}-{k}", k + 1) for k in range(10)])
            await store.append([f.revised(f"i-{n}-0", 50)])
            await until(
                lambda: caught_up(redis_client, key_prefix),
                "the views to catch up",
                within=DEADLINE,
            )
        assert sorted(raised) == sorted(key for key, nths in chosen.items() for _ in nths)
        assert pool.running  # no worker stopped
        assert isinstance(pool.failure(), InjectedError)
        status = {row.name: row for row in await pool.status()}
        assert status[COUNTING.name].restarts == 4
        assert status["incidents"].restarts == 1
        assert pool.health() == {}  # healthy again: each made progress since
        await assert_views_match_fold(redis_client, key_prefix)  # counting: no double apply


class Box(msgspec.Struct, frozen=True):
    """A document that, for events of the feed ``unencodable``, holds what JSON cannot."""

    value: Any


def _boxing(state: State, recorded: Recorded) -> State:
    bad = recorded.event.source == "unencodable"
    state.put("box", recorded.event.entity, Box(object() if bad else recorded.position))
    return state


BOXING = Projection(
    name="test-boxing", version=1, doc_types={"box": Box}, initial=Docs, apply=_boxing
)
"""Applies every event; the commit of one from the feed ``unencodable`` fails (TypeError)."""


class TestAnEntryThatKeepsFailing:
    """An entry that fails the worker itself every time ends in the dead letters."""

    async def test_the_entry_is_dead_lettered_and_later_ones_are_applied(
        self, pools: Pools, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Its commit fails every term; after the third failure at one checkpoint (going one
        entry at a time) it is dead-lettered with its error and the worker goes on."""
        store = RedisEventStore(redis_client, prefix=key_prefix)
        before = [f.reported(f"i-{n}") for n in range(40)]
        bad = f.reported("i-bad", source="unencodable")
        after = [f.reported(f"j-{n}") for n in range(40)]
        await store.append(before)
        (poison,) = await store.append([bad])
        await store.append(after)
        pool = pools(projections=[BOXING], batch_size=25)
        await pool.start()
        await until(
            lambda: caught_up(redis_client, key_prefix, (BOXING,)), "the view", within=DEADLINE
        )
        keys = Keys(key_prefix)
        letters: Any = await redis_client.xrange(keys.dlq)
        assert len(letters) == 1
        letter = {text(k): v for k, v in letters[0][1].items()}
        entry = {k[len("entry.") :]: v for k, v in letter.items() if k.startswith("entry.")}
        assert from_fields(entry) == bad  # the log entry's own fields, whole
        letter = {k: text(v) for k, v in letter.items() if not k.startswith("entry.")}
        assert letter["position"] == poison.position
        assert letter["projection"] == BOXING.name
        assert letter["error_type"] == "TypeError"
        assert letter["deliveries"] == str(FAILURES_BEFORE_DEAD_LETTER)
        docs, checkpoint = await load_view(redis_client, keys, BOXING)
        assert checkpoint == await store.head()
        boxes = docs.kind("box")
        assert "incident:i-bad" not in boxes
        assert len(boxes) == len(before) + len(after)
        assert pool.running
        (row,) = await pool.status()
        # once in the catch-up that held it, then at every try with the entry alone
        assert row.restarts == 1 + FAILURES_BEFORE_DEAD_LETTER
        meta = view_keys(keys, BOXING).meta
        assert int(await redis_client.hget(meta, "ordinal") or 0) == await store.length()


class TestACorruptView:
    """A view that does not decode keeps its worker restarting (and reported) until repaired."""

    async def test_the_worker_reports_its_error_and_catches_up_once_the_view_is_repaired(
        self, pools: Pools, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """``health()`` names the worker, ``restarting``, with the decoding error; after the
        view is dropped (as an operator's rebuild would replace it) the worker catches up."""
        incidents = PROJECTIONS["incidents"]
        keys = view_keys(key_prefix, incidents)
        store = RedisEventStore(redis_client, prefix=key_prefix)
        await store.append([f.reported("i-1"), f.revised("i-1")])
        # the view stands after the report with i-1's row corrupt: the revision reads it back
        # (an incident's rows are not loaded with the view, :mod:`services.views.own`)
        await redis_client.hset(keys.kinds["incident"], "i-1", "not a document")
        await redis_client.hset(keys.meta, "position", "1-0")
        pool: ProjectorPool = pools(projections=[incidents])
        await pool.start()
        await until(lambda: bool(pool.health()), "the worker to be degraded", within=DEADLINE)
        (name, health) = next(iter(pool.health().items()))
        assert name == "projector:incidents"
        assert health.state == "restarting"
        assert health.error.startswith("CorruptViewError")
        await redis_client.delete(keys.kinds["incident"], keys.meta)
        await until(
            lambda: caught_up(redis_client, key_prefix, (incidents,)), "the view", within=DEADLINE
        )
        assert pool.health() == {}
        assert pool.running


class TestTheHealthBoard:
    """A projector process's degraded worker shows in the API's ``/readyz``."""

    async def test_readyz_of_the_api_names_a_degraded_worker_of_another_process(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """The projector process posts its failing worker to the board; the API's readyz
        lists it as ``<process>/projector:incidents`` with the error, and drops it once the
        worker recovered."""
        incidents = PROJECTIONS["incidents"]
        keys = view_keys(key_prefix, incidents)
        store = RedisEventStore(redis_client, prefix=key_prefix)
        await store.append([f.reported("i-1"), f.revised("i-1")])
        # the view stands after the report with i-1's row corrupt: the revision reads it back
        # (an incident's rows are not loaded with the view, :mod:`services.views.own`)
        await redis_client.hset(keys.kinds["incident"], "i-1", "not a document")
        await redis_client.hset(keys.meta, "position", "1-0")
        settings = Settings(key_prefix=key_prefix, claim_idle_ms=1000, tokens=TOKENS)
        projector = bootstrap.projectors(settings, redis_url=redis_url, lease_ms=1000)
        app = bootstrap.http_app(settings, store=store, client=redis_client, process="api:test")
        await projector.start()
        try:
            async with client_of(app) as http:

                async def degraded() -> dict[str, Any]:
                    answer: dict[str, Any] = (await http.get("/readyz")).json()
                    return answer.get("degraded") or {}

                async def listed() -> bool:
                    return bool(await degraded())

                await until(listed, "the worker to be on the board", within=DEADLINE)
                ((name, health),) = (await degraded()).items()
                assert name.startswith("projector:")
                assert name.endswith("/projector:incidents")
                assert health["state"] == "restarting"
                assert health["error"].startswith("CorruptViewError")
                await redis_client.delete(keys.kinds["incident"], keys.meta)

                async def cleared() -> bool:
                    return not await degraded()

                await until(cleared, "the recovered worker to leave the board", within=DEADLINE)
        finally:
            await projector.stop()
