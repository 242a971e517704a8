"""``ledger import --acled/--ucdp/--gdelt`` end to end on a real Redis: the summary, the dry
run, line-and-column errors, the feed checks, and what lands in the log (sealed notes
included)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from typer.testing import CliRunner, Result

from events import CasualtiesRevised, entry_data
from services.cli import main
from services.store.keys import Keys
from services.store.redis import RedisEventStore

DATA = Path(__file__).parent.parent / "data"


async def ledger(redis_url: str, key_prefix: str, *args: str) -> Result:
    """Run ``ledger ARGS`` against the test's Redis and key prefix."""
    env = {"LEDGER_REDIS_URL": redis_url, "LEDGER_KEY_PREFIX": key_prefix, "LEDGER_TOKENS": ""}
    return await asyncio.to_thread(CliRunner().invoke, main, list(args), env=env)


class TestAcledCommand:
    """``ledger import --acled FILE --feed NAME``."""

    async def test_export_then_revisions_then_deletions(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """20 reports; the revised file: 2 revisions, 2 skipped; deletions: 1 retraction;
        the notes of a revision are sealed in the log like a report's."""
        log = Keys(key_prefix).log
        first = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--acled",
            str(DATA / "acled_syria_2025_03.csv"),
            "--feed",
            "acled",
        )
        assert first.exit_code == 0, first.output
        assert "read 20 rows: 20 written, 0 already there, 0 skipped, 0 refused" in first.output
        revised = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--acled",
            str(DATA / "acled_syria_2025_03_revised.csv"),
            "--feed",
            "acled",
        )
        assert revised.exit_code == 0, revised.output
        assert "2 written" in revised.output
        assert "2 skipped (2 not newer than what the ledger holds" in revised.output
        deleted = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--acled",
            str(DATA / "acled_deleted.csv"),
            "--feed",
            "acled",
        )
        assert deleted.exit_code == 0, deleted.output
        assert "1 written" in deleted.output
        assert await redis_client.xlen(log) == 23
        entries: Any = await redis_client.xrange(log)
        revisions = [
            fields for _, fields in entries if fields[b"type"] == b"incident.casualties_revised"
        ]
        assert all(b"sealed" in fields for fields in revisions)
        assert all(b"at least 60" not in entry_data(fields) for fields in revisions)
        store = RedisEventStore(redis_client, prefix=key_prefix)
        events = await store.read_entity("incident:acled:SYR351004")
        assert isinstance(events[-1].event, CasualtiesRevised)
        assert events[-1].event.fatalities.best == 72

    async def test_dry_run_reports_and_writes_nothing(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """--dry-run: the summary says 20 would be written; the log stays empty."""
        result = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--acled",
            str(DATA / "acled_syria_2025_03.csv"),
            "--feed",
            "acled",
            "--dry-run",
        )
        assert result.exit_code == 0, result.output
        assert "read 20 rows: 20 would be written" in result.output
        assert "dry run: nothing written" in result.output
        assert await redis_client.xlen(Keys(key_prefix).log) == 0

    async def test_a_malformed_file_names_line_and_column_and_writes_nothing(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str, tmp_path: Path
    ) -> None:
        """A row with an unbalanced quote is named by line; exit 1; nothing written."""
        lines = (DATA / "acled_syria_2025_03.csv").read_text(encoding="utf-8").splitlines()
        lines[7] = lines[7] + ',"unterminated'
        broken = tmp_path / "broken.csv"
        broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
        result = await ledger(
            redis_url, key_prefix, "import", "--acled", str(broken), "--feed", "acled"
        )
        assert result.exit_code == 1
        assert "line 8" in result.output
        assert await redis_client.xlen(Keys(key_prefix).log) == 0

    async def test_reserved_and_malformed_feeds_are_refused_plainly(
        self, redis_url: str, key_prefix: str
    ) -> None:
        """ledger-operator is reserved; a bad name is described, not shown as a regex."""
        path = str(DATA / "acled_syria_2025_03.csv")
        reserved = await ledger(
            redis_url, key_prefix, "import", "--acled", path, "--feed", "ledger-operator"
        )
        assert reserved.exit_code == 2
        assert "reserved" in reserved.output
        bad = await ledger(redis_url, key_prefix, "import", "--acled", path, "--feed", "ACLED!")
        assert bad.exit_code == 2
        assert "lowercase letters" in bad.output
        assert "(?!" not in bad.output


class TestUcdpAndGdeltCommands:
    """``ledger import --ucdp`` and ``--gdelt``."""

    async def test_ucdp_releases_revise_and_report_gone_ids(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """March: 4 reports; April: 1 revision, 1 new, 560104 reported as gone."""
        march = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--ucdp",
            str(DATA / "ucdp_ged_candidate_25_0_3.csv"),
            "--feed",
            "ucdp",
        )
        assert march.exit_code == 0, march.output
        april = await ledger(
            redis_url,
            key_prefix,
            "import",
            "--ucdp",
            str(DATA / "ucdp_ged_candidate_25_0_4.csv"),
            "--feed",
            "ucdp",
        )
        assert april.exit_code == 0, april.output
        assert "2 written" in april.output
        assert "ucdp:560104: in the ledger, not in this release" in april.output
        assert await redis_client.xlen(Keys(key_prefix).log) == 6

    async def test_gdelt_statements_on_the_chosen_subject(
        self, redis_url: str, redis_client: aioredis.Redis, key_prefix: str
    ) -> None:
        """5 statements written, 3 rows skipped with their reasons; again: nothing."""
        args = (
            "import",
            "--gdelt",
            str(DATA / "gdelt_20250310151500.export.CSV"),
            "--subject",
            "syria-coastal-violence-2025-03",
        )
        first = await ledger(redis_url, key_prefix, *args)
        assert first.exit_code == 0, first.output
        assert "read 8 rows: 5 written" in first.output
        assert "not a statement by a country's officials" in first.output
        again = await ledger(redis_url, key_prefix, *args)
        assert "0 written" in again.output
        assert await redis_client.xlen(Keys(key_prefix).log) == 5

    async def test_gdelt_options_are_checked_before_anything_is_read(
        self, redis_url: str, key_prefix: str
    ) -> None:
        """A bad subject, root or country is named, exit 2."""
        path = str(DATA / "gdelt_20250310151500.export.CSV")
        for option, value, named in (
            ("--subject", "Syria Coast", "is not a slug"),
            ("--root", "21", "CAMEO roots are 01 to 20"),
            ("--actor-country", "ZZZ", "not ISO 3166-1 alpha-3"),
        ):
            args = ["import", "--gdelt", path, "--subject", "syria-coast", option, value]
            result = await ledger(redis_url, key_prefix, *args)
            assert result.exit_code == 2, result.output
            assert named in result.output
