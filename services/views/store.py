"""The view store: where a projection's documents and checkpoint are kept, behind one Protocol.

A stored view is a projection's documents by kind and id, and its *checkpoint*: the last
log position the documents include. Whatever a reader loads in one read is the fold of the
log up to that checkpoint, never half a commit. Bumping a projection's version gives it a
view of its own, rebuilt from the start of the log while the old one keeps serving; a view
may also have several *generations* (:mod:`services.views.generations`), one of them live.

Two implementations pass one contract suite (``tests/contract/test_view_store.py``):
:class:`services.views.redis.RedisViewStore`, the service's, and
:class:`services.views.memory.InMemoryViewStore`, for tests that need no Redis. The
projectors commit through scripts of their own that also hold their lease and move their
consumer group in the same step (:mod:`services.projector.commit`); :meth:`ViewStore.write`
is the plain commit, checked against the writer's checkpoint and generation alike.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import msgspec

from events import Position
from projections import Projection, State
from projections.docs import Key
from services.views.generations import Generation
from services.views.listing import Days, Listing

__all__ = ["KindsRead", "OnPage", "ViewStore"]

OnPage = Callable[[], Awaitable[None]]
"""Awaited after each page of a paged load (the lease holder renews its lease there)."""


class KindsRead(msgspec.Struct, frozen=True, kw_only=True):
    """What :meth:`ViewStore.read_kinds` found: documents of some kinds, whole or changed."""

    checkpoint: Position | None
    """The view's checkpoint (``None``: never written; nothing else is then set)."""
    seen: str = "0-0"
    """The last entry of the view's changes stream these documents include."""
    generation: Generation = 0
    """The generation read."""
    whole: list[dict[Any, bytes | str]] | None = None
    """Per kind asked for, every stored document (id → its bytes); ``None`` when ``changed``
    is set."""
    changed: list[dict[str, bytes | None]] | None = None
    """Per kind asked for, the documents changed since the held state (``None``: deleted)."""


@runtime_checkable
class ViewStore(Protocol):
    """The stored views of one deployment (one key prefix, its log partitions)."""

    @property
    def partitions(self) -> int:
        """How many log partitions there are: a view is kept per partition."""
        ...

    async def generation(self, projection: Projection, *, partition: int = 0) -> int:
        """The generation of the view that readers and the projector use now."""
        ...

    async def checkpoint(
        self, projection: Projection, *, generation: Generation | None = None
    ) -> Position | None:
        """The view's checkpoint (``None``: none yet); on several partitions every partition
        view's checkpoint, joined (:func:`services.store.positions.joined`)."""
        ...

    async def load(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[State, Position | None]:
        """Every document of the view (the active generation unless one is named) and its
        checkpoint, read as one atomic snapshot; a view never written answers the
        projection's initial state and ``None``."""
        ...

    async def load_paged(
        self,
        projection: Projection,
        *,
        generation: Generation,
        partition: int = 0,
        on_page: OnPage | None = None,
        without: Collection[str] = (),
    ) -> tuple[State, Position | None]:
        """Like :meth:`load`, page by page, for the view's one writer (the lease holder),
        leaving the kinds ``without`` unread (:mod:`services.views.own`):
        :class:`~services.views.errors.ViewChangedError` when the checkpoint moved meanwhile."""
        ...

    async def read_kinds(
        self,
        projection: Projection,
        kinds: Sequence[str],
        *,
        held: tuple[Position, str, Generation] | None = None,
        partition: int = 0,
    ) -> KindsRead:
        """The stored documents of ``kinds`` and the checkpoint, as one atomic snapshot.

        A reader that holds the documents at ``held`` (checkpoint, last change seen,
        generation) gets only the documents changed since, when the store can tell; else
        the kinds whole.
        """
        ...

    async def raw(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[dict[str, dict[str, bytes]], Position | None]:
        """The view's documents as stored (kind → id → stored bytes) and its checkpoint, atomically;
        for tools that must see a document even when it no longer decodes."""
        ...

    async def documents(
        self,
        projection: Projection,
        keys: Sequence[Key],
        *,
        generation: Generation,
        partition: int = 0,
    ) -> dict[Key, msgspec.Struct | None]:
        """The stored documents of ``keys`` (``None``: not in the view)."""
        ...

    async def read_documents(
        self, projection: Projection, keys: Sequence[Key], *, partition: int = 0
    ) -> tuple[dict[Key, msgspec.Struct | None], Position | None, Generation]:
        """The stored documents of ``keys`` (``None``: not in the view), the checkpoint and
        the generation they were read from: one atomic read of the active generation, for a
        reader that needs a few documents and not their whole kinds."""
        ...

    async def listing(
        self,
        projection: Projection,
        kind: str,
        groups: Sequence[str],
        *,
        first: int,
        limit: int,
        days: Days = (None, None),
        partition: int = 0,
    ) -> Listing:
        """One page of ``kind``'s listing index (:mod:`services.views.listing`): the
        documents from ``first`` (0-based) that ``groups`` list (one ``*`` in a group: any
        text there) whose span of days meets ``days``, newest day first and then by id, how
        many they list, and the checkpoint, read atomically from the active generation."""
        ...

    async def write(
        self,
        projection: Projection,
        changes: Mapping[Key, msgspec.Struct | None],
        *,
        expected: Position | None,
        checkpoint: Position,
        generation: int = 0,
        partition: int = 0,
    ) -> None:
        """Write ``changes`` (``None``: delete) and move the checkpoint from ``expected`` to
        ``checkpoint`` in one step, recording which documents changed;
        :class:`~services.views.errors.ViewMovedError` (nothing written) when the view is not
        at ``expected`` or ``generation`` is not the active one."""
        ...
