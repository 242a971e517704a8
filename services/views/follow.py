"""Following a view's changes: a reader that holds a view fetches only what changed since.

Every commit records in the view's changes stream which documents it changed
(:mod:`services.views.scripts`). :func:`read_kinds` reads document kinds as one atomic
snapshot; a reader that holds them at a checkpoint gets only the documents changed since,
fetched by id in one script (:data:`FOLLOW_SCRIPT`) that walks the changes from the
reader's last seen entry. It reads the kinds whole when it cannot: another generation, a
commit recorded as ``many`` (a bulk commit), more than :data:`CHANGES_FOLLOWED` commits
behind, more than :data:`CHANGES_FETCHED` documents changed, or a checkpoint moved by a
writer that records no changes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from events import Position
from projections import Projection
from services.resp import text
from services.store.keys import Keys
from services.views.codec import check_kinds
from services.views.generations import (
    CHECKPOINT_FIELD,
    Generation,
    ViewKeys,
    checkpoint_of,
    read_whole,
    snapshot,
    view_keys,
    wholes,
)
from services.views.scripts import CHANGES_FETCHED, CHANGES_FOLLOWED, LUA_BUCKET_OF
from services.views.store import KindsRead

__all__ = ["FOLLOW_SCRIPT", "read_kinds"]

FOLLOW_SCRIPT: Final = LUA_BUCKET_OF + (
    """
-- KEYS: view pointer, meta, changes stream, then the kind hashes asked for.
-- ARGV: generation, the checkpoint the reader holds, the last changes entry it saw, then
--   the kind of each kind hash, then for each '1' when it is bucketed (a document is in
--   KEYS[k] .. ':' .. bucket_of(id), or if longer in KEYS[k]), else '0'.
-- Returns {} when the reader must read the kinds whole, else {checkpoint, last entry id,
--   then per kind: the changed ids and their documents (nil: deleted)}.
if (redis.call('GET', KEYS[1]) or '0') ~= ARGV[1] then return {} end
local now = redis.call('HGET', KEYS[2], 'position')
if not now then return {} end
local entries = redis.call('XRANGE', KEYS[3], '(' .. ARGV[3], '+', 'COUNT', @FOLLOWED@ + 1)
if #entries > @FOLLOWED@ then return {} end
local at, last, count = ARGV[2], ARGV[3], 0
local wanted = {}
for k = 4, #KEYS do wanted[ARGV[k]] = {} end
for _, entry in ipairs(entries) do
  local f = {}
  for x = 1, #entry[2], 2 do f[entry[2][x]] = entry[2][x + 1] end
  if f['from'] ~= at or f['many'] then return {} end
  at = f['to']
  for kind, set in pairs(wanted) do
    if f[kind] then
      for _, id in ipairs(cmsgpack.unpack(f[kind])) do
        if not set[id] then set[id] = true; count = count + 1 end
      end
    end
  end
  if count > @FETCHED@ then return {} end
  last = entry[1]
end
if at ~= now then return {} end
local out = {now, last}
for k = 4, #KEYS do
  local ids = {}
  for id in pairs(wanted[ARGV[k]]) do ids[#ids + 1] = id end
  local docs = {}
  if ARGV[k + #KEYS - 3] == '1' then
    for x = 1, #ids do
      local doc = redis.call('HGET', KEYS[k] .. ':' .. bucket_of(ids[x]), ids[x])
      docs[x] = doc or redis.call('HGET', KEYS[k], ids[x])
    end
  else
    for s = 1, #ids, 1000 do
      local got = redis.call('HMGET', KEYS[k], unpack(ids, s, math.min(s + 999, #ids)))
      for x = 1, #got do docs[#docs + 1] = got[x] end
    end
  end
  out[#out + 1] = ids
  out[#out + 1] = docs
end
return out
""".replace("@FOLLOWED@", str(CHANGES_FOLLOWED)).replace("@FETCHED@", str(CHANGES_FETCHED))
)


async def read_kinds(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    kinds: Sequence[str],
    *,
    held: tuple[Position, str, Generation] | None = None,
    partition: int = 0,
) -> KindsRead:
    """The stored documents of ``kinds`` and the view's checkpoint, as one atomic snapshot.

    A reader that holds the documents at ``held`` (checkpoint, last changes entry seen,
    generation) gets only the documents changed since, fetched by id in one script that
    follows the view's changes stream (:data:`FOLLOW_SCRIPT`); the
    kinds are read whole when it cannot (another generation, a commit recorded as ``many``,
    too far behind, or a checkpoint moved by a writer that records no changes).
    """
    check_kinds(projection, kinds)
    if held is not None:
        checkpoint, seen, generation = held
        keys = view_keys(prefix, projection, generation, partition=partition)
        reply = await client.register_script(FOLLOW_SCRIPT)(
            keys=[keys.pointer, keys.meta, keys.changes, *(keys.kinds[kind] for kind in kinds)],
            args=[
                str(generation),
                checkpoint,
                seen,
                *kinds,
                *("1" if kind in keys.bucketed else "0" for kind in kinds),
            ],
        )
        if reply:
            changed = [
                {text(ident): doc for ident, doc in zip(ids, docs, strict=True)}
                for ids, docs in zip(reply[2::2], reply[3::2], strict=True)
            ]
            return KindsRead(
                checkpoint=checkpoint_of(reply[0]),
                seen=text(reply[1]),
                generation=generation,
                changed=changed,
            )

    def commands(pipe: Any, keys: ViewKeys) -> None:
        read_whole(pipe, keys, kinds)
        pipe.hget(keys.meta, CHECKPOINT_FIELD)
        pipe.xrevrange(keys.changes, count=1)

    keys, replies = await snapshot(client, prefix, projection, None, commands, partition=partition)
    whole, (checkpoint, last) = wholes(replies, keys, kinds)
    return KindsRead(
        checkpoint=checkpoint_of(checkpoint),
        seen=text(last[0][0]) if last else "0-0",
        generation=keys.generation,
        whole=whole,
    )
