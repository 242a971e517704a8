"""The log as rebuilds read it: large pages, read ahead of the fold, decoded once for all.

A rebuild folds its partition's log page by page (:mod:`services.projector.replay`).
:class:`Pages` reads each page with one ``XRANGE`` and decodes each entry once
(:func:`~services.store.log.decode_page`, the log's one decoder, upcasting included); as
soon as a full page is handed out, the read of the next one is started, so Redis answers it
while the fold works on the page in hand. Several rebuilds folding the same partitions side
by side (``ledger replay all``) share one :class:`Pages`: the log is read and decoded once
for all the views, each taking the same page, keyed by where it starts, where it must end
and its size. The partition's head a build folds up to is read once too (:meth:`head`), so
the builds ask for the same pages. A page is kept until every build folding it has taken
it, so builds that fold at different speeds (community-victims is slower than alignment)
still read and decode each page once; memory stays at ``keep`` pages with their events, a
build that runs that far ahead of a slower one waiting for it.
"""

from __future__ import annotations

import asyncio
from typing import Final

import redis.asyncio as aioredis

from events import Position, position_key
from services.store.keys import Keys
from services.store.log import LogEntry, LogReader, RawEntry, decode_page

__all__ = ["MAX_PAGE", "Page", "Pages"]

MAX_PAGE: Final = 10_000
"""Entries read per ``XRANGE`` at most (a rebuild's batches may be larger: several pages)."""

Page = tuple[list[RawEntry], list[LogEntry]]
"""A page as stored (for dead letters, which keep an entry's fields) and decoded."""

_Key = tuple[int, Position | None, str, int]
_Chain = tuple[int, str, int]
"""Pages that follow one another: a partition, the position they end at, their size."""


def _chain(key: _Key) -> _Chain:
    return key[0], key[2], key[3]


def _order(after: Position | None) -> tuple[int, int]:
    return (-1, -1) if after is None else position_key(after)


class Pages:
    """Pages of the log, read ahead and shared by the rebuilds folding it (module docstring).

    Each rebuild that takes pages is a *reader*, named by the object it passes; a page is
    kept until every reader of its chain has taken a later one (or left, :meth:`leave`), so
    views folding at different speeds never read and decode a page twice. ``keep`` bounds
    the pages held: a reader that runs that far ahead of a slower one waits for it before
    the next read; the slowest reader of a chain never waits.
    """

    def __init__(self, client: aioredis.Redis, keys: Keys | str, *, keep: int = 4) -> None:
        self.client = client
        self.keys = Keys.of(keys)
        self.keep = keep
        self._pages: dict[_Key, asyncio.Task[Page]] = {}
        self._heads: dict[int, Position | None] = {}
        self._at: dict[object, _Key] = {}
        """Per reader, the page it took last."""
        self._waiting: list[asyncio.Future[None]] = []
        self.reads = 0
        """``XRANGE`` reads made (each page read and decoded once while it is kept)."""

    @property
    def held(self) -> int:
        """Pages held now (read, or being read)."""
        return len(self._pages)

    @property
    def waiting(self) -> int:
        """Readers held back now, ``keep`` pages ahead of a slower one."""
        return sum(not waiter.done() for waiter in self._waiting)

    async def head(self, partition: int) -> Position | None:
        """The partition's head as first read here (``None``: the log was empty)."""
        if partition not in self._heads:
            self._heads[partition] = await LogReader(self.client, self.keys, partition).head()
        return self._heads[partition]

    async def page(
        self,
        partition: int,
        after: Position | None,
        until: str,
        size: int,
        *,
        reader: object = None,
    ) -> Page:
        """Up to ``size`` entries of ``partition`` after ``after`` (``None``: from the start)
        up to ``until`` (included), stored and decoded, for ``reader``; reads the next page
        ahead while there is room."""
        key = (partition, after, until, size)
        self._at[reader] = key
        self._moved()
        while key not in self._pages and len(self._pages) >= self.keep and self._ahead(key):
            waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            await waiter
        found = await self._task(key)
        raw = found[0]
        if len(raw) == size and raw[-1][0] != until and len(self._pages) < self.keep:
            self._task((partition, raw[-1][0], until, size))
        return found

    def leave(self, reader: object) -> None:
        """``reader`` takes no more pages (its fold ended): the pages only it held go."""
        if self._at.pop(reader, None) is not None:
            self._moved()

    def _ahead(self, key: _Key) -> bool:
        """Whether a reader of ``key``'s chain is still on an earlier page."""
        chain, at = _chain(key), _order(key[1])
        return any(_chain(k) == chain and _order(k[1]) < at for k in self._at.values())

    def _moved(self) -> None:
        """Drop the pages every reader of their chain has passed (all of a chain no reader
        follows any more); wake the readers waiting."""
        lowest: dict[_Chain, tuple[int, int]] = {}
        for k in self._at.values():
            chain, at = _chain(k), _order(k[1])
            if chain not in lowest or at < lowest[chain]:
                lowest[chain] = at
        for key in list(self._pages):
            low = lowest.get(_chain(key))
            if low is None or _order(key[1]) < low:  # passed by all, or no reader left
                task = self._pages.pop(key)
                if not task.done():
                    task.cancel()
        waiting, self._waiting = self._waiting, []
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)

    def _task(self, key: _Key) -> asyncio.Task[Page]:
        task = self._pages.get(key)
        if task is None:
            task = self._pages[key] = asyncio.ensure_future(self._read(key))
        return task

    async def _read(self, key: _Key) -> Page:
        partition, after, until, size = key
        self.reads += 1
        raw = await LogReader(self.client, self.keys, partition).raw(after, until=until, count=size)
        return raw, decode_page(raw)

    def close(self) -> None:
        """Cancel the reads ahead nobody took."""
        for task in self._pages.values():
            if not task.done():
                task.cancel()
        self._pages.clear()
