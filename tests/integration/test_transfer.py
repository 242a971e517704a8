"""Export and import of the log against a real Redis (sources' files: test_source_imports).

The copy of a log is imported under ``<key_prefix>:copy``, which the ``key_prefix`` fixture
cleans up with the test's own keys.
"""

from __future__ import annotations

import asyncio
import io
import json

import msgspec
import redis.asyncio as aioredis

from events import IncidentReported, Recorded
from projections import PROJECTIONS, fold
from services.ops.transfer import export_events, import_lines
from services.projector.pool import ProjectorPool
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.redis import load_view
from tests.support import builders as f
from tests.support.runner import FAST
from tests.support.streams import entries as stream_entries

DEADLINE = 30.0


async def history(store: RedisEventStore) -> None:
    """Events touching every projection: reports, revisions, merges, statements, retractions."""
    await store.append(f.opening())
    await store.append(
        [
            f.revised("i-1", 14, victims=[f.ALAWITE_VICTIMS]),
            f.merged("i-2", "i-1"),
            f.retracted("i-3"),
            f.statement_retracted("s-2"),
        ]
    )


async def export_bytes(client: aioredis.Redis, prefix: str) -> bytes:
    """The whole log of ``prefix`` exported as JSON lines."""
    out = io.BytesIO()
    await export_events(client, prefix, out)
    return out.getvalue()


async def views_of(client: aioredis.Redis, prefix: str) -> dict[str, object]:
    """Every projection's view after the projectors caught up, by name (without checkpoints)."""
    pool = ProjectorPool(client, prefix=prefix, **FAST)
    async with asyncio.timeout(DEADLINE):
        await pool.run_until_caught_up()
    return {name: (await load_view(client, prefix, p))[0] for name, p in PROJECTIONS.items()}


class TestExportImport:
    """The log goes out as JSON lines and comes back in through the validated path."""

    async def test_export_writes_one_line_per_event_in_log_order(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """Each line has position, recorded_at, type, v and the event as stored."""
        await history(redis_store)
        lines = (await export_bytes(redis_client, key_prefix)).splitlines()
        log = await stream_entries(redis_client, Keys(key_prefix).log)
        assert [json.loads(line)["position"] for line in lines] == [i.decode() for i, _ in log]
        first = json.loads(lines[0])
        assert set(first) == {"position", "recorded_at", "type", "v", "event"}
        assert (first["type"], first["v"]) == ("incident.reported", IncidentReported.SCHEMA_VERSION)
        assert first["event"]["incident_id"] == "i-1"

    async def test_export_range_is_inclusive(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """``--from``/``--to`` bound the export, both ends included."""
        await history(redis_store)
        log = [i.decode() for i, _ in await stream_entries(redis_client, Keys(key_prefix).log)]
        out = io.BytesIO()
        written = await export_events(redis_client, key_prefix, out, start=log[2], end=log[5])
        assert written == 4
        assert [json.loads(x)["position"] for x in out.getvalue().splitlines()] == log[2:6]

    async def test_export_then_import_into_an_empty_prefix_gives_identical_views(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """The copy holds the same events in the same order, and its views are their fold.

        An import appends at new positions, so the documents' positions and times are the
        copy's own: the copy's views equal the fold of the original events at those positions.
        """
        await history(redis_store)
        exported = await export_bytes(redis_client, key_prefix)
        copy = f"{key_prefix}:copy"
        target = RedisEventStore(redis_client, prefix=copy)
        report = await import_lines(target, exported.splitlines(), batch_size=3)
        assert (report.appended, report.duplicates, report.problems) == (9, 0, [])
        original = await redis_store.read(count=100)
        copied = await target.read(count=100)
        assert [r.event for r in copied] == [r.event for r in original]
        assert await export_bytes(redis_client, copy) != exported  # new positions
        at_copy = [
            Recorded(c.position, c.recorded_at, o.event)
            for c, o in zip(copied, original, strict=True)
        ]
        views = await views_of(redis_client, copy)
        assert views == {name: fold(p, at_copy) for name, p in PROJECTIONS.items()}

        again = await import_lines(target, exported.splitlines())
        assert (again.appended, again.duplicates) == (0, 9)
        assert await redis_client.xlen(Keys(copy).log) == 9

    async def test_a_bad_line_stops_the_import_with_its_line_number(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """With on_error=stop the lines before the bad one are written, none after it."""
        good = [msgspec.json.encode(f.reported(f"i-{n}")) for n in range(4)]
        lines = [good[0], good[1], b'{"type": "incident.reported"}', good[2], good[3]]
        report = await import_lines(redis_store, lines)
        assert report.stopped_at == 3
        assert [p.line for p in report.problems] == [3]
        assert report.appended == 2
        assert await redis_client.xlen(Keys(key_prefix).log) == 2

    async def test_skip_leaves_bad_lines_out_and_goes_on(
        self, redis_client: aioredis.Redis, redis_store: RedisEventStore, key_prefix: str
    ) -> None:
        """With on_error=skip every good line is written, around a store rejection too."""
        lines = [
            msgspec.json.encode(f.reported("i-1")),
            b"not json",
            msgspec.json.encode(f.revised("i-missing")),
            msgspec.json.encode(f.reported("i-2")),
        ]
        report = await import_lines(redis_store, lines, on_error="skip")
        assert report.stopped_at is None
        assert [p.line for p in report.problems] == [2, 3]
        assert report.appended == 2
        assert await redis_client.xlen(Keys(key_prefix).log) == 2
