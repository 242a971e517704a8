"""The fast paths of ingest answer exactly what the event-by-event paths answer.

``parse_batch`` decodes a valid array of current-version events in one go; ``problems``
checks the figures in one pass before naming each problem; ``normalise`` returns an event
in its stored form as it is; ``id_texts`` spells ids as ``str`` does; the ingest metrics
count a batch per (type, result).
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import events
from events import InvalidBatchError, parse_batch, parse_submission
from events.rules import _each_figures_problem, _figures_valid
from services.metrics import IngestMetrics
from tests.support.builders import reported, statement

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def golden(tag: str, version: int | None = None, **changes: Any) -> dict[str, Any]:
    """A valid payload of ``tag`` (its current version unless ``version``), with a fresh id."""
    version = events.current_version(tag) if version is None else version
    payload: dict[str, Any] = json.loads((GOLDEN / f"{tag}.v{version}.json").read_bytes())
    payload.update(event_id=str(uuid.uuid4()), **changes)
    return payload


def one_by_one(payloads: list[dict[str, Any]]) -> list[events.AnyEvent]:
    """What the event-by-event path makes of each payload."""
    return [parse_submission(json.dumps(p).encode()) for p in payloads]


class TestBatchFastPath:
    """A valid array parses to the same events as each of its members parsed alone."""

    def test_mixed_valid_batch_equals_the_event_by_event_path(self) -> None:
        """Defaults (version 0, no Goldstein) and preconditions come out the same."""
        payloads = [
            golden("incident.reported"),
            golden("incident.reported", schema_version=0, expected_version=0),
            golden("statement.issued", schema_version=0),
            golden("statement.issued"),
            golden("incident.casualties_revised", expected_version=3),
            golden("incident.merged"),
            golden("statement.retracted"),
        ]
        payloads[3].pop("goldstein", None)
        found, is_array = parse_batch(json.dumps(payloads).encode())
        assert is_array is True
        assert found == one_by_one(payloads)
        assert found[1].expected_version == 0
        assert found[1].schema_version == events.current_version("incident.reported")
        statement_issued = found[3]
        assert isinstance(statement_issued, events.StatementIssued)
        assert statement_issued.goldstein == events.goldstein(statement_issued.cameo_code)

    def test_an_old_version_in_a_batch_is_upcast(self) -> None:
        """A v1 report among current events takes the upcasting path and is accepted."""
        payloads = [golden("incident.reported"), golden("incident.reported", version=1)]
        found, _ = parse_batch(json.dumps(payloads).encode())
        assert found == one_by_one(payloads)
        assert found[1].schema_version == events.current_version("incident.reported")

    def test_an_invalid_member_still_names_every_problem_by_index(self) -> None:
        """One bad event among valid ones: the error names its index and field."""
        bad = golden("incident.reported", country="XXX")
        payloads = [golden("incident.reported"), bad, golden("statement.issued")]
        with pytest.raises(InvalidBatchError) as info:
            parse_batch(json.dumps(payloads).encode())
        assert [(p.index, p.field) for p in info.value.batch_problems] == [(1, "country")]

    def test_a_future_version_in_a_batch_is_refused(self) -> None:
        """A version newer than the code's is refused by name, not decoded."""
        future = events.current_version("incident.reported") + 1
        payloads = [golden("incident.reported"), golden("incident.reported", schema_version=future)]
        with pytest.raises(InvalidBatchError) as info:
            parse_batch(json.dumps(payloads).encode())
        assert [(p.index, p.field) for p in info.value.batch_problems] == [(1, "schema_version")]

    def test_the_fast_path_leaves_the_collector_as_it_found_it(self) -> None:
        """Parsing a batch does not leave garbage collection switched off."""
        import gc

        assert gc.isenabled()
        parse_batch(json.dumps([golden("incident.reported")]).encode())
        assert gc.isenabled()
        with pytest.raises(InvalidBatchError):
            parse_batch(b"[{")
        assert gc.isenabled()


class TestNormalise:
    """normalise returns an event in its stored form unchanged, and fixes the rest."""

    def test_stored_form_is_returned_as_it_is(self) -> None:
        """No copy is made of an event that is stored as it is."""
        event = reported("i-1")
        assert events.normalise(event) is event

    def test_a_precondition_is_stripped(self) -> None:
        """An expected_version makes a copy without it."""
        event = reported("i-1", expected_version=2)
        stored = events.normalise(event)
        assert stored.expected_version is None
        assert stored == msgspec.structs.replace(event, expected_version=None)

    def test_a_missing_goldstein_is_filled_in(self) -> None:
        """A statement without its Goldstein score gets the table's."""
        event = msgspec.structs.replace(statement("s-1"), goldstein=None)
        stored = events.normalise(event)
        assert isinstance(stored, events.StatementIssued)
        assert stored.goldstein == events.goldstein(event.cameo_code)


_counts = st.integers(min_value=0, max_value=30)
_lines = st.lists(
    st.tuples(
        _counts,
        _counts,
        _counts,
        st.sampled_from(["kurdish", "druze", "alawite"]),
        st.sampled_from(["civilian", "combatant"]),
    ),
    max_size=4,
)


class TestIdTexts:
    """A batch's event ids turned into text at once."""

    @given(st.lists(st.uuids(), max_size=50))
    def test_each_id_reads_as_str_spells_it(self, ids: list[uuid.UUID]) -> None:
        """Any UUIDs (any version, the nil one included), in order."""
        batch = [reported(f"i-{n}", event_id=ident) for n, ident in enumerate(ids)]
        assert events.id_texts(batch) == [str(ident) for ident in ids]


class TestFiguresCheck:
    """The one-pass figures check agrees with the rule-by-rule check."""

    @settings(max_examples=300, deadline=None)
    @given(fatal=st.tuples(_counts, _counts, _counts), lines=_lines, injured=st.booleans())
    def test_valid_exactly_when_no_problem_is_named(
        self,
        fatal: tuple[int, int, int],
        lines: list[tuple[int, int, int, str, str]],
        injured: bool,
    ) -> None:
        """For any figures, the fast check says valid iff the slow path names no problem."""
        low, best, high = fatal
        event = msgspec.structs.replace(
            reported("i-1"),
            fatalities=events.Fatalities(low=low, best=best, high=high),
            injured=events.Estimate(low=high, best=best, high=low) if injured else None,
            victims=[
                events.VictimLine(low=a, best=b, high=c, community=com, status=status)  # type: ignore[arg-type]
                for a, b, c, com, status in lines
            ],
        )
        assert _figures_valid(event) == (not _each_figures_problem(event))
        assert (events.problems(event) == []) == _figures_valid(event)


class TestBatchMetrics:
    """An accepted batch is counted per (type, result) in one increment each."""

    def test_counts_by_type_and_result_and_answers_the_appended(self) -> None:
        """Three reports (one duplicate) and a statement count as three series."""
        metrics = IngestMetrics()
        types = ["incident.reported"] * 3 + ["statement.issued"]
        statuses = ["appended", "duplicate", "appended", "appended"]
        assert metrics.count_results(types, statuses) == 3
        text = metrics.render().decode()
        assert (
            'ledger_events_ingested_total{result="appended",type="incident.reported"} 2.0' in text
        )
        assert (
            'ledger_events_ingested_total{result="duplicate",type="incident.reported"} 1.0' in text
        )
        assert 'ledger_events_ingested_total{result="appended",type="statement.issued"} 1.0' in text
