"""An incident's history kept out of its document, as the view store holds it (in memory and on
Redis): the document does not grow with the history, a commit writes the new entry and the
document, and a page of the history is read from its own entries."""

from __future__ import annotations

from collections.abc import Iterable

from events import Event, Position
from projections import PROJECTIONS, Projection, Readable, State
from projections.incidents import HISTORY, INCIDENT, document, entries, get, history_key
from services.views.store import ViewStore
from tests.support.builders import COAST, Log, folded

INCIDENTS: Projection = PROJECTIONS["incidents"]


class Committed:
    """The incidents view committed through a view store one event at a time, as a projector
    commits: the changed documents and the checkpoint in one write."""

    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self.state: State = INCIDENTS.initial()
        self.log = Log()
        self.checkpoint: Position | None = None
        self.written: list[set[tuple[str, str]]] = []
        """The keys each commit wrote."""

    async def commit(self, events: Iterable[Event]) -> None:
        for event in events:
            recorded = self.log.record(event)
            self.state = INCIDENTS.apply(self.state, recorded)
            changes = self.state.take_changes()
            await self.views.write(
                INCIDENTS, changes, expected=self.checkpoint, checkpoint=recorded.position
            )
            self.checkpoint = recorded.position
            self.written.append(set(changes))

    async def stored(self, kind: str, ident: str) -> bytes:
        """The JSON the view store holds for one document."""
        raw, _ = await self.views.raw(INCIDENTS)
        return raw[kind][ident]


def revisions(count: int) -> list[Event]:
    """``count`` revisions of incident i-1, each to the same toll, on the same sources."""
    return [COAST.revised("i-1", 14) for _ in range(count)]


class TestTheIncidentDocumentDoesNotGrowWithItsHistory:
    async def test_its_stored_size_stays_the_same_from_20_to_400_revisions(
        self, views: ViewStore
    ) -> None:
        """Given an incident reported and revised 20 times, when it is revised 380 times
        more, then its stored document is as long as before but for the digits of its
        version and history count (one each), while the history holds 401 entries."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(20)])
        few = await view.stored(INCIDENT, "i-1")
        await view.commit(revisions(380))
        many = await view.stored(INCIDENT, "i-1")
        entry = await view.stored(HISTORY, history_key("i-1", 400))
        assert len(many) - len(few) <= 2 < len(entry)
        raw, _ = await views.raw(INCIDENTS)
        assert len(raw[HISTORY]) == 401

    async def test_a_revision_writes_its_entry_and_the_incident_document_only(
        self, views: ViewStore
    ) -> None:
        """Given an incident with a long history, when it is revised once more, then that
        commit writes two documents: the incident's and its new history entry."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(60)])
        await view.commit(revisions(1))
        assert view.written[-1] == {(INCIDENT, "i-1"), (HISTORY, history_key("i-1", 61))}

    async def test_the_stored_history_loads_back_whole_and_in_order(self, views: ViewStore) -> None:
        """Given a report and 30 revisions committed one by one, when the view is loaded
        back, then the incident has its 31 entries in log order, as the fold holds them."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(30)])
        loaded, _ = await views.load(INCIDENTS)
        found = get(loaded, "i-1")
        assert found is not None
        assert found == get(view.state, "i-1")
        assert [e.type for e in found.history] == [
            "incident.reported",
            *["incident.casualties_revised"] * 30,
        ]


class TestAPageReadsOnlyItsEntries:
    def test_a_page_is_read_from_its_own_entries_alone(self) -> None:
        """Given documents holding the incident and only its entries 10 to 19 (no other
        entry), when that page is asked for, then it is answered from them, in order."""
        state = folded("incidents", COAST.reported("i-1", 10), *revisions(40))
        whole = get(state, "i-1")
        doc = document(state, "i-1")
        assert whole is not None
        assert doc is not None
        assert doc.history_total == 41
        page_only: Readable = {
            INCIDENT: {"i-1": doc},
            HISTORY: {history_key("i-1", n): whole.history[n] for n in range(10, 20)},
        }
        assert entries(page_only, doc, 10, 20) == whole.history[10:20]
