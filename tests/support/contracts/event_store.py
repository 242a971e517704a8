"""The event store contract: what every event store does, in suites each store runs.

A suite is a class of tests asking for a ``store`` fixture; a test module subclasses it as
``Test<Suite>`` and provides the fixture (``tests/contract/test_event_store.py`` runs them
against the in-memory and the Redis store, ``tests/cluster`` against a Redis Cluster).
"""

from __future__ import annotations

import msgspec
import pytest

from events import AnyEvent, Position, Recorded, position_key, recorded_at_of
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EntityState,
    EventStore,
)
from tests.support.builders import (
    merged,
    reported,
    retracted,
    revised,
    statement,
)

__all__ = [
    "AppendAndRead",
    "BatchAtomicity",
    "Entities",
    "ExpectedVersion",
    "Idempotency",
    "event_ids",
    "everything",
    "stored",
]


def stored(event: AnyEvent) -> AnyEvent:
    """The form the log keeps: the event without its precondition."""
    return msgspec.structs.replace(event, expected_version=None)


def event_ids(recorded: list[Recorded]) -> list[str]:
    """The event ids of recorded events, in order."""
    return [str(r.event.event_id) for r in recorded]


async def everything(store: EventStore) -> list[Recorded]:
    """The whole log."""
    return await store.read(Position("0-0"), 100_000)


class AppendAndRead:
    """Appended events come back from the log as they were stored, in order."""

    async def test_round_trip_returns_the_stored_events_in_order(self, store: EventStore) -> None:
        """read() gives back every appended event, equal to its stored form, in order."""
        batch: list[AnyEvent] = [reported("i-1"), revised("i-1", best=14), statement("s-1")]
        appended = await store.append(batch)
        log = await everything(store)
        assert [r.event for r in log] == [stored(e) for e in batch]
        assert [r.position for r in log] == [a.position for a in appended]
        assert [a.status for a in appended] == ["appended"] * 3
        assert [a.event_id for a in appended] == [str(e.event_id) for e in batch]

    async def test_positions_increase_strictly_within_and_across_batches(
        self, store: EventStore
    ) -> None:
        """Every new position sorts after the one before it."""
        first = await store.append([reported("i-1"), reported("i-2")])
        second = await store.append([reported("i-3")])
        third = await store.append([revised("i-1"), revised("i-2"), revised("i-3")])
        keys = [position_key(a.position) for a in [*first, *second, *third]]
        assert keys == sorted(keys)
        assert len(set(keys)) == len(keys)

    async def test_recorded_at_is_the_time_of_the_position(self, store: EventStore) -> None:
        """recorded_at is the millisecond part of the position, in UTC."""
        await store.append([reported("i-1")])
        (entry,) = await everything(store)
        assert entry.recorded_at == recorded_at_of(entry.position)
        assert entry.recorded_at.utcoffset() is not None

    async def test_stored_event_has_no_expected_version(self, store: EventStore) -> None:
        """The precondition is checked, never stored."""
        await store.append([reported("i-1", expected_version=0)])
        (entry,) = await everything(store)
        assert entry.event.expected_version is None

    async def test_read_after_a_position_is_exclusive(self, store: EventStore) -> None:
        """read(after=p) starts with the event after p, never p itself."""
        batch = [reported(f"i-{n}") for n in range(5)]
        appended = await store.append(batch)
        after = await store.read(appended[1].position)
        assert event_ids(after) == [str(e.event_id) for e in batch[2:]]
        assert await store.read(appended[-1].position) == []

    async def test_read_pages_through_the_log_in_batches_of_count(self, store: EventStore) -> None:
        """read(after, count) returns at most count events; paging covers the log once."""
        batch = [reported(f"i-{n}") for n in range(7)]
        await store.append(batch)
        pages: list[list[Recorded]] = []
        after = Position("0-0")
        while page := await store.read(after, 3):
            pages.append(page)
            after = page[-1].position
        assert [len(p) for p in pages] == [3, 3, 1]
        assert [i for p in pages for i in event_ids(p)] == [str(e.event_id) for e in batch]

    async def test_read_with_count_below_one_returns_nothing(self, store: EventStore) -> None:
        """A count of zero asks for no events."""
        await store.append([reported("i-1")])
        assert await store.read(Position("0-0"), 0) == []

    async def test_empty_log_has_no_head_and_length_zero(self, store: EventStore) -> None:
        """An empty log reads empty, has no head and length 0."""
        assert await store.read() == []
        assert await store.head() is None
        assert await store.length() == 0

    async def test_head_and_length_follow_appends(self, store: EventStore) -> None:
        """head() is the last position and length() the count of events."""
        await store.append([reported("i-1"), reported("i-2")])
        last = await store.append([revised("i-1")])
        assert await store.head() == last[0].position
        assert await store.length() == 3

    async def test_empty_batch_writes_nothing(self, store: EventStore) -> None:
        """Appending no events answers nothing and writes nothing."""
        assert await store.append([]) == []
        assert await store.length() == 0


class Idempotency:
    """A known event_id is a duplicate: it writes nothing and answers the original position
    (the body and feed compared: :class:`tests.support.contracts.ownership.IdsPerFeed`)."""

    async def test_duplicate_in_a_later_batch_answers_the_original_position(
        self, store: EventStore
    ) -> None:
        """Re-sending an appended event answers its first position and writes nothing."""
        event = reported("i-1")
        (first,) = await store.append([event])
        (again,) = await store.append([event])
        assert again.status == "duplicate"
        assert again.position == first.position
        assert await store.length() == 1
        assert await store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")

    async def test_duplicate_within_one_batch_answers_the_first_position(
        self, store: EventStore
    ) -> None:
        """The second copy of an event in one batch is a duplicate of the first."""
        event = reported("i-1")
        answers = await store.append([event, revised("i-1"), event])
        assert [a.status for a in answers] == ["appended", "appended", "duplicate"]
        assert answers[2].position == answers[0].position
        assert await store.length() == 2

    async def test_duplicate_beside_new_events_writes_only_the_new_ones(
        self, store: EventStore
    ) -> None:
        """A batch mixing a known event and new ones appends just the new ones."""
        event = reported("i-1")
        await store.append([event])
        answers = await store.append([event, reported("i-2")])
        assert [a.status for a in answers] == ["duplicate", "appended"]
        assert await store.length() == 2

    async def test_retried_event_with_a_stale_precondition_is_a_duplicate(
        self, store: EventStore
    ) -> None:
        """A retry of an applied event is answered as a duplicate, not as a conflict."""
        await store.append([reported("i-1")])
        event = revised("i-1", expected_version=1)
        (first,) = await store.append([event])
        (again,) = await store.append([event])
        assert again == first.__class__(first.event_id, first.position, "duplicate")


class ExpectedVersion:
    """expected_version, when given, must equal the entity's version."""

    async def test_matching_version_appends_and_bumps_the_version(self, store: EventStore) -> None:
        """An event whose expected_version matches is appended and bumps the version."""
        await store.append([reported("i-1", expected_version=0)])
        await store.append([revised("i-1", expected_version=1)])
        await store.append([revised("i-1", best=20, expected_version=2)])
        assert await store.entity("incident:i-1") == EntityState(3, "live", owner="sohr")

    async def test_mismatch_raises_conflict_with_the_current_version(
        self, store: EventStore
    ) -> None:
        """A stale expected_version raises ConflictError naming the current version."""
        await store.append([reported("i-1"), revised("i-1")])
        with pytest.raises(ConflictError) as caught:
            await store.append([revised("i-1", best=30, expected_version=1)])
        assert caught.value.current == 2
        assert caught.value.entity == "incident:i-1"
        assert caught.value.index == 0
        assert await store.length() == 2
        assert await store.entity("incident:i-1") == EntityState(2, "live", owner="sohr")

    async def test_expected_version_counts_the_batch_s_earlier_events(
        self, store: EventStore
    ) -> None:
        """Within a batch, each event sees the versions its predecessors produced."""
        await store.append(
            [
                reported("i-1", expected_version=0),
                revised("i-1", expected_version=1),
                retracted("i-1", expected_version=2),
            ]
        )
        assert await store.entity("incident:i-1") == EntityState(3, "retracted", owner="sohr")

    async def test_nonzero_expected_version_of_a_new_entity_conflicts(
        self, store: EventStore
    ) -> None:
        """A report expecting version 3 of a missing incident conflicts at version 0."""
        with pytest.raises(ConflictError) as caught:
            await store.append([reported("i-1", expected_version=3)])
        assert caught.value.current == 0
        assert await store.length() == 0


class BatchAtomicity:
    """A batch is appended whole or not at all."""

    async def test_rejected_third_event_writes_nothing_of_the_batch(
        self, store: EventStore
    ) -> None:
        """When the 3rd event is rejected, the 1st and 2nd are not written either."""
        first, second = reported("i-1"), statement("s-1")
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([first, second, revised("i-9"), reported("i-4")])
        assert caught.value.index == 2
        assert await store.length() == 0
        assert await store.head() is None
        assert await store.entity("incident:i-1") is None
        assert await store.entity("statement:s-1") is None
        assert await store.read_entity("incident:i-1") == []
        answers = await store.append([first, second])
        assert [a.status for a in answers] == ["appended", "appended"]

    async def test_conflicting_event_writes_nothing_of_the_batch(self, store: EventStore) -> None:
        """A version conflict in the middle of a batch leaves the log as it was."""
        await store.append([reported("i-1")])
        before = await everything(store)
        with pytest.raises(ConflictError) as caught:
            await store.append([reported("i-2"), revised("i-1", expected_version=5)])
        assert caught.value.index == 1
        assert await everything(store) == before
        assert await store.entity("incident:i-2") is None
        assert await store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")


class Entities:
    """entity() tracks versions and status; read_entity() lists an entity's events."""

    async def test_unknown_entity_has_no_state_and_no_events(self, store: EventStore) -> None:
        """An entity no event created is None with an empty history."""
        assert await store.entity("incident:nope") is None
        assert await store.read_entity("incident:nope") == []

    async def test_version_counts_the_events_of_the_entity(self, store: EventStore) -> None:
        """Each event of an entity bumps its version by one; others leave it alone."""
        await store.append([reported("i-1"), reported("i-2"), revised("i-1"), revised("i-1")])
        assert await store.entity("incident:i-1") == EntityState(3, "live", owner="sohr")
        assert await store.entity("incident:i-2") == EntityState(1, "live", owner="sohr")

    async def test_merge_marks_the_duplicate_and_leaves_the_target_version(
        self, store: EventStore
    ) -> None:
        """A merge bumps the duplicate to merged (with its target), not the target's version."""
        await store.append([reported("i-1"), reported("i-2"), merged("i-2", "i-1")])
        assert await store.entity("incident:i-2") == EntityState(2, "merged", "i-1", owner="sohr")
        assert await store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")

    async def test_read_entity_lists_a_merge_under_both_incidents(self, store: EventStore) -> None:
        """The merge event appears in the history of the duplicate and of the target."""
        one, two, merge = reported("i-1"), reported("i-2"), merged("i-2", "i-1")
        later = revised("i-1")
        await store.append([one, two])
        await store.append([merge, later, statement("s-1")])
        target = await store.read_entity("incident:i-1")
        duplicate = await store.read_entity("incident:i-2")
        assert [r.event for r in target] == [stored(one), stored(merge), stored(later)]
        assert [r.event for r in duplicate] == [stored(two), stored(merge)]
        assert target[1].position == duplicate[1].position

    async def test_read_entity_matches_the_log_entries(self, store: EventStore) -> None:
        """read_entity returns the same Recorded values as the log at those positions."""
        await store.append([reported("i-1"), statement("s-1"), revised("i-1")])
        log = await everything(store)
        assert await store.read_entity("incident:i-1") == [log[0], log[2]]
        assert await store.read_entity("statement:s-1") == [log[1]]


# --- both stores answer alike on random histories -------------------------------------------
