"""Small helpers the projections share: typed document access and the state a query reads.

A query function reads either the live :class:`~projections.docs.Docs` of a fold or the
documents the read side loaded from a stored view, kind by kind; :data:`Readable` is both.
The merge helpers gather the documents of several partition states by id (:func:`joined`,
:func:`union`), for the modules' ``merge`` functions.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TypeAlias, TypeVar

import msgspec

from .docs import Docs
from .errors import InconsistentStateError, MergeConflictError

T = TypeVar("T", bound=msgspec.Struct)

State: TypeAlias = Docs[msgspec.Struct]
"""The state of every projection: documents of several Struct types, by kind."""

Readable: TypeAlias = Docs[msgspec.Struct] | Mapping[str, Mapping[str, msgspec.Struct]]
"""What a query reads: a fold's state, or stored documents by kind and id."""


def kinds_of(state: Readable) -> Mapping[str, Mapping[str, msgspec.Struct]]:
    """Documents by kind and id, whichever form ``state`` comes in."""
    return state.kinds() if isinstance(state, Docs) else state


def docs_of(state: Readable, kind: str, cls: type[T]) -> Mapping[str, T]:
    """Every document of ``kind``, checked to be ``cls`` instances (the read side's contract)."""
    docs = kinds_of(state).get(kind, {})
    for ident, doc in docs.items():
        if not isinstance(doc, cls):
            raise InconsistentStateError(f"{kind} {ident!r} is a {type(doc).__name__}")
    return docs  # type: ignore[return-value]  # every value was just checked


def get_doc(state: Readable, kind: str, ident: str, cls: type[T]) -> T | None:
    """The document ``ident`` of ``kind`` as a ``cls``, or ``None`` when there is none."""
    doc = state.get(kind, ident) if isinstance(state, Docs) else state.get(kind, {}).get(ident)
    if doc is None:
        return None
    if not isinstance(doc, cls):
        raise InconsistentStateError(f"{kind} {ident!r} is a {type(doc).__name__}")
    return doc


# --- merging the states of partitions -------------------------------------------------------


def joined(
    parts: Sequence[Readable], kind: str, cls: type[T], join: Callable[[str, Sequence[T]], T]
) -> dict[str, T]:
    """The documents of ``kind`` over every part, by id: a document only one part holds as it
    is, the documents several parts hold under one id combined by ``join(ident, group)``
    (``group`` in the order of ``parts``). Nothing of ``parts`` is changed.
    """
    single: dict[str, T] = {}
    shared: dict[str, list[T]] = {}
    for part in parts:
        docs = docs_of(part, kind, cls)
        for ident in single.keys() & docs.keys():
            group = shared.get(ident)
            if group is None:
                shared[ident] = [single[ident], docs[ident]]
            else:
                group.append(docs[ident])
        single.update(docs)
    for ident, group in shared.items():
        single[ident] = join(ident, group)
    return single


def union(parts: Sequence[Readable], kind: str, cls: type[T]) -> dict[str, T]:
    """The documents of ``kind`` over every part, which must hold distinct ids.

    For kinds built from one entity's own events only; :class:`MergeConflictError` when two
    parts hold the same id.
    """
    found: dict[str, T] = {}
    for part in parts:
        docs = docs_of(part, kind, cls)
        both = found.keys() & docs.keys()
        if both:
            raise MergeConflictError(f"{kind} {min(both)!r} is held by more than one part")
        found.update(docs)
    return found


def merge_disjoint(parts: Sequence[Readable]) -> State:
    """The merge of a projection whose every document belongs to one partition: the union
    of the parts' documents, kind by kind (:class:`MergeConflictError` on a shared id)."""
    kinds = sorted({kind for part in parts for kind, docs in kinds_of(part).items() if docs})
    return Docs({kind: union(parts, kind, msgspec.Struct) for kind in kinds})
