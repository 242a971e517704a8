"""Property tests of the vocabulary: valid events round-trip; garbage fails only as declared."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import events
from events import (
    CasualtiesRevised,
    CodecError,
    Estimate,
    Event,
    Fatalities,
    IncidentDisputed,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
    InvalidBatchError,
    InvalidEventError,
    Place,
    Source,
    Speaker,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    Target,
    VictimLine,
)

PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
GARBAGE = settings(max_examples=300, deadline=None)

# --- strategies of valid values -------------------------------------------------------------

entity_ids = st.from_regex(r"[A-Za-z0-9._:-]{1,128}", fullmatch=True)
feeds = st.from_regex(r"[a-z0-9][a-z0-9_.-]{0,63}", fullmatch=True)
slugs = st.from_regex(r"[a-z0-9][a-z0-9-]{0,127}", fullmatch=True)
short_texts = st.text(min_size=1, max_size=200)
reasons = st.text(min_size=1, max_size=300)
countries = st.sampled_from(sorted(events.iso3_countries()))
cameo_codes = st.sampled_from(sorted(events.goldstein_table()))
urls = st.from_regex(r"https?://[!-~]{1,60}", fullmatch=True)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: dt.timezone(dt.timedelta(minutes=m)))
aware_datetimes = st.datetimes(timezones=offsets)
counts = st.integers(0, 100_000_000)
expected_versions = st.none() | st.integers(0, 2**53)


def _optional(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | strategy


def _ordered(top: int) -> st.SearchStrategy[tuple[int, int, int]]:
    """Three counts in [0, top] with low ≤ best ≤ high."""
    triples = st.tuples(st.integers(0, top), st.integers(0, top), st.integers(0, top))
    return triples.map(lambda t: tuple(sorted(t)))  # type: ignore[arg-type,return-value]


estimates = _ordered(100_000_000).map(lambda t: Estimate(low=t[0], best=t[1], high=t[2]))

sources = st.builds(
    Source,
    publisher=short_texts,
    url=_optional(urls),
    published_at=_optional(aware_datetimes),
)
source_lists = st.lists(sources, min_size=1, max_size=4)


@st.composite
def figures(draw: st.DrawFn) -> tuple[Fatalities, list[VictimLine]]:
    """Fatalities and victim lines that satisfy every rule between them."""
    lines: list[VictimLine] = draw(
        st.lists(
            st.builds(
                lambda t, community, status, qualifier: VictimLine(
                    low=t[0],
                    best=t[1],
                    high=t[2],
                    community=community,
                    status=status,
                    qualifier=qualifier,
                ),
                _ordered(1_000_000),
                slugs,
                st.sampled_from(["civilian", "combatant", "unknown"]),
                st.sampled_from(["exact", "at_least", "approximately", "range"]),
            ),
            max_size=6,
            unique_by=lambda v: (v.community, v.status),
        )
    )
    extra = draw(_ordered(50_000_000))
    fatalities = Fatalities(
        low=sum(v.low for v in lines) + extra[0],
        best=sum(v.best for v in lines) + extra[1],
        high=sum(v.high for v in lines) + extra[2],
        qualifier=draw(st.sampled_from(["exact", "at_least", "approximately", "range"])),
    )
    return fatalities, lines


@st.composite
def places(draw: st.DrawFn) -> Place:
    """A place whose coordinates, if any, come as a pair."""
    coordinates = draw(
        _optional(
            st.tuples(
                st.floats(-90, 90, allow_nan=False),
                st.floats(-180, 180, allow_nan=False),
            )
        )
    )
    lat, lon = coordinates if coordinates is not None else (None, None)
    return Place(
        adm1=draw(short_texts),
        adm2=draw(_optional(short_texts)),
        name=draw(_optional(short_texts)),
        lat=lat,
        lon=lon,
    )


def _envelope(cls: type[Event]) -> dict[str, st.SearchStrategy[Any]]:
    return {
        "event_id": st.uuids(),
        "source": feeds,
        "schema_version": st.sampled_from([0, cls.SCHEMA_VERSION]),
        "expected_version": expected_versions,
    }


@st.composite
def incidents_reported(draw: st.DrawFn) -> IncidentReported:
    """A valid incident.reported."""
    fatalities, victims = draw(figures())
    start = draw(st.dates())
    end = draw(_optional(st.dates(min_value=start)))
    return draw(
        st.builds(
            IncidentReported,
            **_envelope(IncidentReported),
            incident_id=entity_ids,
            occurred_start=st.just(start),
            occurred_end=st.just(end),
            date_precision=st.integers(1, 5),
            country=countries,
            place=places(),
            geo_precision=st.integers(1, 7),
            violence_type=st.sampled_from(["state_based", "non_state", "one_sided"]),
            event_type=st.sampled_from(
                [
                    "Battles",
                    "Violence against civilians",
                    "Protests",
                    "Riots",
                    "Strategic developments",
                    "Explosions/Remote violence",
                ]
            ),
            sub_event_type=_optional(short_texts),
            perpetrators=st.lists(short_texts, max_size=3),
            civilian_targeting=st.booleans(),
            fatalities=st.just(fatalities),
            victims=st.just(victims),
            injured=_optional(estimates),
            sources=source_lists,
            grading=st.sampled_from(list(events.GRADING_ORDER)),
            notes=_optional(st.text(max_size=4000)),
        )
    )


@st.composite
def casualties_revised(draw: st.DrawFn) -> CasualtiesRevised:
    """A valid incident.casualties_revised."""
    fatalities, victims = draw(figures())
    return draw(
        st.builds(
            CasualtiesRevised,
            **_envelope(CasualtiesRevised),
            incident_id=entity_ids,
            fatalities=st.just(fatalities),
            victims=st.just(victims),
            injured=_optional(estimates),
            sources=source_lists,
            reason=reasons,
        )
    )


incidents_retracted = st.builds(
    IncidentRetracted, **_envelope(IncidentRetracted), incident_id=entity_ids, reason=reasons
)
incidents_merged = st.builds(
    IncidentMerged,
    **_envelope(IncidentMerged),
    incident_id=entity_ids,
    into=entity_ids,
    reason=reasons,
).filter(lambda e: e.into != e.incident_id)
STANCES = [
    "condemn",
    "support",
    "demand_accountability",
    "call_for_meeting",
    "call_for_restraint",
    "warn",
    "welcome",
    "neutral",
]


@st.composite
def statements_issued(draw: st.DrawFn) -> StatementIssued:
    """A valid statement.issued: a stance its CAMEO root allows, the table's Goldstein or
    none, and a time of any precision (a range with its end)."""
    code = draw(cameo_codes)
    root = events.cameo_root(code)
    assert root is not None
    stance = draw(st.sampled_from([s for s in STANCES if s not in root.refused]))
    issued_at = draw(aware_datetimes)
    precision = draw(st.sampled_from(["exact", "day", "range"]))
    end = None
    if precision == "range":
        end = issued_at + draw(st.timedeltas(dt.timedelta(0), dt.timedelta(days=30)))
    return draw(
        st.builds(
            StatementIssued,
            **_envelope(StatementIssued),
            statement_id=entity_ids,
            issued_at=st.just(issued_at),
            issued_precision=st.just(precision),
            issued_end=st.just(end),
            speakers=st.lists(
                st.builds(
                    Speaker,
                    country=countries,
                    name=short_texts,
                    role=st.sampled_from(events.SPEAKER_ROLES),
                    title=_optional(short_texts),
                ),
                min_size=1,
                max_size=5,
                unique_by=lambda s: s.country,
            ),
            target=st.builds(Target, country=_optional(countries), actor=_optional(short_texts)),
            venue=_optional(st.from_regex(r"[A-Z0-9]{2,12}", fullmatch=True)),
            subject=slugs,
            incident_ids=st.lists(entity_ids, max_size=4),
            cameo_code=st.just(code),
            goldstein=st.sampled_from([None, events.goldstein(code)]),
            stance=st.just(stance),
            sources=source_lists,
        )
    )


statements_retracted = st.builds(
    StatementRetracted, **_envelope(StatementRetracted), statement_id=entity_ids, reason=reasons
)

incidents_redacted = st.builds(
    IncidentRedacted, **_envelope(IncidentRedacted), incident_id=entity_ids, reason=reasons
)
statements_redacted = st.builds(
    StatementRedacted, **_envelope(StatementRedacted), statement_id=entity_ids, reason=reasons
)
incidents_disputed = st.builds(
    IncidentDisputed,
    **_envelope(IncidentDisputed),
    incident_id=entity_ids,
    reason=reasons,
    sources=source_lists,
)

STRATEGIES: dict[str, st.SearchStrategy[Any]] = {
    "incident.reported": incidents_reported(),
    "incident.casualties_revised": casualties_revised(),
    "incident.retracted": incidents_retracted,
    "incident.merged": incidents_merged,
    "statement.issued": statements_issued(),
    "statement.retracted": statements_retracted,
    "incident.redacted": incidents_redacted,
    "statement.redacted": statements_redacted,
    "incident.disputed": incidents_disputed,
}
any_event = st.one_of(*STRATEGIES.values())

# --- strategies of garbage ------------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
known_keys = sorted(
    {name for cls in events.EVENT_TYPES.values() for name in cls.__struct_fields__}
    | {"speaker", "fatalities_qualifier", "type"}
)
jsonish_dicts = st.dictionaries(
    st.sampled_from(known_keys) | st.text(max_size=10), json_values, max_size=10
).flatmap(
    lambda d: (
        st.builds(
            lambda tag, version: {**d, "type": tag, "schema_version": version},
            st.sampled_from(sorted(events.EVENT_TYPES)) | st.text(max_size=12) | json_scalars,
            st.integers(-2, 4) | json_scalars,
        )
        | st.just(d)
    )
)


class TestStrategies:
    """The strategies cover the vocabulary and produce only valid events."""

    def test_a_strategy_for_every_event_type(self) -> None:
        """No event type is left out of the properties below."""
        assert set(STRATEGIES) == set(events.EVENT_TYPES)

    @PROPERTY
    @given(any_event)
    def test_generated_events_break_no_rule(self, event: Event) -> None:
        """Every generated event is one a feed may publish."""
        assert events.problems(event) == []


class TestRoundTrips:
    """Every valid event survives the codec and the submission path."""

    @PROPERTY
    @given(any_event)
    def test_decode_of_encode_is_the_event(self, event: Event) -> None:
        """JSON encode then decode gives an equal event."""
        assert events.decode(events.encode(event)) == event

    @PROPERTY
    @given(any_event, st.sampled_from(events.ENTRY_CODECS))
    def test_from_fields_of_to_fields_is_the_event(self, event: Event, codec: int) -> None:
        """The stream entry of every codec decodes to an equal event, with str or bytes
        keys, and its JSON (what exports write) is that of the event."""
        fields = events.to_fields(event, codec)
        assert events.from_fields(fields) == event
        assert events.entry_data(fields) == events.encode(event)
        as_bytes = {
            k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()
        }
        assert events.from_fields(as_bytes) == event

    @PROPERTY
    @given(any_event)
    def test_data_field_is_plain_json(self, event: Event) -> None:
        """Codec 0's ``data`` parses with the standard json module to the event's builtins."""
        data = events.to_fields(event, events.ENTRY_JSON)["data"]
        assert json.loads(data) == msgspec.to_builtins(event)

    @PROPERTY
    @given(any_event)
    def test_parse_submission_of_encode_is_the_normalised_event(self, event: Event) -> None:
        """Submitting an encoded event gives its stored form, precondition kept for the store."""
        parsed = events.parse_submission(events.encode(event))
        assert events.normalise(parsed) == events.normalise(event)
        assert parsed == msgspec.structs.replace(
            events.normalise(event), expected_version=event.expected_version
        )

    @PROPERTY
    @given(st.lists(any_event, min_size=1, max_size=5))
    def test_parse_batch_of_array_is_every_event(self, batch: list[Event]) -> None:
        """An array of valid events comes back whole and in order."""
        body = b"[" + b",".join(events.encode(e) for e in batch) + b"]"
        parsed, is_array = events.parse_batch(body)
        assert is_array is True
        assert [events.normalise(e) for e in parsed] == [events.normalise(e) for e in batch]


class TestGarbage:
    """Malformed input fails with the package's declared errors and nothing else."""

    @GARBAGE
    @given(st.binary(max_size=512))
    def test_random_bytes_to_decode_raise_codec_error(self, data: bytes) -> None:
        """Random bytes never escape as a msgspec, Unicode or other error."""
        with pytest.raises(CodecError):
            events.decode(data)

    @GARBAGE
    @given(
        st.sampled_from(sorted(events.EVENT_TYPES)),
        st.sampled_from([b"1", b"2", b"3", b"0", b"x", None]),
        st.binary(max_size=256) | json_values.map(lambda v: json.dumps(v).encode()),
    )
    def test_random_entries_to_from_fields_raise_codec_error(
        self, tag: str, v: bytes | None, data: bytes
    ) -> None:
        """A stream entry with garbage data fails as CodecError, whatever its version."""
        fields = {b"type": tag.encode(), b"data": data}
        if v is not None:
            fields[b"v"] = v
        with pytest.raises(CodecError):
            events.from_fields(fields)

    @GARBAGE
    @given(
        st.sampled_from(sorted(events.EVENT_TYPES)),
        st.sampled_from([b"1", b"2", b"3", b"x"]),
        st.sampled_from([b"1", b"2", b"4", None]),
        st.binary(max_size=256),
        st.binary(max_size=40),
    )
    def test_random_compact_entries_to_from_fields_raise_codec_error(
        self, tag: str, c: bytes, v: bytes | None, data: bytes, source: bytes
    ) -> None:
        """An entry of codec 1 or 2 (or an unknown one) with garbage ``d`` or ``source``
        fails as CodecError, never as a zstd, MessagePack or index error."""
        fields = {b"c": c, b"type": tag.encode(), b"source": source, b"d": data}
        if v is not None:
            fields[b"v"] = v
        with pytest.raises(CodecError):
            events.from_fields(fields)

    @GARBAGE
    @given(jsonish_dicts)
    def test_random_jsonish_dicts_raise_invalid_event_error(self, payload: dict[str, Any]) -> None:
        """Random documents, even with a real type and version, fail as InvalidEventError."""
        with pytest.raises(InvalidEventError):
            events.parse_submission(json.dumps(payload).encode())

    @GARBAGE
    @given(json_values)
    def test_random_json_bodies_raise_invalid_batch_error(self, body: Any) -> None:
        """Any JSON body that is not valid events fails as InvalidBatchError."""
        with pytest.raises(InvalidBatchError):
            events.parse_batch(json.dumps(body).encode())

    @GARBAGE
    @given(st.binary(max_size=512))
    def test_random_bytes_bodies_raise_invalid_batch_error(self, body: bytes) -> None:
        """Random bytes as a submission body fail as InvalidBatchError."""
        with pytest.raises(InvalidBatchError):
            events.parse_batch(body)

    @PROPERTY
    @given(any_event, st.data())
    def test_one_field_replaced_by_garbage_is_accepted_or_invalid(
        self, event: Event, data: st.DataObject
    ) -> None:
        """One field replaced: accepted with no problem, or InvalidEventError naming one."""
        payload = msgspec.to_builtins(event)
        key = data.draw(st.sampled_from(sorted(payload)))
        payload[key] = data.draw(json_values)
        try:
            found = events.problems(events.parse_submission(json.dumps(payload).encode()))
            accepted = True
        except InvalidEventError as exc:
            found, accepted = exc.problems, False
        assert accepted == (not found)
