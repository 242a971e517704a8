"""The event store on several log partitions: batches split by partition, merges checked
across partitions, and the same answers as the one-log reference store, in suites (see
:mod:`tests.support.contracts.event_store`) asking for a ``store`` on :data:`PARTITIONS`
partitions."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck, given, settings

from events import AnyEvent
from services.store.base import AppendRejectedError, ConflictError, IdReusedError, NotOwnerError
from services.store.keys import Keys
from services.store.memory import InMemoryEventStore
from services.store.redis import RedisEventStore
from tests.support.builders import merged, reported, retracted, revised, statement
from tests.support.strategies import BATCH_IDS, batches, event_of, outcome

__all__ = [
    "PARTITIONS",
    "AcrossPartitions",
    "AgreesWithTheOneLogStore",
    "ConcurrentChangeBetweenCheckAndWrite",
    "CrossPartitionMerges",
    "SplitBatches",
    "ids_in",
]

PARTITIONS = 3


def ids_in(partition: int, count: int, *, kind: str = "incident") -> list[str]:
    """``count`` incident (or statement) ids whose entities live in ``partition``."""
    keys = Keys("x", PARTITIONS)
    found: list[str] = []
    n = 0
    while len(found) < count:
        ident = f"{kind[0]}-{n}"
        if keys.partition_of(f"{kind}:{ident}") == partition:
            found.append(ident)
        n += 1
    return found


A, B = ids_in(0, 3), ids_in(1, 3)
"""Incident ids of partitions 0 and 1."""


class SplitBatches:
    """A batch spanning partitions is split, each event going to its entity's partition."""

    async def test_every_event_lands_in_its_entity_s_partition(
        self, store: RedisEventStore
    ) -> None:
        """Each answer names the entity's partition, and that partition's log holds it."""
        batch: list[AnyEvent] = [reported(A[0]), reported(B[0]), revised(A[0]), statement("s-9")]
        answers = await store.append(batch)
        for event, answer in zip(batch, answers, strict=True):
            assert answer.partition == store.keys.partition_of(event.entity)
            held = await store.read(partition=answer.partition)
            assert answer.position in [r.position for r in held]
        assert await store.length() == 4

    async def test_events_of_one_entity_keep_their_order(self, store: RedisEventStore) -> None:
        """Reported, revised twice and retracted come back in that order from the partition."""
        await store.append([reported(A[0]), reported(B[0]), revised(A[0], best=11)])
        await store.append([revised(A[0], best=12), retracted(A[0])])
        mine = [r.event.type for r in await store.read_entity(f"incident:{A[0]}")]
        assert mine == [
            "incident.reported",
            "incident.casualties_revised",
            "incident.casualties_revised",
            "incident.retracted",
        ]

    async def test_a_duplicate_answers_its_original_partition_and_position(
        self, store: RedisEventStore
    ) -> None:
        """Resending a batch writes nothing and answers the first positions."""
        batch: list[AnyEvent] = [reported(A[0]), reported(B[0])]
        first = await store.append(batch)
        again = await store.append(batch)
        assert [(a.position, a.partition) for a in again] == [
            (a.position, a.partition) for a in first
        ]
        assert {a.status for a in again} == {"duplicate"}
        assert await store.length() == 2


class CrossPartitionMerges:
    """A merge into an incident of another partition is checked against that incident."""

    async def test_merge_into_a_live_incident_elsewhere_is_accepted(
        self, store: RedisEventStore
    ) -> None:
        """The duplicate is marked merged; the canonical incident lists the merge."""
        await store.append([reported(A[0]), reported(B[0])])
        await store.append([merged(B[0], A[0])])
        state = await store.entity(f"incident:{B[0]}")
        assert state is not None
        assert (state.status, state.merged_into) == ("merged", A[0])
        canonical = await store.read_entity(f"incident:{A[0]}")
        assert [r.event.type for r in canonical] == ["incident.reported", "incident.merged"]

    async def test_merge_into_an_incident_reported_earlier_in_the_batch_is_accepted(
        self, store: RedisEventStore
    ) -> None:
        """The batch's own earlier report makes the target live for the merge."""
        answers = await store.append([reported(B[0]), reported(A[0]), merged(B[0], A[0])])
        assert [a.status for a in answers] == ["appended"] * 3

    @pytest.mark.parametrize("target_state", ["missing", "retracted", "merged"])
    async def test_merge_into_a_dead_incident_elsewhere_writes_nothing(
        self, store: RedisEventStore, target_state: str
    ) -> None:
        """The merge is refused at its index and no part of the batch is written."""
        setup: list[AnyEvent] = [reported(B[0])]
        if target_state != "missing":
            setup.append(reported(A[0]))
        if target_state == "retracted":
            setup.append(retracted(A[0]))
        if target_state == "merged":
            setup += [reported(A[1]), merged(A[0], A[1])]
        await store.append(setup)
        before = await store.length()
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([reported(A[2]), statement("s-1"), merged(B[0], A[0])])
        assert (caught.value.index, caught.value.field) == (2, "into")
        assert target_state in caught.value.message or "never reported" in caught.value.message
        assert caught.value.written == ()
        assert await store.length() == before

    async def test_target_retracted_between_two_merges_of_one_batch_refuses_the_second(
        self, store: RedisEventStore
    ) -> None:
        """Each merge is checked against the target's state at its own place in the batch."""
        await store.append([reported(A[0]), reported(B[0]), reported(B[1])])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([merged(B[0], A[0]), retracted(A[0]), merged(B[1], A[0])])
        assert caught.value.index == 2
        assert (await store.entity(f"incident:{B[0]}")) == (await store.entity(f"incident:{B[1]}"))

    async def test_a_conflict_in_one_part_writes_no_other_part(
        self, store: RedisEventStore
    ) -> None:
        """A version conflict in the second partition leaves the first unwritten too."""
        await store.append([reported(B[0])])
        with pytest.raises(ConflictError) as caught:
            await store.append([reported(A[0]), revised(B[0], expected_version=5)])
        assert caught.value.index == 1
        assert await store.entity(f"incident:{A[0]}") is None


class AcrossPartitions:
    """Ownership and citations hold when the entities involved live on other partitions."""

    async def test_a_merge_into_another_partition_needs_the_duplicate_s_owner(
        self, store: RedisEventStore
    ) -> None:
        """acled may not merge sohr's incident of partition 1 into one of partition 0."""
        await store.append([reported(A[0], source="acled"), reported(B[0])])
        with pytest.raises(NotOwnerError) as caught:
            await store.append([reported(A[1], source="acled"), merged(B[0], A[0], source="acled")])
        assert (caught.value.index, caught.value.owner) == (1, "sohr")
        assert caught.value.written == ()
        assert await store.entity(f"incident:{A[1]}") is None

    async def test_a_statement_citing_incidents_of_other_partitions(
        self, store: RedisEventStore
    ) -> None:
        """Named incidents are looked up in their own partitions, the batch's reports count."""
        s_ids = ids_in(2, 1, kind="statement")
        await store.append([reported(A[0])])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([statement(s_ids[0], incident_ids=[A[0], B[0], A[2]])])
        assert caught.value.message.endswith(f"{B[0]}, {A[2]}")
        answers = await store.append(
            [reported(B[0]), statement(s_ids[0], incident_ids=[A[0], B[0]])]
        )
        assert [a.status for a in answers] == ["appended", "appended"]

    async def test_an_id_taken_in_the_statement_s_partition(self, store: RedisEventStore) -> None:
        """Another feed's event under a taken id of the same entity is refused."""
        event = reported(B[0])
        await store.append([event])
        with pytest.raises(IdReusedError) as caught:
            await store.append(
                [reported(A[0]), revised(B[0], source="acled", event_id=event.event_id)]
            )
        assert caught.value.reason == "id_taken"
        assert await store.entity(f"incident:{A[0]}") is None


class AgreesWithTheOneLogStore:
    """On any history the partitioned store answers as the one-log reference store does."""

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[  # also run from tests/cluster, a second class instance
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(drawn_batches=batches)
    async def test_random_histories_give_equal_answers_and_state(
        self, redis_client: Any, key_prefix: str, drawn_batches: list[list[Any]]
    ) -> None:
        """Random batches over three partitions: equal answers, entity states and events."""
        memory = InMemoryEventStore()
        partitioned = RedisEventStore(
            redis_client, prefix=f"{key_prefix}:{uuid.uuid4().hex}", partitions=PARTITIONS
        )
        sent: list[AnyEvent] = []
        for drawn in drawn_batches:
            batch: list[AnyEvent] = []
            for step, expected in drawn:
                batch.append(event_of(step, expected, sent))
                sent.append(batch[-1])
            assert await outcome(memory, batch, places=False) == await outcome(
                partitioned, batch, places=False
            )
        for entity in [f"{kind}:{i}" for kind in ("incident", "statement") for i in BATCH_IDS]:
            assert await memory.entity(entity) == await partitioned.entity(entity)
            mine = sorted(str(r.event.event_id) for r in await memory.read_entity(entity))
            theirs = sorted(str(r.event.event_id) for r in await partitioned.read_entity(entity))
            assert mine == theirs
        assert await memory.length() == await partitioned.length()


class _RacedStore(RedisEventStore):
    """A store whose second part's write is preceded by another client's append."""

    race: list[AnyEvent]

    async def _write(self, part: Any, events: Any, blobs: Any) -> Any:
        if self.race and part.partition == self.partition_of(self.race[0]):
            racing, self.race = self.race, []
            await RedisEventStore(
                self.client, prefix=self.keys.prefix, partitions=PARTITIONS
            ).append(racing)
        return await super()._write(part, events, blobs)


class ConcurrentChangeBetweenCheckAndWrite:
    """A part refused at write time leaves the parts written before it, and says which."""

    async def test_the_error_lists_the_events_written_and_a_resubmission_is_safe(
        self, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """Another client revises B first: the batch's revision of B conflicts, A stays."""
        store = _RacedStore(redis_client, prefix=key_prefix, partitions=PARTITIONS)
        store.race = []
        await store.append([reported(B[0])])
        store.race = [revised(B[0], best=30, expected_version=1)]
        batch: list[AnyEvent] = [reported(A[0]), revised(B[0], best=20, expected_version=1)]
        with pytest.raises(ConflictError) as caught:
            await store.append(batch)
        assert caught.value.index == 1
        assert [w.event_id for w in caught.value.written] == [str(batch[0].event_id)]
        again = await store.append([batch[0]])
        assert [a.status for a in again] == ["duplicate"]
