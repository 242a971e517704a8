"""Stored views as the read side holds them: decoded, followed, and their answers kept.

Decoded documents are cached per view and kind. When the view's checkpoint moved, a kind
follows the view's changes (only the changed documents are fetched and decoded) or, when it
cannot, is read again as stored and only the documents whose stored bytes changed are decoded
again. A projection answer is computed once per checkpoint and query, however often it is
asked (:meth:`ViewReader.answer`). Views are only ever read through the view store
(:class:`~services.views.store.ViewStore`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

import msgspec

from events import Position
from projections import Projection, Readable
from projections.common import kinds_of
from services.store.positions import joined
from services.views.codec import decode_doc
from services.views.generations import Generation
from services.views.layered import Layered
from services.views.store import KindsRead, ViewStore

__all__ = ["ANSWERS_PER_VIEW", "ViewReader"]

ANSWERS_PER_VIEW: Final = 256
"""Most distinct queries whose answers one view keeps (per checkpoint)."""


def _slots(projection: Projection, partitions: int) -> list[str]:
    """Where the partition views of ``projection`` are cached, one per partition."""
    return [f"{projection.view}@p{p}" for p in range(partitions)]


class _Kind:
    """One kind's documents as last read: where the view stood, the stored bytes and the decoded."""

    __slots__ = ("changed", "checkpoint", "docs", "generation", "previous", "raw", "seen")

    def __init__(
        self,
        read: KindsRead,
        raw: Mapping[str, bytes | str],
        docs: Mapping[str, msgspec.Struct],
        previous: Position | None = None,
        changed: Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] | None = None,
    ) -> None:
        checkpoint = read.checkpoint
        assert checkpoint is not None  # noqa: S101  # only a written view is cached
        self.checkpoint, self.seen, self.generation = checkpoint, read.seen, read.generation
        self.raw = raw
        """The stored bytes by id: a read of the whole kind decodes only what differs from it."""
        self.docs = docs
        self.previous = previous
        """The checkpoint read before this one, when ``changed`` is the difference from it."""
        self.changed = changed
        """id → (document before, document now) of the documents that changed since
        ``previous`` (``None`` when unknown)."""


class ViewReader:
    """Reads document kinds of stored views with their checkpoint, cached per checkpoint.

    Once it holds a kind, a read fetches only the documents changed since, by following the
    view's changes (:meth:`~services.views.store.ViewStore.read_kinds`); when it cannot, the
    kind is read again whole and only the documents whose stored bytes changed are decoded
    again. ``answers`` holds what handlers computed from the documents at the
    cached checkpoint (:meth:`answer`), dropped when the view moves.
    """

    def __init__(self, views: ViewStore) -> None:
        self.views = views
        self._cache: dict[tuple[str, str], _Kind] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._answers: dict[str, tuple[Position, dict[Any, Any]]] = {}
        self._merged: dict[str, tuple[Position, Readable]] = {}
        self._generations: dict[str, Generation] = {}

    def generations(self, projection: Projection) -> list[Generation] | None:
        """The generation each partition view of ``projection`` was last read from (``None``
        before every one was read)."""
        partitions = self.views.partitions
        slots = [projection.view] if partitions == 1 else _slots(projection, partitions)
        found = [self._generations.get(slot) for slot in slots]
        return None if None in found else [g for g in found if g is not None]

    async def read(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """The documents of ``kinds`` and the checkpoint they are the fold up to.

        On several partitions: every partition view's documents, merged by the projection
        (:attr:`projections.Projection.merge`), at the partitions' checkpoints joined.
        """
        lock = self._locks.setdefault(projection.view, asyncio.Lock())
        async with lock:  # one load per view at a time; the others find it cached
            if self.views.partitions > 1:
                return await self._read_merged(projection, kinds)
            return await self._read(projection, kinds, projection.view)

    async def _read_merged(
        self, projection: Projection, kinds: Sequence[str]
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """Every partition view (each read as :meth:`_read` does), merged; read at once."""
        every = list(projection.doc_types)
        found = await asyncio.gather(
            *(
                self._read(projection, every, slot, partition=p)
                for p, slot in enumerate(_slots(projection, self.views.partitions))
            )
        )
        position = joined([checkpoint for _, checkpoint in found])
        if position is None:
            return {kind: {} for kind in kinds}, None
        held = self._merged.get(projection.view)
        if held is None or held[0] != position:
            held = (position, projection.merge([state for state, _ in found]))
            self._merged[projection.view] = held
        merged = kinds_of(held[1])
        return {kind: merged.get(kind) or {} for kind in kinds}, position

    async def _read(
        self, projection: Projection, kinds: Sequence[str], slot: str, *, partition: int = 0
    ) -> tuple[dict[str, Mapping[str, msgspec.Struct]], Position | None]:
        """One (partition) view's ``kinds``, cached under ``slot``: followed or read whole."""
        cached = [self._cache.get((slot, kind)) for kind in kinds]
        held = None
        if cached and all(c is not None for c in cached):
            first = cached[0]
            assert first is not None  # noqa: S101  # checked just above
            where = (first.checkpoint, first.seen, first.generation)
            if all(c is not None and (c.checkpoint, c.seen, c.generation) == where for c in cached):
                held = where
        read = await self.views.read_kinds(projection, kinds, held=held, partition=partition)
        self._generations[slot] = read.generation
        if read.checkpoint is None:
            return {kind: {} for kind in kinds}, None
        found: dict[str, Mapping[str, msgspec.Struct]] = {}
        for index, kind in enumerate(kinds):
            old = self._cache.get((slot, kind))
            if read.changed is not None and old is not None:
                entry = self._followed(projection, kind, old, read, read.changed[index])
            else:
                assert read.whole is not None  # noqa: S101  # one of the two is set
                entry = self._whole(projection, kind, old, read, read.whole[index])
            self._cache[(slot, kind)] = entry
            found[kind] = entry.docs
        return found, read.checkpoint

    @staticmethod
    def _followed(
        projection: Projection,
        kind: str,
        old: _Kind,
        read: KindsRead,
        stored: Mapping[str, bytes | None],
    ) -> _Kind:
        """``old`` moved by the documents that changed since (``None``: deleted)."""
        if read.checkpoint == old.checkpoint and not stored:
            old.seen = read.seen  # nothing of this kind moved
            return old
        # new mappings, not updates in place: a handler may still hold the documents it was
        # given; the changes are laid over the old ones instead of copying them (Layered)
        docs: dict[str, msgspec.Struct | None] = {}
        raw: dict[str, bytes | str | None] = {}
        changed: dict[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] = {}
        for ident, text in stored.items():
            before = old.docs.get(ident)
            if text is None:
                raw[ident] = None
                if before is not None:
                    docs[ident] = None
                    changed[ident] = (before, None)
                continue
            doc = decode_doc(projection, kind, text)
            docs[ident], raw[ident] = doc, text
            changed[ident] = (before, doc)
        return _Kind(
            read,
            Layered.moved(old.raw, raw),
            Layered.moved(old.docs, docs),
            previous=old.checkpoint,
            changed=changed,
        )

    @staticmethod
    def _whole(
        projection: Projection,
        kind: str,
        old: _Kind | None,
        read: KindsRead,
        raw: Mapping[bytes | str, bytes | str],
    ) -> _Kind:
        """The kind read whole, decoding only the documents whose stored bytes changed."""
        old_raw = {} if old is None else old.raw
        old_docs = {} if old is None else old.docs
        docs: dict[str, msgspec.Struct] = {}
        texts: dict[str, bytes | str] = {}
        changed: dict[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] = {}
        for ident, text in raw.items():
            key = ident.decode() if isinstance(ident, bytes) else ident
            doc = old_docs.get(key) if old_raw.get(key) == text else None
            if doc is None:
                doc = decode_doc(projection, kind, text)
                changed[key] = (old_docs.get(key), doc)
            docs[key], texts[key] = doc, text
        if len(docs) - len(changed) < len(old_docs):  # some were deleted
            for key, gone in old_docs.items():
                if key not in docs:
                    changed[key] = (gone, None)
        return _Kind(
            read,
            texts,
            docs,
            previous=None if old is None else old.checkpoint,
            changed=None if old is None else changed,
        )

    def held(self) -> set[tuple[str, str]]:
        """The (view, kind) pairs this reader holds whole (a partition view's slot names
        its partition)."""
        return set(self._cache)

    def changes(
        self, projection: Projection, kind: str, since: Position, checkpoint: Position
    ) -> Mapping[str, tuple[msgspec.Struct | None, msgspec.Struct | None]] | None:
        """The documents of ``kind`` that changed from ``since`` to ``checkpoint`` (the
        cached one), or ``None`` when the cache cannot tell."""
        hit = self._cache.get((projection.view, kind))
        if hit is None or hit.checkpoint != checkpoint or hit.previous != since:
            return None
        return hit.changed

    def answer(
        self,
        projection: Projection,
        checkpoint: Position | None,
        key: Any,
        compute: Callable[[], Any],
    ) -> Any:
        """``compute()`` for the documents at ``checkpoint``, remembered under ``key`` until the
        view moves (a query's answer is a pure function of the documents and its ``key``)."""
        if checkpoint is None:
            return compute()
        held = self._answers.get(projection.view)
        if held is None or held[0] != checkpoint:
            held = (checkpoint, {})
            self._answers[projection.view] = held
        answers = held[1]
        if key not in answers:
            if len(answers) >= ANSWERS_PER_VIEW:
                answers.clear()
            answers[key] = compute()
        return answers[key]
