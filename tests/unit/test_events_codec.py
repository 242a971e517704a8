"""The codec of the event vocabulary: JSON encode/decode and the wire format of the log."""

from __future__ import annotations

import datetime as dt
import json
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import msgspec
import pytest
import zstandard

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
    Place,
    Source,
    Speaker,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    Target,
    VictimLine,
)

PARIS = dt.timezone(dt.timedelta(hours=1))
DICTIONARY = Path(events.__file__).parent / "data" / "entries-2.zdict"

# One event of every type with every optional field set, and one with only what is required.
FULL: dict[str, Event] = {
    "incident.reported": IncidentReported(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000001"),
        source="acled",
        schema_version=3,
        expected_version=0,
        incident_id="syr-1",
        occurred_start=dt.date(2025, 3, 6),
        occurred_end=dt.date(2025, 3, 8),
        date_precision=2,
        country="SYR",
        place=Place(adm1="Region", adm2="District", name="Village", lat=35.18, lon=-35.94),
        geo_precision=2,
        violence_type="one_sided",
        event_type="Violence against civilians",
        sub_event_type="Attack",
        perpetrators=["Group A", "Group B"],
        civilian_targeting=True,
        fatalities=Fatalities(low=10, best=12, high=15, qualifier="approximately"),
        victims=[
            VictimLine(low=5, best=6, high=8, community="community-a", status="civilian"),
            VictimLine(
                low=1,
                best=2,
                high=3,
                community="community-a",
                status="combatant",
                qualifier="at_least",
            ),
        ],
        injured=Estimate(low=0, best=4, high=9),
        sources=[
            Source(
                publisher="Monitor",
                url="https://monitor.example.org/r/1",
                published_at=dt.datetime(2025, 3, 9, 8, 15, 30, 250, tzinfo=PARIS),
            )
        ],
        grading="confirmed",
        notes="Ünïcode notes — with “quotes” and a\nnewline.",
    ),
    "incident.casualties_revised": CasualtiesRevised(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000002"),
        source="acled",
        schema_version=2,
        expected_version=3,
        incident_id="syr-1",
        fatalities=Fatalities(low=12, best=14, high=20, qualifier="range"),
        victims=[VictimLine(low=12, best=14, high=20, community="community-a")],
        injured=Estimate(low=1, best=1, high=1),
        sources=[Source(publisher="Monitor", url="http://monitor.example.org/r/2")],
        reason="Recount",
    ),
    "incident.retracted": IncidentRetracted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000003"),
        source="acled",
        schema_version=1,
        expected_version=5,
        incident_id="syr-1",
        reason="Withdrawn by the source",
    ),
    "incident.merged": IncidentMerged(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000004"),
        source="ucdp-ged",
        schema_version=1,
        expected_version=1,
        incident_id="syr-2",
        into="syr-1",
        reason="Duplicate",
    ),
    "statement.issued": StatementIssued(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000005"),
        source="mofa-watch",
        schema_version=3,
        expected_version=0,
        statement_id="stmt-1",
        issued_at=dt.datetime(2025, 3, 10, 14, 30, tzinfo=PARIS),
        issued_precision="range",
        issued_end=dt.datetime(2025, 3, 11, tzinfo=dt.UTC),
        speakers=[
            Speaker(country="FRA", name="Ministry", role="spokesperson", title="Spokesperson"),
            Speaker(country="DEU", name="Office"),
        ],
        target=Target(country="SYR", actor="Authorities"),
        venue="IGOUNO",
        subject="coastal-violence",
        incident_ids=["syr-1", "syr-2"],
        cameo_code="111",
        goldstein=-2.0,
        stance="condemn",
        sources=[
            Source(publisher="Ministry", published_at=dt.datetime(2025, 3, 10, tzinfo=dt.UTC))
        ],
    ),
    "statement.retracted": StatementRetracted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000006"),
        source="mofa-watch",
        schema_version=1,
        expected_version=2,
        statement_id="stmt-1",
        reason="Misattributed",
    ),
    "incident.redacted": IncidentRedacted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000007"),
        source="ledger-operator",
        schema_version=1,
        expected_version=3,
        incident_id="syr-1",
        reason="Erasure request",
    ),
    "statement.redacted": StatementRedacted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000008"),
        source="ledger-operator",
        schema_version=1,
        expected_version=2,
        statement_id="stmt-1",
        reason="Erasure request",
    ),
    "incident.disputed": IncidentDisputed(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000009"),
        source="ucdp-ged",
        schema_version=1,
        expected_version=4,
        incident_id="syr-1",
        reason="Fewer dead according to our sources",
        sources=[
            Source(
                publisher="Field network",
                url="https://field.example.org/n/1",
                published_at=dt.datetime(2025, 3, 12, tzinfo=PARIS),
            )
        ],
    ),
}

MINIMAL: dict[str, Event] = {
    "incident.reported": IncidentReported(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000011"),
        source="a",
        incident_id="x",
        occurred_start=dt.date(2025, 1, 1),
        country="UKR",
        place=Place(adm1="R"),
        geo_precision=7,
        violence_type="state_based",
        event_type="Battles",
        civilian_targeting=False,
        fatalities=Fatalities(low=0, best=0, high=0),
        sources=[Source(publisher="P")],
    ),
    "incident.casualties_revised": CasualtiesRevised(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000012"),
        source="a",
        incident_id="x",
        fatalities=Fatalities(low=1, best=1, high=1),
        sources=[Source(publisher="P")],
        reason="r",
    ),
    "incident.retracted": IncidentRetracted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000013"),
        source="a",
        incident_id="x",
        reason="r",
    ),
    "incident.merged": IncidentMerged(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000014"),
        source="a",
        incident_id="x",
        into="y",
        reason="r",
    ),
    "statement.issued": StatementIssued(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000015"),
        source="a",
        statement_id="s",
        issued_at=dt.datetime(2025, 1, 1, tzinfo=dt.UTC),
        speakers=[Speaker(country="NOR", name="N")],
        subject="s",
        cameo_code="026",
        stance="neutral",
        sources=[Source(publisher="P")],
    ),
    "statement.retracted": StatementRetracted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000016"),
        source="a",
        statement_id="s",
        reason="r",
    ),
    "incident.redacted": IncidentRedacted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000017"),
        source="a",
        incident_id="x",
        reason="r",
    ),
    "statement.redacted": StatementRedacted(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000018"),
        source="a",
        statement_id="s",
        reason="r",
    ),
    "incident.disputed": IncidentDisputed(
        event_id=uuid.UUID("00000000-0000-4000-8000-000000000019"),
        source="b",
        incident_id="x",
        reason="r",
        sources=[Source(publisher="P")],
    ),
}

SAMPLES = [
    pytest.param(sample, id=f"{kind}-{tag}")
    for kind, table in (("full", FULL), ("minimal", MINIMAL))
    for tag, sample in table.items()
]

JSON_TYPES = (dict, list, str, int, float, bool, type(None))


def _only_json_types(value: Any) -> bool:
    """Whether a decoded JSON value holds nothing but plain JSON types, at any depth."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and _only_json_types(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_only_json_types(v) for v in value)
    return isinstance(value, JSON_TYPES)


class TestSamples:
    """The samples below cover the whole vocabulary, so the round trips cover every type."""

    def test_samples_cover_every_event_type(self) -> None:
        """Every registered event type has a full and a minimal sample of its own class."""
        assert set(FULL) == set(MINIMAL) == set(events.EVENT_TYPES)
        for tag, cls in events.EVENT_TYPES.items():
            assert type(FULL[tag]) is cls
            assert type(MINIMAL[tag]) is cls

    @pytest.mark.parametrize("event", SAMPLES)
    def test_every_sample_is_valid(self, event: Event) -> None:
        """The samples break no domain rule, so they are events a feed may publish."""
        assert events.problems(event) == []


class TestJsonRoundTrip:
    """``encode`` then ``decode`` gives the same event back."""

    @pytest.mark.parametrize("event", SAMPLES)
    def test_decode_of_encode_is_the_event(self, event: Event) -> None:
        """Every field, including dates, zoned datetimes, UUIDs and nested values, survives."""
        assert events.decode(events.encode(event)) == event

    @pytest.mark.parametrize("event", SAMPLES)
    def test_decode_accepts_str_as_well_as_bytes(self, event: Event) -> None:
        """A JSON ``str`` (e.g. a Redis reply decoded to text) decodes like the bytes."""
        assert events.decode(events.encode(event).decode()) == event

    @pytest.mark.parametrize("event", SAMPLES)
    def test_decode_returns_the_class_the_type_tag_names(self, event: Event) -> None:
        """The ``type`` tag alone selects the class the JSON decodes into."""
        decoded = events.decode(events.encode(event))
        assert type(decoded) is type(event)
        assert decoded.type == event.type

    def test_zoned_datetime_keeps_its_offset(self) -> None:
        """A datetime with a +01:00 offset decodes with the same offset, not shifted to UTC."""
        event = FULL["statement.issued"]
        assert isinstance(event, StatementIssued)
        decoded = events.decode(events.encode(event))
        assert isinstance(decoded, StatementIssued)
        assert decoded.issued_at.utcoffset() == dt.timedelta(hours=1)

    def test_defaults_are_left_out_of_the_json(self) -> None:
        """Optional fields at their default are omitted, so stored entries stay small."""
        document = json.loads(events.encode(MINIMAL["incident.retracted"]))
        assert set(document) == {"type", "event_id", "source", "incident_id", "reason"}


class TestWireFields:
    """``to_fields`` / ``from_fields``: the stream entry of one event."""

    @pytest.mark.parametrize("event", SAMPLES)
    def test_from_fields_of_to_fields_is_the_event(self, event: Event) -> None:
        """The str-keyed fields ``to_fields`` makes decode back to the same event."""
        assert events.from_fields(events.to_fields(event)) == event

    @pytest.mark.parametrize("event", SAMPLES)
    def test_from_fields_reads_bytes_keys_and_values(self, event: Event) -> None:
        """An entry as redis-py returns it (bytes keys, bytes values) decodes the same."""
        fields = {
            k.encode(): v if isinstance(v, bytes) else v.encode()
            for k, v in events.to_fields(event).items()
        }
        assert events.from_fields(fields) == event

    @pytest.mark.parametrize("codec", events.ENTRY_CODECS)
    @pytest.mark.parametrize("event", SAMPLES)
    def test_every_codec_decodes_back_to_the_event(self, event: Event, codec: int) -> None:
        """Entries of each codec, as redis-py returns them, decode to the same event."""
        fields = {
            k.encode(): v if isinstance(v, bytes) else v.encode()
            for k, v in events.to_fields(event, codec).items()
        }
        assert events.from_fields(fields) == event

    @pytest.mark.parametrize("event", SAMPLES)
    def test_new_entries_carry_their_codec_type_version_feed_and_compressed_data(
        self, event: Event
    ) -> None:
        """An entry written now is codec 2: ``c``, ``type``, ``v``, ``source`` and ``d``."""
        fields = events.to_fields(event)
        assert set(fields) == {"c", "type", "v", "source", "d"}
        assert fields["c"] == str(events.ENTRY_ZSTD)
        assert fields["type"] == event.type
        assert fields["v"] == str(type(event).SCHEMA_VERSION)
        assert fields["source"] == event.source

    @pytest.mark.parametrize("codec", [events.ENTRY_MSGPACK, events.ENTRY_ZSTD])
    @pytest.mark.parametrize("event", SAMPLES)
    def test_no_field_is_repeated_between_the_entry_and_its_data(
        self, event: Event, codec: int
    ) -> None:
        """``d`` holds the event less what the entry's own fields say (type, feed and the
        version when ``v`` says it), and decodes with plain zstandard and MessagePack (the
        README's few lines)."""
        fields = events.to_fields(event, codec)
        data = fields["d"]
        assert isinstance(data, bytes)
        if codec == events.ENTRY_ZSTD:
            dictionary = zstandard.ZstdCompressionDict(DICTIONARY.read_bytes())
            data = zstandard.ZstdDecompressor(dict_data=dictionary).decompress(data)
        document = msgspec.msgpack.decode(data)
        assert not {"type", "source"} & set(document)
        said = event.schema_version == type(event).SCHEMA_VERSION  # by the entry's ``v``
        assert ("schema_version" in document) is not said
        assert document["event_id"] == event.event_id.bytes
        expected = {**msgspec.to_builtins(event), "event_id": event.event_id.bytes}
        if said:
            del expected["schema_version"]
        elif event.schema_version == 0:
            expected["schema_version"] = 0  # kept, or it would be read as ``v``
        assert {**document, "type": event.type, "source": event.source} == expected

    def test_a_schema_version_left_at_zero_survives_the_entry(self) -> None:
        """An event whose ``schema_version`` is 0 (not normalised) is not read back as ``v``."""
        event = MINIMAL["incident.retracted"]
        assert event.schema_version == 0
        assert events.from_fields(events.to_fields(event)).schema_version == 0
        data = events.to_fields(event, events.ENTRY_MSGPACK)["d"]
        assert isinstance(data, bytes)
        assert list(msgspec.msgpack.decode(data))[:2] == ["event_id", "schema_version"]

    def test_compressed_data_is_much_smaller_than_the_json(self) -> None:
        """The shipped dictionary makes a full report's ``d`` under half its JSON."""
        event = FULL["incident.reported"]
        assert len(events.to_fields(event)["d"]) * 2 < len(events.encode(event))

    @pytest.mark.parametrize("event", SAMPLES)
    def test_codec_0_fields_are_exactly_type_event_id_v_data(self, event: Event) -> None:
        """A codec 0 entry (as written before codecs) has four fields, readable without
        parsing data."""
        fields = events.to_fields(event, events.ENTRY_JSON)
        assert set(fields) == {"type", "event_id", "v", "data"}
        assert fields["type"] == event.type
        assert fields["event_id"] == str(event.event_id)
        assert fields["v"] == str(type(event).SCHEMA_VERSION)

    @pytest.mark.parametrize("event", SAMPLES)
    def test_data_is_plain_json_with_type_and_event_id(self, event: Event) -> None:
        """Codec 0's ``data`` parses with the standard json module into plain JSON types."""
        data = events.to_fields(event, events.ENTRY_JSON)["data"]
        document = json.loads(data)
        assert _only_json_types(document)
        assert document["type"] == event.type
        assert document["event_id"] == str(event.event_id)
        assert document == msgspec.to_builtins(event)

    @pytest.mark.parametrize("codec", events.ENTRY_CODECS)
    def test_entry_data_is_the_json_a_codec_0_entry_holds(self, codec: int) -> None:
        """``entry_data`` gives the same JSON whatever the entry's codec (exports use it)."""
        event = FULL["incident.reported"]
        assert events.entry_data(events.to_fields(event, codec)) == events.encode(event)

    def test_data_spells_dates_and_datetimes_in_iso_8601(self) -> None:
        """Dates and datetimes appear as ISO 8601 strings any language parses."""
        data = events.to_fields(FULL["incident.reported"], events.ENTRY_JSON)["data"]
        document = json.loads(data)
        assert document["occurred_start"] == "2025-03-06"
        published = document["sources"][0]["published_at"]
        assert dt.datetime.fromisoformat(published) == dt.datetime(
            2025, 3, 9, 8, 15, 30, 250, tzinfo=PARIS
        )

    @pytest.mark.parametrize("codec", events.ENTRY_CODECS)
    def test_missing_v_means_the_current_version(self, codec: int) -> None:
        """An entry without ``v`` is read as the type's current schema version."""
        event = FULL["incident.reported"]
        fields = events.to_fields(event, codec)
        del fields["v"]
        assert events.from_fields(fields) == event


class TestDictionaryCodecAcrossThreads:
    def test_threads_compressing_and_decompressing_at_once_get_their_own_bytes_back(
        self,
    ) -> None:
        """One :class:`events.DictionaryCodec` shared by threads that compress and decompress
        at the same time (as-of folds decode in worker threads while the event loop decodes):
        every frame decompresses to the data it was made of."""
        codec = events.DictionaryCodec("events", DICTIONARY.name, events.codec.DICTIONARY_ID)
        datas = [msgspec.msgpack.encode(msgspec.to_builtins(e)) for e in SAMPLES] * 40
        start = threading.Barrier(4)

        def work(shift: int) -> bool:
            mine = datas[shift:] + datas[:shift]
            start.wait()
            return all(codec.decompress(codec.compress(data)) == data for data in mine)

        with ThreadPoolExecutor(max_workers=4) as pool:
            assert all(pool.map(work, range(4)))


class TestDecodeErrors:
    """Anything that is not an event this code understands is a CodecError."""

    @pytest.mark.parametrize(
        "data",
        [
            pytest.param(b"", id="empty"),
            pytest.param(b"\xff\xfe\x00", id="not-utf8"),
            pytest.param(b'{"type": "incident.retracted"', id="truncated"),
            pytest.param(b"[]", id="array"),
            pytest.param(b'{"type": "incident.unknown"}', id="unknown-type"),
            pytest.param(b'{"event_id": "00000000-0000-4000-8000-000000000001"}', id="no-type"),
            pytest.param(b'{"type": "incident.retracted", "incident_id": "x"}', id="incomplete"),
        ],
    )
    def test_decode_of_non_event_raises_codec_error(self, data: bytes) -> None:
        """Malformed or incomplete JSON is reported as CodecError, never a msgspec error."""
        with pytest.raises(CodecError):
            events.decode(data)

    def test_codec_error_is_an_events_error(self) -> None:
        """Callers can catch every failure of the package through EventsError."""
        with pytest.raises(events.EventsError):
            events.decode(b"nonsense")

    def test_entry_of_unknown_type_raises_codec_error(self) -> None:
        """An entry whose ``type`` field names no event type cannot be decoded."""
        fields = {**events.to_fields(MINIMAL["incident.retracted"]), "type": "incident.lost"}
        with pytest.raises(CodecError, match="unknown event type"):
            events.from_fields(fields)

    @pytest.mark.parametrize(
        ("codec", "missing"),
        [(0, "type"), (0, "data"), (2, "type"), (2, "d"), (2, "source"), (1, "d")],
    )
    def test_entry_without_type_or_data_raises_codec_error(self, codec: int, missing: str) -> None:
        """An entry lacking its ``type`` or its data (``data``; ``d`` and ``source``) is not
        an event."""
        fields = events.to_fields(MINIMAL["incident.retracted"], codec)
        del fields[missing]
        with pytest.raises(CodecError, match=r"no (data|d) or (type|source)"):
            events.from_fields(fields)

    @pytest.mark.parametrize("c", ["9", "x", "-1"])
    def test_entry_of_an_unknown_codec_raises_codec_error(self, c: str) -> None:
        """An entry whose ``c`` names no codec this code reads is refused, not guessed."""
        fields = {**events.to_fields(MINIMAL["incident.retracted"]), "c": c}
        with pytest.raises(CodecError, match="codec"):
            events.from_fields(fields)

    @pytest.mark.parametrize(
        "d",
        [b"", b"\x28\xb5\x2f\xfd", b"\xff" * 20, b"\x90"],
        ids=["empty", "truncated-frame", "garbage", "not-a-map"],
    )
    @pytest.mark.parametrize("codec", [events.ENTRY_MSGPACK, events.ENTRY_ZSTD])
    def test_entry_with_corrupt_d_raises_codec_error(self, codec: int, d: bytes) -> None:
        """Bytes in ``d`` that do not decompress or decode are a CodecError, never a crash."""
        fields = {**events.to_fields(MINIMAL["incident.retracted"], codec), "d": d}
        with pytest.raises(CodecError):
            events.from_fields(fields)

    @pytest.mark.parametrize("v", ["x", "1.0", "two"])
    def test_entry_with_unparsable_v_raises_codec_error(self, v: str) -> None:
        """A ``v`` that is no integer is refused rather than guessed."""
        fields = {**events.to_fields(MINIMAL["incident.reported"]), "v": v}
        with pytest.raises(CodecError, match="bad schema version"):
            events.from_fields(fields)

    def test_entry_newer_than_the_code_raises_codec_error(self) -> None:
        """An entry written by a newer schema version is not silently read as the current one."""
        newer = events.current_version("incident.reported") + 1
        fields = {**events.to_fields(MINIMAL["incident.reported"]), "v": str(newer)}
        with pytest.raises(CodecError, match="newer"):
            events.from_fields(fields)

    @pytest.mark.parametrize("v", ["0", "-1"])
    def test_entry_of_a_version_without_upcaster_raises_codec_error(self, v: str) -> None:
        """Version 0 or below was never written; no upcaster exists for it."""
        fields = {**events.to_fields(MINIMAL["incident.reported"]), "v": v}
        with pytest.raises(CodecError, match="no upcaster"):
            events.from_fields(fields)

    def test_entry_whose_type_disagrees_with_its_data_raises_codec_error(self) -> None:
        """A corrupt entry whose ``type`` field and data's type differ is refused."""
        entry = events.to_fields(MINIMAL["incident.retracted"], events.ENTRY_JSON)
        fields = {**entry, "type": "incident.merged"}
        with pytest.raises(CodecError, match=r"holds a 'incident\.retracted' event"):
            events.from_fields(fields)

    def test_data_that_does_not_fit_the_entrys_type_raises_codec_error(self) -> None:
        """Codec 2 keeps the type in the entry alone: a retraction's data under the type
        ``incident.merged`` is refused, not read as a merge."""
        fields = {**events.to_fields(MINIMAL["incident.retracted"]), "type": "incident.merged"}
        with pytest.raises(CodecError, match="missing required field `into`"):
            events.from_fields(fields)

    def test_entry_with_invalid_data_raises_codec_error(self) -> None:
        """Stored data that no longer satisfies the schema is a CodecError, not a crash."""
        entry = events.to_fields(MINIMAL["incident.retracted"], events.ENTRY_JSON)
        fields = {**entry, "data": b'{"type": 1}'}
        with pytest.raises(CodecError):
            events.from_fields(fields)


class TestPositions:
    """Log positions: their sort key and the time they carry."""

    def test_position_key_orders_by_millis_then_sequence(self) -> None:
        """Positions sort numerically, not as strings (``"10-0"`` after ``"9-5"``)."""
        positions = ["10-0", "9-5", "9-10", "0-0", "9-0"]
        assert sorted(positions, key=events.position_key) == ["0-0", "9-0", "9-5", "9-10", "10-0"]

    def test_position_key_of_bare_millis_has_sequence_zero(self) -> None:
        """A position given without its sequence sorts as sequence 0."""
        assert events.position_key("1700000000000") == (1_700_000_000_000, 0)

    def test_recorded_at_of_is_the_utc_time_of_the_millis(self) -> None:
        """The millisecond part of a position is the UTC time it was recorded."""
        recorded = events.recorded_at_of("1741255200123-7")
        assert recorded == dt.datetime(2025, 3, 6, 10, 0, 0, 123000, tzinfo=dt.UTC)


class TestEventProperties:
    """The derived properties of events that the store and projections key on."""

    @pytest.mark.parametrize(
        ("tag", "entity"),
        [
            ("incident.reported", "incident:syr-1"),
            ("incident.casualties_revised", "incident:syr-1"),
            ("incident.retracted", "incident:syr-1"),
            ("incident.merged", "incident:syr-2"),
            ("statement.issued", "statement:stmt-1"),
            ("statement.retracted", "statement:stmt-1"),
            ("incident.redacted", "incident:syr-1"),
            ("statement.redacted", "statement:stmt-1"),
        ],
    )
    def test_entity_is_kind_and_id(self, tag: str, entity: str) -> None:
        """Each event names the entity it belongs to as ``<kind>:<id>``."""
        assert FULL[tag].entity == entity

    def test_merged_names_the_canonical_entity(self) -> None:
        """A merge points at the incident that counts from now on."""
        merged = FULL["incident.merged"]
        assert isinstance(merged, IncidentMerged)
        assert merged.into_entity == "incident:syr-1"

    def test_current_version_is_the_class_schema_version(self) -> None:
        """``current_version`` reads the version new events are written with."""
        for tag, cls in events.EVENT_TYPES.items():
            assert events.current_version(tag) == cls.SCHEMA_VERSION >= 1
