"""Stored views on Redis: one hash per document kind, a meta hash, a stream of changes.

A projection ``name`` at ``version`` keeps one hash per document kind,
``<prefix>:{view:<name>:v<version>}:<kind>`` (document id → the document as MessagePack,
:mod:`services.views.codec`), and a meta hash ``<prefix>:{view:<name>:v<version>}:meta`` whose
field ``position`` is the checkpoint; beside them the stream ``…:changes`` records which
documents each commit changed (:mod:`services.views.scripts`), which readers follow
(:mod:`services.views.follow`). Every writer writes the changed documents and the checkpoint
in one script, so whatever a reader loads in one ``MULTI``/``EXEC`` is the fold of the log up
to that checkpoint, never half a batch.

The loaders resolve the generation pointer (:mod:`services.views.generations`) and then read
the pointer again inside the ``MULTI`` with the hashes; when it moved in between they read
again, so a reader never mixes two generations. :class:`RedisViewStore` is the
:class:`~services.views.store.ViewStore` of these functions.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import Position
from projections import Projection, State
from projections.docs import Docs, Key
from services.resp import paired, text
from services.store.keys import ID_BUCKETS, Keys
from services.store.positions import joined
from services.views.codec import check_kinds, decode_doc, decode_kind, decode_view, doc_reader
from services.views.errors import CorruptViewError, ViewChangedError, ViewMovedError
from services.views.follow import read_kinds
from services.views.generations import (
    CHECKPOINT_FIELD,
    Generation,
    ViewKeys,
    active_generation,
    checkpoint_of,
    read_buckets,
    read_whole,
    snapshot,
    view_keys,
    wholes,
)
from services.views.listing import LISTING_SCRIPT, Days, Listing, index_keys, read_listing
from services.views.scripts import WRITE_SCRIPT, doc_change_args
from services.views.store import KindsRead, OnPage

__all__ = [
    "VIEW_PAGE",
    "RedisViewStore",
    "load_checkpoint",
    "load_kind",
    "load_kinds_raw",
    "load_view",
    "load_view_paged",
]

VIEW_PAGE: Final = 5000
"""Documents asked for per ``HSCAN`` call by :func:`load_view_paged`."""


async def load_kinds_raw(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    kinds: Sequence[str],
    *,
    generation: Generation | None = None,
    partition: int = 0,
) -> tuple[list[dict[bytes | str, bytes | str]], Position | None]:
    """The stored documents of ``kinds`` as stored (id → stored bytes, not decoded) and the view's
    checkpoint, read as one atomic snapshot of the active (or the given) generation."""
    check_kinds(projection, kinds)

    def commands(pipe: Any, keys: ViewKeys) -> None:
        read_whole(pipe, keys, kinds)
        pipe.hget(keys.meta, CHECKPOINT_FIELD)

    keys, replies = await snapshot(
        client, prefix, projection, generation, commands, partition=partition
    )
    found, (checkpoint,) = wholes(replies, keys, kinds)
    return found, checkpoint_of(checkpoint)


async def load_view(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    *,
    generation: Generation | None = None,
    partition: int = 0,
) -> tuple[Docs[msgspec.Struct], Position | None]:
    """Every document of the stored view and its checkpoint, read as one atomic snapshot.

    Reads the active generation unless ``generation`` names one. A view never written
    answers the projection's initial state and ``None``.
    """
    kinds = list(projection.doc_types)
    replies, checkpoint = await load_kinds_raw(
        client, prefix, projection, kinds, generation=generation, partition=partition
    )
    if checkpoint is None:
        return projection.initial(), None
    return decode_view(projection, dict(zip(kinds, replies, strict=True))), checkpoint


async def load_kind(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    kind: str,
    *,
    generation: Generation | None = None,
) -> dict[str, msgspec.Struct]:
    """Every stored document of one ``kind``, by id (empty when the view was never written)."""
    replies, _ = await load_kinds_raw(client, prefix, projection, [kind], generation=generation)
    return decode_kind(projection, kind, replies[0])


async def load_checkpoint(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    *,
    generation: Generation | None = None,
) -> Position | None:
    """The stored view's checkpoint: the last log position it includes (``None``: none yet).

    On several partitions, every partition view's checkpoint, :func:`joined`.
    """
    keys = Keys.of(prefix)

    async def one(partition: int) -> Position | None:
        _, replies = await snapshot(
            client,
            keys,
            projection,
            generation,
            lambda pipe, keys: pipe.hget(keys.meta, CHECKPOINT_FIELD),
            partition=partition,
        )
        return checkpoint_of(replies[0])

    return joined(await asyncio.gather(*(one(p) for p in range(keys.partitions))))


async def load_view_paged(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    *,
    generation: Generation,
    page: int = VIEW_PAGE,
    partition: int = 0,
    on_page: OnPage | None = None,
    without: Collection[str] = (),
) -> tuple[Docs[msgspec.Struct], Position | None]:
    """Every document of one generation of the view and its checkpoint, read in pages.

    For the projector holding the view's lease only. A view of hundreds of thousands of
    documents does not fit in one ``HGETALL`` under the service's 1 s socket timeout, so
    each kind is read with ``HSCAN … COUNT page`` (a few milliseconds per call). The pages
    are not one snapshot, and need not be: only the lease holder writes the view (its commit
    script checks the lease), so nothing changes it while its holder reads it. The
    checkpoint is read before and after the pages as a guard: when it moved, someone else
    committed meanwhile and :class:`ViewChangedError` is raised (the holder's commit would
    refuse the stale state anyway, as its expected checkpoint no longer matches).
    Readers use :func:`load_view`, which stays one atomic snapshot. ``on_page`` is awaited
    after every page: the holder renews its lease there, as a big view takes longer to load
    than a lease lasts (it may raise to end the load). The kinds ``without`` are not read
    (the writer reads back those it needs: :mod:`services.views.own`).
    """
    keys = view_keys(prefix, projection, generation, partition=partition)
    before = await client.hget(keys.meta, CHECKPOINT_FIELD)
    checkpoint = checkpoint_of(before)
    if checkpoint is None:
        return projection.initial(), None
    stored: dict[str, dict[str, msgspec.Struct]] = {}
    for kind in projection.doc_types:
        if kind in without:
            continue
        decode = doc_reader(projection.doc_types[kind])
        found: dict[str, msgspec.Struct] = {}
        async for pairs in _pages(client, keys, kind, page):
            try:
                for ident, raw in pairs.items():
                    found[text(ident)] = decode(raw)
            except msgspec.DecodeError as exc:
                raise CorruptViewError(
                    f"{projection.name} v{projection.version} {kind}: {exc}"
                ) from exc
            if on_page is not None:
                await on_page()
        stored[kind] = found
    after = await client.hget(keys.meta, CHECKPOINT_FIELD)
    if checkpoint_of(after) != checkpoint:
        raise ViewChangedError(
            f"{keys.meta} moved from {checkpoint} to {checkpoint_of(after)} during the load"
        )
    return Docs(stored), checkpoint


async def _pages(
    client: aioredis.Redis, keys: ViewKeys, kind: str, page: int
) -> AsyncIterator[Mapping[Any, Any]]:
    """The stored documents of one kind in pages of about ``page``: for a bucketed kind
    enough of its buckets at once, then ``HSCAN`` of the kind's hash."""
    if kind in keys.bucketed:
        step = max(1, page // 50)  # buckets hold up to about a hundred small documents
        for first in range(0, ID_BUCKETS, step):
            last = min(first + step, ID_BUCKETS) - 1
            yield paired(await read_buckets(client, keys, kind, first, last))
    cursor: int = 0
    while True:
        cursor, items = await client.hscan(keys.kinds[kind], cursor, count=page)
        yield items  # type: ignore[misc]  # HSCAN without NOVALUES: a mapping
        if not cursor:
            return


Asked = Sequence[tuple[str, str, list[str]]]
"""Documents asked for: (kind, id, the hashes that may hold it)."""


def _ask_holders(pipe: Any, asked: Asked) -> None:
    """Queue an ``HGET`` of each document asked for in each hash that may hold it."""
    for _, ident, names in asked:
        for name in names:
            pipe.hget(name, ident)


def _held(
    projection: Projection, asked: Asked, replies: Sequence[Any]
) -> dict[Key, msgspec.Struct | None]:
    """Each document asked for (:func:`_ask_holders`), from the first of its holders that has
    it (``None``: none has)."""
    found: dict[Key, msgspec.Struct | None] = {}
    at = 0
    for kind, ident, names in asked:
        raw = next((r for r in replies[at : at + len(names)] if r is not None), None)
        at += len(names)
        found[(kind, ident)] = None if raw is None else decode_doc(projection, kind, raw)
    return found


class RedisViewStore:
    """The :class:`~services.views.store.ViewStore` on Redis (the functions of this module).

    ``client`` answers readers (the service's 1 s timeouts); ``bulk_client``, when given,
    serves :meth:`load_paged`, which reads whole views (a long timeout: big views).
    """

    def __init__(
        self,
        client: aioredis.Redis,
        prefix: Keys | str = "ledger",
        *,
        bulk_client: aioredis.Redis | None = None,
        page: int = VIEW_PAGE,
    ) -> None:
        self.client = client
        self.keys = Keys.of(prefix)
        self.bulk_client = bulk_client or client
        self.page = page
        self._write = client.register_script(WRITE_SCRIPT)
        self._listing = client.register_script(LISTING_SCRIPT)

    @property
    def partitions(self) -> int:
        """How many log partitions there are."""
        return self.keys.partitions

    async def generation(self, projection: Projection, *, partition: int = 0) -> int:
        """The active generation of the view."""
        return await active_generation(self.client, self.keys, projection, partition=partition)

    async def checkpoint(
        self, projection: Projection, *, generation: Generation | None = None
    ) -> Position | None:
        """The view's checkpoint (joined over the partitions)."""
        return await load_checkpoint(self.client, self.keys, projection, generation=generation)

    async def load(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[State, Position | None]:
        """Every document and the checkpoint, in one ``MULTI``."""
        return await load_view(
            self.client, self.keys, projection, generation=generation, partition=partition
        )

    async def load_paged(
        self,
        projection: Projection,
        *,
        generation: Generation,
        partition: int = 0,
        on_page: OnPage | None = None,
        without: Collection[str] = (),
    ) -> tuple[State, Position | None]:
        """Every document (but the kinds ``without``) and the checkpoint in ``HSCAN`` pages
        (:func:`load_view_paged`)."""
        return await load_view_paged(
            self.bulk_client,
            self.keys,
            projection,
            generation=generation,
            page=self.page,
            partition=partition,
            on_page=on_page,
            without=without,
        )

    async def read_kinds(
        self,
        projection: Projection,
        kinds: Sequence[str],
        *,
        held: tuple[Position, str, Generation] | None = None,
        partition: int = 0,
    ) -> KindsRead:
        """Documents of ``kinds``, followed through the changes stream or read whole."""
        return await read_kinds(
            self.client, self.keys, projection, kinds, held=held, partition=partition
        )

    async def raw(
        self, projection: Projection, *, generation: Generation | None = None, partition: int = 0
    ) -> tuple[dict[str, dict[str, bytes]], Position | None]:
        """The documents as stored and the checkpoint, in one ``MULTI``."""
        kinds = list(projection.doc_types)
        replies, checkpoint = await load_kinds_raw(
            self.client, self.keys, projection, kinds, generation=generation, partition=partition
        )
        stored = {
            kind: {
                text(ident): raw if isinstance(raw, bytes) else raw.encode()
                for ident, raw in reply.items()
            }
            for kind, reply in zip(kinds, replies, strict=True)
        }
        return stored, checkpoint

    async def documents(
        self,
        projection: Projection,
        keys: Sequence[Key],
        *,
        generation: Generation,
        partition: int = 0,
    ) -> dict[Key, msgspec.Struct | None]:
        """The stored documents of ``keys``, read in pipelined pages of 1,000."""
        holders = view_keys(self.keys, projection, generation, partition=partition).holders
        found: dict[Key, msgspec.Struct | None] = {}
        for start in range(0, len(keys), 1000):
            page = [
                (kind, ident, holders(kind, ident)) for kind, ident in keys[start : start + 1000]
            ]
            async with self.client.pipeline(transaction=False) as pipe:
                _ask_holders(pipe, page)
                replies = await pipe.execute()
            found.update(_held(projection, page, replies))
        return found

    async def read_documents(
        self, projection: Projection, keys: Sequence[Key], *, partition: int = 0
    ) -> tuple[dict[Key, msgspec.Struct | None], Position | None, Generation]:
        """The documents of ``keys`` and the checkpoint in one ``MULTI``."""

        asked: list[tuple[str, str, list[str]]] = []

        def commands(pipe: Any, view: ViewKeys) -> None:
            asked[:] = [(kind, ident, view.holders(kind, ident)) for kind, ident in keys]
            _ask_holders(pipe, asked)
            pipe.hget(view.meta, CHECKPOINT_FIELD)

        view, replies = await snapshot(
            self.client, self.keys, projection, None, commands, partition=partition
        )
        return _held(projection, asked, replies[:-1]), checkpoint_of(replies[-1]), view.generation

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
        """One page of a listing index in one script (:func:`read_listing`)."""
        return await read_listing(
            self._listing,
            self.client,
            prefix=self.keys,
            projection=projection,
            kind=kind,
            groups=groups,
            first=first,
            limit=limit,
            days=days,
            partition=partition,
        )

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
        """Documents, changes record and checkpoint in one script (:data:`WRITE_SCRIPT`)."""
        keys = view_keys(self.keys, projection, generation, partition=partition)
        doc_keys, doc_args = doc_change_args(changes, keys)
        result = await self._write(
            keys=[keys.pointer, keys.meta, keys.changes, *doc_keys],
            args=[str(generation), expected or "", checkpoint, *doc_args],
        )
        if result == -2:
            raise ViewMovedError(f"{keys.pointer} no longer names generation {generation}")
        if result != 1:
            raise ViewMovedError(f"{keys.meta} is not at {expected}")

    async def drop(
        self, projection: Projection, generation: Generation, *, partition: int = 0
    ) -> None:
        """``UNLINK`` every key of one generation of a view, its changes stream too (freed in
        the server's background)."""
        keys = view_keys(self.keys, projection, generation, partition=partition)
        names = [
            *(name for kind in keys.kinds for name in keys.hashes(kind)),
            *await index_keys(self.client, keys),
            keys.meta,
            keys.changes,
        ]
        async with self.client.pipeline(transaction=False) as pipe:  # one round trip
            for start in range(0, len(names), 1000):  # one slot: the view's hash tag
                # execute_command: a cluster pipeline's unlink() takes one key, and is awaited
                pipe.execute_command("UNLINK", *names[start : start + 1000])
            await pipe.execute()
