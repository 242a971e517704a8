"""Folding each partition of a log on its own, then merging, equals folding the whole log.

The log is split as the service splits it: an event goes to partition
``crc32(event.entity) % n``, so one entity's events stay together and in order, and a merge
goes with its duplicate. Histories are valid under the store's rules (checked against the
in-memory store) and hold cross-partition merges, retractions, revisions, redactions of
incidents and statements, joint statements, statements naming incidents of other partitions
or incidents not reported yet, and retracted statements. For n in {1, 2, 3, 5} and each of
the four projections, ``merge`` of the partitions' folds equals the fold of the whole log,
whatever the order of the parts; it leaves the parts unchanged and returns a state with no
change pending, which merges again like any part.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import zlib
from collections.abc import Callable, Mapping, Sequence
from typing import cast

import hypothesis.strategies as st
import msgspec
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings

from events import (
    AnyEvent,
    Event,
    IncidentMerged,
    Position,
    Recorded,
    StatementIssued,
)
from projections import (
    PROJECTIONS,
    Docs,
    MergeConflictError,
    Projection,
    State,
    alignment,
    community_victims,
    country_stance,
    fold,
    incidents,
)
from projections.alignment import pairs
from projections.community_victims import query
from projections.country_stance import stances
from projections.incidents import get, history_of, incident_of, listing
from services.store.memory import InMemoryEventStore
from services.views.codec import decode_view, encode_doc
from tests.support.builders import COAST, LOG_START_MS, Log, line
from tests.support.strategies import PARTITIONED, STATUSES, histories

PARTITION_COUNTS = (1, 2, 3, 5)
MODULES = (community_victims, country_stance, alignment, incidents)
HISTORIES = histories(PARTITIONED)
"""Histories the store accepts event by event (see ``services/store/memory.py``), from
several feeds, with redactions."""


# --- partitions ----------------------------------------------------------------------------


def partition_of(event: Event, n: int) -> int:
    """The partition of an event, as the service computes it."""
    return zlib.crc32(event.entity.encode()) % n


def split(records: Sequence[Recorded], n: int) -> list[list[Recorded]]:
    """The records of each of ``n`` partitions, each in log order."""
    parts: list[list[Recorded]] = [[] for _ in range(n)]
    for one in records:
        parts[partition_of(one.event, n)].append(one)
    return parts


def partition_folds(projection: Projection, records: Sequence[Recorded], n: int) -> list[State]:
    """One fold per partition, each seeing only its own partition's events."""
    return [fold(projection, part) for part in split(records, n)]


def per_stream(events: Sequence[Event], n: int) -> list[list[Recorded]]:
    """The events of each partition recorded by a stream of its own, as separate Redis
    streams record them: positions start at the same millisecond in every partition."""
    logs = [Log() for _ in range(n)]
    parts: list[list[Recorded]] = [[] for _ in range(n)]
    for event in events:
        p = partition_of(event, n)
        parts[p].append(logs[p].record(event))
    return parts


def stored(projection: Projection, state: State) -> dict[str, dict[str, bytes]]:
    """Every document of ``state`` as the view stores it, by kind and id."""
    return {
        kind: {ident: encode_doc(doc) for ident, doc in docs.items()}
        for kind, docs in state.kinds().items()
    }


PROPERTY = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTRACT = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestMergeEqualsTheWholeFold:
    @PROPERTY
    @given(events=HISTORIES)
    def test_merged_partition_folds_equal_the_fold_of_the_whole_log(
        self, events: list[Event]
    ) -> None:
        """For 1, 2, 3 and 5 partitions, every projection merges to the whole log's fold."""
        records = Log().records(events)
        for projection in PROJECTIONS.values():
            whole = fold(projection, records)
            for n in PARTITION_COUNTS:
                merged_state = projection.merge(partition_folds(projection, records, n))
                assert merged_state == whole, (projection.name, n)

    @PROPERTY
    @given(events=HISTORIES, data=st.data())
    def test_merge_does_not_depend_on_the_order_of_the_parts(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Any permutation of the parts merges to the same state."""
        records = Log().records(events)
        n = data.draw(st.sampled_from(PARTITION_COUNTS[1:]))
        for projection in PROJECTIONS.values():
            parts = partition_folds(projection, records, n)
            shuffled = data.draw(st.permutations(parts))
            assert projection.merge(shuffled) == projection.merge(parts), (projection.name, n)

    @CONTRACT
    @given(events=HISTORIES)
    def test_queries_read_the_merged_state_like_the_whole_fold(self, events: list[Event]) -> None:
        """Stances, pairs, the victims answer and the incident listing agree on both states."""
        records = Log().records(events)

        def both(name: str) -> tuple[State, State]:
            projection = PROJECTIONS[name]
            return projection.merge(partition_folds(projection, records, 3)), fold(
                projection, records
            )

        merged_state, whole = both("country-stance")
        assert stances(merged_state) == stances(whole)
        merged_state, whole = both("alignment")
        assert pairs(merged_state) == pairs(whole)
        merged_state, whole = both("community-victims")
        for status in (None, *STATUSES):
            assert query(merged_state, min_grading="discounted", status=status) == query(
                whole, min_grading="discounted", status=status
            )
        merged_state, whole = both("incidents")
        assert listing(merged_state, status="all", limit=100) == listing(
            whole, status="all", limit=100
        )
        for ident in (f"i-{n}" for n in range(PARTITIONED.incidents)):
            assert get(merged_state, ident) == get(whole, ident)


class TestMergeContract:
    @CONTRACT
    @given(events=HISTORIES)
    def test_merge_of_one_part_is_that_part(self, events: list[Event]) -> None:
        """A single state, whole or one partition's, merges to itself."""
        records = Log().records(events)
        for projection in PROJECTIONS.values():
            assert projection.merge([fold(projection, records)]) == fold(projection, records)
            for part in partition_folds(projection, records, 3):
                assert projection.merge([part]) == part, projection.name

    @CONTRACT
    @given(events=HISTORIES)
    def test_merge_leaves_the_parts_as_they_were_and_has_no_pending_change(
        self, events: list[Event]
    ) -> None:
        """The parts' documents are unchanged after a merge; the result has no change pending."""
        records = Log().records(events)
        for projection in PROJECTIONS.values():
            parts = partition_folds(projection, records, 3)
            for part in parts:
                part.take_changes()
            before = [stored(projection, part) for part in parts]
            result = projection.merge(parts)
            assert [stored(projection, part) for part in parts] == before, projection.name
            assert all(part.take_changes() == {} for part in parts)
            assert result.take_changes() == {}

    @CONTRACT
    @given(events=HISTORIES)
    def test_stored_parts_merge_like_live_ones(self, events: list[Event]) -> None:
        """Parts loaded back from JSON, as plain mappings by kind, merge to the same state."""
        records = Log().records(events)
        for projection in PROJECTIONS.values():
            parts = partition_folds(projection, records, 3)
            loaded = [decode_view(projection, stored(projection, part)).kinds() for part in parts]
            assert projection.merge(loaded) == projection.merge(parts), projection.name

    @CONTRACT
    @given(events=HISTORIES, data=st.data())
    def test_merging_merged_states_equals_merging_every_part(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """A merged state merges again like a part: merging in two steps equals one merge."""
        records = Log().records(events)
        for projection in PROJECTIONS.values():
            parts = partition_folds(projection, records, 5)
            cut = data.draw(st.integers(0, 5))
            two_steps = projection.merge(
                [projection.merge(parts[:cut]), projection.merge(parts[cut:])]
            )
            assert two_steps == projection.merge(parts), projection.name

    @CONTRACT
    @given(events=HISTORIES, data=st.data())
    def test_equal_positions_of_two_streams_merge_the_same_in_any_order(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Partitions recorded by streams of their own share positions; order stays free."""
        parts_records = per_stream(events, 3)
        for projection in PROJECTIONS.values():
            parts = [fold(projection, part) for part in parts_records]
            shuffled = data.draw(st.permutations(parts))
            assert projection.merge(shuffled) == projection.merge(parts), projection.name

    def test_separate_streams_do_give_two_partitions_equal_positions(self) -> None:
        """The per-stream recording of the property above makes positions collide."""
        parts = per_stream([COAST.reported("i-0"), COAST.reported("i-4")], 2)  # partitions 1 and 0
        assert [[one.position for one in part] for part in parts] == [
            [Position(f"{LOG_START_MS}-0")],
            [Position(f"{LOG_START_MS}-0")],
        ]

    def test_an_empty_list_of_parts_merges_to_the_empty_state(self) -> None:
        """No part: the initial state."""
        for projection in PROJECTIONS.values():
            assert projection.merge([]) == projection.initial()

    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_a_part_given_twice_is_refused(self, name: str) -> None:
        """The same partition's state twice holds an entity's own documents twice: an error."""
        projection = PROJECTIONS[name]
        state = fold(
            projection,
            Log().records(
                [COAST.reported("a"), COAST.statement("s-1", "USA", "FRA", incident_ids=["a"])]
            ),
        )
        twin = decode_view(projection, stored(projection, state))
        with pytest.raises(MergeConflictError):
            projection.merge([state, twin])


class TestGeneratedHistories:
    @settings(max_examples=60, deadline=None)
    @given(events=HISTORIES)
    def test_the_store_accepts_every_generated_history(self, events: list[Event]) -> None:
        """Each event appends to the in-memory store without a conflict or rejection."""

        async def append_all() -> list[str]:
            store = InMemoryEventStore()
            return [(await store.append([cast("AnyEvent", event)]))[0].status for event in events]

        assert asyncio.run(append_all()) == ["appended"] * len(events)

    @pytest.mark.parametrize(
        "case",
        [
            "merge_into_other_partition_then_revised",
            "merge_into_other_partition_then_retracted",
            "merge_into_other_partition_then_merged",
            "statement_names_an_incident_of_the_other_partition",
            "voice_spread_over_partitions_with_a_retraction",
            "redactions_of_both_kinds",
        ],
    )
    def test_the_generator_reaches_the_cross_partition_cases(self, case: str) -> None:
        """The property's histories do contain each case the merge must get right (n = 2)."""
        found = find(
            HISTORIES,
            REACHES[case],
            settings=settings(
                max_examples=3000, phases=[Phase.generate], database=None, deadline=None
            ),
        )
        assert REACHES[case](found)


def _merge_then(follow: str) -> Callable[[list[Event]], bool]:
    """A merge into an incident of the other partition, which ``follow`` later touches."""

    def reached(events: list[Event]) -> bool:
        for i, event in enumerate(events):
            if not isinstance(event, IncidentMerged):
                continue
            if partition_of(event, 2) == zlib.crc32(event.into_entity.encode()) % 2:
                continue
            if any(
                later.entity == event.into_entity and later.type == follow for later in events[i:]
            ):
                return True
        return False

    return reached


def _cited_elsewhere(events: list[Event]) -> bool:
    """A statement names an incident whose report lives in the other partition (the store
    accepts only reported incidents, so the report comes first in the log; a partition fold
    sees the statement without it all the same)."""
    for event in events:
        if not isinstance(event, StatementIssued):
            continue
        for ident in event.incident_ids:
            entity = f"incident:{ident}"
            if zlib.crc32(entity.encode()) % 2 != partition_of(event, 2):
                return True
    return False


def _spread_voice(events: list[Event]) -> bool:
    """One country speaks on one subject in both partitions, and a statement is retracted."""
    seen: dict[tuple[str, str], set[int]] = {}
    for event in events:
        if isinstance(event, StatementIssued):
            for speaker in event.speakers:
                seen.setdefault((speaker.country, event.subject), set()).add(partition_of(event, 2))
    retracted_any = any(e.type == "statement.retracted" for e in events)
    return retracted_any and any(len(p) == 2 for p in seen.values())


REACHES: Mapping[str, Callable[[list[Event]], bool]] = {
    "merge_into_other_partition_then_revised": _merge_then("incident.casualties_revised"),
    "merge_into_other_partition_then_retracted": _merge_then("incident.retracted"),
    "merge_into_other_partition_then_merged": _merge_then("incident.merged"),
    "statement_names_an_incident_of_the_other_partition": _cited_elsewhere,
    "voice_spread_over_partitions_with_a_retraction": _spread_voice,
    "redactions_of_both_kinds": lambda events: {
        "incident.redacted",
        "statement.redacted",
    }.issubset(e.type for e in events),
}


# --- the cases by hand, with partitions chosen by the test ---------------------------------


def by_hand(
    projection: Projection, events: Sequence[Event], where: Mapping[str, int]
) -> tuple[State, list[State]]:
    """The whole fold and the partition folds, the partition of each entity given."""
    records = Log().records(events)
    parts: list[list[Recorded]] = [[] for _ in range(max(where.values()) + 1)]
    for one in records:
        parts[where[one.event.entity]].append(one)
    return fold(projection, records), [fold(projection, part) for part in parts]


def at(hour: int) -> dt.datetime:
    return dt.datetime(2025, 3, 9, hour, tzinfo=dt.UTC)


class TestCrossPartitionCases:
    def test_a_canonical_of_another_partition_gets_its_duplicates_and_history_back(self) -> None:
        """The duplicate's partition holds a stub of the canonical; merged, it is the whole."""
        events = [
            COAST.reported("canon", 20),
            COAST.reported("dup", 5),
            COAST.merged("dup", "canon"),
            COAST.revised("canon", 22),
            COAST.reported("dup2", 3),
            COAST.merged("dup2", "canon"),
            COAST.retracted("canon"),
        ]
        where = {"incident:canon": 0, "incident:dup": 1, "incident:dup2": 1}
        whole, parts = by_hand(PROJECTIONS["incidents"], events, where)
        stub = get(parts[1], "canon")
        assert stub is not None
        assert (stub.version, stub.reported, stub.duplicates) == (0, False, ("dup", "dup2"))
        rows = listing(parts[1], status="all")[0]
        assert [row.incident_id for row in rows] == ["dup", "dup2"]  # no stub
        result = incidents.merge(parts)
        assert result == whole
        canon = get(result, "canon")
        assert canon is not None
        assert (canon.status, canon.version, canon.duplicates) == ("retracted", 3, ("dup", "dup2"))
        history = history_of("canon", Log().records(events))  # read from the log
        assert len(history) == canon.history_total
        assert [e.type for e in history] == [
            "incident.reported",
            "incident.merged",
            "incident.casualties_revised",
            "incident.merged",
            "incident.retracted",
        ]

    def test_a_stub_alone_stays_a_stub_and_is_not_listed(self) -> None:
        """Merged without the canonical's own partition, the stub is kept and not listed."""
        events = [COAST.reported("canon"), COAST.reported("dup"), COAST.merged("dup", "canon")]
        where = {"incident:canon": 0, "incident:dup": 1}
        _, parts = by_hand(PROJECTIONS["incidents"], events, where)
        result = incidents.merge([parts[1]])
        assert [row.incident_id for row in listing(result, status="all")[0]] == ["dup"]

    def test_latency_uses_incidents_dated_in_another_partition(self) -> None:
        """A statement's partition lacks the incident's date; the merge restores the latency."""
        events = [
            COAST.statement("s-1", "USA", issued_at=at(12), incident_ids=["a"], subject="coast"),
            COAST.reported("a", occurred_start=dt.date(2025, 3, 8)),
            COAST.statement("s-2", "FRA", issued_at=at(6), subject="coast"),
        ]
        where = {"statement:s-1": 0, "incident:a": 1, "statement:s-2": 2}
        whole, parts = by_hand(PROJECTIONS["country-stance"], events, where)
        assert [row.latency_hours for row in stances(parts[0])] == [None]
        result = country_stance.merge(parts)
        assert result == whole
        assert [(row.country, row.latency_hours) for row in stances(result)] == [
            ("FRA", 30.0),
            ("USA", 36.0),
        ]

    def test_a_timeline_spread_over_partitions_keeps_issue_order_and_its_mean(self) -> None:
        """One country's statements in two partitions interleave by issue time."""
        events = [
            COAST.statement("s-1", "USA", stance="condemn", cameo_code="111", issued_at=at(9)),
            COAST.statement("s-2", "USA", stance="neutral", cameo_code="010", issued_at=at(8)),
            COAST.statement(
                "s-3", "USA", "RUS", stance="support", cameo_code="051", issued_at=at(10)
            ),
            COAST.statement_retracted("s-3"),
            COAST.statement("s-4", "USA", stance="warn", cameo_code="111", issued_at=at(7)),
        ]
        where = {"statement:s-1": 0, "statement:s-2": 1, "statement:s-3": 1, "statement:s-4": 0}
        whole, parts = by_hand(PROJECTIONS["country-stance"], events, where)
        result = country_stance.merge(parts)
        assert result == whole
        (row,) = stances(result)
        assert (row.stance, row.statements, row.first_at) == ("condemn", 3, at(7))

    def test_pairs_across_partitions_are_scored_from_both_voices(self) -> None:
        """Two countries speaking in different partitions are scored on the merged voices."""
        events = [
            COAST.statement("s-1", "USA", stance="condemn", issued_at=at(9)),
            COAST.statement("s-2", "FRA", stance="condemn", issued_at=at(9)),
            COAST.statement(
                "s-3", "FRA", "GBR", stance="neutral", cameo_code="010", issued_at=at(10)
            ),
        ]
        where = {"statement:s-1": 0, "statement:s-2": 1, "statement:s-3": 2}
        whole, parts = by_hand(PROJECTIONS["alignment"], events, where)
        assert pairs(parts[0]) == []
        result = alignment.merge(parts)
        assert result == whole
        assert [(p.a, p.b, p.score) for p in pairs(result)] == [
            ("FRA", "GBR", 1.0),
            ("FRA", "USA", 0.5),
            ("GBR", "USA", 0.5),
        ]

    def test_victim_cells_of_several_partitions_sum(self) -> None:
        """Incidents of one cell in two partitions add up, a merged duplicate counting none."""
        events = [
            COAST.reported("a", 10, victims=[line("alawite", 6)]),
            COAST.reported("b", 4, victims=[line("alawite", 1, "combatant"), line("druze", 2)]),
            COAST.reported("c", 7),
            COAST.merged("c", "a"),
        ]
        where = {"incident:a": 0, "incident:b": 1, "incident:c": 1}
        whole, parts = by_hand(PROJECTIONS["community-victims"], events, where)
        result = community_victims.merge(parts)
        assert result == whole
        answer = query(result)
        assert (answer.total.best, answer.incidents) == (14, 2)
        assert [(r.community, r.best, r.incidents) for r in answer.communities] == [
            ("alawite", 7, 2),
            ("druze", 2, 1),
        ]


def stream_records(events: Sequence[Event], where: Mapping[str, int]) -> list[list[Recorded]]:
    """The records of each partition when each is a stream of its own (positions collide)."""
    logs: dict[int, Log] = {}
    parts: dict[int, list[Recorded]] = {}
    for event in events:
        p = where[event.entity]
        parts.setdefault(p, []).append(logs.setdefault(p, Log()).record(event))
    return [parts[p] for p in sorted(parts)]


def streams(
    projection: Projection, events: Sequence[Event], where: Mapping[str, int]
) -> list[State]:
    """The partition folds when each partition is a stream of its own (positions collide)."""
    return [fold(projection, part) for part in stream_records(events, where)]


class TestEqualPositionsOfTwoStreams:
    def test_stance_timelines_break_ties_by_statement_id(self) -> None:
        """Same issue time, same position in two streams: the statement ids order them."""
        events = [
            COAST.statement("s-b", "USA", stance="welcome", cameo_code="051", issued_at=at(9)),
            COAST.statement("s-a", "USA", stance="condemn", cameo_code="111", issued_at=at(9)),
        ]
        parts = streams(
            PROJECTIONS["country-stance"], events, {"statement:s-b": 0, "statement:s-a": 1}
        )
        one, other = country_stance.merge(parts), country_stance.merge(parts[::-1])
        assert one == other
        assert [e.statement_id for e in country_stance.timeline(one, "USA")] == ["s-a", "s-b"]
        (row,) = stances(one)
        assert row.latest_statement_id == "s-b"

    def test_alignment_voices_break_ties_by_statement_id(self) -> None:
        """The later statement id is the latest stance when time and position are equal."""
        events = [
            COAST.statement("s-b", "USA", stance="welcome", cameo_code="051", issued_at=at(9)),
            COAST.statement(
                "s-a", "USA", "FRA", stance="condemn", cameo_code="111", issued_at=at(9)
            ),
            COAST.statement("s-c", "FRA", stance="welcome", cameo_code="051", issued_at=at(9)),
        ]
        where = {"statement:s-b": 0, "statement:s-a": 1, "statement:s-c": 2}
        parts = streams(PROJECTIONS["alignment"], events, where)
        results = [alignment.merge(list(order)) for order in itertools.permutations(parts)]
        assert all(result == results[0] for result in results)
        (row,) = pairs(results[0])
        assert (row.a, row.b, row.score) == ("FRA", "USA", 1.0)

    def test_incident_histories_break_ties_by_event_id(self) -> None:
        """A merge and a revision at equal positions are listed by event id, in any order."""
        events = [
            COAST.reported("canon"),
            COAST.reported("dup"),
            COAST.revised("canon", 12),
            COAST.merged("dup", "canon"),
        ]
        where = {"incident:canon": 0, "incident:dup": 1}
        parts = streams(PROJECTIONS["incidents"], events, where)
        one, other = incidents.merge(parts), incidents.merge(parts[::-1])
        assert one == other
        canon = get(one, "canon")
        assert canon is not None
        records = [r for part in stream_records(events, where) for r in part]
        history = history_of("canon", records)
        assert history == history_of("canon", records[::-1])
        assert len(history) == canon.history_total == 3
        tied = history[1:]
        assert [e.position for e in tied] == [tied[0].position] * 2
        assert [e.event_id for e in tied] == sorted(e.event_id for e in tied)
        whole = incident_of("canon", records)
        assert whole is not None
        assert whole.updated_at == tied[-1].recorded_at
        assert canon.updated_at is None  # a row keeps no time: the answer folds the log


class TestRegistry:
    def test_each_projection_merges_with_its_modules_merge(self) -> None:
        """The registry takes ``merge`` from the module, like initial and apply."""
        for module in MODULES:
            assert PROJECTIONS[module.NAME].merge is module.merge

    def test_a_projection_without_a_merge_unions_its_parts(self) -> None:
        """The default merge joins disjoint parts and refuses a document held twice."""

        class Seen(msgspec.Struct, frozen=True):
            times: int

        def apply(state: State, recorded: Recorded) -> State:
            state.put("seen", recorded.event.entity, Seen(1))
            return state

        counting = Projection(
            name="test-seen", version=1, doc_types={"seen": Seen}, initial=Docs, apply=apply
        )
        records = Log().records([COAST.reported("a"), COAST.reported("b")])
        parts = [fold(counting, records[:1]), fold(counting, records[1:])]
        assert counting.merge(parts) == fold(counting, records)
        with pytest.raises(MergeConflictError):
            counting.merge([parts[0], fold(counting, records)])
