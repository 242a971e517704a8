"""The scripts of a rebuild: flushing a batch into the new generation, and the swap.

:data:`BUILD_SCRIPT` writes what a batch of the fold changed, the new generation's own
checkpoint with its ordinal, the rebuild's progress in its record and any dead letters,
while the rebuild holds its lock. :data:`SWAP_SCRIPT` swaps the new generation in once the
live projector is paused (the rebuild holds the view's lease) and the new checkpoint is at or
past the live one; it sets the consumer group to the new checkpoint, with its ordinal as the
entries-read count.
"""

from __future__ import annotations

from typing import Final

import msgspec

from services.views.codec import pack_docs
from services.views.generations import ViewKeys
from services.views.scripts import LUA_PUT_DOC, Changes, by_kind, index_entries

__all__ = ["BUILD_SCRIPT", "SWAP_SCRIPT", "packed_doc_args"]

BUILD_SCRIPT: Final = (
    LUA_PUT_DOC
    + """
-- KEYS: lock, meta (of the generation being built), dlq, record ('' ok), then kind hashes.
-- ARGV: lock owner, expected checkpoint ('' none), new checkpoint, its ordinal ('' unknown),
--   dead letters D, record fields N, then N pairs (field, value), then per kind hash: a
--   msgpack array of the ids written, one of their documents (each a msgpack string holding
--   the document as stored), one of the ids deleted, one of the bucket of each of those
--   ids (empty unless the kind is bucketed: its documents go where put_doc puts them) and
--   one of the listing index entry of each document written (empty unless the kind is
--   kept in one: index_doc);
--   then per dead letter: pairs F, F pairs.
-- Returns 1 when flushed, 0 when the lock is not the owner's, -1 when the checkpoint moved.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
local current = redis.call('HGET', KEYS[2], 'position')
if (current or '') ~= ARGV[2] then return -1 end
local i = 7
local nrec = tonumber(ARGV[6])
for _ = 1, nrec do
  redis.call('HSET', KEYS[4], ARGV[i], ARGV[i + 1])
  i = i + 2
end
local batch = {}
for k = 5, #KEYS do
  local ids, docs = cmsgpack.unpack(ARGV[i]), cmsgpack.unpack(ARGV[i + 1])
  local dels, buckets = cmsgpack.unpack(ARGV[i + 2]), cmsgpack.unpack(ARGV[i + 3])
  local entries = cmsgpack.unpack(ARGV[i + 4])
  i = i + 5
  for j = 1, #entries do index_doc(KEYS[k], ids[j], entries[j]) end
  if #buckets > 0 then
    for j = 1, #ids do
      put_doc(KEYS[k], KEYS[k] .. ':' .. buckets[j], ids[j], docs[j])
    end
    for j = 1, #dels do
      del_doc(KEYS[k], KEYS[k] .. ':' .. buckets[#ids + j], dels[j])
    end
  else
    local n = 0
    for j = 1, #ids do
      batch[n + 1] = ids[j]
      batch[n + 2] = docs[j]
      n = n + 2
      if n >= 2000 then
        redis.call('HSET', KEYS[k], unpack(batch, 1, n))
        n = 0
      end
    end
    if n > 0 then redis.call('HSET', KEYS[k], unpack(batch, 1, n)) end
    for s = 1, #dels, 1000 do
      redis.call('HDEL', KEYS[k], unpack(dels, s, math.min(s + 999, #dels)))
    end
  end
end
for _ = 1, tonumber(ARGV[5]) do
  local npairs = tonumber(ARGV[i])
  local fields = {}
  for j = 1, 2 * npairs do fields[j] = ARGV[i + j] end
  i = i + 1 + 2 * npairs
  redis.call('XADD', KEYS[3], '*', unpack(fields))
end
if ARGV[3] ~= '' then
  redis.call('HSET', KEYS[2], 'position', ARGV[3])
  if ARGV[4] ~= '' then
    redis.call('HSET', KEYS[2], 'ordinal', ARGV[4])
  else
    redis.call('HDEL', KEYS[2], 'ordinal')
  end
end
return 1
"""
)
"""Flushes a batch of a rebuild. Its documents come packed, five arguments a kind (ids,
documents, deleted ids, buckets, index entries: :func:`packed_doc_args`) rather than two per
document: packing an argument costs the client about a microsecond, unpacking them costs
Redis (another core) less."""

_pack: Final = msgspec.msgpack.Encoder()


def packed_doc_args(changes: Changes, keys: ViewKeys) -> tuple[list[str], list[bytes]]:
    """The kind hashes and the arguments :data:`BUILD_SCRIPT` reads for ``changes``: per
    kind the ids written, their documents as the view stores them
    (:func:`~services.views.codec.encode_doc`), the ids deleted and, for a bucketed kind, the
    bucket of each of those ids and, for a kind kept in a listing index, the entry of each
    document written (:func:`~services.views.scripts.index_entries`), each a msgpack array."""
    per_kind = by_kind(changes)
    args: list[bytes] = []
    for kind, (ids, docs, dels) in per_kind.items():
        buckets = keys.buckets_of(kind, (*ids, *dels))
        entries = index_entries(keys, kind, docs, dels)
        args += [_pack.encode(ids), pack_docs(docs), _pack.encode(dels), _pack.encode(buckets)]
        args.append(_pack.encode(entries))
    return [keys.kinds[kind] for kind in per_kind], args


SWAP_SCRIPT: Final = """
-- KEYS: view pointer, live lease, live meta, new meta, log, record.
-- ARGV: lease owner, old generation, new generation, consumer group, finished_at.
-- Returns 1 when swapped; 0 lease not ours; -1 pointer moved; -2 live view ahead of the new.
if redis.call('GET', KEYS[2]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[2] then return -1 end
local function key(p)
  if p == nil or p == false or p == '' then return -1, -1 end
  local ms, seq = string.match(p, '^(%d+)-(%d+)$')
  return tonumber(ms), tonumber(seq)
end
local live = redis.call('HGET', KEYS[3], 'position')
local new = redis.call('HGET', KEYS[4], 'position')
local lms, lseq = key(live)
local nms, nseq = key(new)
if lms > nms or (lms == nms and lseq > nseq) then return -2 end
local ordinal = redis.call('HGET', KEYS[4], 'ordinal')
if new and ordinal then
  redis.call('XGROUP', 'SETID', KEYS[5], ARGV[4], new, 'ENTRIESREAD', ordinal)
elseif new then
  redis.call('XGROUP', 'SETID', KEYS[5], ARGV[4], new)
else
  redis.call('XGROUP', 'SETID', KEYS[5], ARGV[4], '0', 'ENTRIESREAD', 0)
end
redis.call('SET', KEYS[1], ARGV[3])
redis.call('HSET', KEYS[6], 'state', 'done', 'finished_at', ARGV[5], 'error', '')
return 1
"""
