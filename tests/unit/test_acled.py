"""The ACLED row mapping: countries, violence types, precisions, qualifiers, event ids."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest

from events import IncidentReported, parse_submission
from services.ops.acled import (
    AcledRowError,
    acled_country,
    acled_event_id,
    acled_report,
    violence_type,
)
from services.ops.importer import csv_table, read_text

SAMPLE = Path(__file__).parent.parent / "data" / "acled_sample.csv"


def sample() -> list[dict[str, str]]:
    """The rows of the shipped sample file."""
    return [row for _, row in csv_table(read_text(SAMPLE), kind="an ACLED export")]


def reported(row: dict[str, str]) -> IncidentReported:
    """The validated ``incident.reported`` a row becomes."""
    event = parse_submission(msgspec.json.encode(acled_report(row, "acled")))
    assert isinstance(event, IncidentReported)
    return event


class TestCountries:
    """Country names map to ISO 3166-1 alpha-3, ACLED's spellings included."""

    @pytest.mark.parametrize(
        ("name", "code"),
        [
            ("Syria", "SYR"),
            ("Syrian Arab Republic", "SYR"),
            ("Iran", "IRN"),
            ("Russia", "RUS"),
            ("Democratic Republic of Congo", "COD"),
            ("Republic of Congo", "COG"),
            ("Palestine", "PSE"),
            ("Turkey", "TUR"),
            ("Ivory Coast", "CIV"),
            ("Cote d'Ivoire", "CIV"),
            ("  lebanon ", "LBN"),
            ("Kosovo", "XKX"),
            ("United States", "USA"),
        ],
    )
    def test_known_names_map_to_their_code(self, name: str, code: str) -> None:
        """Each spelling finds its country."""
        assert acled_country(name) == code

    def test_unknown_name_is_a_row_error(self) -> None:
        """A name no table knows is refused, naming it."""
        with pytest.raises(AcledRowError, match="Atlantis"):
            acled_country("Atlantis")


class TestViolenceType:
    """UCDP's violence type from ACLED's event type, inter codes and civilian targeting."""

    @pytest.mark.parametrize(
        ("event_type", "inter1", "inter2", "targeting", "expected"),
        [
            ("Violence against civilians", "3", "7", False, "one_sided"),
            ("Explosions/Remote violence", "1", "7", True, "one_sided"),
            ("Battles", "1", "3", False, "state_based"),
            ("Battles", "3", "8", False, "state_based"),
            ("Battles", "State forces", "Rebel group", False, "state_based"),
            ("Battles", "2", "3", False, "non_state"),
            ("Protests", "6", "0", False, None),
            ("Riots", "5", "7", True, None),
            ("Strategic developments", "1", "7", True, None),
        ],
    )
    def test_mapping(
        self, event_type: str, inter1: str, inter2: str, targeting: bool, expected: str | None
    ) -> None:
        """The documented mapping holds."""
        assert violence_type(event_type, inter1, inter2, targeting) == expected


class TestRows:
    """Rows of the sample file become valid events with the documented fields."""

    def test_every_sample_row_is_a_valid_report(self) -> None:
        """The twelve illustrative rows all validate."""
        events = [reported(row) for row in sample()]
        assert len(events) == 12
        assert all(e.source == "acled" for e in events)
        assert all("Illustrative" in (e.notes or "") for e in events)

    def test_fields_of_one_row(self) -> None:
        """Jableh: one-sided, civilian targeting, exact count, two sources, place and precision."""
        event = reported(sample()[1])
        assert event.incident_id == "acled:SYR900002"
        assert (event.country, event.violence_type, event.civilian_targeting) == (
            "SYR",
            "one_sided",
            True,
        )
        assert (event.fatalities.best, event.fatalities.qualifier) == (21, "exact")
        assert [s.publisher for s in event.sources] == [
            "Syrian Observatory for Human Rights",
            "Syrian Network for Human Rights",
        ]
        assert (event.place.adm1, event.place.adm2, event.place.name) == (
            "Latakia",
            "Jableh",
            "Jableh",
        )
        assert (event.date_precision, event.geo_precision) == (1, 1)
        assert event.occurred_start.isoformat() == "2025-03-07"

    @pytest.mark.parametrize(
        ("notes", "qualifier"),
        [
            ("at least 13 fighters were killed", "at_least"),
            ("more than 3 soldiers killed", "at_least"),
            ("about 30 civilians were reported killed", "approximately"),
            ("an estimated 6 dead", "approximately"),
            ("shelling around Al-Haffa; 4 killed", "exact"),
        ],
    )
    def test_qualifier_from_notes(self, notes: str, qualifier: str) -> None:
        """Only a hedge before a number changes the qualifier."""
        row = {**sample()[0], "notes": notes}
        assert reported(row).fatalities.qualifier == qualifier

    @pytest.mark.parametrize(("acled", "ucdp"), [("1", 1), ("2", 3), ("3", 4)])
    def test_date_precision(self, acled: str, ucdp: int) -> None:
        """ACLED day/week/month become UCDP 1/3/4."""
        assert reported({**sample()[0], "time_precision": acled}).date_precision == ucdp

    @pytest.mark.parametrize(("acled", "ucdp"), [("1", 1), ("2", 2), ("3", 4)])
    def test_geo_precision(self, acled: str, ucdp: int) -> None:
        """ACLED 1/2/3 become UCDP 1/2/4."""
        assert reported({**sample()[0], "geo_precision": acled}).geo_precision == ucdp

    def test_long_date_format_is_read(self) -> None:
        """``07 March 2025`` is read as well as ``2025-03-07``."""
        event = reported({**sample()[0], "event_date": "07 March 2025"})
        assert event.occurred_start.isoformat() == "2025-03-07"

    def test_event_ids_depend_on_row_and_timestamp_only(self) -> None:
        """The id is stable for one version of a row, whichever feed imports it, and changes
        with the timestamp."""
        row = sample()[0]
        assert acled_event_id(row) == acled_event_id(dict(row))
        assert acled_event_id(row) != acled_event_id({**row, "timestamp": "1741305601"})

    def test_missing_fatalities_is_a_row_error_naming_the_column(self) -> None:
        """A row without a number of fatalities is refused, naming the column."""
        with pytest.raises(AcledRowError, match="column fatalities"):
            acled_report({**sample()[0], "fatalities": ""}, "acled")
