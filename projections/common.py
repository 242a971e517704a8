"""Small helpers the projections share: typed document access and the state a query reads.

A query function reads either the live :class:`~projections.docs.Docs` of a fold or the
documents the read side loaded from a stored view, kind by kind; :data:`Readable` is both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias, TypeVar

import msgspec

from .docs import Docs
from .errors import InconsistentStateError

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
