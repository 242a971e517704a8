"""UCDP GED/Candidate and GDELT 2.0 imports planned and published on the in-memory store,
from files in the sources' own layouts (``tests/data``): GED's 49-column CSV with a header,
CRLF line ends and quoted source articles; GDELT's 61 tab-separated columns, no header."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from events import CasualtiesRevised, IncidentReported, StatementIssued, country_codes
from services.ops import gdelt
from services.ops.gdelt import plan_gdelt
from services.ops.importer import MalformedFileError, Summary, publish, read_text
from services.ops.ucdp import UNCHANGED, gw_countries, plan_ucdp
from services.store.memory import InMemoryEventStore

DATA = Path(__file__).parent.parent / "data"
MARCH = DATA / "ucdp_ged_candidate_25_0_3.csv"
APRIL = DATA / "ucdp_ged_candidate_25_0_4.csv"
EVENTS = DATA / "gdelt_20250310151500.export.CSV"
SUBJECT = "syria-coastal-violence-2025-03"


async def ucdp(
    store: InMemoryEventStore, path: Path, feed: str = "ucdp", known: list[str] | None = None
) -> Summary:
    plan = await plan_ucdp(store, read_text(path), feed, known=known)
    return await publish(store, plan)


async def events_of(store: InMemoryEventStore, entity: str) -> list[object]:
    return [r.event for r in await store.read_entity(entity)]


class TestUcdp:
    """One incident per GED id, with deaths by party; later releases revise."""

    async def test_a_release_becomes_one_report_per_id_with_its_parties(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Four rows, four reports; 560101 keeps its sides, dyad, precisions and parties."""
        summary = await ucdp(memory_store, MARCH)
        assert (summary.read, summary.written, summary.refused) == (4, 4, [])
        (report,) = await events_of(memory_store, "incident:ucdp:560101")
        assert isinstance(report, IncidentReported)
        assert (report.violence_type, report.civilian_targeting) == ("one_sided", True)
        assert report.event_type is None
        assert (report.fatalities.low, report.fatalities.best, report.fatalities.high) == (
            55,
            60,
            75,
        )
        assert {p.party: p.best for p in report.parties} == {
            "civilians": 58,
            "side_a": 0,
            "side_b": 0,
            "unknown": 2,
        }
        assert report.sides is not None
        assert report.sides.dyad == "Government of Syria - Civilians"
        assert (report.geo_precision, report.date_precision, report.event_clarity) == (1, 1, 1)
        assert report.notes is not None
        assert "Agence France Presse" in report.notes
        assert report.country == "SYR"

    async def test_a_summary_event_keeps_its_range_and_clarity(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """560103 spans 6-10 March at week precision, clarity 2 (a summary)."""
        await ucdp(memory_store, MARCH)
        (report,) = await events_of(memory_store, "incident:ucdp:560103")
        assert isinstance(report, IncidentReported)
        assert (report.occurred_start.day, report.occurred_end) == (6, report.occurred_end)
        assert report.occurred_end is not None
        assert report.occurred_end.day == 10
        assert (report.date_precision, report.event_clarity, report.geo_precision) == (3, 2, 4)

    async def test_a_later_release_revises_reports_gone_ids_and_adds_new(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """April: 560101 revised (parties and sources), 560102/3 unchanged, 560105 new,
        560104 gone and reported, not retracted."""
        await ucdp(memory_store, MARCH)
        known = [f"ucdp:{i}" for i in (560101, 560102, 560103, 560104)]
        summary = await ucdp(memory_store, APRIL, known=known)
        assert (summary.written, summary.skipped) == (2, {UNCHANGED: 2})
        assert len(summary.reported) == 1
        assert summary.reported[0].startswith("ucdp:560104")
        _, revision = await events_of(memory_store, "incident:ucdp:560101")
        assert isinstance(revision, CasualtiesRevised)
        assert revision.fatalities.best == 72
        assert {p.party: p.best for p in revision.parties}["civilians"] == 70
        assert revision.notes is not None
        assert "Amnesty" in revision.notes
        assert len(await events_of(memory_store, "incident:ucdp:560104")) == 1
        again = await ucdp(memory_store, APRIL, known=known)
        assert (again.written, again.skipped) == (0, {UNCHANGED: 4})

    async def test_the_same_release_under_another_feed_writes_nothing(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Unchanged rows are skipped whoever imports them."""
        await ucdp(memory_store, MARCH)
        again = await ucdp(memory_store, MARCH, "other-feed")
        assert (again.written, again.refused) == (0, [])

    async def test_the_rows_order_in_a_release_does_not_matter(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """The release with its rows reversed plans the same events (ids and all)."""
        header, *rows = MARCH.read_bytes().rstrip(b"\r\n").split(b"\r\n")
        reversed_file = tmp_path / "reversed.csv"
        reversed_file.write_bytes(b"\r\n".join([header, *rows[::-1]]) + b"\r\n")
        forward = await plan_ucdp(memory_store, read_text(MARCH), "ucdp")
        backward = await plan_ucdp(memory_store, read_text(reversed_file), "ucdp")
        assert sorted(str(e.event_id) for _, e in forward.events) == sorted(
            str(e.event_id) for _, e in backward.events
        )
        await publish(memory_store, forward)
        again = await publish(
            memory_store, await plan_ucdp(memory_store, read_text(reversed_file), "ucdp")
        )
        assert again.written == 0

    async def test_deaths_per_side_that_exceed_best_are_refused(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """A row whose parties sum above best is refused, naming the fields at fault."""
        lines = MARCH.read_bytes().split(b"\r\n")
        lines[1] = lines[1].replace(b",0,0,58,2,60,", b",0,0,58,9,60,")
        broken = tmp_path / "ged.csv"
        broken.write_bytes(b"\r\n".join(lines))
        summary = await ucdp(memory_store, broken)
        (problem,) = summary.refused
        assert problem.line == 2
        assert "parties.best" in problem.message
        assert summary.stopped
        assert await memory_store.length() == 0

    async def test_a_file_without_ged_columns_is_not_ged(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """An ACLED file given as UCDP: the missing columns are named, at line 1."""
        with pytest.raises(MalformedFileError, match="line 1: not a UCDP GED file"):
            await plan_ucdp(memory_store, read_text(DATA / "acled_syria_2025_03.csv"), "ucdp")


def march_with(edit: dict[str, str] | None = None, *, drop: str | None = None) -> str:
    """The March release as text, its first row (560101, Syria) with the columns of ``edit``
    set and the column ``drop`` left out of every row."""
    header, *rows = csv.reader(io.StringIO(read_text(MARCH), newline=""))
    first = dict(zip(header, rows[0], strict=True))
    rows[0] = [{**first, **(edit or {})}[column] for column in header]
    keep = [i for i, column in enumerate(header) if column != drop]
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\r\n").writerows(
        [[fields[i] for i in keep] for fields in [header, *rows]]
    )
    return out.getvalue()


async def country_of_first_row(store: InMemoryEventStore, text: str) -> str:
    plan = await plan_ucdp(store, text, "ucdp")
    assert plan.summary.refused == []
    (report,) = [e for _, e in plan.events if e.entity == "incident:ucdp:560101"]
    assert isinstance(report, IncidentReported)
    return report.country


GW_KNOWN = {
    2: "USA",
    20: "CAN",
    200: "GBR",
    220: "FRA",
    255: "DEU",
    260: "DEU",
    340: "SRB",
    345: "SRB",
    346: "BIH",
    347: "XKX",
    365: "RUS",
    490: "COD",
    572: "SWZ",
    625: "SDN",
    626: "SSD",
    630: "IRN",
    640: "TUR",
    645: "IRQ",
    651: "EGY",
    652: "SYR",
    660: "LBN",
    663: "JOR",
    666: "ISR",
    670: "SAU",
    678: "YEM",
    680: "YEM",
    700: "AFG",
    750: "IND",
    770: "PAK",
    775: "MMR",
    816: "VNM",
}
"""Gleditsch-Ward codes and the countries they are (Gleditsch and Ward's list; GED's use)."""


class TestUcdpCountry:
    """GED's ``country_id`` (a Gleditsch-Ward code) decides the country; the name is the
    fallback for files and rows without one."""

    async def test_the_code_decides_where_the_name_maps_nowhere(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """652 with a name no table knows is Syria."""
        text = march_with({"country_id": "652", "country": "Syrian Republic (renamed)"})
        assert await country_of_first_row(memory_store, text) == "SYR"

    async def test_the_code_wins_over_a_name_of_another_country(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """652 named Lebanon: GED's key is trusted and the row is not refused."""
        text = march_with({"country_id": "652", "country": "Lebanon"})
        assert await country_of_first_row(memory_store, text) == "SYR"

    @pytest.mark.parametrize(
        ("value", "reason"),
        [
            ("Syria", "'Syria' is not a Gleditsch-Ward code"),
            ("652.5", "'652.5' is not a Gleditsch-Ward code"),
            ("-652", "'-652' is not a Gleditsch-Ward code"),
            ("999", "999 is not a Gleditsch-Ward state code"),
            ("653", "653 is not a Gleditsch-Ward state code"),
        ],
    )
    async def test_a_code_that_is_no_number_or_no_state_is_refused_naming_the_column(
        self, memory_store: InMemoryEventStore, value: str, reason: str
    ) -> None:
        """The row is refused at its line, naming ``country_id`` and the value; the rest
        plan."""
        plan = await plan_ucdp(memory_store, march_with({"country_id": value}), "ucdp")
        (problem,) = plan.summary.refused
        assert problem.line == 2
        assert problem.message.startswith("column country_id: ")
        assert reason in problem.message
        assert len(plan.events) == 3

    async def test_a_file_without_the_column_maps_by_name(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """An older or hand-made file with no ``country_id`` imports as before."""
        text = march_with({"country": "DR Congo (Zaire)"}, drop="country_id")
        assert "country_id" not in text.splitlines()[0]
        plan = await plan_ucdp(memory_store, text, "ucdp")
        assert (plan.summary.refused, len(plan.events)) == ([], 4)
        assert await country_of_first_row(memory_store, text) == "COD"

    async def test_an_empty_code_maps_by_name(self, memory_store: InMemoryEventStore) -> None:
        """``country_id`` present but empty: the name decides."""
        text = march_with({"country_id": " ", "country": "Bosnia-Herzegovina"})
        assert await country_of_first_row(memory_store, text) == "BIH"

    async def test_a_state_without_an_iso_code_maps_by_name(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """396 (Abkhazia) has no ISO code: the name (Georgia) decides."""
        assert gw_countries()[396] is None
        text = march_with({"country_id": "396", "country": "Georgia"})
        assert await country_of_first_row(memory_store, text) == "GEO"

    def test_every_code_of_the_table_is_a_country_the_events_accept(self) -> None:
        """The shipped table maps to codes the event schema validates against; it holds
        every state of Gleditsch and Ward's list, those of today each with a code."""
        table = gw_countries()
        mapped = {gw: iso for gw, iso in table.items() if iso is not None}
        assert set(mapped.values()) <= set(country_codes())
        assert len(table) == 225
        assert len(mapped) == 216
        assert len(set(mapped.values())) >= 195

    def test_known_codes_map_to_their_countries(self) -> None:
        """Spot checks, GED's own codes among them (345 Serbia, 678 Yemen, 365 Russia)."""
        assert {gw: gw_countries()[gw] for gw in GW_KNOWN} == GW_KNOWN


class TestGdelt:
    """Statements of countries' officials from a GDELT 2.0 events file."""

    async def test_officials_statements_are_imported_and_the_rest_skipped(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Eight rows: five statements of governments; rebels, material conflict and
        civilians skipped and counted."""
        plan = await plan_gdelt(memory_store, read_text(EVENTS), SUBJECT)
        summary = await publish(memory_store, plan)
        assert (summary.read, summary.written, summary.refused) == (8, 5, [])
        assert summary.skipped == {gdelt.NOT_OFFICIALS: 2, gdelt.MATERIAL_CONFLICT: 1}
        (event,) = await events_of(memory_store, "statement:gdelt:1230000001")
        assert isinstance(event, StatementIssued)
        assert (event.cameo_code, event.goldstein, event.stance) == ("111", -2.0, "condemn")
        assert event.speakers[0].country == "USA"
        assert (event.issued_precision, event.issued_at.date().isoformat()) == (
            "day",
            "2025-03-10",
        )
        assert event.sources[0].url == "https://www.state.gov/syria-coastal-violence"
        assert event.target.country == "SYR"

    async def test_a_reimport_under_any_subject_writes_nothing(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Idempotent by GLOBALEVENTID."""
        await publish(memory_store, await plan_gdelt(memory_store, read_text(EVENTS), SUBJECT))
        plan = await plan_gdelt(memory_store, read_text(EVENTS), "another-subject")
        summary = await publish(memory_store, plan)
        assert summary.written == 0
        assert summary.skipped[gdelt.HELD] == 5

    async def test_the_same_rows_in_another_order_write_nothing_more(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """GDELT files overlap and arrive in any order: reversed rows after the file add
        nothing."""
        await publish(memory_store, await plan_gdelt(memory_store, read_text(EVENTS), SUBJECT))
        lines = EVENTS.read_text(encoding="utf-8").splitlines()
        reversed_file = tmp_path / "reversed.CSV"
        reversed_file.write_text("\n".join(lines[::-1]) + "\n", encoding="utf-8")
        plan = await plan_gdelt(memory_store, read_text(reversed_file), SUBJECT)
        summary = await publish(memory_store, plan)
        assert summary.written == 0
        assert summary.skipped[gdelt.HELD] == 5

    async def test_roots_and_countries_narrow_the_import(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """--root 11 --actor-country USA,FRA: two condemnations."""
        plan = await plan_gdelt(
            memory_store, read_text(EVENTS), SUBJECT, roots=["11"], countries=["USA", "FRA"]
        )
        assert [e.entity for _, e in plan.events] == [
            "statement:gdelt:1230000001",
            "statement:gdelt:1230000008",
        ]

    async def test_a_row_short_of_61_columns_names_line_and_column(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """GDELT has no header: a row of 60 fields is named by line and column."""
        lines = EVENTS.read_text(encoding="utf-8").splitlines()
        lines[2] = lines[2].rsplit("\t", 1)[0]
        broken = tmp_path / "short.CSV"
        broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(MalformedFileError, match="line 3, column 61: 60 fields"):
            await plan_gdelt(memory_store, read_text(broken), SUBJECT)
