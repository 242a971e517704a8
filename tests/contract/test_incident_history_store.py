"""An incident's history kept out of the view, as the view store holds it (in memory and on
Redis): the document does not grow with the history, a commit writes the incident's document
alone, and no entry of the history is stored (the log holds them)."""

from __future__ import annotations

from collections.abc import Iterable

from events import Event, Position, Recorded
from projections import PROJECTIONS, Projection, State
from projections.incidents import INCIDENT, document, history_of
from services.views.store import ViewStore
from tests.support.builders import COAST, Log

INCIDENTS: Projection = PROJECTIONS["incidents"]


class Committed:
    """The incidents view committed through a view store one event at a time, as a projector
    commits: the changed documents and the checkpoint in one write."""

    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self.state: State = INCIDENTS.initial()
        self.log = Log()
        self.recorded: list[Recorded] = []
        self.checkpoint: Position | None = None
        self.written: list[set[tuple[str, str]]] = []
        """The keys each commit wrote."""

    async def commit(self, events: Iterable[Event]) -> None:
        for event in events:
            recorded = self.log.record(event)
            self.recorded.append(recorded)
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
        more, then its stored document is as long as before but for the width of its
        version and history count (MessagePack: 21 takes one byte, 401 three), and the view
        stores no other kind of document (no history entry) while the log's history has 401
        entries."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(20)])
        few = await view.stored(INCIDENT, "i-1")
        await view.commit(revisions(380))
        many = await view.stored(INCIDENT, "i-1")
        assert len(many) - len(few) <= 4
        raw, _ = await views.raw(INCIDENTS)
        assert {kind for kind, docs in raw.items() if docs} == {INCIDENT}
        assert len(history_of("i-1", view.recorded)) == 401

    async def test_a_revision_writes_the_incident_document_only(self, views: ViewStore) -> None:
        """Given an incident with a long history, when it is revised once more, then that
        commit writes one document: the incident's."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(60)])
        await view.commit(revisions(1))
        assert view.written[-1] == {(INCIDENT, "i-1")}

    async def test_the_stored_document_loads_back_counting_the_history_of_the_log(
        self, views: ViewStore
    ) -> None:
        """Given a report and 30 revisions committed one by one, when the view is loaded
        back, then the incident's document is the fold's and counts the 31 entries its
        events in the log make, in log order."""
        view = Committed(views)
        await view.commit([COAST.reported("i-1", 10), *revisions(30)])
        loaded, _ = await views.load(INCIDENTS)
        found = document(loaded, "i-1")
        assert found is not None
        assert found == document(view.state, "i-1")
        history = history_of("i-1", view.recorded)
        assert found.history_total == len(history)
        assert [e.type for e in history] == [
            "incident.reported",
            *["incident.casualties_revised"] * 30,
        ]
