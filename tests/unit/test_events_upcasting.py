"""Schema versions: golden payloads of every version, and the upcasters between versions.

``tests/golden/<type>.v<N>.json`` holds one stored payload per event type and schema version.
They are written once and never edited: whatever the code becomes, an entry written by an
older version must still decode into the current-version event given here.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

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
    InvalidEventError,
    PartyLine,
    Place,
    Side,
    Sides,
    Source,
    Speaker,
    StatementIssued,
    StatementRedacted,
    StatementRetracted,
    Target,
    VictimLine,
)
from events.codec import UPCASTERS
from events.tables import title_key

GOLDEN = Path(__file__).resolve().parent.parent / "golden"


def _golden_name(tag: str, version: int) -> str:
    return f"{tag}.v{version}.json"


def _tag_and_version(path: Path) -> tuple[str, int]:
    tag, _, version = path.name.removesuffix(".json").rpartition(".v")
    return tag, int(version)


# What each golden payload decodes into, in the current version of its type.
EXPECTED: dict[str, Event] = {
    "incident.reported.v4.json": IncidentReported(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0d"),
        source="ucdp",
        schema_version=4,
        incident_id="ucdp:golden-0006",
        occurred_start=dt.date(2025, 3, 7),
        date_precision=2,
        country="SYR",
        place=Place(adm1="Latakia governorate", name="Village C", lat=35.5, lon=35.9),
        geo_precision=2,
        violence_type="one_sided",
        civilian_targeting=True,
        fatalities=Fatalities(low=40, best=52, high=70),
        parties=[
            PartyLine(low=45, best=45, high=45, party="civilians"),
            PartyLine(low=2, best=2, high=2, party="side_a"),
            PartyLine(low=5, best=5, high=5, party="unknown"),
        ],
        sources=[Source(publisher="UCDP GED Candidate", url="https://ucdp.example.org/ged/0006")],
        sides=Sides(
            side_a=Side(name="Government of Syria"),
            side_b=Side(name="Civilians"),
            dyad="Government of Syria - civilians",
        ),
        source_time=dt.datetime(2025, 4, 1, tzinfo=dt.UTC),
        event_clarity=1,
    ),
    "incident.casualties_revised.v3.json": CasualtiesRevised(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0e"),
        source="ucdp",
        schema_version=4,
        incident_id="ucdp:golden-0006",
        fatalities=Fatalities(low=50, best=61, high=80),
        parties=[
            PartyLine(low=54, best=54, high=54, party="civilians"),
            PartyLine(low=2, best=2, high=2, party="side_a"),
            PartyLine(low=5, best=5, high=5, party="unknown"),
        ],
        sources=[Source(publisher="UCDP GED Candidate", url="https://ucdp.example.org/ged/0006")],
        reason="UCDP Candidate release of 2025-05 revised the event",
        source_time=dt.datetime(2025, 5, 1, tzinfo=dt.UTC),
        place=Place(adm1="Latakia governorate", name="Village D", lat=35.52, lon=35.91),
        sides=Sides(
            side_a=Side(
                name="Government of Syria", associates=["Allied militia"], kind="State forces"
            ),
            side_b=Side(name="Civilians (Syria)"),
            interaction="State forces-Civilians",
        ),
        notes="At least 61 dead after the second count.",
    ),
    "incident.casualties_revised.v4.json": CasualtiesRevised(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e10"),
        source="acled",
        schema_version=4,
        incident_id="acled:SYR130099",
        fatalities=Fatalities(low=0, best=0, high=0),
        sources=[Source(publisher="ACLED")],
        reason="ACLED updated the row",
        source_time=dt.datetime(2025, 3, 20, tzinfo=dt.UTC),
        event_type="Protests",
        sub_event_type="Peaceful protest",
        cleared=("violence_type",),
    ),
    "incident.reported.v2.json": IncidentReported(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e01"),
        source="acled",
        schema_version=4,
        incident_id="syr-golden-0001",
        occurred_start=dt.date(2025, 3, 6),
        occurred_end=dt.date(2025, 3, 8),
        date_precision=2,
        country="SYR",
        place=Place(
            adm1="Example Governorate",
            adm2="Example District",
            name="Village A",
            lat=35.1822,
            lon=35.9403,
        ),
        geo_precision=2,
        violence_type="one_sided",
        event_type="Violence against civilians",
        sub_event_type="Attack",
        perpetrators=["Armed group A"],
        civilian_targeting=True,
        fatalities=Fatalities(low=90, best=120, high=160, qualifier="approximately"),
        victims=[
            VictimLine(low=80, best=105, high=140, community="community-a", status="civilian"),
            VictimLine(low=2, best=5, high=10, community="community-b"),
        ],
        injured=Estimate(low=30, best=45, high=60),
        sources=[
            Source(
                publisher="Example Monitor",
                url="https://monitor.example.org/reports/0001",
                published_at=dt.datetime(
                    2025, 3, 9, 8, 15, tzinfo=dt.timezone(dt.timedelta(hours=2))
                ),
            ),
            Source(publisher="Local reporter network"),
        ],
        grading="fair",
        notes="Counts from two independent lists; figures cover three days.",
    ),
    "incident.reported.v1.json": IncidentReported(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e02"),
        source="ucdp-ged",
        schema_version=4,
        incident_id="syr-golden-0002",
        occurred_start=dt.date(2024, 11, 20),
        country="SYR",
        place=Place(adm1="Example Governorate"),
        geo_precision=4,
        violence_type="state_based",
        event_type="Explosions/Remote violence",
        civilian_targeting=False,
        fatalities=Fatalities(low=42, best=42, high=42, qualifier="at_least"),
        sources=[Source(publisher="Example Wire", url="http://wire.example.com/item/42")],
        grading="weak",
    ),
    "incident.casualties_revised.v1.json": CasualtiesRevised(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e03"),
        source="acled",
        schema_version=4,
        incident_id="syr-golden-0001",
        fatalities=Fatalities(low=100, best=131, high=170, qualifier="range"),
        victims=[
            VictimLine(low=95, best=118, high=150, community="community-a", status="civilian")
        ],
        injured=Estimate(low=40, best=52, high=70),
        sources=[
            Source(
                publisher="Example Monitor",
                published_at=dt.datetime(2025, 3, 15, 12, tzinfo=dt.UTC),
            )
        ],
        reason="Second list of names reconciled with the first.",
    ),
    "incident.retracted.v1.json": IncidentRetracted(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e04"),
        source="acled",
        schema_version=1,
        incident_id="syr-golden-0003",
        reason="The source withdrew the report.",
    ),
    "incident.merged.v1.json": IncidentMerged(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e05"),
        source="ucdp-ged",
        schema_version=1,
        incident_id="syr-golden-0004",
        into="syr-golden-0001",
        reason="Same attack reported by two feeds.",
    ),
    "statement.issued.v2.json": StatementIssued(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e06"),
        source="mofa-watch",
        schema_version=3,
        statement_id="stmt-golden-0001",
        issued_at=dt.datetime(2025, 3, 10, 14, 30, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        speakers=[
            Speaker(
                country="FRA",
                name="Ministry for Europe and Foreign Affairs",
                role="spokesperson",
                title="spokesperson",
            ),
            Speaker(country="DEU", name="Federal Foreign Office", role="other_official"),
        ],
        target=Target(country="SYR", actor="Transitional authorities"),
        venue="IGOUNO",
        subject="coastal-violence-2025",
        incident_ids=["syr-golden-0001", "syr-golden-0002"],
        cameo_code="111",
        goldstein=-2.0,
        stance="condemn",
        sources=[
            Source(
                publisher="Example Foreign Ministry",
                url="https://mfa.example.org/statements/0001",
                published_at=dt.datetime(
                    2025, 3, 10, 14, 45, tzinfo=dt.timezone(dt.timedelta(hours=1))
                ),
            )
        ],
    ),
    "statement.issued.v1.json": StatementIssued(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e07"),
        source="mofa-watch",
        schema_version=3,
        statement_id="stmt-golden-0002",
        issued_at=dt.datetime(2024, 12, 2, 9, tzinfo=dt.UTC),
        speakers=[Speaker(country="NOR", name="Ministry of Foreign Affairs")],
        subject="ceasefire-talks",
        cameo_code="026",
        goldstein=4.0,
        stance="call_for_meeting",
        sources=[Source(publisher="Example Press Agency")],
    ),
    "statement.retracted.v1.json": StatementRetracted(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e08"),
        source="mofa-watch",
        schema_version=1,
        statement_id="stmt-golden-0003",
        reason="Misattributed: the quoted official never made the statement.",
    ),
    "incident.redacted.v1.json": IncidentRedacted(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e09"),
        source="ledger-operator",
        schema_version=1,
        incident_id="syr-golden-0001",
        reason="Erasure request: the notes named a private person.",
    ),
    "incident.reported.v3.json": IncidentReported(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0b"),
        source="acled",
        schema_version=4,
        incident_id="syr-golden-0005",
        occurred_start=dt.date(2025, 3, 1),
        date_precision=4,
        country="SYR",
        place=Place(adm1="Example Governorate", name="Village B"),
        geo_precision=3,
        violence_type="non_state",
        event_type="Battles",
        sub_event_type="Armed clash",
        perpetrators=["Armed group A", "Armed group B"],
        civilian_targeting=False,
        fatalities=Fatalities(low=30, best=30, high=30, qualifier="at_least"),
        victims=[
            VictimLine(
                low=12,
                best=12,
                high=12,
                community="community-a",
                status="combatant",
                qualifier="at_least",
            ),
            VictimLine(
                low=3,
                best=4,
                high=6,
                community="community-b",
                status="civilian",
                qualifier="approximately",
            ),
        ],
        sources=[
            Source(
                publisher="Example Monitor",
                url="https://monitor.example.org/reports/0005",
                published_at=dt.datetime(2025, 4, 2, 10, tzinfo=dt.UTC),
            )
        ],
        grading="weak",
        notes="Clashes some time in March; at least thirty dead, at least twelve fighters.",
    ),
    "incident.casualties_revised.v2.json": CasualtiesRevised(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0c"),
        source="acled",
        schema_version=4,
        incident_id="syr-golden-0005",
        fatalities=Fatalities(low=41, best=41, high=41, qualifier="at_least"),
        victims=[
            VictimLine(
                low=20,
                best=20,
                high=20,
                community="community-a",
                status="combatant",
                qualifier="at_least",
            )
        ],
        sources=[
            Source(
                publisher="Example Monitor",
                url="https://monitor.example.org/reports/0005-update",
                published_at=dt.datetime(2025, 4, 9, 10, tzinfo=dt.UTC),
            )
        ],
        reason="Further names of fighters confirmed; the civilian line is no longer given.",
    ),
    "statement.issued.v3.json": StatementIssued(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0d"),
        source="mofa-watch",
        schema_version=3,
        statement_id="stmt-golden-0004",
        issued_at=dt.datetime(2025, 3, 3, tzinfo=dt.UTC),
        issued_precision="range",
        issued_end=dt.datetime(2025, 3, 9, tzinfo=dt.UTC),
        speakers=[
            Speaker(
                country="GBR",
                name="Example Minister",
                role="foreign_minister",
                title="Foreign Secretary",
            ),
            Speaker(
                country="IRL",
                name="Example Envoy",
                role="other_official",
                title="Special Envoy for the Middle East",
            ),
        ],
        target=Target(country="SYR"),
        subject="coastal-violence-2025",
        incident_ids=["syr-golden-0001"],
        cameo_code="012",
        goldstein=-0.4,
        stance="warn",
        sources=[
            Source(
                publisher="Example Press Agency",
                url="https://press.example.org/warnings/0004",
                published_at=dt.datetime(2025, 3, 9, 18, tzinfo=dt.UTC),
            )
        ],
    ),
    "incident.disputed.v1.json": IncidentDisputed(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0e"),
        source="ucdp-ged",
        schema_version=1,
        incident_id="syr-golden-0001",
        reason=(
            "Our field sources place the attack in the neighbouring district and count fewer dead."
        ),
        sources=[
            Source(
                publisher="Example Field Network",
                url="https://field.example.net/notes/0001",
                published_at=dt.datetime(2025, 3, 12, 7, 30, tzinfo=dt.UTC),
            ),
            Source(publisher="Local hospital records"),
        ],
    ),
    "statement.redacted.v1.json": StatementRedacted(
        event_id=uuid.UUID("5b1f3f0e-8f3a-4c55-9a57-0d6a1c2b3e0a"),
        source="ledger-operator",
        schema_version=1,
        statement_id="stmt-golden-0001",
        reason="Erasure request from the named speaker.",
    ),
}

GOLDEN_FILES = [pytest.param(p, id=p.name) for p in sorted(GOLDEN.glob("*.json"))]
ALL_VERSIONS = [
    (tag, version)
    for tag, cls in sorted(events.EVENT_TYPES.items())
    for version in range(1, cls.SCHEMA_VERSION + 1)
]
OLDER_VERSIONS = [(t, v) for t, v in ALL_VERSIONS if v < events.current_version(t)]
CURRENT_FILES = [
    pytest.param(GOLDEN / _golden_name(tag, cls.SCHEMA_VERSION), id=tag)
    for tag, cls in sorted(events.EVENT_TYPES.items())
]


def _entry(path: Path, *, as_bytes: bool = False) -> dict[Any, Any]:
    """The stream entry an older version of the code would have written for a golden file."""
    data = path.read_bytes()
    tag, version = _tag_and_version(path)
    fields = {
        "type": tag,
        "event_id": json.loads(data)["event_id"],
        "v": str(version),
        "data": data,
    }
    if as_bytes:
        return {k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in fields.items()}
    return fields


def _v1_reported() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "incident.reported.v1.json").read_bytes()))


def _v1_issued() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "statement.issued.v1.json").read_bytes()))


class TestGoldenCoverage:
    """The golden directory keeps pace with the schema versions."""

    @pytest.mark.parametrize(("tag", "version"), ALL_VERSIONS)
    def test_every_type_and_version_has_a_golden_payload(self, tag: str, version: int) -> None:
        """A schema version bump without a golden payload of the new version fails here."""
        assert (GOLDEN / _golden_name(tag, version)).is_file()

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_every_golden_payload_is_a_known_type_and_version(self, path: Path) -> None:
        """Each file names a registered type and a version no newer than its current one."""
        tag, version = _tag_and_version(path)
        assert tag in events.EVENT_TYPES
        assert 1 <= version <= events.current_version(tag)

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_every_golden_payload_has_an_expected_event(self, path: Path) -> None:
        """Each file has its expected current-version event in this module."""
        assert path.name in EXPECTED

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_golden_payload_states_its_own_version(self, path: Path) -> None:
        """The ``schema_version`` inside the JSON agrees with the file name."""
        tag, version = _tag_and_version(path)
        document = json.loads(path.read_bytes())
        assert document["type"] == tag
        assert document["schema_version"] == version

    def test_expected_events_are_current_version(self) -> None:
        """Every expectation is in the current version of its type, whatever the file's."""
        for event in EXPECTED.values():
            assert event.schema_version == events.current_version(event.type)


class TestGoldenDecoding:
    """Every golden payload decodes, by every path, into its expected event."""

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_from_fields_decodes_golden_payload(self, path: Path) -> None:
        """A stored entry of that version (``v`` from the file name) decodes and upcasts."""
        assert events.from_fields(_entry(path)) == EXPECTED[path.name]

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_from_fields_decodes_golden_payload_as_redis_returns_it(self, path: Path) -> None:
        """The same entry with bytes keys and values decodes the same."""
        assert events.from_fields(_entry(path, as_bytes=True)) == EXPECTED[path.name]

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_parse_submission_accepts_golden_payload(self, path: Path) -> None:
        """A feed may still submit that version; it is stored in the current version."""
        assert events.parse_submission(path.read_bytes()) == EXPECTED[path.name]

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_golden_payload_reencodes_as_current_version(self, path: Path) -> None:
        """Decoding then writing again gives an entry tagged with the current version."""
        event = events.from_fields(_entry(path))
        fields = events.to_fields(event)
        assert fields["v"] == str(events.current_version(event.type))
        assert events.from_fields(fields) == EXPECTED[path.name]


class TestUpcasterRegistry:
    """The chain of upcasters reaches every current version from version 1."""

    @pytest.mark.parametrize(("tag", "version"), OLDER_VERSIONS)
    def test_every_older_version_has_an_upcaster(self, tag: str, version: int) -> None:
        """Each version below the current one has a step to the next."""
        assert (tag, version) in UPCASTERS

    def test_there_are_older_versions_to_upcast(self) -> None:
        """At least incident.reported v1 and statement.issued v1 exist, so the chain is used."""
        assert ("incident.reported", 1) in OLDER_VERSIONS
        assert ("statement.issued", 1) in OLDER_VERSIONS

    def test_no_upcaster_names_an_unknown_type_or_version(self) -> None:
        """Every registered upcaster starts from a version below its type's current one."""
        for tag, version in UPCASTERS:
            assert tag in events.EVENT_TYPES
            assert 1 <= version < events.current_version(tag)


class TestIncidentReportedV1:
    """v1 of incident.reported: a bare integer ``fatalities`` and ``fatalities_qualifier``."""

    def test_bare_count_becomes_equal_low_best_high(self) -> None:
        """The single v1 number becomes low = best = high with the v1 qualifier."""
        raw = events.upcast(_v1_reported(), "incident.reported", 1)
        assert raw["fatalities"] == {"low": 42, "best": 42, "high": 42, "qualifier": "at_least"}
        assert "fatalities_qualifier" not in raw
        assert raw["schema_version"] == events.current_version("incident.reported")

    def test_missing_qualifier_means_exact(self) -> None:
        """A v1 payload without ``fatalities_qualifier`` upcasts to qualifier ``exact``."""
        payload = _v1_reported()
        del payload["fatalities_qualifier"]
        event = events.parse_submission(json.dumps(payload).encode())
        assert isinstance(event, IncidentReported)
        assert event.fatalities == Fatalities(low=42, best=42, high=42, qualifier="exact")

    def test_upcast_leaves_other_fields_unchanged(self) -> None:
        """Only the fields the version changed are touched by the upcaster."""
        before = _v1_reported()
        after = events.upcast(copy.deepcopy(before), "incident.reported", 1)
        changed = {"fatalities", "fatalities_qualifier", "schema_version"}
        assert {k: v for k, v in after.items() if k not in changed} == {
            k: v for k, v in before.items() if k not in changed
        }

    def test_v1_without_fatalities_names_the_field(self) -> None:
        """A v1 submission missing ``fatalities`` is invalid at ``fatalities``."""
        payload = _v1_reported()
        del payload["fatalities"]
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["fatalities"]

    def test_v1_with_non_integer_fatalities_is_invalid(self) -> None:
        """A v1 ``fatalities`` that is not a number is rejected under ``fatalities``."""
        payload = {**_v1_reported(), "fatalities": "many"}
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["fatalities.low"]

    def test_v1_with_negative_fatalities_is_invalid(self) -> None:
        """The upcast value is validated like any v2 count."""
        payload = {**_v1_reported(), "fatalities": -3}
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["fatalities.low"]

    def test_v1_entry_without_fatalities_is_a_codec_error_on_read(self) -> None:
        """A stored v1 entry missing what its upcaster needs cannot be read."""
        payload = _v1_reported()
        del payload["fatalities"]
        fields = {"type": "incident.reported", "v": "1", "data": json.dumps(payload)}
        with pytest.raises(CodecError, match=r"incident\.reported v1"):
            events.from_fields(fields)

    def test_v2_shape_labelled_v1_is_refused(self) -> None:
        """A v2 payload that claims to be v1 does not slip through the upcaster."""
        payload = json.loads((GOLDEN / "incident.reported.v2.json").read_bytes())
        payload["schema_version"] = 1
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["fatalities.low"]


class TestStatementIssuedV1:
    """v1 of statement.issued: a single ``speaker`` instead of ``speakers``."""

    def test_single_speaker_becomes_a_list_of_one(self) -> None:
        """The v1 speaker is the only speaker of the upcast statement."""
        raw = events.upcast(_v1_issued(), "statement.issued", 1)
        assert raw["speakers"] == [{"country": "NOR", "name": "Ministry of Foreign Affairs"}]
        assert "speaker" not in raw
        assert raw["schema_version"] == events.current_version("statement.issued")

    def test_v1_without_speaker_names_the_field(self) -> None:
        """A v1 submission missing ``speaker`` is invalid at ``speaker``."""
        payload = _v1_issued()
        del payload["speaker"]
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["speaker"]

    def test_v1_speaker_of_unknown_country_is_invalid(self) -> None:
        """Rules run on the upcast event: the v1 speaker's country must exist."""
        payload = {**_v1_issued(), "speaker": {"country": "XXX", "name": "Nobody"}}
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["speakers[0].country"]

    def test_v1_without_goldstein_is_filled_on_submission(self) -> None:
        """A v1 submission without ``goldstein`` gets the table's score for its code."""
        payload = _v1_issued()
        del payload["goldstein"]
        event = events.parse_submission(json.dumps(payload).encode())
        assert isinstance(event, StatementIssued)
        assert event.goldstein == 4.0


def _v2_issued() -> dict[str, Any]:
    return dict(json.loads((GOLDEN / "statement.issued.v2.json").read_bytes()))


class TestStatementIssuedV2:
    """v2 of statement.issued: a speaker's office as free text in ``role``, an exact time."""

    @pytest.mark.parametrize(
        ("text", "role"),
        [
            ("Secretary of State", "foreign_minister"),
            ("Foreign Minister", "foreign_minister"),
            ("minister for foreign affairs", "foreign_minister"),
            ("President", "head_of_state"),
            ("King", "head_of_state"),
            ("The President.", "head_of_state"),
            ("Prime Minister", "head_of_government"),
            ("Permanent Representative to the United Nations", "un_representative"),
            ("Foreign Ministry Spokesperson", "spokesperson"),
            ("spokesman", "spokesperson"),
            ("Director of National Intelligence", "other_official"),
            ("Vice President", "other_official"),
            ("Secretary of State for Defence", "other_official"),
            ("Permanent member of the UN Security Council", "other_official"),
        ],
    )
    def test_old_role_text_becomes_the_title_and_a_role_only_when_clear(
        self, text: str, role: str
    ) -> None:
        """The v2 text is kept as ``title``; ``role`` is what it clearly is, else other."""
        payload = _v2_issued()
        payload["speakers"] = [{"country": "USA", "name": "N", "role": text}]
        event = events.parse_submission(json.dumps(payload).encode())
        assert isinstance(event, StatementIssued)
        assert event.speakers == [Speaker(country="USA", name="N", role=role, title=text)]  # type: ignore[arg-type]

    def test_speaker_without_a_role_is_other_official_without_title(self) -> None:
        """No v2 text: no title, the lowest rank."""
        raw = events.upcast(_v2_issued(), "statement.issued", 2)
        assert raw["speakers"][1] == {"country": "DEU", "name": "Federal Foreign Office"}
        event = events.from_fields(_entry(GOLDEN / "statement.issued.v2.json"))
        assert isinstance(event, StatementIssued)
        assert (event.speakers[1].role, event.speakers[1].title) == ("other_official", None)

    def test_old_time_is_exact(self) -> None:
        """A v2 time was given as a moment: precision exact, no end."""
        event = events.from_fields(_entry(GOLDEN / "statement.issued.v2.json"))
        assert isinstance(event, StatementIssued)
        assert (event.issued_precision, event.issued_end) == ("exact", None)

    def test_role_text_that_is_not_text_is_named_at_title(self) -> None:
        """A v2 ``role`` of the wrong JSON type is refused at the field it became."""
        payload = _v2_issued()
        payload["speakers"] = [{"country": "USA", "name": "N", "role": 7}]
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["speakers[0].title"]

    def test_the_mapping_table_names_only_ranked_roles(self) -> None:
        """Every role the title table gives is one of the vocabulary's roles, and every
        title is written as it is compared (so none can never match)."""
        assert set(events.speaker_titles().values()) <= set(events.SPEAKER_ROLES)
        assert all(title_key(title) == title for title in events.speaker_titles())


class TestVictimLineQualifier:
    """incident.reported v2 and incident.casualties_revised v1 lines carry no qualifier."""

    @pytest.mark.parametrize(
        "name", ["incident.reported.v2.json", "incident.casualties_revised.v1.json"]
    )
    def test_an_old_line_is_exact(self, name: str) -> None:
        """A line written before qualifiers existed reads as ``exact``."""
        event = events.from_fields(_entry(GOLDEN / name))
        assert isinstance(event, IncidentReported | CasualtiesRevised)
        assert {line.qualifier for line in event.victims} == {"exact"}

    def test_a_new_line_keeps_its_qualifier_through_the_log(self) -> None:
        """``at_least`` on a line survives the wire format."""
        event = events.from_fields(_entry(GOLDEN / "incident.reported.v3.json"))
        assert isinstance(event, IncidentReported)
        again = events.from_fields(events.to_fields(event))
        assert isinstance(again, IncidentReported)
        assert [line.qualifier for line in again.victims] == ["at_least", "approximately"]


class TestVersionBounds:
    """Versions outside 1..current are refused on both paths."""

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_upcast_of_a_newer_version_raises_codec_error(self, tag: str) -> None:
        """The code cannot turn a future version into the current one."""
        with pytest.raises(CodecError, match="newer"):
            events.upcast({}, tag, events.current_version(tag) + 1)

    @pytest.mark.parametrize("tag", sorted(events.EVENT_TYPES))
    def test_upcast_of_the_current_version_only_stamps_it(self, tag: str) -> None:
        """A current-version dict passes through with its version set."""
        assert events.upcast({"a": 1}, tag, events.current_version(tag)) == {
            "a": 1,
            "schema_version": events.current_version(tag),
        }

    def test_upcast_of_version_zero_raises_codec_error(self) -> None:
        """Version 0 was never written, so no upcaster starts there."""
        with pytest.raises(CodecError, match="no upcaster"):
            events.upcast({}, "incident.reported", 0)

    @pytest.mark.parametrize("path", GOLDEN_FILES)
    def test_submission_newer_than_current_is_refused(self, path: Path) -> None:
        """A payload claiming a version above the current one is invalid at schema_version."""
        payload = json.loads(path.read_bytes())
        payload["schema_version"] = events.current_version(payload["type"]) + 1
        with pytest.raises(InvalidEventError) as info:
            events.parse_submission(json.dumps(payload).encode())
        assert [p.field for p in info.value.problems] == ["schema_version"]

    @pytest.mark.parametrize("path", CURRENT_FILES)
    def test_submission_of_version_zero_means_current(self, path: Path) -> None:
        """``schema_version`` 0 (or absent) on a current-shape payload means the current one."""
        payload = json.loads(path.read_bytes())
        payload["schema_version"] = 0
        assert events.parse_submission(json.dumps(payload).encode()) == EXPECTED[path.name]
        del payload["schema_version"]
        assert events.parse_submission(json.dumps(payload).encode()) == EXPECTED[path.name]


ENTRIES = GOLDEN / "entries"
ENTRY_FILES = [pytest.param(p, id=p.name) for p in sorted(ENTRIES.glob("*.json"))]


def _golden_entry(path: Path) -> dict[bytes, bytes]:
    """A golden entry of codec 1 or 2 as redis-py returns it (``d`` is kept in hex)."""
    document = json.loads(path.read_bytes())
    return {
        name.encode(): bytes.fromhex(value) if name == "d" else value.encode()
        for name, value in document.items()
    }


class TestGoldenEntries:
    """Entries written by codecs 1 and 2 (``tests/golden/entries``) keep decoding: the
    MessagePack layout and the shipped zstd dictionary are as permanent as the schemas."""

    @pytest.mark.parametrize("path", ENTRY_FILES)
    def test_golden_entry_decodes_to_its_golden_payload(self, path: Path) -> None:
        """Each entry holds the event of the JSON golden payload of its type and version."""
        name, _, codec = path.name.removesuffix(".json").rpartition(".c")
        fields = _golden_entry(path)
        assert fields[b"c"] == codec.encode()
        assert events.from_fields(fields) == EXPECTED[f"{name}.json"]

    @pytest.mark.parametrize("path", ENTRY_FILES)
    def test_golden_entry_is_what_this_code_writes(self, path: Path) -> None:
        """The code writes those very bytes today (a change of layout or dictionary shows
        here, and then needs a new codec number)."""
        fields = _golden_entry(path)
        codec = int(fields[b"c"])
        written = events.to_fields(events.from_fields(fields), codec)
        assert {
            k.encode(): v if isinstance(v, bytes) else v.encode() for k, v in written.items()
        } == fields

    @pytest.mark.parametrize("codec", [events.ENTRY_MSGPACK, events.ENTRY_ZSTD])
    @pytest.mark.parametrize(("tag", "cls"), sorted(events.EVENT_TYPES.items()))
    def test_every_current_version_has_a_golden_entry_of_each_codec(
        self, tag: str, cls: type[events.Event], codec: int
    ) -> None:
        """A new schema version or codec without its golden entry fails here."""
        assert (ENTRIES / f"{tag}.v{cls.SCHEMA_VERSION}.c{codec}.json").is_file()

    @pytest.mark.parametrize("path", ENTRY_FILES)
    def test_golden_entry_exports_as_its_json(self, path: Path) -> None:
        """``entry_data`` gives the JSON an entry of codec 0 would hold for the same event."""
        fields = _golden_entry(path)
        assert events.decode(events.entry_data(fields)) == events.from_fields(fields)
