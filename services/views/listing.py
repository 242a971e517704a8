"""Listing indexes: pages of a kind's documents, newest day first, without reading the kind.

A projection may keep a kind in a listing index (:attr:`projections.Projection.listed`):
each document stands in one *group* (for the incidents: its status and country) under one
*day* (when it started). Every script that writes documents keeps, beside the kind's hash
``<kind hash>`` (:data:`~services.views.scripts.LUA_PUT_DOC`'s ``index_doc``):

========================================= ========== =========================================
``<kind hash>:ix``                          set        every group that lists a document
``<kind hash>:ix:<group>``                  hash       day (ordinal) → how many ids it lists
``<kind hash>:ix:<group>:<day>:<part>``     sorted set the ids listed there in that part
                                                       (every score 0: ordered by id)
========================================= ========== =========================================

A day's ids are split by id in :data:`~services.views.generations.LISTING_PARTS` parts
(:func:`~services.views.generations.part_of`) so that each sorted set stays a listpack (about
42 bytes an id, against about 146 in a skip list).

So a page of the groups a query names (a trailing ``*``: every group starting so) is, in one
read-only script (:data:`LISTING_SCRIPT`), atomic with the checkpoint: the day counts summed,
the days walked newest first to the page's first, the ids of those days' parts merged in id
order, and the page's documents read by id. It costs the number of days and the page's days,
not the kind.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from events import Position
from projections import Projection
from services.resp import text
from services.store.keys import Keys
from services.views.codec import decode_doc
from services.views.errors import UnknownKindError, ViewMovedError
from services.views.generations import (
    CHECKPOINT_FIELD,
    LISTING_PARTS,
    POINTER_RETRIES,
    Generation,
    ViewKeys,
    active_generation,
    checkpoint_of,
    view_keys,
)
from services.views.scripts import LUA_BUCKET_OF

__all__ = [
    "LISTING_SCRIPT",
    "Listing",
    "index_keys",
    "listed_page",
    "read_listing",
    "stored_index",
]

LISTING_SCRIPT: Final = (
    LUA_BUCKET_OF
    + """
-- KEYS: view pointer, meta, the kind's hash.
-- ARGV: generation, first (0-based), limit, '1' when the kind is bucketed, then the groups
--   (a trailing '*': every group of the index starting with what precedes it).
-- Returns {-2} when the generation is not the active one, else {1, checkpoint or false,
--   total, ids of the page, their documents as stored}.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return {-2} end
local position = redis.call('HGET', KEYS[2], 'position')
local ix = KEYS[3] .. ':ix'
local first, limit, bucketed = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local groups, registry = {}, nil
for a = 5, #ARGV do
  local pattern = ARGV[a]
  if string.sub(pattern, -1) == '*' then
    registry = registry or redis.call('SMEMBERS', ix)
    local prefix = string.sub(pattern, 1, -2)
    for _, group in ipairs(registry) do
      if string.sub(group, 1, #prefix) == prefix then groups[#groups + 1] = group end
    end
  else
    groups[#groups + 1] = pattern
  end
end
local per_day, total = {}, 0
for _, group in ipairs(groups) do
  local counts = redis.call('HGETALL', ix .. ':' .. group)
  for x = 1, #counts, 2 do
    local day, n = tonumber(counts[x]), tonumber(counts[x + 1])
    per_day[day] = (per_day[day] or 0) + n
    total = total + n
  end
end
local days = {}
for day in pairs(per_day) do days[#days + 1] = day end
table.sort(days, function(a, b) return a > b end)
local ids, seen = {}, 0
for _, day in ipairs(days) do
  if #ids >= limit then break end
  local n = per_day[day]
  if seen + n > first then
    local skip = math.max(first - seen, 0)
    local want = math.min(limit - #ids, n - skip)
    local sets = {}
    for _, group in ipairs(groups) do
      for part = 0, @PARTS@ - 1 do
        sets[#sets + 1] = ix .. ':' .. group .. ':' .. day .. ':' .. part
      end
    end
    -- every score 0: the union comes in id order
    local here = redis.call('ZUNION', #sets, unpack(sets))
    for x = skip + 1, math.min(skip + want, #here) do ids[#ids + 1] = here[x] end
  end
  seen = seen + n
end
local docs = {}
for x, id in ipairs(ids) do
  local doc = false
  if bucketed then doc = redis.call('HGET', KEYS[3] .. ':' .. bucket_of(id), id) end
  docs[x] = doc or redis.call('HGET', KEYS[3], id) or false
end
return {1, position or false, total, ids, docs}
""".replace("@PARTS@", str(LISTING_PARTS))
)
"""Reads one page of a listing index and its documents, with the view's checkpoint."""


class Listing(msgspec.Struct, frozen=True, kw_only=True):
    """One page of a listing index (:func:`read_listing`)."""

    checkpoint: Position | None
    """The view's checkpoint (``None``: never written; the page is then empty)."""
    generation: Generation
    """The generation read."""
    total: int
    """How many documents the groups list in all."""
    docs: list[msgspec.Struct]
    """The page's documents, newest day first, then by id."""


async def read_listing(
    script: AsyncScript,
    client: aioredis.Redis,
    *,
    prefix: Keys | str,
    projection: Projection,
    kind: str,
    groups: Sequence[str],
    first: int,
    limit: int,
    partition: int = 0,
) -> Listing:
    """The documents from ``first`` (0-based) to ``first + limit`` that ``groups`` list,
    newest day first and then by id, with their total and the checkpoint, read atomically
    from the active generation of the view by ``script`` (:data:`LISTING_SCRIPT`)."""
    if kind not in projection.listed:
        raise UnknownKindError(f"{projection.view} keeps no listing index of {kind!r}")
    for _ in range(POINTER_RETRIES):
        generation = await active_generation(client, prefix, projection, partition=partition)
        keys = view_keys(prefix, projection, generation, partition=partition)
        reply: list[Any] = await script(
            keys=[keys.pointer, keys.meta, keys.kinds[kind]],
            args=[
                str(generation),
                first,
                limit,
                "1" if kind in keys.bucketed else "0",
                *groups,
            ],
            client=client,
        )
        if reply[0] == 1:
            _, position, total, _, stored = reply
            return Listing(
                checkpoint=checkpoint_of(position),
                generation=generation,
                total=int(total),
                docs=[decode_doc(projection, kind, raw) for raw in stored if raw],
            )
    raise ViewMovedError(f"{projection.view}'s generation kept moving while it was listed")


def listed_page(
    projection: Projection,
    kind: str,
    docs: Mapping[str, msgspec.Struct],
    groups: Sequence[str],
    *,
    first: int,
    limit: int,
) -> tuple[list[msgspec.Struct], int]:
    """What a listing index answers for ``docs``, the kind's documents by id: the page from
    ``first`` of those ``groups`` list (newest day, then id byte by byte) and how many they
    list. The in-memory store's reading; the Redis one reads the index."""
    where = projection.listed[kind]
    exact = {g for g in groups if not g.endswith("*")}
    prefixes = tuple(g[:-1] for g in groups if g.endswith("*"))
    kept: list[tuple[int, bytes, msgspec.Struct]] = []
    for ident, doc in docs.items():
        listed = where(doc)
        group = listed.group
        if group and (group in exact or group.startswith(prefixes)):
            kept.append((-listed.day, ident.encode(), doc))
    kept.sort(key=lambda one: one[:2])
    return [doc for _, _, doc in kept[first : first + limit]], len(kept)


async def index_keys(client: aioredis.Redis, keys: ViewKeys) -> list[str]:
    """Every key of the listing indexes of one generation of a view (to drop them)."""
    found: list[str] = []
    for kind in keys.listed:
        ix = f"{keys.kinds[kind]}:ix"
        groups = [text(g) for g in await client.smembers(ix)]
        found.append(ix)
        for group in groups:
            days = [text(d) for d in await client.hkeys(f"{ix}:{group}")]
            found.append(f"{ix}:{group}")
            found += [f"{ix}:{group}:{day}:{part}" for day in days for part in range(LISTING_PARTS)]
    return found


Entries = dict[str, tuple[str, int]]
"""Where a listing index lists each id: id → (group, day)."""


async def stored_index(
    client: aioredis.Redis, keys: ViewKeys, kind: str
) -> tuple[Entries, list[str], Position | None]:
    """What the listing index of ``kind`` holds in one generation of a view, with the view's
    checkpoint: where it lists each id, and the ways it disagrees with itself (an id listed
    twice, a day's count that is not its ids', a group named without ids). Read in pages;
    read again when the view moved meanwhile."""
    for _ in range(POINTER_RETRIES):
        before = await client.hget(keys.meta, CHECKPOINT_FIELD)
        entries: Entries = {}
        problems: list[str] = []
        ix = f"{keys.kinds[kind]}:ix"
        for group in sorted(text(g) for g in await client.smembers(ix)):
            counts = {text(d): int(n) for d, n in (await client.hgetall(f"{ix}:{group}")).items()}
            if not counts:
                problems.append(f"group {group} is named but lists nothing")
            for day, count in sorted(counts.items()):
                async with client.pipeline(transaction=False) as pipe:
                    for part in range(LISTING_PARTS):
                        pipe.zrange(f"{ix}:{group}:{day}:{part}", 0, -1)
                    parts = await pipe.execute()
                found = [text(i) for ids in parts for i in ids]
                if len(found) != count:
                    problems.append(f"group {group} day {day} counts {count}, lists {len(found)}")
                for ident in found:
                    if ident in entries:
                        problems.append(f"{ident} is listed twice")
                    entries[ident] = (group, int(day))
        if await client.hget(keys.meta, CHECKPOINT_FIELD) == before:
            return entries, problems, checkpoint_of(before)
    raise ViewMovedError(f"{keys.meta} kept moving while its listing index was read")
