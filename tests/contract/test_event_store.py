"""The event store contract: one suite, run against the in-memory and the Redis store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from events import AnyEvent
from services.store.base import EventStore
from tests.support.contracts import entity_rules as rules
from tests.support.contracts import event_store as contract
from tests.support.contracts import ownership
from tests.support.contracts.event_store import everything
from tests.support.strategies import BATCH_IDS, batches, event_of, outcome


@pytest.fixture(params=["memory", "redis"])
def store(request: pytest.FixtureRequest) -> EventStore:
    """Each store implementation in turn."""
    name = "memory_store" if request.param == "memory" else "redis_store"
    found: EventStore = request.getfixturevalue(name)
    return found


class TestAppendAndRead(contract.AppendAndRead):
    """Appended events come back from the log as they were stored, in order."""


class TestIdempotency(contract.Idempotency):
    """A known event_id is a duplicate: it writes nothing and answers the original position."""


class TestExpectedVersion(contract.ExpectedVersion):
    """expected_version, when given, must equal the entity's version."""


class TestIncidentRules(rules.IncidentRules):
    """Reports, revisions, retractions and merges must fit the incident's state."""


class TestStatementRules(rules.StatementRules):
    """Statements are issued once and retracted at most once."""


class TestOwnership(ownership.Ownership):
    """Only an incident's feed or an operator revises, retracts or merges it."""


class TestDisputes(ownership.Disputes):
    """Another feed disputes an incident without changing it."""


class TestIdsPerFeed(ownership.IdsPerFeed):
    """Event ids are keyed by (feed, event id), the body compared."""


class TestCitations(ownership.Citations):
    """A statement names only reported incidents."""


class TestBatchAtomicity(contract.BatchAtomicity):
    """A batch is appended whole or not at all."""


class TestEntities(contract.Entities):
    """entity() tracks versions and status; read_entity() lists an entity's events."""


class TestStoresAgree:
    """The in-memory store is a faithful stand-in: on any history both answer the same."""

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(drawn_batches=batches)
    async def test_random_histories_give_equal_answers_and_state(
        self, redis_client: Any, key_prefix: str, drawn_batches: list[list[Any]]
    ) -> None:
        """Random batches (with retries and preconditions) get equal answers and end state."""
        from services.store.memory import InMemoryEventStore
        from services.store.redis import RedisEventStore

        memory = InMemoryEventStore()
        redis_store = RedisEventStore(redis_client, prefix=f"{key_prefix}:{uuid.uuid4().hex}")
        sent: list[AnyEvent] = []
        for drawn in drawn_batches:
            batch: list[AnyEvent] = []
            for step, expected in drawn:
                batch.append(event_of(step, expected, sent))
                sent.append(batch[-1])  # a resend may repeat an event of this very batch
            assert await outcome(memory, batch) == await outcome(redis_store, batch)
        entities = [f"{kind}:{i}" for kind in ("incident", "statement") for i in BATCH_IDS]
        for entity in entities:
            assert await memory.entity(entity) == await redis_store.entity(entity)
            mine = [r.event for r in await memory.read_entity(entity)]
            theirs = [r.event for r in await redis_store.read_entity(entity)]
            assert mine == theirs
        assert [r.event for r in await everything(memory)] == [
            r.event for r in await everything(redis_store)
        ]
        assert await memory.length() == await redis_store.length()
