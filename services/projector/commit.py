"""The projector's commit: documents, dead letters, checkpoint and group in one Lua script.

**The commit is one script** (:data:`COMMIT_SCRIPT`) that writes the documents the batch
changed (``HSET``/``HDEL`` on the view's kind hashes, recording them in the view's changes
stream: :mod:`services.views.scripts`), any dead letters (``XADD`` to ``<prefix>:dlq``), the
new checkpoint (field ``position`` of the view's meta hash), and only does so when (a) the
lease is still the worker's, (b) the view's active generation is still the one the worker
writes and (c) the stored checkpoint is still the one the worker's state was built on.
Beside the checkpoint it writes the checkpoint's ordinal, the number of log entries at or
before it, from which the view's lag is computed (:mod:`services.views.freshness`). A
catch-up commit also moves the projection's consumer group to the new checkpoint (``XGROUP
SETID`` with the ordinal as its entries-read count), which leaves the group exactly as
delivering and acking the entries would have.

**Together.** The workers of a pool following the live log resume together from one read
of it; their commits of that turn go to Redis in one call (:class:`Commits`,
:data:`COMMIT_MANY_SCRIPT`), each checked and written exactly as alone, so a pool pays one
round trip a live batch, not one a view.

The script touches the lease and the dead-letter stream besides the view's own keys (which
share the hash tag ``{view:<name>:v<version>}``); that is fine on one Redis server. In the
partitioned layout every one of them is under the partition's hash tag.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import Position
from projections import Projection
from projections.docs import Key
from services.projector.errors import CheckpointMovedError, GenerationMovedError, LeaseLostError
from services.resp import text
from services.views.generations import ViewKeys
from services.views.scripts import LUA_WRITE_DOCS, doc_change_args

__all__ = ["COMMIT_MANY_SCRIPT", "COMMIT_SCRIPT", "Batch", "Commits", "Committer", "dead_letter"]

_COMMIT_BODY: Final = """
-- KEYS: lease, meta, dlq, view pointer, log, changes stream, then the view's kind hashes
--   this commit writes.
-- ARGV: owner, expected checkpoint ('' for none), new checkpoint, the generation the worker
--   writes to, the consumer group to move ('' to leave it alone), the new checkpoint's
--   ordinal ('' when unknown: the field is dropped), the number of dead letters D, then per
--   kind hash what write_docs reads (its kind, counts and flags, documents, deletions, buckets
--   and index entries),
--   then per dead letter: pairs F, F pairs.
-- Returns 1 when committed, 2 when committed but the group was left where it was (entries
-- are pending in it, or it is already past the new checkpoint), 0 when the lease is not
-- the owner's, -1 when the checkpoint moved, -2 when the generation is no longer active.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[4]) or '0') ~= ARGV[4] then return -2 end
local current = redis.call('HGET', KEYS[2], 'position')
if (current or '') ~= ARGV[2] then return -1 end
local i, listed = write_docs(7, 8, {})
record_changes(KEYS[6], ARGV[2], ARGV[3], listed)
for _ = 1, tonumber(ARGV[7]) do
  local npairs = tonumber(ARGV[i])
  redis.call('XADD', KEYS[3], '*', unpack(ARGV, i + 1, i + 2 * npairs))
  i = i + 1 + 2 * npairs
end
if ARGV[6] == '' then
  redis.call('HSET', KEYS[2], 'position', ARGV[3])
  redis.call('HDEL', KEYS[2], 'ordinal')
else
  redis.call('HSET', KEYS[2], 'position', ARGV[3], 'ordinal', ARGV[6])
end
if ARGV[5] == '' then return 1 end
local function newer(a, b)
  local am, as = string.match(a, '^(%d+)-(%d+)$')
  local bm, bs = string.match(b, '^(%d+)-(%d+)$')
  am, as, bm, bs = tonumber(am), tonumber(as), tonumber(bm), tonumber(bs)
  return am > bm or (am == bm and as > bs)
end
for _, group in ipairs(redis.call('XINFO', 'GROUPS', KEYS[5])) do
  local info = {}
  for x = 1, #group, 2 do info[group[x]] = group[x + 1] end
  if info['name'] == ARGV[5] then
    if info['pending'] ~= 0 or not newer(ARGV[3], info['last-delivered-id']) then return 2 end
    if ARGV[6] ~= '' then
      redis.call('XGROUP', 'SETID', KEYS[5], ARGV[5], ARGV[3], 'ENTRIESREAD', ARGV[6])
    else
      redis.call('XGROUP', 'SETID', KEYS[5], ARGV[5], ARGV[3])
    end
    return 1
  end
end
return 2
"""

COMMIT_SCRIPT: Final = LUA_WRITE_DOCS + _COMMIT_BODY


def _on_section(lua: str) -> str:
    """``lua`` reading the tables ``K`` and ``A`` (one section's keys and arguments)
    instead of ``KEYS`` and ``ARGV``."""
    return lua.replace("KEYS", "K").replace("ARGV", "A")


COMMIT_MANY_SCRIPT: Final = (
    """
-- The commits of several views in one call, each exactly as COMMIT_SCRIPT does it, checked
-- and written on its own (one refused leaves the others committed).
-- ARGV: the number of sections S, then per section: its key count, its argument count,
--   then its arguments; KEYS: the sections' keys one after the other.
-- Returns each section's answer, in order.
local K, A = {}, {}
"""
    + _on_section(LUA_WRITE_DOCS)
    + "local function commit_one()\n"
    + _on_section(_COMMIT_BODY)
    + """end
local out, k, a = {}, 1, 2
for s = 1, tonumber(ARGV[1]) do
  local nk, na = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  a = a + 2
  K, A = {}, {}
  for x = 1, nk do K[x] = KEYS[k + x - 1] end
  for x = 1, na do A[x] = ARGV[a + x - 1] end
  k, a = k + nk, a + na
  out[s] = commit_one()
end
return out
"""
)


class Batch:
    """What one batch leaves to commit: changed documents, dead letters, entries to ack, and
    how many log entries it moves the checkpoint past (``moved``)."""

    __slots__ = ("acks", "changes", "dead", "last", "moved")

    def __init__(self, changes: dict[Key, msgspec.Struct | None], last: Position | None) -> None:
        self.changes = changes
        self.dead: list[list[bytes | str]] = []
        self.acks: list[str] = []
        self.last = last
        self.moved = 0


def dead_letter(
    projection: Projection,
    name: str,
    position: str,
    exc: Exception,
    fields: Mapping[Any, Any],
    *,
    deliveries: int,
    consumer: str,
) -> list[bytes | str]:
    """The fields of the dead letter of a log entry ``projection`` cannot apply (``name``:
    the projection's name, with its partition on several), its original fields included."""
    letter: list[bytes | str] = [
        "projection", name,
        "version", str(projection.version),
        "position", position,
        "error_type", type(exc).__name__,
        "error", str(exc)[:2000],
        "deliveries", str(deliveries),
        "consumer", consumer,
    ]  # fmt: skip
    for field, value in fields.items():
        letter += [f"entry.{text(field)}", value]
    return letter


class Committer:
    """Runs :data:`COMMIT_SCRIPT` for one worker (its consumer name is the lease owner)."""

    def __init__(self, client: aioredis.Redis, consumer: str) -> None:
        self.consumer = consumer
        self._commit = client.register_script(COMMIT_SCRIPT)

    async def commit(
        self,
        keys: ViewKeys,
        batch: Batch,
        expected: Position | None,
        last: Position,
        *,
        ordinal: int | None,
        group: str | None = None,
        together: Commits | None = None,
    ) -> int:
        """Write the batch's documents, dead letters, checkpoint ``last`` and its ``ordinal``
        (``None``: unknown, the field is dropped) in one step.

        ``expected`` is the checkpoint the worker's state is built on. ``group`` (its name)
        also moves the consumer group to ``last``, with ``ordinal`` as its entries-read count.
        ``together`` sends the commit with the other workers' made in the same turn of the
        event loop, in one script call (:class:`Commits`).
        Returns the script's answer (1, or 2 when the group was to move and did not); raises
        :class:`LeaseLostError`, :class:`GenerationMovedError` or
        :class:`CheckpointMovedError` when it refused.
        """
        script_keys = [keys.lease, keys.meta, keys.dlq, keys.pointer, keys.log, keys.changes]
        args: list[bytes | str | int] = [
            self.consumer,
            expected or "",
            last,
            str(keys.generation),
            group or "",
            "" if ordinal is None else str(ordinal),
            str(len(batch.dead)),
        ]
        doc_keys, doc_args = doc_change_args(batch.changes, keys)
        script_keys += doc_keys
        args += doc_args
        for letter in batch.dead:
            args += [str(len(letter) // 2), *letter]
        if together is None:
            result = await self._commit(keys=script_keys, args=args)
        else:
            result = await together.commit(script_keys, args)
        if result == 0:
            raise LeaseLostError(keys.lease)
        if result == -2:
            raise GenerationMovedError(f"{keys.pointer} no longer names {keys.generation}")
        if result not in (1, 2):
            raise CheckpointMovedError(f"{keys.meta} is not at {expected}")
        return int(result)


class Commits:
    """Sends the commits the workers of a pool make in one turn of the event loop in one
    script call (:data:`COMMIT_MANY_SCRIPT`): one round trip a batch for the pool instead
    of one a worker.

    The workers following the log wait for the same read of it and resume together
    (:meth:`~services.projector.catch_up.SharedReader.follow`), each folds its batch and
    hands its commit here without waiting for anything else; the call goes out at the next
    turn, with every commit handed in meanwhile. Each commit is checked and written on its
    own, exactly as alone; each worker gets its own answer. Only commits of one log
    partition go together (in the partitioned layout their keys share its hash tag).
    """

    def __init__(self, client: aioredis.Redis) -> None:
        self._script = client.register_script(COMMIT_MANY_SCRIPT)
        self._queued: list[tuple[list[str], list[bytes | str | int], asyncio.Future[int]]] = []
        self._sending: asyncio.Task[None] | None = None

    async def commit(self, keys: list[str], args: list[bytes | str | int]) -> int:
        """Send one commit's keys and arguments with the others of this turn; its answer."""
        answer: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._queued.append((keys, args, answer))
        if self._sending is None or self._sending.done():
            self._sending = asyncio.create_task(self._send())
        return await answer

    async def _send(self) -> None:
        """Send what is queued; then what was queued meanwhile, until nothing is."""
        while self._queued:
            queued, self._queued = self._queued, []
            keys: list[str] = []
            args: list[bytes | str | int] = [len(queued)]
            for section_keys, section_args, _ in queued:
                keys += section_keys
                args += [len(section_keys), len(section_args), *section_args]
            try:
                results = await self._script(keys=keys, args=args)
            except asyncio.CancelledError:
                for _, _, answer in [*queued, *self._queued]:
                    answer.cancel()
                self._queued = []
                raise
            except Exception as exc:  # each worker meets it as if its own call had failed
                for _, _, answer in queued:
                    if not answer.done():
                        answer.set_exception(exc)
                continue
            for (_, _, answer), result in zip(queued, results, strict=True):
                if not answer.done():
                    answer.set_result(int(result))
