"""Listing indexes: pages of a kind's documents, newest day first, without reading the kind.

A projection may keep a kind in a listing index (:attr:`projections.Projection.listed`):
each document stands in one *group* (for the incidents: its status, country and adm1) under
one *day* (when it started), and for a *span* of days around it (the incidents: their window
of occurrence). Every script that writes documents keeps, beside the kind's hash
``<kind hash>`` (:data:`~services.views.scripts.LUA_PUT_DOC`'s ``index_doc``):

========================================= ========== =========================================
``<kind hash>:ix``                          set        every group that lists a document
``<kind hash>:ix:<group>``                  hash       day (ordinal) → how many ids it lists
``<kind hash>:ix:<group>:<day>:<part>``     sorted set the ids listed there in that part,
                                                       scored by their span (``before +
                                                       1024 * after``; most are 0)
``<kind hash>:ix-span``                     hash       ``before``, ``after``: the widest span
                                                       listed (bounds, never narrowed)
========================================= ========== =========================================

A day's ids are kept in two parts (:data:`~services.views.generations.LISTING_PARTS`): those
of a span of 0 (``0``, most), and those of a span above 0 (``s``), the only part a day
beyond a range of days is asked. Each stays a listpack up to ``zset-max-listpack-entries``
ids (about 42 bytes an id, against about 146 in a skip list).

So a page of the groups a query names (one ``*`` in a group: any text there), of the
documents whose span meets a range of days, is, in one read-only script
(:data:`LISTING_SCRIPT`), atomic with the checkpoint: the day counts summed (a day inside
the range counts whole; one outside, as far as the widest span reaches, counts the ids
whose score says they reach into it), the days walked newest first to the page's first, the
ids of those days' parts merged in id order (the union of the sets with every score weighed
0), and the page's documents read by id. It costs the number of days and the page's days,
and the days the widest span reaches beyond the range; not the kind.
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
    SPAN,
    SPANNED_PART,
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
-- ARGV: generation, first (0-based), limit, '1' when the kind is bucketed, the first and the
--   last day a document's span must meet ('': unbounded), then the groups (one '*' stands
--   for any text there).
-- Returns {-2} when the generation is not the active one, else {1, checkpoint or false,
--   total, ids of the page, their documents as stored}.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return {-2} end
local position = redis.call('HGET', KEYS[2], 'position')
local ix = KEYS[3] .. ':ix'
local first, limit, bucketed = tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4] == '1'
local low, high = tonumber(ARGV[5]), tonumber(ARGV[6])
local groups, registry = {}, nil
for a = 7, #ARGV do
  local pattern = ARGV[a]
  local star = string.find(pattern, '*', 1, true)
  if star then
    registry = registry or redis.call('SMEMBERS', ix)
    local prefix, suffix = string.sub(pattern, 1, star - 1), string.sub(pattern, star + 1)
    for _, group in ipairs(registry) do
      if #group >= #prefix + #suffix and string.sub(group, 1, #prefix) == prefix
          and string.sub(group, #group - #suffix + 1) == suffix then
        groups[#groups + 1] = group
      end
    end
  else
    groups[#groups + 1] = pattern
  end
end
-- A document under day stands for the days from day - before to day + after (its score:
-- before + @SPAN@ * after); it is kept when day + after >= low and day - before <= high
-- (with low > high, when it spans both). Under a day from low to high it is; under another
-- it may be, as far as the widest span listed reaches.
local reach_before, reach_after = 0, 0
if low or high then
  local widest = redis.call('HMGET', KEYS[3] .. ':ix-span', 'before', 'after')
  reach_before, reach_after = tonumber(widest[1]) or 0, tonumber(widest[2]) or 0
end
local function whole(day)
  return (not low or day >= low) and (not high or day <= high)
end
local function near(day)
  return (not low or day + reach_after >= low) and (not high or day - reach_before <= high)
end
-- the ids of one set (a group's day and part) whose span meets the range: after at least
-- low - day (a score from @SPAN@ times that), before at least day - high
local function kept(set, day)
  local after = (low and day < low) and low - day or 0
  local before = (high and day > high) and day - high or 0
  if before == 0 then
    return redis.call('ZRANGEBYSCORE', set, @SPAN@ * after, '+inf')
  end
  local found = {}
  local scored = redis.call('ZRANGEBYSCORE', set, @SPAN@ * after + before, '+inf', 'WITHSCORES')
  for x = 1, #scored, 2 do
    if tonumber(scored[x + 1]) % @SPAN@ >= before then found[#found + 1] = scored[x] end
  end
  return found
end
-- the sets of a group's day: every part, or (beyond the range) the spanned ids' alone
local function sets_of(group, day, spanned)
  local at = ix .. ':' .. group .. ':' .. day .. ':'
  if spanned then return {at .. '@SPANNED@'} end
  local sets = {}
  for _, part in ipairs({@SETS@}) do sets[#sets + 1] = at .. part end
  return sets
end
-- a < b byte by byte (Lua compares strings by the locale's collation)
local function bytewise(a, b)
  for x = 1, math.min(#a, #b) do
    local ca, cb = string.byte(a, x), string.byte(b, x)
    if ca ~= cb then return ca < cb end
  end
  return #a < #b
end
-- the members of sets in id order: each score weighed 0, ZUNION orders them by member (memcmp)
local function ordered_union(sets)
  local found = {}
  for from = 1, #sets, 1000 do
    local args = {math.min(#sets, from + 999) - from + 1}
    for x = from, math.min(#sets, from + 999) do args[#args + 1] = sets[x] end
    args[#args + 1] = 'WEIGHTS'
    for _ = 1, args[1] do args[#args + 1] = 0 end
    for _, id in ipairs(redis.call('ZUNION', unpack(args))) do found[#found + 1] = id end
  end
  if #sets > 1000 then table.sort(found, bytewise) end
  return found
end
local per_day, day_groups, total = {}, {}, 0
for _, group in ipairs(groups) do
  local counts = redis.call('HGETALL', ix .. ':' .. group)
  for x = 1, #counts, 2 do
    local day, n = tonumber(counts[x]), tonumber(counts[x + 1])
    if not whole(day) then
      n = 0
      if near(day) then
        for _, set in ipairs(sets_of(group, day, true)) do n = n + #kept(set, day) end
      end
    end
    if n > 0 then
      per_day[day] = (per_day[day] or 0) + n
      day_groups[day] = day_groups[day] or {}
      table.insert(day_groups[day], group)
      total = total + n
    end
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
    for _, group in ipairs(day_groups[day]) do
      for _, set in ipairs(sets_of(group, day, not whole(day))) do sets[#sets + 1] = set end
    end
    local here = ordered_union(sets)
    if not whole(day) then
      local wanted, only = {}, {}
      for _, set in ipairs(sets) do
        for _, id in ipairs(kept(set, day)) do wanted[id] = true end
      end
      for _, id in ipairs(here) do
        if wanted[id] then only[#only + 1] = id end
      end
      here = only
    end
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
""".replace("@SETS@", ", ".join(f"'{part}'" for part in LISTING_PARTS))
    .replace("@SPANNED@", SPANNED_PART)
    .replace("@SPAN@", str(SPAN))
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
    days: Days = (None, None),
    partition: int = 0,
) -> Listing:
    """The documents from ``first`` (0-based) to ``first + limit`` that ``groups`` list and
    whose span meets ``days``, newest day first and then by id, with their total and the
    checkpoint, read atomically from the active generation of the view by ``script``
    (:data:`LISTING_SCRIPT`)."""
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
                *("" if day is None else day for day in days),
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
    days: Days = (None, None),
) -> tuple[list[msgspec.Struct], int]:
    """What a listing index answers for ``docs``, the kind's documents by id: the page from
    ``first`` of those ``groups`` list whose span meets ``days`` (newest day, then id byte
    by byte) and how many they list. The in-memory store's reading; the Redis one reads the
    index."""
    where = projection.listed[kind]
    patterns = [pattern.partition("*") for pattern in groups]
    low, high = days
    kept: list[tuple[int, bytes, msgspec.Struct]] = []
    for ident, doc in docs.items():
        listed = where(doc)
        group = listed.group
        if group and listed.meets(low, high) and any(_matches(group, p) for p in patterns):
            kept.append((-listed.day, ident.encode(), doc))
    kept.sort(key=lambda one: one[:2])
    return [doc for _, _, doc in kept[first : first + limit]], len(kept)


def _matches(group: str, pattern: tuple[str, str, str]) -> bool:
    """Whether ``group`` is what a pattern names (split at its ``*``, if it has one)."""
    prefix, star, suffix = pattern
    if not star:
        return group == prefix
    return (
        len(group) >= len(prefix) + len(suffix)
        and group.startswith(prefix)
        and group.endswith(suffix)
    )


async def index_keys(client: aioredis.Redis, keys: ViewKeys) -> list[str]:
    """Every key of the listing indexes of one generation of a view (to drop them)."""
    found: list[str] = []
    for kind in keys.listed:
        ix = f"{keys.kinds[kind]}:ix"
        groups = [text(g) for g in await client.smembers(ix)]
        async with client.pipeline(transaction=False) as pipe:  # every group's days at once
            for group in groups:
                pipe.hkeys(f"{ix}:{group}")
            days_of = await pipe.execute()
        found += [ix, f"{ix}-span"]
        for group, days in zip(groups, days_of, strict=True):
            found.append(f"{ix}:{group}")
            found += [f"{ix}:{group}:{text(d)}:{part}" for d in days for part in LISTING_PARTS]
    return found


Days = tuple[int | None, int | None]
"""The first and last day (ordinals; ``None``: unbounded) a listed document's span must meet."""

Entries = dict[str, tuple[str, int, int]]
"""Where a listing index lists each id: id → (group, day, span)."""


async def stored_index(
    client: aioredis.Redis, keys: ViewKeys, kind: str
) -> tuple[Entries, list[str], Position | None]:
    """What the listing index of ``kind`` holds in one generation of a view, with the view's
    checkpoint: where it lists each id, and the ways it disagrees with itself (an id listed
    twice, a day's count that is not its ids', a group named without ids, a span wider than
    the widest it keeps). Read a group at a time; read again when the view moved
    meanwhile."""
    for _ in range(POINTER_RETRIES):
        before = await client.hget(keys.meta, CHECKPOINT_FIELD)
        entries: Entries = {}
        problems: list[str] = []
        ix = f"{keys.kinds[kind]}:ix"
        widest = [0, 0]
        for group in sorted(text(g) for g in await client.smembers(ix)):
            counts = {text(d): int(n) for d, n in (await client.hgetall(f"{ix}:{group}")).items()}
            if not counts:
                problems.append(f"group {group} is named but lists nothing")
            days = sorted(counts.items())
            async with client.pipeline(transaction=False) as pipe:  # a group at a time
                for day, _ in days:
                    for part in LISTING_PARTS:
                        pipe.zrange(f"{ix}:{group}:{day}:{part}", 0, -1, withscores=True)
                replies = iter(await pipe.execute())
            for day, count in days:
                parts = [next(replies) for _ in LISTING_PARTS]
                found = [(text(i), int(span)) for ids in parts for i, span in ids]
                if len(found) != count:
                    problems.append(f"group {group} day {day} counts {count}, lists {len(found)}")
                for ident, span in found:
                    if ident in entries:
                        problems.append(f"{ident} is listed twice")
                    entries[ident] = (group, int(day), span)
                    widest[0] = max(widest[0], span % SPAN)
                    widest[1] = max(widest[1], span // SPAN)
        bounds = [int(b or 0) for b in await client.hmget(f"{ix}-span", ["before", "after"])]
        for name, bound, wide in zip(("before", "after"), bounds, widest, strict=True):
            if bound < wide:
                problems.append(f"the widest span {name} is kept as {bound}, one lists {wide}")
        if await client.hget(keys.meta, CHECKPOINT_FIELD) == before:
            return entries, problems, checkpoint_of(before)
    raise ViewMovedError(f"{keys.meta} kept moving while its listing index was read")
