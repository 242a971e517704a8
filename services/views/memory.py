"""The view store in memory, with the semantics of the Redis one.

It keeps what Redis keeps: each view's documents encoded as stored (so a document that no longer
decodes fails as it would there), its checkpoint, and the record of which documents each
commit changed, which a reader holding the view follows as it would follow the changes
stream, within the same limits (:mod:`services.views.scripts`). For tests of everything
that reads views, and runs without Redis.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

import msgspec

from events import Position
from projections import Projection, State
from projections.docs import Key
from services.store.positions import joined
from services.views.codec import check_kinds, decode_doc, decode_view, encode_doc
from services.views.errors import (
    UnknownKindError,
    UnlistableChangeError,
    ViewChangedError,
    ViewMovedError,
)
from services.views.generations import Generation, generation_suffix
from services.views.listing import Days, Listing, listed_page
from services.views.scripts import CHANGES_FETCHED, CHANGES_FOLLOWED, CHANGES_KEPT, CHANGES_LISTED
from services.views.store import KindsRead, OnPage

__all__ = ["InMemoryViewStore"]

_Commit = tuple[int, Position | None, Position, dict[str, list[str]] | None]
"""One record of the changes: its number, checkpoint from and to, ids per kind (``None``:
too many to list)."""


class _View:
    """One generation of one partition's view."""

    __slots__ = ("checkpoint", "commits", "kinds")

    def __init__(self, projection: Projection) -> None:
        self.kinds: dict[str, dict[str, bytes]] = {kind: {} for kind in projection.doc_types}
        self.checkpoint: Position | None = None
        self.commits: list[_Commit] = []


class InMemoryViewStore:
    """A :class:`~services.views.store.ViewStore` held in this process's memory."""

    def __init__(self, partitions: int = 1) -> None:
        self.partitions = partitions
        self._views: dict[tuple[str, str, int], _View] = {}
        self._active: dict[tuple[str, int], int] = {}
        self._commits = 0

    def _view(self, projection: Projection, generation: Generation, partition: int) -> _View:
        key = (projection.view, generation_suffix(generation), partition)
        found = self._views.get(key)
        if found is None:
            found = self._views[key] = _View(projection)
        return found

    async def generation(self, projection: Projection, *, partition: int = 0) -> int:
        """The active generation of the view (0 until a rebuild swapped another in)."""
        return self._active.get((projection.view, partition), 0)

    async def _resolved(
        self, projection: Projection, generation: Generation | None, partition: int
    ) -> Generation:
        if generation is not None:
            return generation
        return await self.generation(projection, partition=partition)

    async def checkpoint(
        self, projection: Projection, *, generation: Generation | None = None
    ) -> Position | None:
        """The view's checkpoint (joined over the partitions)."""
        found = []
        for partition in range(self.partitions):
            chosen = await self._resolved(projection, generation, partition)
            found.append(self._view(projection, chosen, partition).checkpoint)
        return joined(found)

    async def load(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[State, Position | None]:
        """Every document decoded, and the checkpoint."""
        chosen = await self._resolved(projection, generation, partition)
        view = self._view(projection, chosen, partition)
        if view.checkpoint is None:
            return projection.initial(), None
        return decode_view(projection, view.kinds), view.checkpoint

    async def load_paged(
        self,
        projection: Projection,
        *,
        generation: Generation,
        partition: int = 0,
        on_page: OnPage | None = None,
        without: Collection[str] = (),
    ) -> tuple[State, Position | None]:
        """Every document decoded (but the kinds ``without``), and the checkpoint (one page,
        then ``on_page``)."""
        before = self._view(projection, generation, partition).checkpoint
        state, checkpoint = await self.load(projection, generation=generation, partition=partition)
        if on_page is not None and before is not None:
            await on_page()
        after = self._view(projection, generation, partition).checkpoint
        if after != before:
            raise ViewChangedError(f"{projection.view} moved from {before} to {after}")
        if checkpoint is not None:
            state.forget(without)
        return state, checkpoint

    async def read_kinds(
        self,
        projection: Projection,
        kinds: Sequence[str],
        *,
        held: tuple[Position, str, Generation] | None = None,
        partition: int = 0,
    ) -> KindsRead:
        """Documents of ``kinds``: those changed since ``held`` when the record of the
        commits tells, else every one."""
        check_kinds(projection, kinds)
        active = await self.generation(projection, partition=partition)
        view = self._view(projection, active, partition)
        if view.checkpoint is None:
            return KindsRead(checkpoint=None)
        if held is not None and held[2] == active:
            changed = self._followed(view, kinds, held[0], held[1])
            if changed is not None:
                return KindsRead(
                    checkpoint=view.checkpoint,
                    seen=_seen(view),
                    generation=active,
                    changed=changed,
                )
        whole: list[dict[Any, bytes | str]] = [dict(view.kinds[kind]) for kind in kinds]
        return KindsRead(
            checkpoint=view.checkpoint, seen=_seen(view), generation=active, whole=whole
        )

    @staticmethod
    def _followed(
        view: _View, kinds: Sequence[str], checkpoint: Position, seen: str
    ) -> list[dict[str, bytes | None]] | None:
        after = int(seen.partition("-")[0])
        commits = [commit for commit in view.commits if commit[0] > after]
        if len(commits) > CHANGES_FOLLOWED:
            return None
        at: Position | None = checkpoint
        wanted: dict[str, set[str]] = {kind: set() for kind in kinds}
        for _, start, end, ids in commits:
            if start != at or ids is None:
                return None
            at = end
            for kind in kinds:
                wanted[kind].update(ids.get(kind, ()))
            if sum(len(found) for found in wanted.values()) > CHANGES_FETCHED:
                return None
        if at != view.checkpoint:
            return None
        return [{ident: view.kinds[kind].get(ident) for ident in wanted[kind]} for kind in kinds]

    async def raw(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[dict[str, dict[str, bytes]], Position | None]:
        """The documents as stored (encoded) and the checkpoint."""
        chosen = await self._resolved(projection, generation, partition)
        view = self._view(projection, chosen, partition)
        return {kind: dict(stored) for kind, stored in view.kinds.items()}, view.checkpoint

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
        """Write ``changes`` and the checkpoint at once, recording the changed ids."""
        if generation != await self.generation(projection, partition=partition):
            raise ViewMovedError(f"{projection.view}: generation {generation} is not active")
        view = self._view(projection, generation, partition)
        if view.checkpoint != expected:
            raise ViewMovedError(f"{projection.view} is not at {expected}")
        gone = [key for key, doc in changes.items() if doc is None and key[0] in projection.listed]
        if gone:
            raise UnlistableChangeError(f"documents of a listed kind are never deleted: {gone[:3]}")
        listed: dict[str, list[str]] | None = {}
        for (kind, ident), doc in changes.items():
            if doc is None:
                view.kinds[kind].pop(ident, None)
            else:
                view.kinds[kind][ident] = encode_doc(doc)
            if listed is not None:
                listed.setdefault(kind, []).append(ident)
        if len(changes) > CHANGES_LISTED:
            listed = None
        self._commits += 1
        view.commits.append((self._commits, expected, checkpoint, listed))
        del view.commits[:-CHANGES_KEPT]
        view.checkpoint = checkpoint

    async def read_documents(
        self, projection: Projection, keys: Sequence[Key], *, partition: int = 0
    ) -> tuple[dict[Key, msgspec.Struct | None], Position | None, Generation]:
        """The documents of ``keys``, the checkpoint and the active generation."""
        generation = await self.generation(projection, partition=partition)
        found = await self.documents(projection, keys, generation=generation, partition=partition)
        return found, self._view(projection, generation, partition).checkpoint, generation

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
        """One page of a listing index, computed from the kind's documents
        (:func:`~services.views.listing.listed_page`)."""
        if kind not in projection.listed:
            raise UnknownKindError(f"{projection.view} keeps no listing index of {kind!r}")
        generation = await self.generation(projection, partition=partition)
        view = self._view(projection, generation, partition)
        docs = {ident: decode_doc(projection, kind, raw) for ident, raw in view.kinds[kind].items()}
        page, total = listed_page(
            projection, kind, docs, groups, first=first, limit=limit, days=days
        )
        return Listing(checkpoint=view.checkpoint, generation=generation, total=total, docs=page)

    async def documents(
        self,
        projection: Projection,
        keys: Sequence[Key],
        *,
        generation: Generation,
        partition: int = 0,
    ) -> dict[Key, msgspec.Struct | None]:
        """The stored documents of ``keys`` (``None``: not in the view)."""
        view = self._view(projection, generation, partition)
        found: dict[Key, msgspec.Struct | None] = {}
        for kind, ident in keys:
            raw = view.kinds[kind].get(ident)
            found[(kind, ident)] = None if raw is None else decode_doc(projection, kind, raw)
        return found


def _seen(view: _View) -> str:
    return f"{view.commits[-1][0]}-0" if view.commits else "0-0"
