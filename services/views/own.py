"""A view's own kinds held bounded by the process that writes it.

Most of a view is one or more documents per incident (:attr:`~projections.Projection.
own_kinds`: community-victims' contributions, the incidents' rows and cited sources), and an
event reads only those of the incidents it names (:attr:`~projections.Projection.own_keys`).
So the view's writer (a projector worker, a rebuild) need not hold them all: once a commit
has written them and it holds more than ``limit`` of them, it drops them from memory
(:meth:`OwnDocs.trim`), and before applying entries it reads back, in one pipelined call,
those the entries name that it does not hold (:meth:`OwnDocs.recall`). A writer then holds
its other kinds (the aggregates, and country-stance's small per-incident dates, from which
its subjects' dates are recomputed) plus at most ``limit`` own documents and a batch's. It
is loaded without them too (:meth:`~services.views.store.ViewStore.load_paged` with
``without``).

Only the view's writer reads back, from the generation it writes, so what it reads is what
it committed last; own documents are never deleted, so one it does not hold is either stored
or not yet made. While it holds every own document stored (a fresh view, nothing dropped
yet), nothing is read back. Nor is anything for a report: the store appends a report only as
its incident's first event, and a merge only into a live incident (``create`` and ``merge``,
:mod:`services.store.rules`), so before its report no event has made a document of that
incident (the as-of folds rely on the same rule, :func:`services.views.asof.fold_log`). Most
events of a log are reports: a rebuild reads back for the others only.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

import msgspec

from events import IncidentReported
from projections import Projection
from projections.docs import Docs, Key
from services.store.log import LogEntry
from services.views.generations import Generation
from services.views.store import ViewStore

__all__ = ["RESIDENT", "OwnDocs"]

RESIDENT: Final = 50_000
"""Own documents a view's writer holds at most after a commit (about 70 MB of
community-victims' contributions); above it, it drops them all."""


class OwnDocs:
    """The own documents of one view's writer: read back before entries, dropped after
    commits (module docstring)."""

    def __init__(self, projection: Projection, views: ViewStore, *, limit: int = RESIDENT) -> None:
        self.projection = projection
        self.views = views
        self.limit = limit
        self.complete = True
        """Whether the state holds every own document stored (nothing to read back)."""

    def loaded(self, *, whole: bool) -> None:
        """A state was just loaded: ``whole`` if it holds every own document the view has (a
        fresh view, or one loaded with them)."""
        self.complete = whole or not self.projection.own_kinds

    async def recall(
        self,
        docs: Docs[msgspec.Struct],
        entries: Iterable[LogEntry],
        *,
        generation: Generation,
        partition: int,
    ) -> None:
        """Hold the stored own documents ``entries`` name that ``docs`` does not."""
        if self.complete:
            return
        projection = self.projection
        own_keys, reads = projection.own_keys, projection.reads
        wanted: dict[Key, None] = {}
        for _, recorded, _ in entries:
            if recorded is None:
                continue
            event = recorded.event
            if type(event) is IncidentReported or (reads is not None and type(event) not in reads):
                continue
            for key in own_keys(event):
                if key not in wanted and docs.get(*key) is None:
                    wanted[key] = None
        if wanted:
            found = await self.views.documents(
                projection, list(wanted), generation=generation, partition=partition
            )
            docs.recall(found)

    def trim(self, docs: Docs[msgspec.Struct]) -> None:
        """After a commit: drop the own documents once more than ``limit`` are held."""
        own = self.projection.own_kinds
        if own and docs.count(own) > self.limit:
            docs.forget(own)
            self.complete = False
