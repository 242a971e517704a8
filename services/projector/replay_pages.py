"""The log as rebuilds read it: large pages, read ahead of the fold, decoded once for all.

A rebuild folds its partition's log page by page (:mod:`services.projector.replay`).
:class:`Pages` reads each page with one ``XRANGE`` and decodes each entry once
(:func:`~services.store.log.decode_page`, the log's one decoder, upcasting included); as
soon as a full page is handed out, the read of the next one is started, so Redis answers it
while the fold works on the page in hand. Several rebuilds folding the same partitions side
by side (``ledger replay all``) share one :class:`Pages`: the log is read and decoded once
for all the views, each taking the same page, keyed by where it starts, where it must end
and its size. The partition's head a build folds up to is read once too (:meth:`head`), so
the builds ask for the same pages. Memory: ``keep`` pages at most, with their events.
"""

from __future__ import annotations

import asyncio
from typing import Final

import redis.asyncio as aioredis

from events import Position
from services.store.keys import Keys
from services.store.log import LogEntry, LogReader, RawEntry, decode_page

__all__ = ["MAX_PAGE", "Page", "Pages"]

MAX_PAGE: Final = 10_000
"""Entries read per ``XRANGE`` at most (a rebuild's batches may be larger: several pages)."""

Page = tuple[list[RawEntry], list[LogEntry]]
"""A page as stored (for dead letters, which keep an entry's fields) and decoded."""

_Key = tuple[int, Position | None, str, int]


class Pages:
    """Pages of the log, read ahead and shared by the rebuilds folding it (module docstring)."""

    def __init__(self, client: aioredis.Redis, keys: Keys | str, *, keep: int = 4) -> None:
        self.client = client
        self.keys = Keys.of(keys)
        self.keep = keep
        self._pages: dict[_Key, asyncio.Task[Page]] = {}
        self._heads: dict[int, Position | None] = {}

    async def head(self, partition: int) -> Position | None:
        """The partition's head as first read here (``None``: the log was empty)."""
        if partition not in self._heads:
            self._heads[partition] = await LogReader(self.client, self.keys, partition).head()
        return self._heads[partition]

    async def page(self, partition: int, after: Position | None, until: str, size: int) -> Page:
        """Up to ``size`` entries of ``partition`` after ``after`` (``None``: from the start)
        up to ``until`` (included), stored and decoded; reads the next page ahead."""
        found = await self._task((partition, after, until, size))
        raw = found[0]
        if len(raw) == size and raw[-1][0] != until:
            self._task((partition, raw[-1][0], until, size))
        return found

    def _task(self, key: _Key) -> asyncio.Task[Page]:
        task = self._pages.get(key)
        if task is None:
            task = self._pages[key] = asyncio.ensure_future(self._read(key))
            while len(self._pages) > self.keep:  # forget the oldest (a rebuild behind reads again)
                oldest = next(iter(self._pages))
                self._pages.pop(oldest)
        return task

    async def _read(self, key: _Key) -> Page:
        partition, after, until, size = key
        raw = await LogReader(self.client, self.keys, partition).raw(after, until=until, count=size)
        return raw, decode_page(raw)

    def close(self) -> None:
        """Cancel the reads ahead nobody took."""
        for task in self._pages.values():
            if not task.done():
                task.cancel()
        self._pages.clear()
