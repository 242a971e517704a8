"""The Lua that writes a view's documents and records, beside them, what each commit changed.

Beside a view's documents, the stream ``…:changes`` records every commit: the checkpoint it
moved from and to, and per kind the ids of the documents it wrote or deleted (``many`` for a
bulk commit). A reader that holds a view follows it (:mod:`services.views.follow`) and fetches only
those documents instead of whole kinds. Every script that writes documents (the projector's
commit, rebuilds, dead-letter retries, :data:`WRITE_SCRIPT`) starts with
:data:`LUA_WRITE_DOCS`, so all of them record their changes alike.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

import msgspec

from projections.docs import Key
from services.views.codec import encode_doc
from services.views.errors import UnlistableChangeError
from services.views.generations import (
    DAY_PART,
    LISTPACK_VALUE,
    SPAN,
    SPANNED_PART,
    ViewKeys,
    span_of,
)

__all__ = [
    "CHANGES_FETCHED",
    "CHANGES_FOLLOWED",
    "CHANGES_KEPT",
    "CHANGES_LISTED",
    "LUA_BUCKET_OF",
    "LUA_PUT_DOC",
    "LUA_WRITE_DOCS",
    "WRITE_SCRIPT",
    "Changes",
    "by_kind",
    "doc_change_args",
    "index_entries",
]

CHANGES_KEPT: Final = 256
"""Commits a view's changes stream keeps (about: ``XADD MAXLEN ~``)."""
CHANGES_LISTED: Final = 5000
"""Most document ids one commit lists; a bigger commit (a catch-up) is recorded as ``many``.

A follower's batch (up to 1,000 entries) stays under it: a projector that fell behind for a
moment must not make every reader read whole kinds (at 1M events a whole read of the
victims cells held the API for up to a second)."""
CHANGES_FOLLOWED: Final = 200
"""Most commits a reader follows through the changes stream (further behind, or past a
commit recorded as ``many``, it reads the kinds whole). Below :data:`CHANGES_KEPT`, so a
reader whose last seen entry was trimmed away always finds more than this after it."""
CHANGES_FETCHED: Final = 10_000
"""Most changed documents a reader fetches by id at once (more: it reads the kinds whole)."""

LUA_BUCKET_OF: Final = """
-- bucket_of(id): the bucket (hex) of a document id in a bucketed kind, as
-- services.store.keys.bucket_of computes it: the CRC-32 of the id modulo 8192.
local crc_table
local function bucket_of(id)
  if crc_table == nil then
    crc_table = {}
    for n = 0, 255 do
      local c = n
      for _ = 1, 8 do
        if bit.band(c, 1) == 1 then
          c = bit.bxor(bit.rshift(c, 1), 0xEDB88320)
        else
          c = bit.rshift(c, 1)
        end
      end
      crc_table[n] = c
    end
  end
  local c = bit.bnot(0)
  for x = 1, #id do
    c = bit.bxor(bit.rshift(c, 8), crc_table[bit.band(bit.bxor(c, string.byte(id, x)), 255)])
  end
  return string.format('%x', bit.band(bit.bnot(c), 8191))
end
"""
"""A Lua function a script that reads a bucketed kind by id starts with."""

LUA_PUT_DOC: Final = (
    """
-- put_doc(kind_hash, bucket, id, doc): write a document of a bucketed kind where it belongs
-- (its bucket when id and doc are at most @LISTPACK@ bytes, else the kind's hash) and remove
-- it from the other.
local function put_doc(kind_hash, bucket, id, doc)
  if #doc <= @LISTPACK@ and #id <= @LISTPACK@ then
    redis.call('HSET', bucket, id, doc)
    redis.call('HDEL', kind_hash, id)
  else
    redis.call('HSET', kind_hash, id, doc)
    redis.call('HDEL', bucket, id)
  end
end
-- del_doc(kind_hash, bucket, id): remove a document of a bucketed kind from wherever it is.
local function del_doc(kind_hash, bucket, id)
  redis.call('HDEL', bucket, id)
  redis.call('HDEL', kind_hash, id)
end
-- index_doc(kind_hash, id, entry): keep a document's id where the kind's listing index
-- wants it. entry is '<day> <span> <group> <other> ...' (group '-': in none): the id goes
-- into the sorted set <kind_hash>:ix:<group>:<day>:<part> (its score the span of days it
-- stands for, before + @SPAN@ * after; its part '@DAY@' for a span of 0, '@SPANNED@' for
-- another) and out of each other group's set of that day and part; the hash
-- <kind_hash>:ix:<group> counts the ids per day, the set <kind_hash>:ix names every group
-- that lists one, and the hash <kind_hash>:ix-span keeps the widest span listed ('before',
-- 'after': bounds, never narrowed).
local function index_doc(kind_hash, id, entry)
  local day, span, group, others = string.match(entry, '^(%d+) (%d+) (%S+)(.*)$')
  local ix = kind_hash .. ':ix'
  local at = ':' .. day .. ':' .. (span == '0' and '@DAY@' or '@SPANNED@')
  if group ~= '-' and redis.call('ZADD', ix .. ':' .. group .. at, span, id) == 1 then
    if redis.call('HINCRBY', ix .. ':' .. group, day, 1) == 1 then
      redis.call('SADD', ix, group)  -- a day new to the group: the group may be new too
    end
    if span ~= '0' then
      local widest = kind_hash .. ':ix-span'
      local now = redis.call('HMGET', widest, 'before', 'after')
      local before, after = tonumber(span) % @SPAN@, math.floor(tonumber(span) / @SPAN@)
      if before > (tonumber(now[1]) or 0) then redis.call('HSET', widest, 'before', before) end
      if after > (tonumber(now[2]) or 0) then redis.call('HSET', widest, 'after', after) end
    end
  end
  for other in string.gmatch(others, '%S+') do
    local counts = ix .. ':' .. other
    if redis.call('ZREM', counts .. at, id) == 1
        and redis.call('HINCRBY', counts, day, -1) <= 0 then
      redis.call('HDEL', counts, day)
      if redis.call('EXISTS', counts) == 0 then redis.call('SREM', ix, other) end
    end
  end
end
""".replace("@LISTPACK@", str(LISTPACK_VALUE))
    .replace("@SPAN@", str(SPAN))
    .replace("@DAY@", DAY_PART)
    .replace("@SPANNED@", SPANNED_PART)
)
"""The Lua functions every script that writes a bucketed kind's documents, or a kind kept in
a listing index, starts with (:mod:`services.views.generations`, :mod:`services.views.listing`)."""

LUA_WRITE_DOCS: Final = (
    LUA_PUT_DOC
    + """
-- write_docs(first_key, i, listed): for each kind hash KEYS[first_key..], ARGV from i holds
-- its kind, puts P, deletes R, B ('1' when the kind is bucketed, else '0'), X ('1' when it
-- is kept in a listing index, else '0'), P (id, document) pairs, R ids, when bucketed the
-- bucket of each of those P + R ids (the documents go where put_doc puts them), and when
-- indexed the index entry of each of the P documents (index_doc). Unless listed is nil,
-- each kind's written and deleted ids are added to it (kind, msgpack array of ids, ...)
-- until it would hold more than @LISTED@ ids, when it becomes nil. Returns the index after
-- them and listed.
local function write_docs(first_key, i, listed)
  for k = first_key, #KEYS do
    local kind, puts, dels = ARGV[i], tonumber(ARGV[i + 1]), tonumber(ARGV[i + 2])
    local bucketed, indexed = ARGV[i + 3] == '1', ARGV[i + 4] == '1'
    local first_put, first_del = i + 5, i + 5 + 2 * puts
    local after = first_del + dels
    if bucketed then
      local b = after
      for x = first_put, first_del - 1, 2 do
        put_doc(KEYS[k], KEYS[k] .. ':' .. ARGV[b], ARGV[x], ARGV[x + 1])
        b = b + 1
      end
      for x = first_del, after - 1 do
        del_doc(KEYS[k], KEYS[k] .. ':' .. ARGV[b], ARGV[x])
        b = b + 1
      end
      i = b
    else
      for s = first_put, first_del - 1, 1000 do
        redis.call('HSET', KEYS[k], unpack(ARGV, s, math.min(s + 999, first_del - 1)))
      end
      for s = first_del, after - 1, 1000 do
        redis.call('HDEL', KEYS[k], unpack(ARGV, s, math.min(s + 999, after - 1)))
      end
      i = after
    end
    if indexed then
      for x = first_put, first_del - 1, 2 do
        index_doc(KEYS[k], ARGV[x], ARGV[i])
        i = i + 1
      end
    end
    if listed ~= nil then
      listed.n = (listed.n or 0) + puts + dels
      if listed.n > @LISTED@ then
        listed = nil
      elseif puts + dels > 0 then
        local ids = {}
        for x = first_put, first_del - 1, 2 do ids[#ids + 1] = ARGV[x] end
        for x = first_del, after - 1 do ids[#ids + 1] = ARGV[x] end
        listed[#listed + 1] = kind
        listed[#listed + 1] = cmsgpack.pack(ids)
      end
    end
  end
  return i, listed
end
-- record_changes(key, from, to, listed): append one commit (checkpoint from -> to) to a
-- view's changes stream, with the ids it changed per kind, or 'many' when listed is nil.
local function record_changes(key, from, to, listed)
  local record = {'from', from, 'to', to}
  if listed == nil then
    record[5], record[6] = 'many', '1'
  else
    for x = 1, #listed do record[#record + 1] = listed[x] end
  end
  redis.call('XADD', key, 'MAXLEN', '~', '@KEPT@', '*', unpack(record))
end
""".replace("@LISTED@", str(CHANGES_LISTED)).replace("@KEPT@", str(CHANGES_KEPT))
)
"""Lua functions, prepended to every script that writes a view's documents (the runner's
commit, rebuilds, dead-letter retries): ``write_docs`` writes what :func:`doc_change_args`
packs, and ``record_changes`` records the commit in the view's changes stream (``from``,
``to``, then per kind the msgpack array of the ids it wrote or deleted, or ``many``), which
readers follow (:data:`FOLLOW_SCRIPT`)."""


Changes = Mapping[Key, msgspec.Struct | None]
"""What a commit writes: (kind, id) → the document, or ``None`` to delete it."""


def by_kind(changes: Changes) -> dict[str, tuple[list[str], list[msgspec.Struct], list[str]]]:
    """``changes`` per kind, in the order kinds first come: the ids written, their
    documents, the ids deleted."""
    per_kind: dict[str, tuple[list[str], list[msgspec.Struct], list[str]]] = {}
    for (kind, ident), doc in changes.items():
        found = per_kind.get(kind)
        if found is None:
            found = per_kind[kind] = ([], [], [])
        if doc is None:
            found[2].append(ident)
        else:
            found[0].append(ident)
            found[1].append(doc)
    return per_kind


def doc_change_args(changes: Changes, keys: ViewKeys) -> tuple[list[str], list[bytes | str | int]]:
    """The kind hashes and the arguments ``write_docs`` (:data:`LUA_WRITE_DOCS`) reads for
    ``changes``: per kind its name, the counts, whether it is bucketed and whether indexed,
    the (id, stored document) pairs, the deleted ids, for a bucketed kind the bucket of each
    and for an indexed kind the index entry of each document written."""
    per_kind = by_kind(changes)
    args: list[bytes | str | int] = []
    for kind, (ids, docs, dels) in per_kind.items():
        buckets = keys.buckets_of(kind, (*ids, *dels))
        entries = index_entries(keys, kind, docs, dels)
        args += [kind, len(ids), len(dels), "1" if buckets else "0", "1" if entries else "0"]
        for ident, doc in zip(ids, docs, strict=True):
            args += (ident, encode_doc(doc))
        args += [*dels, *buckets, *entries]
    return [keys.kinds[kind] for kind in per_kind], args


def index_entries(
    keys: ViewKeys, kind: str, docs: Sequence[msgspec.Struct], dels: Sequence[str]
) -> list[str]:
    """For a kind kept in a listing index, the entry ``index_doc`` (:data:`LUA_PUT_DOC`) reads
    for each of ``docs``: ``<day> <span> <group> <other> ...``
    (:func:`~services.views.generations.span_of`); none for another kind.

    :class:`~services.views.errors.UnlistableChangeError` for a deleted document of such a
    kind (its place is known only from the document), a group holding white space or ``:``
    (which the index's key names use), or a span out of bounds."""
    where = keys.listed.get(kind)
    if where is None:
        return []
    if dels:
        raise UnlistableChangeError(f"documents of {kind!r} are never deleted: {dels[:3]}")
    entries = []
    for doc in docs:
        listed = where(doc)
        groups = " ".join((listed.group or "-", *listed.others))
        if groups not in _NAMED:
            if len(groups.split()) != 1 + len(listed.others) or ":" in groups:
                raise UnlistableChangeError(f"a listing group holds white space or ':': {groups!r}")
            if len(_NAMED) > _NAMED_KEPT:
                _NAMED.clear()
            _NAMED.add(groups)
        entries.append(f"{listed.day} {span_of(listed)} {groups}")
    return entries


_NAMED: Final[set[str]] = set()
"""Groups (with the groups left) already checked to name keys well: a few per status and
place."""
_NAMED_KEPT: Final = 50_000
""":data:`_NAMED` is emptied when it holds more."""


WRITE_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- KEYS: view pointer, meta, changes stream, then the kind hashes written.
-- ARGV: generation, expected checkpoint ('' for none), new checkpoint, then per kind hash
--   what write_docs reads.
-- Returns 1 when written, -1 when the checkpoint moved, -2 when the generation is not the
-- active one.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return -2 end
if (redis.call('HGET', KEYS[2], 'position') or '') ~= ARGV[2] then return -1 end
local _, listed = write_docs(4, 4, {})
record_changes(KEYS[3], ARGV[2], ARGV[3], listed)
redis.call('HSET', KEYS[2], 'position', ARGV[3])
redis.call('HDEL', KEYS[2], 'ordinal')
return 1
"""
)
"""A plain commit of documents and checkpoint, checked against the writer's checkpoint and
generation (:meth:`services.views.redis.RedisViewStore.write`). It knows no ordinal, so it
drops the stored one: the view's lag is counted until its projector stores one again."""
