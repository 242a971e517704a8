"""The state every projection folds into: documents grouped by kind, changes tracked.

A projection's state is a :class:`Docs`: documents (msgspec Structs) under ``(kind, id)``,
e.g. ``("incident", "syr-1")``. ``apply`` owns the state it is given: it may update it in
place and returns it, so a fold over a million events does not copy a million times. The
runner takes the changed keys after each batch and writes exactly those, with its
checkpoint, in one atomic step; the read side loads one kind at a time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final, Generic, Self, TypeVar

import msgspec


class Doc(msgspec.Struct, frozen=True, gc=False):
    """Base of every document and answer of the projections: frozen, and not tracked by the
    cyclic garbage collector (a frozen struct built from its fields cannot be part of a
    cycle; a view of a million tracked documents made every full collection walk them all,
    about a third of a catch-up's time, BENCHMARKS.md).
    """

    def settled(self) -> Self:
        """The document just decoded from storage, made ready to be kept: itself, unless its
        type swaps what a decoder made fresh for shared objects (:data:`VALUES`; a victims
        cell's sums, :meth:`projections.victims_cells.Cell.settled`). The views' decoder
        calls it; a fold shares the values of the documents it builds as it builds them."""
        return self


VALUES: dict[Any, Any] = {}
"""One object per distinct value that many documents repeat: texts (a country, a feed, an
event type), dates, tuples, frozen structs (a pure memo, emptied at :data:`MAX_VALUES`).

A decoder, an event's as a stored document's, makes a fresh object of each value it reads,
so a process holding a view kept a copy of ``"Explosions/Remote violence"`` per incident:
about half of what an incident's documents cost its memory. The folds put each such value
of a report here (``VALUES.setdefault(v, v)``, inline: the call of a helper would cost the
fold more), and a document read from storage swaps its own for these
(:meth:`Doc.settled`, :func:`share_fields`). Never holds a value that tells anything the
documents do not (they hold the same objects)."""
MAX_VALUES: Final = 200_000
""":data:`VALUES` is emptied when it reaches this many values (the few thousand that repeat
come back at once)."""


def keep_values_bounded() -> None:
    """Empty :data:`VALUES` once it holds :data:`MAX_VALUES` (a fold calls it per report)."""
    if len(VALUES) >= MAX_VALUES:
        VALUES.clear()


def share_fields(doc: msgspec.Struct, names: Iterable[str]) -> None:
    """Make each of ``doc``'s fields ``names`` hold the :data:`VALUES` object of its value,
    in place (a frozen document read from storage, not yet shared with anything)."""
    keep_values_bounded()
    share = VALUES.setdefault
    for name in names:
        value = getattr(doc, name)
        if value is not None:
            one = share(value, value)
            if one is not value:
                msgspec.structs.force_setattr(doc, name, one)


D = TypeVar("D", bound=msgspec.Struct)

Key = tuple[str, str]
"""``(kind, id)`` of a document."""


MAX_BEFORE: Final = 1023
"""The most days before its own a listed document may stand for (:attr:`Listed.before`)."""


class Listed(msgspec.Struct, frozen=True, kw_only=True):
    """Where a document stands in its kind's listing index (:attr:`Projection.listed`): in
    ``group`` (``""``: in none) under ``day``, and in none of ``others``.

    It stands for the days from ``day - before`` to ``day + after``: a listing of a range
    of days keeps it when that span meets the range."""

    group: str
    day: int
    """The day (proleptic Gregorian ordinal) it lists under: the newest day first."""
    others: tuple[str, ...]
    """The groups it may have been in before and is not in now."""
    before: int = 0
    """The days before ``day`` it also stands for (0 to :data:`MAX_BEFORE`)."""
    after: int = 0
    """The days after ``day`` it also stands for (0 or more)."""

    def meets(self, low: int | None, high: int | None) -> bool:
        """Whether its span meets the days from ``low`` to ``high`` (``None``: unbounded)."""
        return (low is None or self.day + self.after >= low) and (
            high is None or self.day - self.before <= high
        )


class Docs(Generic[D]):
    """Documents by kind and id, remembering which changed since :meth:`take_changes`."""

    __slots__ = ("_changed", "_kinds")

    def __init__(self, kinds: Mapping[str, Mapping[str, D]] | None = None) -> None:
        self._kinds: dict[str, dict[str, D]] = {k: dict(v) for k, v in (kinds or {}).items()}
        self._changed: set[Key] = set()

    def get(self, kind: str, ident: str) -> D | None:
        """The document ``ident`` of ``kind``, or ``None``."""
        docs = self._kinds.get(kind)
        return None if docs is None else docs.get(ident)

    def put(self, kind: str, ident: str, doc: D) -> None:
        """Store ``doc`` as ``ident`` of ``kind``."""
        docs = self._kinds.get(kind)
        if docs is None:
            docs = self._kinds[kind] = {}
        docs[ident] = doc
        self._changed.add((kind, ident))

    def delete(self, kind: str, ident: str) -> None:
        """Remove the document ``ident`` of ``kind``, if there is one."""
        docs = self._kinds.get(kind)
        if docs is not None and docs.pop(ident, None) is not None:
            self._changed.add((kind, ident))

    def kind(self, kind: str) -> Mapping[str, D]:
        """Every document of one kind, by id (read-only view)."""
        return self._kinds.get(kind, {})

    def kinds(self) -> Mapping[str, Mapping[str, D]]:
        """Every kind with its documents (read-only view)."""
        return self._kinds

    def ids(self, kind: str) -> list[str]:
        """The ids of one kind's documents, in order (a state read lazily decodes none)."""
        return list(self._kinds.get(kind, ()))

    def patch(
        self, kind: str, put: Mapping[str, D], deleted: Iterable[str], tail: Mapping[str, D]
    ) -> None:
        """Change ``kind`` without recording the changes (a stored delta read back): each of
        ``put`` replaced in place (or added), each of ``deleted`` removed, then each of
        ``tail`` removed and put at the end, in order."""
        docs = self._kinds.get(kind)
        if docs is None:
            docs = self._kinds[kind] = {}
        docs.update(put)
        for ident in deleted:
            docs.pop(ident, None)
        for ident, doc in tail.items():
            docs.pop(ident, None)
            docs[ident] = doc

    def forget(self, kinds: Iterable[str]) -> None:
        """Drop every document of ``kinds`` from memory, recording no change: they are
        stored, and a runner reads back those it needs (:meth:`recall`)."""
        for kind in kinds:
            self._kinds.pop(kind, None)

    def count(self, kinds: Iterable[str]) -> int:
        """How many documents of ``kinds`` are held."""
        return sum(len(self._kinds.get(kind, ())) for kind in kinds)

    def recall(self, found: Mapping[Key, D | None]) -> None:
        """Hold each document of ``found`` read back from storage (``None``: not stored),
        recording no change."""
        for (kind, ident), doc in found.items():
            if doc is not None:
                docs = self._kinds.get(kind)
                if docs is None:
                    docs = self._kinds[kind] = {}
                docs[ident] = doc

    def take_changed_keys(self) -> set[Key]:
        """The keys changed since the last take, without their documents (cheaper than
        :meth:`take_changes` when only the keys matter)."""
        changed, self._changed = self._changed, set()
        return changed

    def take_changes(self) -> dict[Key, D | None]:
        """The keys changed since the last call, each with its document or ``None`` if deleted."""
        kinds = self._kinds
        changes = {key: kinds[key[0]].get(key[1]) for key in self._changed}
        self._changed = set()
        return changes

    def __len__(self) -> int:
        return sum(len(docs) for docs in self._kinds.values())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Docs):
            return NotImplemented
        mine = {k: v for k, v in self._kinds.items() if v}
        theirs = {k: v for k, v in other._kinds.items() if v}
        return mine == theirs

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Docs({ {k: len(v) for k, v in self._kinds.items()} })"


class JournalDocs(Docs[D]):
    """:class:`Docs` that also keep, for the step under way, each changed document's value
    before it (``None``: there was none), so a step that fails half-way can be undone.

    A long fold (a rebuild) marks each step's end with :meth:`step_done` (cheap: nothing to
    clear while a step changes nothing) and undoes a failed one with :meth:`undo`; the
    changes since :meth:`~Docs.take_changes` accumulate over all the steps, so they are taken
    (and encoded) once per flush rather than once per step.
    """

    __slots__ = ("_before",)

    def __init__(self, kinds: Mapping[str, Mapping[str, D]] | None = None) -> None:
        super().__init__(kinds)
        self._before: dict[Key, D | None] = {}

    def put(self, kind: str, ident: str, doc: D) -> None:
        """Store ``doc`` as ``ident`` of ``kind``, remembering the value it replaces."""
        docs = self._kinds.get(kind)
        if docs is None:
            docs = self._kinds[kind] = {}
        key = (kind, ident)
        before = self._before
        if key not in before:
            before[key] = docs.get(ident)
        docs[ident] = doc
        self._changed.add(key)

    def delete(self, kind: str, ident: str) -> None:
        """Remove the document ``ident`` of ``kind``, remembering it."""
        docs = self._kinds.get(kind)
        if docs is None:
            return
        old = docs.pop(ident, None)
        if old is not None:
            key = (kind, ident)
            self._before.setdefault(key, old)
            self._changed.add(key)

    def step_done(self) -> None:
        """The step under way succeeded: forget the values before it."""
        if self._before:
            self._before.clear()

    def undo(self) -> None:
        """Put back every document the step under way changed, as it was before the step.

        The keys stay among the changes: a flush writes them as they are now (as stored, or
        not there), which is the same as not writing them.
        """
        kinds = self._kinds
        for (kind, ident), doc in self._before.items():
            if doc is None:
                kinds[kind].pop(ident, None)
            else:
                kinds[kind][ident] = doc
        self._before.clear()
