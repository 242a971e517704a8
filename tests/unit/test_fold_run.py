"""A rebuild's fold in memory: a failed entry leaves no trace, the changes of many entries
are taken once, and entries of types a projection does not read are not handed to it."""

from __future__ import annotations

import msgspec

from events import IncidentReported, Position, Recorded, recorded_at_of
from projections import Projection, State
from projections.docs import Docs
from services.store.log import LogEntry
from services.views.fold import FoldRun
from tests.support import builders as f


class Tally(msgspec.Struct, frozen=True):
    """How many reports an incident id had."""

    n: int


def _apply(state: State, recorded: Recorded) -> State:
    """Counts reports per id and a total; an id starting with ``bad`` raises after both puts
    and after deleting ``gone``."""
    event = recorded.event
    if isinstance(event, IncidentReported):
        before = state.get("tally", event.incident_id)
        state.put("tally", event.incident_id, Tally(before.n + 1 if before else 1))  # type: ignore[attr-defined]
        total = state.get("tally", "total")
        state.put("tally", "total", Tally(total.n + 1 if total else 1))  # type: ignore[attr-defined]
        state.delete("tally", "gone")
        if event.incident_id.startswith("bad"):
            raise ValueError(event.incident_id)
    return state


TALLY = Projection(
    name="test-tally", version=1, doc_types={"tally": Tally}, initial=Docs, apply=_apply
)


def _entries(*ids: str) -> list[LogEntry]:
    found: list[LogEntry] = []
    for n, ident in enumerate(ids, start=1):
        position = Position(f"{n}-0")
        recorded = Recorded(position, recorded_at_of(position), f.reported(ident, 1))
        found.append((position, recorded, None))
    return found


class TestFoldRun:
    """What a rebuild's fold keeps and hands out."""

    def test_a_failed_entry_is_undone_and_listed(self) -> None:
        """An apply that raised after changing three documents leaves them as before it."""
        start: Docs[msgspec.Struct] = Docs({"tally": {"gone": Tally(9), "a": Tally(1)}})
        run = FoldRun(TALLY, start, fresh=False)
        run.apply_all(_entries("a", "bad-1"))
        assert dict(run.docs.kind("tally")) == {"a": Tally(2), "total": Tally(1)}
        assert [(str(p), type(e).__name__) for p, e in run.failures] == [("2-0", "ValueError")]
        assert run.applied == 1

    def test_changes_accumulate_until_taken(self) -> None:
        """The documents changed by several entries are handed out once, as they are now."""
        run = FoldRun(TALLY, Docs(), fresh=False)
        run.apply_all(_entries("a", "b", "a", "bad-2"))
        taken = run.take()
        assert {k: v for k, v in taken.items() if v is not None} == {
            ("tally", "a"): Tally(2),
            ("tally", "b"): Tally(1),
            ("tally", "total"): Tally(3),
        }
        assert run.take() == {}

    def test_a_fresh_fold_hands_out_its_initial_documents_first(self) -> None:
        """A fresh view's initial documents come with the first take, later values winning."""
        run = FoldRun(TALLY, Docs({"tally": {"total": Tally(0), "z": Tally(5)}}), fresh=True)
        run.apply_all(_entries("a"))
        assert run.take() == {
            ("tally", "total"): Tally(1),
            ("tally", "z"): Tally(5),
            ("tally", "a"): Tally(1),
        }

    def test_types_a_projection_does_not_read_are_not_applied(self) -> None:
        """With ``reads`` naming no incident event, reports leave the state as it was."""
        run = FoldRun(msgspec.structs.replace(TALLY, reads=frozenset()), Docs(), fresh=False)
        run.apply_all(_entries("a", "bad-3"))
        assert (run.take(), run.failures, run.applied) == ({}, [], 0)
