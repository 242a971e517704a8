"""The read models: pure folds of the event log into documents.

Each projection module names itself (``NAME``, ``VERSION``), lists its document types by
kind (``DOC_TYPES``) and folds with ``initial()`` and ``apply(state, recorded)``; its query
functions read a fold's :class:`Docs` or the stored documents by kind. Wherever incidents
are selected, one :class:`~projections.filters.VictimsFilter` says which; a country's
stance follows :mod:`projections.stance_rule`. Folds never touch Redis, HTTP, the clock or
randomness: the runner in ``services`` does the I/O.

The log may be split into partitions (one entity's events all in one partition, in order;
no order between partitions). Each partition is folded on its own, and ``merge(parts)``
turns the partitions' states into the state of the whole log, which the query functions
read: for events recorded at increasing positions across partitions, merging the folds of
the partitions equals folding the whole log in order.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Final, Protocol

import msgspec

from events import Event, Recorded

from . import alignment, community_victims, country_stance, filters, incidents, stance_rule
from .common import Readable, State, merge_disjoint
from .docs import Doc, Docs, Key, Listed
from .errors import (
    InconsistentStateError,
    InvalidQueryError,
    MergeConflictError,
    ProjectionError,
)
from .filters import VictimsFilter


def no_own_keys(event: Event) -> tuple[Key, ...]:
    """The :attr:`Projection.own_keys` of a projection without own kinds: none."""
    return ()


class Projection(msgspec.Struct, frozen=True, kw_only=True):
    """A projection as the runner and the read side see it."""

    name: str
    version: int
    doc_types: Mapping[str, type[msgspec.Struct]]
    initial: Callable[[], State]
    apply: Callable[[State, Recorded], State]
    merge: Callable[[Sequence[Readable]], State] = merge_disjoint
    """The state of the whole log from the states of its partitions (each a fold of one
    partition's events): order of the parts free, parts left unchanged, no change pending on
    the result. The default suits a projection whose every document belongs to one entity."""
    reads: frozenset[type[Event]] | None = None
    """The event types ``apply`` reads, by exact type (``None``: every type); it must leave
    the state as it is for any other, so a fold may skip those (rebuilds do)."""
    own_kinds: frozenset[str] = frozenset()
    """The kinds whose documents each belong to one incident (most of a view, one or more
    documents per incident): ``apply`` reads one of them only for an event that names it
    (:attr:`own_keys`), and never deletes one. So a runner need not hold them all: it may
    drop them from memory once they are written, and read back from the stored view, before
    each event, the ones :attr:`own_keys` names (the projector does, :mod:`projections`'
    property tests check it)."""
    own_keys: Callable[[Event], Iterable[Key]] = no_own_keys
    """The keys of the documents of :attr:`own_kinds` that applying the event may read."""
    listed: Mapping[str, Callable[[msgspec.Struct], Listed]] = msgspec.field(default_factory=dict)
    """Per kind kept in a listing index, where a document of it stands there: a store keeps,
    per group and day, the ids of the kind's documents listed there, so a reader pages them
    newest day first (then by id), and keeps those whose span of days meets a range,
    without reading the whole kind. A document's place depends on the document alone, and
    its day never changes once it is listed."""

    @property
    def read_types(self) -> frozenset[str] | None:
        """The permanent tags of :attr:`reads`, as a log entry's ``type`` field names them
        (``None``: every type): a fold may leave entries of other types undecoded."""
        if self.reads is None:
            return None
        return frozenset(str(t.__struct_config__.tag) for t in self.reads)

    @property
    def view(self) -> str:
        """The name of its stored view: ``<name>:v<version>``."""
        return f"{self.name}:v{self.version}"


class _Module(Protocol):
    """What a projection module exposes."""

    @property
    def NAME(self) -> str: ...  # noqa: N802  # module constants
    @property
    def VERSION(self) -> int: ...  # noqa: N802
    @property
    def DOC_TYPES(self) -> Mapping[str, type[msgspec.Struct]]: ...  # noqa: N802
    def initial(self) -> State: ...
    def apply(self, state: State, recorded: Recorded, /) -> State: ...
    def merge(self, parts: Sequence[Readable], /) -> State: ...
    @property
    def READS(self) -> frozenset[type[Event]]: ...  # noqa: N802


def _projection(module: _Module) -> Projection:
    return Projection(
        name=module.NAME,
        version=module.VERSION,
        doc_types=module.DOC_TYPES,
        initial=module.initial,
        apply=module.apply,
        merge=module.merge,
        reads=module.READS,
        own_kinds=getattr(module, "OWN_KINDS", frozenset()),
        own_keys=getattr(module, "own_keys", no_own_keys),
        listed=getattr(module, "LISTED_KINDS", {}),
    )


PROJECTIONS: Final[dict[str, Projection]] = {
    p.name: p for p in map(_projection, (community_victims, country_stance, alignment, incidents))
}
"""Every projection, by name."""


def fold(projection: Projection, recorded: Iterable[Recorded]) -> State:
    """Fold events, in the order given, into a fresh state of ``projection``."""
    state = projection.initial()
    for one in recorded:
        state = projection.apply(state, one)
    return state


__all__ = [
    "PROJECTIONS",
    "Doc",
    "Docs",
    "InconsistentStateError",
    "InvalidQueryError",
    "Listed",
    "MergeConflictError",
    "Projection",
    "ProjectionError",
    "Readable",
    "State",
    "VictimsFilter",
    "alignment",
    "community_victims",
    "country_stance",
    "filters",
    "fold",
    "incidents",
    "stance_rule",
]
