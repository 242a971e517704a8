"""The view store contract: one suite, run against the in-memory and the Redis view store."""

from __future__ import annotations

import datetime as dt
from typing import Any, Final

import pytest
import redis.asyncio as aioredis

from events import GRADING_ORDER, Fatalities, Place, Position, Source
from projections import PROJECTIONS, Projection
from projections.incident_docs import Status
from projections.incidents import IncidentView
from projections.stance_docs import IncidentDate, StatementRef
from projections.victims_cells import Contribution
from services.store.keys import Keys
from services.views.codec import decode_doc
from services.views.errors import (
    UnknownKindError,
    UnlistableChangeError,
    ViewChangedError,
    ViewMovedError,
)
from services.views.memory import InMemoryViewStore
from services.views.redis import RedisViewStore
from services.views.scripts import CHANGES_LISTED
from services.views.store import ViewStore

INCIDENTS: Projection = PROJECTIONS["incidents"]
STANCE: Projection = PROJECTIONS["country-stance"]
VICTIMS: Projection = PROJECTIONS["community-victims"]
"""Their ``incident`` kinds are kept in buckets on Redis (services.views.generations.BUCKETED)."""


SOURCE_DOC = Source(publisher="SOHR", url="https://example.org/report")
"""An incidents ``source`` document (a source a revision cites)."""


def incident(ident: str, version: int = 1) -> IncidentView:
    """One incidents document."""
    return IncidentView(incident_id=ident, reported=True, version=version)


def at(ms: int) -> Position:
    """A checkpoint."""
    return Position(f"{ms}-0")


@pytest.fixture(params=["memory", "redis"])
def partitioned(request: pytest.FixtureRequest) -> ViewStore:
    """Each view store implementation in turn, on two partitions."""
    if request.param == "memory":
        return InMemoryViewStore(partitions=2)
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("key_prefix")
    return RedisViewStore(client, Keys(prefix, 2))


class TestNeverWritten:
    """A view no one wrote answers the projection's initial state and no checkpoint."""

    async def test_load_answers_the_initial_state_and_no_checkpoint(self, views: ViewStore) -> None:
        """load() of an unwritten view is (initial state, None)."""
        assert await views.load(INCIDENTS) == (INCIDENTS.initial(), None)
        assert await views.checkpoint(INCIDENTS) is None
        assert await views.generation(INCIDENTS) == 0

    async def test_read_kinds_answers_no_checkpoint(self, views: ViewStore) -> None:
        """read_kinds() of an unwritten view has no checkpoint."""
        found = await views.read_kinds(INCIDENTS, ["incident"])
        assert found.checkpoint is None

    async def test_an_unknown_kind_is_refused(self, views: ViewStore) -> None:
        """A kind the projection does not declare raises UnknownKindError."""
        with pytest.raises(UnknownKindError):
            await views.read_kinds(INCIDENTS, ["nothing"])


class TestWrite:
    """A write moves documents and checkpoint together, or nothing."""

    async def test_written_documents_and_checkpoint_load_back(self, views: ViewStore) -> None:
        """What a write put is what load(), load_paged(), raw() and documents() read."""
        changes = {("incident", "i-1"): incident("i-1"), ("incident", "i-2"): incident("i-2")}
        await views.write(INCIDENTS, changes, expected=None, checkpoint=at(5))
        docs, checkpoint = await views.load(INCIDENTS)
        assert checkpoint == at(5)
        assert dict(docs.kinds()["incident"]) == {"i-1": incident("i-1"), "i-2": incident("i-2")}
        assert await views.load_paged(INCIDENTS, generation=0) == (docs, checkpoint)
        assert await views.checkpoint(INCIDENTS) == at(5)
        stored, raw_checkpoint = await views.raw(INCIDENTS)
        assert raw_checkpoint == at(5)
        assert {
            ident: decode_doc(INCIDENTS, "incident", text)
            for ident, text in stored["incident"].items()
        } == {"i-1": incident("i-1"), "i-2": incident("i-2")}
        found = await views.documents(
            INCIDENTS, [("incident", "i-2"), ("incident", "i-9")], generation=0
        )
        assert found == {("incident", "i-2"): incident("i-2"), ("incident", "i-9"): None}

    async def test_a_paged_load_leaves_out_the_kinds_it_is_told(self, views: ViewStore) -> None:
        """``load_paged(without=...)``: the writer's load without a view's own kinds reads the
        other kinds and the checkpoint, and none of those kinds' documents."""
        changes = {("incident", "i-1"): incident("i-1"), ("source", "i-1|s"): SOURCE_DOC}
        await views.write(INCIDENTS, changes, expected=None, checkpoint=at(5))
        docs, checkpoint = await views.load_paged(INCIDENTS, generation=0, without={"incident"})
        assert checkpoint == at(5)
        assert dict(docs.kind("source")) == {"i-1|s": SOURCE_DOC}
        assert not docs.kind("incident")

    async def test_a_deletion_removes_the_document(self, views: ViewStore) -> None:
        """A change to None deletes the document; the others stay."""
        await views.write(
            INCIDENTS,
            {("source", "s-1"): SOURCE_DOC, ("source", "s-2"): SOURCE_DOC},
            expected=None,
            checkpoint=at(5),
        )
        await views.write(INCIDENTS, {("source", "s-1"): None}, expected=at(5), checkpoint=at(6))
        docs, checkpoint = await views.load(INCIDENTS)
        assert checkpoint == at(6)
        assert dict(docs.kinds()["source"]) == {"s-2": SOURCE_DOC}

    async def test_deleting_a_listed_document_is_refused(self, views: ViewStore) -> None:
        """A listed kind's documents are never deleted (their place in the listing index is
        known only from them): such a write is refused and writes nothing."""
        await views.write(
            INCIDENTS, {("incident", "i-1"): incident("i-1")}, expected=None, checkpoint=at(5)
        )
        with pytest.raises(UnlistableChangeError):
            await views.write(
                INCIDENTS,
                {("incident", "i-1"): None, ("source", "s-1"): SOURCE_DOC},
                expected=at(5),
                checkpoint=at(6),
            )
        docs, checkpoint = await views.load(INCIDENTS)
        assert checkpoint == at(5)
        assert dict(docs.kinds()["incident"]) == {"i-1": incident("i-1")}
        assert not docs.kinds()["source"]

    async def test_a_write_from_another_checkpoint_is_refused(self, views: ViewStore) -> None:
        """expected must be the stored checkpoint; otherwise nothing is written."""
        await views.write(
            INCIDENTS, {("incident", "i-1"): incident("i-1")}, expected=None, checkpoint=at(5)
        )
        with pytest.raises(ViewMovedError):
            await views.write(
                INCIDENTS, {("incident", "i-2"): incident("i-2")}, expected=at(4), checkpoint=at(6)
            )
        docs, checkpoint = await views.load(INCIDENTS)
        assert checkpoint == at(5)
        assert set(docs.kinds()["incident"]) == {"i-1"}

    async def test_a_write_to_a_generation_not_active_is_refused(self, views: ViewStore) -> None:
        """Only the active generation is written; another one is refused, nothing written."""
        with pytest.raises(ViewMovedError):
            await views.write(
                INCIDENTS,
                {("incident", "i-1"): incident("i-1")},
                expected=None,
                checkpoint=at(5),
                generation=1,
            )
        assert await views.load(INCIDENTS, generation=1) == (INCIDENTS.initial(), None)


class TestFollowing:
    """A reader that holds the view gets only what changed since, when the store can tell."""

    async def test_a_holder_gets_only_the_changed_documents(self, views: ViewStore) -> None:
        """After a small write a held read lists just the documents that write changed."""
        await views.write(
            INCIDENTS,
            {("incident", "i-1"): incident("i-1"), ("incident", "i-2"): incident("i-2")},
            expected=None,
            checkpoint=at(5),
        )
        first = await views.read_kinds(INCIDENTS, ["incident"])
        assert first.whole is not None
        assert first.checkpoint == at(5)
        await views.write(
            INCIDENTS,
            {("incident", "i-2"): incident("i-2", 2), ("incident", "i-3"): incident("i-3")},
            expected=at(5),
            checkpoint=at(7),
        )
        held = (at(5), first.seen, first.generation)
        then = await views.read_kinds(INCIDENTS, ["incident"], held=held)
        assert then.checkpoint == at(7)
        assert then.changed is not None
        (changed,) = then.changed
        assert set(changed) == {"i-2", "i-3"}
        stored = changed["i-2"]
        assert stored is not None
        assert decode_doc(INCIDENTS, "incident", stored) == incident("i-2", 2)

    async def test_a_holder_learns_of_a_deleted_document(self, views: ViewStore) -> None:
        """A document deleted since the held state is listed as changed to None."""
        await views.write(
            STANCE,
            {("incident", "i-1"): dated(7), ("incident", "i-2"): dated(8)},
            expected=None,
            checkpoint=at(5),
        )
        first = await views.read_kinds(STANCE, ["incident"])
        await views.write(STANCE, {("incident", "i-1"): None}, expected=at(5), checkpoint=at(6))
        then = await views.read_kinds(
            STANCE, ["incident"], held=(at(5), first.seen, first.generation)
        )
        assert then.changed == [{"i-1": None}]

    async def test_a_holder_of_the_current_view_gets_nothing_new(self, views: ViewStore) -> None:
        """Held at the checkpoint now: no document is listed as changed."""
        await views.write(
            INCIDENTS, {("incident", "i-1"): incident("i-1")}, expected=None, checkpoint=at(5)
        )
        first = await views.read_kinds(INCIDENTS, ["incident"])
        again = await views.read_kinds(
            INCIDENTS, ["incident"], held=(at(5), first.seen, first.generation)
        )
        assert again.checkpoint == at(5)
        assert again.changed == [{}]

    async def test_after_a_bulk_write_the_holder_reads_whole(self, views: ViewStore) -> None:
        """A write of more documents than a commit lists is read whole by a holder."""
        await views.write(
            INCIDENTS, {("incident", "i-0"): incident("i-0")}, expected=None, checkpoint=at(5)
        )
        first = await views.read_kinds(INCIDENTS, ["incident"])
        bulk = {("incident", f"b-{n}"): incident(f"b-{n}") for n in range(CHANGES_LISTED + 1)}
        await views.write(INCIDENTS, bulk, expected=at(5), checkpoint=at(6))
        then = await views.read_kinds(
            INCIDENTS, ["incident"], held=(at(5), first.seen, first.generation)
        )
        assert then.changed is None
        assert then.whole is not None
        assert len(then.whole[0]) == CHANGES_LISTED + 2


def dated(day: int) -> IncidentDate:
    """An incident's date, as country-stance keeps it in a bucketed kind."""
    return IncidentDate(occurred_start=dt.date(2025, 3, day))


class TestBucketedKind:
    """A kind kept in buckets reads, follows and deletes like any other, beside plain kinds."""

    async def test_every_path_reads_what_was_written(self, views: ViewStore) -> None:
        """load(), load_paged(), raw(), documents() and a whole read_kinds() agree."""
        changes: dict[tuple[str, str], IncidentDate | StatementRef] = {
            ("incident", f"i-{n}"): dated(n % 28 + 1) for n in range(300)
        }
        changes[("statement", "s-1")] = StatementRef(subject="syr-1", countries=("USA",))
        await views.write(STANCE, changes, expected=None, checkpoint=at(5))
        docs, checkpoint = await views.load(STANCE)
        assert checkpoint == at(5)
        assert {
            (kind, ident): doc
            for kind, by_id in docs.kinds().items()
            for ident, doc in by_id.items()
        } == changes
        assert await views.load_paged(STANCE, generation=0) == (docs, checkpoint)
        stored, _ = await views.raw(STANCE)
        assert {
            ident: decode_doc(STANCE, "incident", raw) for ident, raw in stored["incident"].items()
        } == dict(docs.kinds()["incident"])
        found = await views.documents(
            STANCE, [("incident", "i-7"), ("incident", "i-none")], generation=0
        )
        assert found == {("incident", "i-7"): dated(8), ("incident", "i-none"): None}
        whole = await views.read_kinds(STANCE, ["statement", "incident"])
        assert whole.whole is not None
        assert [len(kind) for kind in whole.whole] == [1, 300]

    async def test_a_holder_gets_the_changed_documents_of_every_bucket(
        self, views: ViewStore
    ) -> None:
        """Changes and deletions spread over many buckets reach a follower, and only they."""
        await views.write(
            STANCE,
            {("incident", f"i-{n}"): dated(1) for n in range(200)},
            expected=None,
            checkpoint=at(5),
        )
        first = await views.read_kinds(STANCE, ["incident"])
        later = {("incident", f"i-{n}"): dated(2) for n in range(0, 200, 7)}
        gone = {("incident", f"i-{n}"): None for n in range(3, 200, 11)}
        await views.write(STANCE, {**later, **gone}, expected=at(5), checkpoint=at(6))
        then = await views.read_kinds(
            STANCE, ["incident"], held=(at(5), first.seen, first.generation)
        )
        assert then.changed is not None
        (changed,) = then.changed
        assert set(changed) == {ident for _, ident in [*later, *gone]}
        for (_, ident), doc in {**later, **gone}.items():
            raw = changed[ident]
            assert (raw if raw is None else decode_doc(STANCE, "incident", raw)) == doc
        docs, _ = await views.load(STANCE)
        assert len(docs.kinds()["incident"]) == 200 - len(gone)

    async def test_a_document_that_outgrows_a_bucket_moves_and_back(self, views: ViewStore) -> None:
        """A long document of a bucketed kind, and one with a long id, read back by every
        path; shortened again, the document reads as the short one."""
        short = Contribution(incident_id="i-1")
        long = Contribution(incident_id="i-1", perpetrators=tuple(f"{n:x}" * 9 for n in range(40)))
        long_id = "i-" + "9" * 80
        at_first = {("incident", "i-1"): short, ("incident", long_id): short}
        await views.write(VICTIMS, at_first, expected=None, checkpoint=at(5))
        first = await views.read_kinds(VICTIMS, ["incident"])
        for step, (doc, checkpoint) in enumerate([(long, at(6)), (short, at(7))]):
            await views.write(
                VICTIMS, {("incident", "i-1"): doc}, expected=at(5 + step), checkpoint=checkpoint
            )
            docs, _ = await views.load(VICTIMS)
            assert dict(docs.kinds()["incident"]) == {"i-1": doc, long_id: short}
            assert await views.load_paged(VICTIMS, generation=0) == (docs, checkpoint)
            found = await views.documents(VICTIMS, [("incident", "i-1")], generation=0)
            assert found == {("incident", "i-1"): doc}
        then = await views.read_kinds(
            VICTIMS, ["incident"], held=(at(5), first.seen, first.generation)
        )
        assert then.changed is not None
        (changed,) = then.changed
        raw = changed["i-1"]
        assert raw is not None
        assert decode_doc(VICTIMS, "incident", raw) == short
        await views.write(VICTIMS, {("incident", long_id): None}, expected=at(7), checkpoint=at(8))
        docs, _ = await views.load(VICTIMS)
        assert dict(docs.kinds()["incident"]) == {"i-1": short}


class TestPagedLoad:
    """The lease holder's paged load refuses a view that moved while it was read."""

    async def test_a_move_during_the_load_is_refused(self, views: ViewStore) -> None:
        """A write between the pages raises ViewChangedError."""
        await views.write(
            INCIDENTS, {("incident", "i-1"): incident("i-1")}, expected=None, checkpoint=at(5)
        )

        async def meanwhile() -> None:
            if await views.checkpoint(INCIDENTS) == at(5):
                await views.write(
                    INCIDENTS,
                    {("incident", "i-2"): incident("i-2")},
                    expected=at(5),
                    checkpoint=at(6),
                )

        with pytest.raises(ViewChangedError):
            await views.load_paged(INCIDENTS, generation=0, on_page=meanwhile)


class TestPartitions:
    """On several partitions each partition has its view; the checkpoint names them all."""

    async def test_the_checkpoint_joins_the_partitions(self, partitioned: ViewStore) -> None:
        """A partition with no checkpoint yet reads 0-0 in the joined checkpoint."""
        assert partitioned.partitions == 2
        await partitioned.write(
            INCIDENTS,
            {("incident", "i-1"): incident("i-1")},
            expected=None,
            checkpoint=at(5),
            partition=1,
        )
        assert await partitioned.checkpoint(INCIDENTS) == Position("0-0,5-0")
        docs, checkpoint = await partitioned.load(INCIDENTS, partition=1)
        assert checkpoint == at(5)
        assert set(docs.kinds()["incident"]) == {"i-1"}
        assert await partitioned.load(INCIDENTS, partition=0) == (INCIDENTS.initial(), None)


def listed_row(
    ident: str,
    day: int,
    country: str = "SYR",
    status: Status = "live",
    version: int = 1,
    *,
    adm1: str = "Latakia",
    end: dt.date | None = None,
    precision: int = 1,
) -> IncidentView:
    """An incident row the listing shows: reported with figures, a place and a grading."""
    return IncidentView(
        incident_id=ident,
        reported=True,
        version=version,
        status=status,
        fatalities=Fatalities(low=3, best=3, high=3),
        occurred_start=dt.date(2025, 3, day),
        occurred_end=end,
        date_precision=precision,
        country=country,
        place=Place(adm1=adm1),
        grading=GRADING_ORDER[0],
    )


class TestListing:
    """A listing index pages a kind's documents newest day first, then by id, with their
    total and the checkpoint, without the whole kind (the incidents' rows)."""

    ROWS: Final = {
        "i-b": listed_row("i-b", 8),
        "i-a": listed_row("i-a", 7, adm1="Rif Dimashq"),
        "i-c": listed_row("i-c", 7, country="LBN", adm1="North"),
        "i-d": listed_row("i-d", 9, status="retracted"),
        "i-e": IncidentView(incident_id="i-e", version=1),  # not reported: never listed
    }

    async def _written(self, views: ViewStore) -> None:
        await views.write(
            INCIDENTS,
            {("incident", ident): row for ident, row in self.ROWS.items()},
            expected=None,
            checkpoint=at(5),
        )

    async def _ids(
        self,
        views: ViewStore,
        *groups: str,
        first: int = 0,
        limit: int = 10,
        days: tuple[int | None, int | None] = (None, None),
    ) -> Any:
        found = await views.listing(
            INCIDENTS, "incident", groups, first=first, limit=limit, days=days
        )
        ids = [doc.incident_id for doc in found.docs if isinstance(doc, IncidentView)]
        return ids, found.total, found.checkpoint

    async def test_a_page_is_newest_day_first_then_by_id(self, views: ViewStore) -> None:
        """Every country's live rows: the 8th, then the 7th's two by id; 3 in all."""
        await self._written(views)
        assert await self._ids(views, "live|*") == (["i-b", "i-a", "i-c"], 3, at(5))
        assert await self._ids(views, "live|*", first=1, limit=1) == (["i-a"], 3, at(5))
        assert await self._ids(views, "live|*", first=3) == ([], 3, at(5))

    async def test_groups_select_status_country_and_adm1(self, views: ViewStore) -> None:
        """One country's groups, one adm1's in any country, one place's, another status's,
        and several groups merged by day and id."""
        await self._written(views)
        assert await self._ids(views, "live|syr|*") == (["i-b", "i-a"], 2, at(5))
        assert await self._ids(views, "live|*|north") == (["i-c"], 1, at(5))
        assert await self._ids(views, "live|syr|rif%20dimashq") == (["i-a"], 1, at(5))
        assert await self._ids(views, "retracted|*") == (["i-d"], 1, at(5))
        both = await self._ids(views, "live|syr|*", "retracted|syr|*", first=0, limit=2)
        assert both == (["i-d", "i-b"], 3, at(5))
        assert await self._ids(views, "merged|*") == ([], 0, at(5))

    async def test_a_range_of_days_keeps_the_spans_that_meet_it(self, views: ViewStore) -> None:
        """A row stands for its window: one day, a month (precision 4: March), or up to its
        end; a range keeps those whose window meets it, counted and paged alike; a first day
        after the last (a week and a range apart) keeps the windows reaching both."""
        rows = {
            "i-day": listed_row("i-day", 7),
            "i-month": listed_row("i-month", 20, precision=4),
            "i-long": listed_row("i-long", 2, end=dt.date(2025, 6, 1)),
        }
        await views.write(
            INCIDENTS,
            {("incident", ident): row for ident, row in rows.items()},
            expected=None,
            checkpoint=at(5),
        )

        def day(month: int, day: int) -> int:
            return dt.date(2025, month, day).toordinal()

        assert await self._ids(views, "live|*", days=(day(3, 7), day(3, 7))) == (
            ["i-month", "i-day", "i-long"],
            3,
            at(5),
        )
        assert await self._ids(views, "live|*", days=(day(3, 8), day(3, 19))) == (
            ["i-month", "i-long"],
            2,
            at(5),
        )
        assert await self._ids(views, "live|*", days=(day(4, 1), None), limit=1) == (
            ["i-long"],
            1,
            at(5),
        )
        assert await self._ids(views, "live|*", days=(None, day(3, 1))) == (["i-month"], 1, at(5))
        # a week and a range that do not meet: the windows that meet both
        assert await self._ids(views, "live|*", days=(day(3, 9), day(3, 8))) == (
            ["i-month", "i-long"],
            2,
            at(5),
        )

    async def test_a_day_of_many_groups_is_paged_in_id_order(self, views: ViewStore) -> None:
        """A day listed in 600 groups (two parts each: over a thousand sets, merged in
        chunks) still pages by id, byte by byte (upper case before lower)."""
        idents = [f"i-{c}{n:03d}" for n, c in zip(range(600), "aB" * 300, strict=True)]
        await views.write(
            INCIDENTS,
            {("incident", i): listed_row(i, 7, adm1=f"Place {n}") for n, i in enumerate(idents)},
            expected=None,
            checkpoint=at(5),
        )
        ordered = sorted(idents, key=str.encode)
        assert await self._ids(views, "live|*", limit=1000) == (ordered, 600, at(5))
        assert await self._ids(views, "live|*", first=140, limit=20) == (
            ordered[140:160],
            600,
            at(5),
        )

    async def test_a_changed_status_moves_the_row(self, views: ViewStore) -> None:
        """A row written again as retracted leaves the live group for the retracted one."""
        await self._written(views)
        moved = listed_row("i-b", 8, status="retracted", version=2)
        await views.write(INCIDENTS, {("incident", "i-b"): moved}, expected=at(5), checkpoint=at(6))
        assert await self._ids(views, "live|*") == (["i-a", "i-c"], 2, at(6))
        assert await self._ids(views, "retracted|*") == (["i-d", "i-b"], 2, at(6))
        found = await views.listing(INCIDENTS, "incident", ["retracted|syr|*"], first=1, limit=1)
        assert found.docs == [moved]

    async def test_an_unwritten_view_lists_nothing(self, views: ViewStore) -> None:
        """No checkpoint, no document, a total of 0."""
        assert await self._ids(views, "live|*") == ([], 0, None)

    async def test_a_kind_without_an_index_is_refused(self, views: ViewStore) -> None:
        """Only a kind the projection keeps in a listing index is listed."""
        with pytest.raises(UnknownKindError):
            await views.listing(INCIDENTS, "source", ["live|*"], first=0, limit=1)


class TestReadDocuments:
    """A few documents read with the checkpoint and generation, without their kinds."""

    async def test_documents_come_with_checkpoint_and_generation(self, views: ViewStore) -> None:
        """Found documents, None for the others, the checkpoint now and generation 0."""
        await views.write(
            INCIDENTS, {("incident", "i-1"): incident("i-1")}, expected=None, checkpoint=at(5)
        )
        found = await views.read_documents(INCIDENTS, [("incident", "i-1"), ("incident", "i-2")])
        assert found == (
            {("incident", "i-1"): incident("i-1"), ("incident", "i-2"): None},
            at(5),
            0,
        )
