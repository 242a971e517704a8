"""Validation of submissions: each invalid field is named by the exact path of its Problem.

Every test starts from a valid current-version payload (the golden payload of the type's
current version) and breaks one thing, so the only problem reported is the one broken.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import msgspec
import pytest

import events
from events import (
    BatchProblem,
    IncidentReported,
    InvalidBatchError,
    InvalidEventError,
    Problem,
    StatementIssued,
)

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def valid(tag: str, **changes: Any) -> dict[str, Any]:
    """A valid payload of the current version of ``tag``, with ``changes`` applied."""
    name = f"{tag}.v{events.current_version(tag)}.json"
    payload: dict[str, Any] = json.loads((GOLDEN / name).read_bytes())
    payload.pop("parties", None)  # the tests below change the toll alone (parties: own tests)
    payload.update(changes)
    return payload


def reported(**changes: Any) -> dict[str, Any]:
    return valid("incident.reported", **changes)


def issued(**changes: Any) -> dict[str, Any]:
    return valid("statement.issued", **changes)


def _body(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def problems_of(payload: Any) -> list[Problem]:
    """The problems parse_submission reports for a payload (it must reject it)."""
    with pytest.raises(InvalidEventError) as info:
        events.parse_submission(_body(payload))
    return info.value.problems


def fields_of(payload: Any) -> list[str]:
    """The field paths of the problems of a rejected payload."""
    return [p.field for p in problems_of(payload)]


def accepted(payload: Any) -> events.AnyEvent:
    """The stored form of a payload parse_submission must accept."""
    return events.parse_submission(_body(payload))


def figures(low: int, best: int, high: int) -> dict[str, int]:
    return {"low": low, "best": best, "high": high}


def line(
    low: int, best: int, high: int, community: str, status: str = "civilian"
) -> dict[str, Any]:
    return {**figures(low, best, high), "community": community, "status": status}


class TestBaseline:
    """The starting payloads are valid, so every rejection below is caused by its one change."""

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_current_payload_of_every_type_is_accepted(self, tag: str) -> None:
        """The unmodified payload of each type parses into its own class."""
        event = accepted(valid(tag))
        assert type(event) is events.EVENT_TYPES[tag]
        assert events.problems(event) == []


class TestCounts:
    """Head counts: non-negative, bounded, and low ≤ best ≤ high."""

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"fatalities": {**figures(-1, 120, 160)}}, "fatalities.low"),
            ({"fatalities": {**figures(90, -120, 160)}}, "fatalities.best"),
            ({"injured": figures(0, 1, -1)}, "injured.high"),
            ({"victims": [line(-1, 0, 0, "community-a")]}, "victims[0].low"),
        ],
    )
    def test_negative_count_is_refused(self, changes: dict[str, Any], field: str) -> None:
        """A count below zero is invalid at its own path."""
        assert fields_of(reported(**changes)) == [field]

    def test_low_above_best_is_refused(self) -> None:
        """low > best breaks the estimate as a whole, named at ``fatalities``."""
        assert fields_of(reported(fatalities=figures(130, 120, 160), victims=[])) == ["fatalities"]

    def test_best_above_high_is_refused(self) -> None:
        """best > high breaks the estimate as a whole, named at ``fatalities``."""
        assert fields_of(reported(fatalities=figures(90, 170, 160), victims=[])) == ["fatalities"]

    def test_injured_out_of_order_is_refused(self) -> None:
        """The injured estimate obeys the same ordering, named at ``injured``."""
        assert fields_of(reported(injured=figures(5, 4, 9))) == ["injured"]

    def test_victim_line_out_of_order_is_refused(self) -> None:
        """A community line obeys the ordering too, named by its index."""
        assert fields_of(reported(victims=[line(3, 2, 4, "community-a")])) == ["victims[0]"]

    def test_equal_low_best_high_is_accepted(self) -> None:
        """An exact count (low = best = high) is valid."""
        event = accepted(reported(fatalities=figures(7, 7, 7), victims=[]))
        assert isinstance(event, IncidentReported)
        assert event.fatalities.best == 7

    def test_count_above_one_hundred_million_is_refused(self) -> None:
        """Counts have an upper bound, so a typo of extra digits is caught."""
        assert fields_of(reported(fatalities=figures(0, 0, 100_000_001), victims=[])) == [
            "fatalities.high"
        ]

    @pytest.mark.parametrize(
        ("changes", "field"),
        [
            ({"fatalities": figures(0, 2**64, 2**64)}, "fatalities.best"),
            ({"geo_precision": 2**70}, "geo_precision"),
            ({"expected_version": 2**64}, "expected_version"),
            ({"schema_version": 2**64}, "schema_version"),
            ({"victims": [line(0, 0, -(2**65), "community-a")]}, "victims[0].high"),
        ],
    )
    def test_integer_beyond_64_bits_is_refused(self, changes: dict[str, Any], field: str) -> None:
        """Integers past 64 bits are invalid at their own path, never an overflow crash."""
        assert fields_of(reported(**changes)) == [field]


class TestVictimLines:
    """Community lines: no more dead than the incident, one line per community and status."""

    def test_best_sum_above_fatalities_is_refused(self) -> None:
        """Lines whose best figures add up to more than fatalities.best are refused."""
        payload = reported(
            fatalities=figures(10, 12, 15),
            victims=[line(5, 7, 7, "community-a"), line(5, 6, 8, "community-b")],
        )
        assert fields_of(payload) == ["victims.best"]

    def test_low_sum_above_fatalities_is_refused(self) -> None:
        """Lines whose low figures add up to more than fatalities.low are refused."""
        payload = reported(
            fatalities=figures(10, 12, 15),
            victims=[line(4, 5, 7, "community-a"), line(7, 7, 8, "community-b")],
        )
        assert fields_of(payload) == ["victims.low"]

    def test_high_sum_above_fatalities_is_refused(self) -> None:
        """Lines whose high figures add up to more than fatalities.high are refused."""
        payload = reported(
            fatalities=figures(10, 12, 15),
            victims=[line(1, 2, 9, "community-a"), line(1, 2, 9, "community-b")],
        )
        assert fields_of(payload) == ["victims.high"]

    def test_lines_summing_exactly_to_fatalities_are_accepted(self) -> None:
        """Lines may account for every death."""
        event = accepted(
            reported(
                fatalities=figures(10, 12, 15),
                victims=[line(4, 5, 7, "community-a"), line(6, 7, 8, "community-b")],
            )
        )
        assert isinstance(event, IncidentReported)
        assert len(event.victims) == 2

    def test_duplicate_community_and_status_is_refused(self) -> None:
        """A second line for the same community and status is named by its index."""
        payload = reported(
            fatalities=figures(10, 12, 15),
            victims=[line(1, 1, 1, "community-a"), line(1, 1, 1, "community-a")],
        )
        assert fields_of(payload) == ["victims[1]"]

    def test_duplicate_with_default_status_is_refused(self) -> None:
        """An omitted status is ``unknown``; two such lines of one community clash."""
        first = {**figures(1, 1, 1), "community": "community-a"}
        second = {**figures(2, 2, 2), "community": "community-a", "status": "unknown"}
        payload = reported(fatalities=figures(10, 12, 15), victims=[first, second])
        assert fields_of(payload) == ["victims[1]"]

    def test_same_community_with_another_status_is_accepted(self) -> None:
        """Civilians and combatants of one community are separate lines."""
        event = accepted(
            reported(
                fatalities=figures(10, 12, 15),
                victims=[
                    line(1, 1, 1, "community-a", "civilian"),
                    line(1, 1, 1, "community-a", "combatant"),
                ],
            )
        )
        assert isinstance(event, IncidentReported)
        assert [v.status for v in event.victims] == ["civilian", "combatant"]

    def test_community_with_trailing_newline_is_refused(self) -> None:
        """``"community-a\\n"`` is not a second spelling of a slug."""
        payload = reported(victims=[line(1, 1, 1, "community-a\n")])
        assert fields_of(payload) == ["victims[0].community"]

    def test_revision_obeys_the_same_line_rules(self) -> None:
        """A casualties revision is held to the same sums as a first report."""
        payload = valid(
            "incident.casualties_revised",
            fatalities=figures(10, 12, 15),
            victims=[line(10, 13, 15, "community-a")],
        )
        assert fields_of(payload) == ["victims.best"]


class TestDates:
    """Dates are RFC 3339 dates; datetimes must carry a zone; ranges run forwards."""

    def test_end_before_start_is_refused(self) -> None:
        """An incident cannot end before it started."""
        payload = reported(occurred_start="2025-03-06", occurred_end="2025-03-05")
        assert fields_of(payload) == ["occurred_end"]

    def test_end_on_start_day_is_accepted(self) -> None:
        """A one-day range (end = start) is valid."""
        event = accepted(reported(occurred_start="2025-03-06", occurred_end="2025-03-06"))
        assert isinstance(event, IncidentReported)
        assert event.occurred_end == event.occurred_start

    @pytest.mark.parametrize("bad", ["06/03/2025", "2025-13-01", "2025-02-30", "2025-3-6", ""])
    def test_bad_date_is_refused(self, bad: str) -> None:
        """Anything but a real YYYY-MM-DD date is invalid at the field."""
        assert fields_of(reported(occurred_start=bad)) == ["occurred_start"]

    def test_bad_end_date_is_refused(self) -> None:
        """The end date is checked like the start date."""
        assert fields_of(reported(occurred_end="06/03/2025")) == ["occurred_end"]

    def test_issued_at_without_zone_is_refused(self) -> None:
        """A statement's time without an offset is ambiguous and refused."""
        assert fields_of(issued(issued_at="2025-03-10T14:30:00")) == ["issued_at"]

    def test_published_at_without_zone_is_refused(self) -> None:
        """A source's publication time needs a zone too, and is named with its index."""
        sources = [{"publisher": "P"}, {"publisher": "Q", "published_at": "2025-03-10T14:30:00"}]
        assert fields_of(reported(sources=sources)) == ["sources[1].published_at"]

    def test_issued_at_with_offset_is_accepted(self) -> None:
        """Any explicit offset, not only Z, makes a datetime valid."""
        event = accepted(
            issued(issued_at="2025-03-10T14:30:00-05:00", issued_precision="exact", issued_end=None)
        )
        assert isinstance(event, StatementIssued)
        assert event.issued_at.utcoffset() is not None


NOW = dt.datetime(2025, 4, 20, 12, tzinfo=dt.UTC)


def problems_at(payload: Any, now: dt.datetime = NOW) -> list[Problem]:
    """The problems of a payload received at ``now`` (it must be refused)."""
    with pytest.raises(InvalidEventError) as info:
        events.parse_submission(_body(payload), now=now)
    return info.value.problems


class TestFuture:
    """Given the moment of receipt, dates and times after it are refused (a few minutes of
    skew allowed); the check needs ``now`` from the caller, so the rules stay pure."""

    def test_incident_dated_2099_is_refused(self) -> None:
        """An occurred_start in 2099 is named at occurred_start."""
        found = problems_at(reported(occurred_start="2099-01-01"))
        assert [p.field for p in found] == ["occurred_start"]
        assert "in the future" in found[0].message

    def test_end_after_now_is_refused(self) -> None:
        """An occurred_end in the future is named at occurred_end."""
        found = problems_at(reported(occurred_start="2025-03-01", occurred_end="2025-04-25"))
        assert [p.field for p in found] == ["occurred_end"]

    def test_today_anywhere_on_earth_is_accepted(self) -> None:
        """At 12:00 UTC it is already the next day in UTC+14: that date is not refused."""
        accepted_at = events.parse_submission(_body(reported(occurred_start="2025-04-21")), now=NOW)
        assert isinstance(accepted_at, IncidentReported)
        assert [p.field for p in problems_at(reported(occurred_start="2025-04-22"))] == [
            "occurred_start"
        ]

    def test_a_few_minutes_of_clock_skew_are_allowed(self) -> None:
        """A statement four minutes ahead is accepted; six minutes ahead is refused."""
        ahead = (NOW + dt.timedelta(minutes=4)).isoformat()
        too_far = (NOW + dt.timedelta(minutes=6)).isoformat()
        exact = {"issued_precision": "exact", "issued_end": None}
        event = events.parse_submission(_body(issued(issued_at=ahead, **exact)), now=NOW)
        assert isinstance(event, StatementIssued)
        assert [p.field for p in problems_at(issued(issued_at=too_far, **exact))] == ["issued_at"]

    def test_future_end_of_a_range_and_future_publication_are_refused(self) -> None:
        """issued_end and a source's published_at are times like issued_at."""
        found = problems_at(
            issued(
                issued_end="2025-04-22T00:00:00Z",
                sources=[{"publisher": "P", "published_at": "2025-04-21T00:00:00Z"}],
            )
        )
        assert sorted(p.field for p in found) == ["issued_end", "sources[0].published_at"]

    def test_dispute_citing_a_future_source_is_refused(self) -> None:
        """A dispute's sources are checked too."""
        payload = valid(
            "incident.disputed",
            sources=[{"publisher": "P", "published_at": "2030-01-01T00:00:00Z"}],
        )
        assert [p.field for p in problems_at(payload)] == ["sources[0].published_at"]

    def test_without_now_nothing_is_checked_against_the_clock(self) -> None:
        """Replays and tests call the rules without ``now``: a 2099 date passes them."""
        event = accepted(reported(occurred_start="2099-01-01"))
        assert isinstance(event, IncidentReported)

    def test_a_batch_is_checked_against_now_too(self) -> None:
        """parse_batch passes ``now`` to every event, naming the index of the one at fault."""
        body = _body([reported(), reported(occurred_start="2099-01-01")])
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body, now=NOW)
        assert info.value.batch_problems[0].index == 1
        assert info.value.batch_problems[0].field == "occurred_start"


class TestIssuedPrecision:
    """A statement's time is exact, a day, or a range with its end."""

    def test_range_without_end_is_refused(self) -> None:
        """A range needs issued_end."""
        assert fields_of(issued(issued_end=None)) == ["issued_end"]

    def test_range_ending_before_it_starts_is_refused(self) -> None:
        """issued_end before issued_at is refused."""
        assert fields_of(issued(issued_end="2025-03-01T00:00:00Z")) == ["issued_end"]

    @pytest.mark.parametrize("precision", ["exact", "day"])
    def test_end_without_a_range_is_refused(self, precision: str) -> None:
        """Only a range has an end."""
        assert fields_of(issued(issued_precision=precision)) == ["issued_end"]

    def test_unknown_precision_is_refused(self) -> None:
        """The precision is one of exact, day, range."""
        assert fields_of(issued(issued_precision="week")) == ["issued_precision"]

    def test_day_precision_stands_for_the_whole_day(self) -> None:
        """A day-precision time's window is its calendar day, both ends included."""
        event = accepted(issued(issued_precision="day", issued_end=None))
        assert isinstance(event, StatementIssued)
        start, end = event.window
        assert start == dt.datetime(2025, 3, 3, tzinfo=dt.UTC)
        assert end == dt.datetime(2025, 3, 3, 23, 59, 59, 999999, tzinfo=dt.UTC)

    def test_unknown_speaker_role_is_refused(self) -> None:
        """The role is one of the ranked vocabulary; free text goes to title."""
        speakers = [{"country": "GBR", "name": "N", "role": "Foreign Secretary"}]
        assert fields_of(issued(speakers=speakers)) == ["speakers[0].role"]


class TestShape:
    """The document's shape: known type, known fields, right JSON types."""

    @pytest.mark.parametrize("tag", ["incident.unknown", "Incident.Reported", "", "reported"])
    def test_unknown_type_is_refused(self, tag: str) -> None:
        """A ``type`` naming no event type is invalid at ``type``."""
        assert fields_of(reported(type=tag)) == ["type"]

    def test_missing_type_is_refused(self) -> None:
        """A payload without ``type`` is invalid at ``type``."""
        payload = reported()
        del payload["type"]
        assert fields_of(payload) == ["type"]

    def test_type_of_wrong_json_type_is_refused(self) -> None:
        """A non-string ``type`` is invalid at ``type``."""
        assert fields_of(reported(type=7)) == ["type"]

    def test_unknown_top_level_field_is_refused(self) -> None:
        """A field the schema does not have is named, so typos do not pass silently."""
        assert fields_of(reported(fatalites=3)) == ["fatalites"]

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            (reported(place={"adm1": "R", "colour": "red"}), "place.colour"),
            (reported(fatalities={**figures(1, 1, 1), "dead": 1}), "fatalities.dead"),
            (reported(sources=[{"publisher": "P"}, {"publisher": "Q", "x": 1}]), "sources[1].x"),
            (
                issued(speakers=[{"country": "FRA", "name": "N", "office": "T"}]),
                "speakers[0].office",
            ),
            (issued(target={"country": "SYR", "group": "G"}), "target.group"),
        ],
    )
    def test_unknown_nested_field_is_refused(self, payload: dict[str, Any], field: str) -> None:
        """An unknown field inside a nested value is named with its full path."""
        assert fields_of(payload) == [field]

    @pytest.mark.parametrize(
        ("payload", "field"),
        [
            (reported(geo_precision="2"), "geo_precision"),
            (reported(civilian_targeting="yes"), "civilian_targeting"),
            (reported(fatalities=120), "fatalities"),
            (reported(sources={"publisher": "P"}), "sources"),
            (reported(place={"adm1": 5}), "place.adm1"),
            (reported(place={"adm1": "R", "lat": "35.1", "lon": 35.9}), "place.lat"),
            (reported(event_id="not-a-uuid"), "event_id"),
            (reported(perpetrators="Group A"), "perpetrators"),
            (reported(fatalities={**figures(1, 1, 1), "high": 1.5}), "fatalities.high"),
            (issued(goldstein="-2"), "goldstein"),
            (issued(speakers=[{"country": "FRA", "name": None}]), "speakers[0].name"),
        ],
    )
    def test_wrong_json_type_is_refused(self, payload: dict[str, Any], field: str) -> None:
        """A value of the wrong JSON type is invalid at its own path."""
        assert fields_of(payload) == [field]

    @pytest.mark.parametrize("missing", ["event_id", "source", "incident_id", "country", "place"])
    def test_missing_required_field_is_refused(self, missing: str) -> None:
        """A required field that is absent is named."""
        payload = reported()
        del payload[missing]
        assert fields_of(payload) == [missing]

    def test_missing_required_nested_field_is_refused(self) -> None:
        """A required field absent inside a nested value is named with its path."""
        assert fields_of(reported(place={"name": "Village"})) == ["place.adm1"]

    @pytest.mark.parametrize(
        ("field", "value"),
        [("violence_type", "terrorism"), ("event_type", "battles"), ("grading", "strong")],
    )
    def test_value_outside_its_vocabulary_is_refused(self, field: str, value: str) -> None:
        """Closed vocabularies (UCDP, ACLED, Airwars) accept only their own spellings."""
        assert fields_of(reported(**{field: value})) == [field]

    @pytest.mark.parametrize(("field", "value"), [("geo_precision", 8), ("date_precision", 0)])
    def test_precision_outside_its_scale_is_refused(self, field: str, value: int) -> None:
        """UCDP precision codes outside their scale are refused."""
        assert fields_of(reported(**{field: value})) == [field]


class TestCountries:
    """Countries are ISO 3166-1 alpha-3 codes that exist."""

    @pytest.mark.parametrize("code", ["XXX", "ZZZ", "SYR\n"])
    def test_code_not_in_iso_3166_is_refused(self, code: str) -> None:
        """A well-formed code that names no country is refused at ``country``."""
        assert fields_of(reported(country=code)) == ["country"]

    @pytest.mark.parametrize("code", ["syr", "SY", "SYRI", "S1R", ""])
    def test_malformed_code_is_refused(self, code: str) -> None:
        """Lowercase, two-letter or otherwise malformed codes are refused at ``country``."""
        assert fields_of(reported(country=code)) == ["country"]

    def test_target_country_not_in_iso_3166_is_refused(self) -> None:
        """A statement's target country is checked against the same table."""
        assert fields_of(issued(target={"country": "XXX"})) == ["target.country"]

    def test_target_without_country_is_accepted(self) -> None:
        """A target may be an actor only."""
        event = accepted(issued(target={"actor": "Armed group A"}))
        assert isinstance(event, StatementIssued)
        assert event.target.country is None


class TestSpeakers:
    """Speakers: at least one, each a real country, no country twice."""

    def test_no_speaker_is_refused(self) -> None:
        """A statement nobody made is refused at ``speakers``."""
        assert fields_of(issued(speakers=[])) == ["speakers"]

    def test_same_country_twice_is_refused(self) -> None:
        """The second speaker of one country is named by its index."""
        speakers = [
            {"country": "FRA", "name": "Ministry"},
            {"country": "DEU", "name": "Office"},
            {"country": "FRA", "name": "President"},
        ]
        assert fields_of(issued(speakers=speakers)) == ["speakers[2].country"]

    def test_speaker_country_not_in_iso_3166_is_refused(self) -> None:
        """Each speaker's country is checked against the table, named by its index."""
        speakers = [{"country": "FRA", "name": "M"}, {"country": "XXX", "name": "N"}]
        assert fields_of(issued(speakers=speakers)) == ["speakers[1].country"]


class TestCameoAndGoldstein:
    """CAMEO codes must be in the table; Goldstein is in [-10, 10] and filled when absent."""

    @pytest.mark.parametrize("code", ["999", "0000", "2001"])
    def test_code_not_in_table_is_refused(self, code: str) -> None:
        """A well-formed CAMEO code the table does not know is refused."""
        assert fields_of(issued(cameo_code=code)) == ["cameo_code"]

    @pytest.mark.parametrize("code", ["1", "12345", "11a", "111\n"])
    def test_malformed_code_is_refused(self, code: str) -> None:
        """CAMEO codes are 2 to 4 digits."""
        assert fields_of(issued(cameo_code=code)) == ["cameo_code"]

    @pytest.mark.parametrize("score", [10.5, -10.01, 11])
    def test_goldstein_out_of_range_is_refused(self, score: float) -> None:
        """A Goldstein score outside [-10, 10] is refused."""
        assert fields_of(issued(goldstein=score)) == ["goldstein"]

    @pytest.mark.parametrize(("code", "score"), [("026", 4.0), ("111", -2.0)])
    def test_goldstein_is_filled_from_the_table_when_absent(self, code: str, score: float) -> None:
        """Without a score, the stored statement carries the table's score for its code."""
        payload = issued(cameo_code=code)
        del payload["goldstein"]
        event = accepted(payload)
        assert isinstance(event, StatementIssued)
        assert event.goldstein == score

    def test_given_goldstein_equal_to_the_table_is_kept(self) -> None:
        """A score the publisher gives that agrees with GDELT's table is stored as given."""
        event = accepted(issued(cameo_code="111", stance="condemn", goldstein=-2.0))
        assert isinstance(event, StatementIssued)
        assert event.goldstein == -2.0

    def test_goldstein_other_than_the_table_is_refused_naming_the_expected_value(self) -> None:
        """CAMEO 111 sent with goldstein 9.0: refused at goldstein, saying -2.0 is expected."""
        (problem,) = problems_of(issued(cameo_code="111", stance="condemn", goldstein=9.0))
        assert problem.field == "goldstein"
        assert "must be -2.0 for CAMEO 111" in problem.message


class TestCameoAndStance:
    """A CAMEO root that contradicts the stance is refused (events/data/cameo_stance.tsv)."""

    @pytest.mark.parametrize(
        ("code", "stance"),
        [
            ("051", "warn"),  # praise, coded as a warning
            ("036", "condemn"),  # intent to meet, coded as a condemnation
            ("0871", "demand_accountability"),  # yield: ceasefire, as a demand
            ("111", "welcome"),  # criticize or denounce, as a welcome
            ("163", "support"),  # impose embargo, as support
            ("201", "welcome"),  # mass expulsion, as a welcome
        ],
    )
    def test_contradicting_root_is_refused_at_stance(self, code: str, stance: str) -> None:
        """Cooperation with a critical stance, conflict with a supportive one: refused."""
        (problem,) = problems_of(issued(cameo_code=code, stance=stance, goldstein=None))
        assert problem.field == "stance"
        assert f"contradicts CAMEO {code}" in problem.message

    @pytest.mark.parametrize(
        ("code", "stance"),
        [
            ("026", "call_for_meeting"),  # the reference cases
            ("111", "condemn"),
            ("111", "demand_accountability"),
            ("012", "warn"),
            ("010", "neutral"),
            ("010", "condemn"),  # roots 01, 02 and 10 go with any stance
            ("020", "welcome"),
            ("101", "demand_accountability"),
            ("108", "support"),
            ("051", "support"),  # cooperation with a supportive or procedural stance
            ("036", "call_for_meeting"),
            ("130", "warn"),  # conflict with a critical or procedural stance
            ("111", "call_for_restraint"),
        ],
    )
    def test_consistent_code_and_stance_are_accepted(self, code: str, stance: str) -> None:
        """The reference cases and every stance under roots 01, 02 and 10 are valid."""
        event = accepted(issued(cameo_code=code, stance=stance, goldstein=None))
        assert isinstance(event, StatementIssued)
        assert event.goldstein == events.goldstein(code)

    def test_every_root_of_the_goldstein_table_is_in_the_stance_table(self) -> None:
        """No CAMEO code escapes the rule for want of a root."""
        roots = {code[:2] for code in events.goldstein_table()}
        assert roots == set(events.cameo_roots()) == {f"{n:02d}" for n in range(1, 21)}

    def test_the_stance_table_refuses_exactly_the_documented_pairs(self) -> None:
        """Cooperative roots 03-09 refuse critical stances, 11-20 supportive ones, others none."""
        critical = {"condemn", "warn", "demand_accountability"}
        for root, entry in events.cameo_roots().items():
            number = int(root)
            expected = (
                critical if 3 <= number <= 9 else {"support", "welcome"} if number >= 11 else set()
            )
            assert entry.refused == expected, root


class TestIdentifiers:
    """Entity ids are 1-128 characters of A-Za-z0-9._:- and nothing else."""

    @pytest.mark.parametrize(
        "bad",
        [
            pytest.param("", id="empty"),
            pytest.param("a" * 129, id="129-chars"),
            pytest.param("syr 1", id="space"),
            pytest.param("syr-1\n", id="trailing-newline"),
            pytest.param("syr/1", id="slash"),
            pytest.param("syr-1é", id="non-ascii"),
        ],
    )
    def test_bad_incident_id_is_refused(self, bad: str) -> None:
        """An id outside the pattern is refused at ``incident_id``."""
        assert fields_of(reported(incident_id=bad)) == ["incident_id"]

    def test_incident_id_of_128_chars_is_accepted(self) -> None:
        """The longest allowed id, using every allowed punctuation mark, is valid."""
        ident = ("Az09._:-" * 16)[:128]
        event = accepted(reported(incident_id=ident))
        assert isinstance(event, IncidentReported)
        assert event.incident_id == ident

    def test_bad_statement_id_is_refused(self) -> None:
        """Statement ids follow the same pattern."""
        assert fields_of(issued(statement_id="stmt 1")) == ["statement_id"]

    def test_bad_linked_incident_id_is_refused(self) -> None:
        """Each id a statement links to is checked, named by its index."""
        assert fields_of(issued(incident_ids=["syr-1", "bad id"])) == ["incident_ids[1]"]

    @pytest.mark.parametrize("feed", ["ACLED", "-acled", "", "acled\n", "a" * 65])
    def test_bad_source_feed_name_is_refused(self, feed: str) -> None:
        """A feed name is a lowercase name of at most 64 characters."""
        assert fields_of(reported(source=feed)) == ["source"]


class TestMerges:
    """An incident merges into another, never into itself."""

    def test_merge_into_itself_is_refused(self) -> None:
        """``into`` equal to ``incident_id`` is refused at ``into``."""
        payload = valid("incident.merged", incident_id="syr-1", into="syr-1")
        assert fields_of(payload) == ["into"]

    def test_merge_into_bad_id_is_refused(self) -> None:
        """``into`` is an entity id like any other."""
        assert fields_of(valid("incident.merged", into="not an id")) == ["into"]


class TestClearing:
    """A revision clears only the report's optional fields, and never one it also gives."""

    def test_a_cleared_field_is_set_to_none(self) -> None:
        """``cleared`` names fields the source no longer gives."""
        event = accepted(valid("incident.casualties_revised", cleared=["violence_type"]))
        assert isinstance(event, events.CasualtiesRevised)
        assert events.amendments(event)["violence_type"] is None

    def test_a_field_both_given_and_cleared_is_refused(self) -> None:
        """Giving a value and clearing it is a contradiction, refused at ``cleared``."""
        payload = valid(
            "incident.casualties_revised", violence_type="one_sided", cleared=["violence_type"]
        )
        assert fields_of(payload) == ["cleared"]

    def test_a_required_field_cannot_be_cleared(self) -> None:
        """Place and dates every incident has: not clearable."""
        assert fields_of(valid("incident.casualties_revised", cleared=["place"])) == ["cleared[0]"]


class TestTextAndSources:
    """Free text has bounds; sources are at least one, with http(s) URLs."""

    def test_notes_over_4000_chars_are_refused(self) -> None:
        """Notes longer than 4,000 characters are refused."""
        assert fields_of(reported(notes="n" * 4001)) == ["notes"]

    def test_notes_of_4000_chars_are_accepted(self) -> None:
        """Exactly 4,000 characters of notes is the limit and valid."""
        event = accepted(reported(notes="n" * 4000))
        assert isinstance(event, IncidentReported)
        assert event.notes is not None
        assert len(event.notes) == 4000

    def test_empty_sources_are_refused(self) -> None:
        """Every report rests on at least one source."""
        assert fields_of(reported(sources=[])) == ["sources"]

    def test_empty_sources_of_statement_are_refused(self) -> None:
        """Every statement rests on at least one source."""
        assert fields_of(issued(sources=[])) == ["sources"]

    @pytest.mark.parametrize(
        "url",
        ["ftp://example.org/x", "example.org/x", "javascript:alert(1)", "https://", "http://a b"],
    )
    def test_url_not_http_is_refused(self, url: str) -> None:
        """Only http and https URLs without spaces are sources."""
        sources = [{"publisher": "P", "url": url}]
        assert fields_of(reported(sources=sources)) == ["sources[0].url"]

    def test_url_with_trailing_newline_is_refused(self) -> None:
        """A URL may not end in a newline."""
        sources = [{"publisher": "P", "url": "https://example.org/x\n"}]
        assert fields_of(reported(sources=sources)) == ["sources[0].url"]

    def test_empty_reason_is_refused(self) -> None:
        """A retraction must say why."""
        assert fields_of(valid("incident.retracted", reason="")) == ["reason"]


class TestPlace:
    """Coordinates come in pairs and within range."""

    def test_lat_without_lon_is_refused(self) -> None:
        """A latitude alone is no location."""
        assert fields_of(reported(place={"adm1": "R", "lat": 35.1})) == ["place"]

    def test_lon_without_lat_is_refused(self) -> None:
        """A longitude alone is no location."""
        assert fields_of(reported(place={"adm1": "R", "lon": 35.9})) == ["place"]

    @pytest.mark.parametrize(
        ("place", "field"),
        [
            ({"adm1": "R", "lat": 90.5, "lon": 0}, "place.lat"),
            ({"adm1": "R", "lat": 0, "lon": -180.5}, "place.lon"),
        ],
    )
    def test_coordinate_out_of_range_is_refused(self, place: dict[str, Any], field: str) -> None:
        """Latitude within ±90 and longitude within ±180."""
        assert fields_of(reported(place=place)) == [field]


class TestSchemaVersion:
    """``schema_version`` on input: 0/absent or 1..current; never newer, never negative."""

    def test_newer_than_current_is_refused(self) -> None:
        """A version this code does not know is refused at ``schema_version``."""
        version = events.current_version("incident.reported") + 1
        assert fields_of(reported(schema_version=version)) == ["schema_version"]

    def test_negative_version_is_refused(self) -> None:
        """A negative version is no version."""
        assert fields_of(reported(schema_version=-1)) == ["schema_version"]

    def test_version_of_wrong_type_is_refused(self) -> None:
        """A version given as a string is invalid at ``schema_version``."""
        assert fields_of(reported(schema_version="2")) == ["schema_version"]


class TestSeveralProblems:
    """Rule problems are reported together, so a publisher fixes them in one go."""

    def test_every_broken_rule_is_named(self) -> None:
        """Unknown country, backwards dates and lone latitude are all reported at once."""
        payload = reported(
            country="XXX",
            occurred_start="2025-03-06",
            occurred_end="2025-03-01",
            place={"adm1": "R", "lat": 1.0},
        )
        assert sorted(fields_of(payload)) == ["country", "occurred_end", "place"]

    def test_error_message_lists_every_field(self) -> None:
        """The exception's text names each field, for logs and the rejected stream."""
        with pytest.raises(InvalidEventError, match=r"country: .*; occurred_end: "):
            events.parse_submission(_body(reported(country="XXX", occurred_end="2025-02-01")))


class TestNormalise:
    """``normalise`` gives the stored form of an event."""

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_schema_version_is_set_to_current(self, tag: str) -> None:
        """An event with version 0 ("current") is stored with its number."""
        event = msgspec.convert(valid(tag, schema_version=0), events.AnyEvent)
        assert events.normalise(event).schema_version == events.current_version(tag)

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_expected_version_is_dropped(self, tag: str) -> None:
        """The precondition is checked at append time and never stored."""
        event = msgspec.convert(valid(tag, expected_version=4), events.AnyEvent)
        assert event.expected_version == 4
        assert events.normalise(event).expected_version is None

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_normalise_is_idempotent(self, tag: str) -> None:
        """Normalising a stored form changes nothing."""
        event = msgspec.convert(valid(tag, schema_version=0, expected_version=1), events.AnyEvent)
        once = events.normalise(event)
        assert events.normalise(once) == once

    def test_normalise_fills_goldstein(self) -> None:
        """A statement without a score gets the table's score for its code."""
        payload = issued(cameo_code="026")
        del payload["goldstein"]
        event = msgspec.convert(payload, StatementIssued)
        normalised = events.normalise(event)
        assert isinstance(normalised, StatementIssued)
        assert normalised.goldstein == 4.0

    def test_submission_keeps_expected_version_for_the_store(self) -> None:
        """parse_submission keeps the precondition (the store checks it); normalise drops it."""
        event = accepted(reported(expected_version=3))
        assert event.expected_version == 3
        assert events.normalise(event).expected_version is None

    def test_submission_is_otherwise_the_stored_form(self) -> None:
        """Apart from the precondition, parse_submission returns what normalise makes."""
        payload = reported(schema_version=0, expected_version=3)
        event = msgspec.convert(payload, IncidentReported)
        assert events.normalise(accepted(payload)) == events.normalise(event)
        assert accepted(payload).schema_version == events.current_version("incident.reported")

    def test_normalise_leaves_the_rest_unchanged(self) -> None:
        """Only version, precondition and score change; the rest is the event as given."""
        event = msgspec.convert(reported(schema_version=0, expected_version=2), IncidentReported)
        normalised = events.normalise(event)
        assert msgspec.structs.replace(normalised, schema_version=0, expected_version=2) == event


class TestBatches:
    """``parse_batch``: one object or an array of at most MAX_BATCH, all valid or none."""

    def test_single_object_is_one_event_not_an_array(self) -> None:
        """A body that is one object returns one event and ``is_array`` False."""
        found, is_array = events.parse_batch(_body(reported()))
        assert len(found) == 1
        assert is_array is False

    def test_array_returns_every_event_in_order(self) -> None:
        """An array body returns its events in the order given and ``is_array`` True."""
        ids = [str(uuid.UUID(int=i + 1)) for i in range(3)]
        found, is_array = events.parse_batch(_body([reported(event_id=i) for i in ids]))
        assert [str(e.event_id) for e in found] == ids
        assert is_array is True

    def test_one_bad_event_among_good_reports_only_its_index(self) -> None:
        """Only the invalid event's index appears, with its own field path."""
        body = _body([reported(), reported(country="XXX"), reported()])
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        assert info.value.batch_problems == [
            BatchProblem(1, "country", "'XXX' is not an ISO 3166-1 alpha-3 country code")
        ]
        assert [p.field for p in info.value.problems] == ["[1].country"]

    def test_every_bad_event_is_reported(self) -> None:
        """Several invalid events are each reported with their index."""
        body = _body([reported(country="XXX"), reported(), issued(speakers=[])])
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        assert [(p.index, p.field) for p in info.value.batch_problems] == [
            (0, "country"),
            (2, "speakers"),
        ]

    def test_max_batch_events_are_accepted(self) -> None:
        """Exactly MAX_BATCH events are one valid submission."""
        found, _ = events.parse_batch(_body([valid("incident.retracted")] * events.MAX_BATCH))
        assert len(found) == events.MAX_BATCH

    def test_more_than_max_batch_events_are_refused(self) -> None:
        """5,001 events are refused as a whole, before any is validated."""
        assert events.MAX_BATCH == 5000
        body = _body([valid("incident.retracted")] * (events.MAX_BATCH + 1))
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        assert [(p.index, p.field) for p in info.value.batch_problems] == [(5000, "body")]

    @pytest.mark.parametrize("body", [b"[]", b"  [ ]\n"])
    def test_empty_array_is_refused(self, body: bytes) -> None:
        """An array with no event carries nothing to store."""
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        assert [(p.index, p.field) for p in info.value.batch_problems] == [(0, "body")]

    @pytest.mark.parametrize("body", [b"42", b'"incident"', b"null", b"true", b"1.5"])
    def test_body_not_object_or_array_is_refused(self, body: bytes) -> None:
        """A JSON scalar is no event, reported at index 0, field ``body``."""
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        assert [(p.index, p.field) for p in info.value.batch_problems] == [(0, "body")]

    def test_array_of_scalars_names_each_index(self) -> None:
        """Array members that are not objects are each refused at their index."""
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(b'[1, "x"]')
        assert [(p.index, p.field) for p in info.value.batch_problems] == [
            (0, "body"),
            (1, "body"),
        ]

    @pytest.mark.parametrize(
        "body", [b"{", b'{"type": "incident.retracted",}', b'[{"type": ', b"", b"\xff"]
    )
    def test_malformed_json_is_refused(self, body: bytes) -> None:
        """A body that is not JSON is refused as malformed, at index 0, field ``body``."""
        with pytest.raises(InvalidBatchError) as info:
            events.parse_batch(body)
        [problem] = info.value.batch_problems
        assert (problem.index, problem.field) == (0, "body")
        assert problem.message.startswith("malformed JSON")

    def test_malformed_json_submission_is_refused(self) -> None:
        """parse_submission reports malformed JSON the same way."""
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(b'{"type": "incident.retracted"')
        [problem] = info.value.problems
        assert problem.field == "body"
        assert problem.message.startswith("malformed JSON")

    def test_body_not_an_object_submission_is_refused(self) -> None:
        """parse_submission refuses a JSON array at ``body``."""
        assert fields_of([reported()]) == ["body"]

    def test_invalid_batch_error_is_an_invalid_event_error(self) -> None:
        """Callers handling InvalidEventError also handle a bad batch."""
        with pytest.raises(InvalidEventError):
            events.parse_batch(b"[]")
