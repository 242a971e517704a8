"""ACLED imports planned and published on the in-memory store, from files in ACLED's layout.

The files in ``tests/data`` are as ACLED's Data Export Tool writes them: a header of the 31
columns, ``07 March 2025`` dates, quoted notes with commas and quotes, UTF-8 with non-ASCII
place names; the deletions list is ``event_id_cnty,deleted_timestamp``.
"""

from __future__ import annotations

import csv
import uuid
from pathlib import Path

import pytest

from events import CasualtiesRevised, IncidentMerged, IncidentReported, IncidentRetracted
from projections import PROJECTIONS, fold
from projections import incidents as incidents_projection
from services.ops.acled_import import NOT_NEWER, plan_acled
from services.ops.importer import MalformedFileError, Summary, publish, read_text
from services.store.memory import InMemoryEventStore

DATA = Path(__file__).parent.parent / "data"
EXPORT = DATA / "acled_syria_2025_03.csv"
REVISED = DATA / "acled_syria_2025_03_revised.csv"
DELETED = DATA / "acled_deleted.csv"


async def run(
    store: InMemoryEventStore, path: Path, feed: str = "acled", **options: object
) -> Summary:
    """Plan and publish one file."""
    plan = await plan_acled(store, read_text(path), feed)
    return await publish(store, plan, **options)  # type: ignore[arg-type]


async def incident(store: InMemoryEventStore, cnty: str) -> list[object]:
    return [r.event for r in await store.read_entity(f"incident:acled:{cnty}")]


class TestExport:
    """An export of 20 rows in ACLED's real layout."""

    async def test_every_row_becomes_a_report(self, memory_store: InMemoryEventStore) -> None:
        """Twenty rows, twenty reports, nothing skipped or refused."""
        summary = await run(memory_store, EXPORT)
        assert (summary.read, summary.written, summary.refused, summary.skipped) == (20, 20, [], {})

    async def test_actors_and_interaction_are_kept_as_sides(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """actor2 "Civilians (Syria)" with its associated group stays a side, not a count."""
        await run(memory_store, EXPORT)
        (report,) = await incident(memory_store, "SYR351003")
        assert isinstance(report, IncidentReported)
        assert report.sides is not None
        assert report.sides.side_b is not None
        assert report.sides.side_b.name == "Civilians (Syria)"
        assert report.sides.side_b.associates == ["Alawite Muslim Group (Syria)"]
        assert report.sides.side_b.kind == "Civilians"
        assert report.sides.interaction == "State forces-Civilians"
        assert report.victims == []
        assert report.parties == []
        assert report.source_time is not None
        assert report.source_time.year == 2025

    @pytest.mark.parametrize(
        ("cnty", "violence"),
        [
            ("SYR351003", "one_sided"),
            ("SYR351002", "state_based"),
            ("SYR351007", None),  # Protests
            ("SYR351008", None),  # Riots, even with civilian targeting
            ("SYR351009", None),  # Strategic developments
        ],
    )
    async def test_only_organised_violence_has_a_violence_type(
        self, memory_store: InMemoryEventStore, cnty: str, violence: str | None
    ) -> None:
        """Protests, Riots and Strategic developments carry no UCDP violence type."""
        await run(memory_store, EXPORT)
        (report,) = await incident(memory_store, cnty)
        assert isinstance(report, IncidentReported)
        assert report.violence_type == violence

    async def test_the_same_file_under_any_feed_writes_nothing(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Again as acled, then as another feed: every row skipped as not newer."""
        await run(memory_store, EXPORT)
        for feed in ("acled", "other-feed"):
            again = await run(memory_store, EXPORT, feed)
            assert (again.written, again.refused, again.skipped) == (0, [], {NOT_NEWER: 20})
        assert await memory_store.length() == 20

    async def test_a_dry_run_writes_nothing_and_says_what_it_would(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """--dry-run: twenty would be written, the log stays empty."""
        summary = await run(memory_store, EXPORT, dry_run=True)
        assert (summary.written, summary.dry_run) == (20, True)
        assert await memory_store.length() == 0


class TestRevisions:
    """Newer rows revise, in timestamp order, carrying every changed field."""

    async def test_newer_row_first_ends_on_the_newer_figures(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """The revised file lists the newer SYR351004 before the older: the older is
        reported, the newer revises it, and the incident ends on 72 with its new notes."""
        await run(memory_store, REVISED)
        report, revision = await incident(memory_store, "SYR351004")
        assert isinstance(report, IncidentReported)
        assert report.fatalities.best == 60
        assert isinstance(revision, CasualtiesRevised)
        assert revision.fatalities.best == 72
        assert revision.fatalities.qualifier == "at_least"
        assert revision.notes is not None
        assert "at least 60" in revision.notes
        assert revision.place is not None
        assert revision.place.name == "Baniyas Al-Qusour, Al-Qusour"
        assert revision.source_time is not None
        assert report.source_time is not None
        assert revision.source_time > report.source_time
        assert revision.event_type is None  # unchanged fields are left out

    async def test_a_row_that_became_a_protest_clears_its_violence_type(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """SYR351002 (Battles, state-based) comes again, newer, as a peaceful protest: the
        revision names the new types and clears the violence type, and the incident as the
        ledger holds it has none."""
        with EXPORT.open(encoding="utf-8", newline="") as file:
            reader = csv.DictReader(file)
            columns = list(reader.fieldnames or [])
            (row,) = [r for r in reader if r["event_id_cnty"] == "SYR351002"]
        row |= {
            "event_type": "Protests",
            "sub_event_type": "Peaceful protest",
            "timestamp": str(int(row["timestamp"]) + 86_400),
        }
        later = tmp_path / "later.csv"
        with later.open("w", encoding="utf-8", newline="") as file:
            writer = csv.DictWriter(file, columns)
            writer.writeheader()
            writer.writerow(row)
        await run(memory_store, EXPORT)
        summary = await run(memory_store, later)
        assert summary.written == 1
        report, revision = await incident(memory_store, "SYR351002")
        assert isinstance(report, IncidentReported)
        assert report.violence_type == "state_based"
        assert isinstance(revision, CasualtiesRevised)
        assert (revision.event_type, revision.cleared) == ("Protests", ("violence_type",))
        state = fold(PROJECTIONS["incidents"], await memory_store.read())
        held = incidents_projection.get(state, "acled:SYR351002")
        assert held is not None
        assert (held.event_type, held.violence_type) == ("Protests", None)

    async def test_a_revised_row_after_the_export_revises_once(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Export, then the revised file: two revisions, the older rows skipped; again: none."""
        await run(memory_store, EXPORT)
        summary = await run(memory_store, REVISED)
        assert (summary.written, summary.skipped) == (2, {NOT_NEWER: 2})
        again = await run(memory_store, REVISED)
        assert (again.written, again.skipped) == (0, {NOT_NEWER: 4})

    async def test_a_newer_row_of_another_feeds_incident_is_refused(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """Only the owner revises: the row is refused naming the owner, nothing written."""
        await run(memory_store, EXPORT)
        summary = await run(memory_store, REVISED, "other-feed")
        assert summary.stopped
        assert summary.written == 0
        assert all("reported by feed 'acled'" in p.message for p in summary.refused)
        assert len(summary.refused) == 2

    async def test_a_newer_row_of_a_merged_duplicate_is_skipped(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """SYR351004 merged into SYR351003: its newer row writes nothing, 351003's revises."""
        await run(memory_store, EXPORT)
        merge = IncidentMerged(
            event_id=uuid.uuid4(),
            source="acled",
            incident_id="acled:SYR351004",
            into="acled:SYR351003",
            reason="the same killings",
        )
        await memory_store.append([merge])
        summary = await run(memory_store, REVISED)
        assert summary.written == 1
        assert summary.skipped == {NOT_NEWER: 2, "incident retracted or merged in the ledger": 1}


class TestDeletions:
    """ACLED's deletions list retracts what it names."""

    async def test_listed_events_are_retracted_with_acleds_time(
        self, memory_store: InMemoryEventStore
    ) -> None:
        """SYR351013 is retracted; SYR351999 (never imported) is skipped; again: nothing."""
        await run(memory_store, EXPORT)
        summary = await run(memory_store, DELETED)
        assert (summary.read, summary.written) == (2, 1)
        assert summary.skipped == {"deleted event not in the ledger": 1}
        *_, retraction = await incident(memory_store, "SYR351013")
        assert isinstance(retraction, IncidentRetracted)
        assert retraction.reason == "deleted by ACLED at 2025-03-23T00:00:00Z"
        again = await run(memory_store, DELETED)
        assert again.written == 0


class TestRefused:
    """Bad files and rows: line and column named, nothing half-written."""

    async def test_a_row_with_a_missing_field_names_line_and_column(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """A row cut short is a malformed file: line and column named, nothing planned."""
        lines = EXPORT.read_text(encoding="utf-8").splitlines()
        lines[5] = lines[5].rsplit(",", 1)[0]  # the timestamp column gone
        broken = tmp_path / "broken.csv"
        broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.raises(MalformedFileError, match=r"line 6, column 31: 30 fields"):
            await plan_acled(memory_store, read_text(broken), "acled")

    async def test_a_byte_that_is_not_utf8_names_line_and_column(self, tmp_path: Path) -> None:
        """A Latin-1 byte is named where it is."""
        broken = tmp_path / "latin1.csv"
        data = EXPORT.read_bytes().replace(b"Beit Ana", b"Beit \xe9na")
        broken.write_bytes(data)
        with pytest.raises(MalformedFileError, match=r"line 2, column \d+: byte 0xe9"):
            read_text(broken)

    async def test_a_refused_row_stops_the_whole_file(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """An unknown country on line 5: refused with its column; nothing of the file is
        written unless --on-error skip, which writes the other nineteen."""
        text = EXPORT.read_text(encoding="utf-8").splitlines()
        text[4] = text[4].replace(",Syria,", ",Atlantis,")
        broken = tmp_path / "atlantis.csv"
        broken.write_text("\n".join(text) + "\n", encoding="utf-8")
        summary = await run(memory_store, broken)
        assert summary.stopped
        assert await memory_store.length() == 0
        (problem,) = summary.refused
        assert problem.line == 5
        assert "column country" in problem.message
        skipping = await run(memory_store, broken, on_error="skip")
        assert skipping.written == 19

    async def test_kosovo_is_accepted_as_xkx(
        self, memory_store: InMemoryEventStore, tmp_path: Path
    ) -> None:
        """ACLED's Kosovo rows get the user-assigned code XKX."""
        text = EXPORT.read_text(encoding="utf-8").splitlines()
        kosovo = tmp_path / "kosovo.csv"
        kosovo.write_text(
            text[0] + "\n" + text[1].replace(",Syria,", ",Kosovo,") + "\n", encoding="utf-8"
        )
        summary = await run(memory_store, kosovo)
        assert summary.written == 1
        (report,) = await incident(memory_store, "SYR351001")
        assert isinstance(report, IncidentReported)
        assert report.country == "XKX"
