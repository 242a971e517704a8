"""Dead letters: the log entries the projectors (and rebuilds) could not apply.

They wait in ``<prefix>:dlq``: :func:`dlq_list`, :func:`dlq_show`, :func:`dlq_retry` and
:func:`dlq_drop`. Retrying applies the one entry to the live view once its projection can
apply it (the projector's checkpoint is already past it): it takes the view's lease (pausing
the live projector), loads the view, applies the entry, and in one Lua script writes the
changed documents (keeping the checkpoint), deletes the letter and records the retry in
``<prefix>:dlq:log``; then it gives the lease back. Dropping records the letter with the
reason in ``<prefix>:dlq:log`` and deletes it, in one script: nothing leaves the
dead-letter stream without a trace.

A retried entry is applied on top of the view's later events: that is the operator's call,
right for entries whose effect does not depend on what came after them.

**Partitions.** On several partitions (or a cluster) every partition has its dead-letter
stream (``<prefix>:{p<N>}:dlq``) and a letter's id names it (``p<N>:<entry id>``). A retry writes
the view of the letter's partition in one script whose keys all share that partition's
hash tag; the record in the global ``<prefix>:dlq:log`` follows in a second command (so
does a drop's). One partition on one node keeps the single-script behaviour above.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from events import CodecError, Position, json_fields, position_key
from projections import PROJECTIONS
from services.errors import LedgerError
from services.projector.lease import Leases
from services.resp import text
from services.store.keys import Keys
from services.store.log import decode_entry, stream_pages
from services.views.errors import ViewChangedError
from services.views.fold import FoldRun
from services.views.generations import current_view_keys
from services.views.own import OwnDocs
from services.views.redis import RedisViewStore
from services.views.scripts import LUA_WRITE_DOCS, doc_change_args

__all__ = [
    "RETRY_PARTITION_SCRIPT",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterNotFoundError",
    "DeadLetterStillFailsError",
    "OpsError",
    "dlq_drop",
    "dlq_list",
    "dlq_retry",
    "dlq_show",
    "letter_id",
    "parse_letter_id",
]


class OpsError(LedgerError):
    """Root of the errors of the operator tools."""


class DeadLetterError(OpsError):
    """Root of the errors of handling one dead letter."""


class DeadLetterNotFoundError(DeadLetterError):
    """Raised when the dead-letter stream holds no entry with the given id."""


class DeadLetterStillFailsError(DeadLetterError):
    """Raised by a retry when the projection still cannot apply the entry; nothing changed."""


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of a dead-letter stream."""

    id: str
    """The letter's id: its entry id, prefixed ``p<N>:`` in the partitioned layout."""
    projection: str
    version: int
    position: str
    error_type: str
    error: str
    deliveries: int
    consumer: str
    entry: dict[str, str]
    """The log entry's own fields in codec 0's form (``type``, ``event_id``, ``v``, ``data``:
    the event's JSON, whatever codec the log entry has; see :func:`events.json_fields`)."""
    partition: int = 0
    """The partition whose dead-letter stream holds the letter."""
    entry_id: str = ""
    """The letter's entry id in that stream."""


def letter_id(keys: Keys, partition: int, entry_id: str) -> str:
    """The id operators use for a letter: ``p<N>:<entry id>`` when partitioned, else the id."""
    return f"p{partition}:{entry_id}" if keys.partitioned else entry_id


def parse_letter_id(keys: Keys, ident: str) -> tuple[int, str]:
    """The partition and entry id a :func:`letter_id` names.

    :class:`DeadLetterNotFoundError` when it cannot name a letter of this layout.
    """
    if not keys.partitioned:
        return 0, ident
    head, sep, entry_id = ident.partition(":")
    if sep and head.startswith("p") and head[1:].isdigit():
        partition = int(head[1:])
        if partition < keys.partitions and entry_id:
            return partition, entry_id
    raise DeadLetterNotFoundError(
        f"no dead letter {ident!r}: ids name their partition, p<0..{keys.partitions - 1}>:<id>"
    )


def _is_entry_field(name: Any) -> bool:
    return text(name).startswith("entry.")


def _entry_of(raw: Mapping[Any, Any]) -> dict[str, str]:
    """The letter's copy of the log entry as text, in codec 0's form (the JSON of its event)
    when it decodes; a compact entry that does not is shown with its bytes escaped."""
    entry = {text(k)[len("entry.") :]: v for k, v in raw.items() if _is_entry_field(k)}
    try:
        return json_fields(entry)
    except CodecError:
        return {
            name: value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value
            for name, value in entry.items()
        }


def _letter(keys: Keys, partition: int, ident: Any, raw: Mapping[Any, Any] | None) -> DeadLetter:
    entry = _entry_of(raw or {})
    fields = {text(k): text(v) for k, v in (raw or {}).items() if not _is_entry_field(k)}

    def number(name: str) -> int:
        try:
            return int(fields.get(name, "0"))
        except ValueError:
            return 0

    return DeadLetter(
        id=letter_id(keys, partition, text(ident)),
        projection=fields.get("projection", ""),
        version=number("version"),
        position=fields.get("position", ""),
        error_type=fields.get("error_type", ""),
        error=fields.get("error", ""),
        deliveries=number("deliveries"),
        consumer=fields.get("consumer", ""),
        entry=entry,
        partition=partition,
        entry_id=text(ident),
    )


async def _stream_letters(
    client: aioredis.Redis, keys: Keys, partition: int, count: int | None
) -> list[DeadLetter]:
    found: list[DeadLetter] = []
    async for page in stream_pages(client, keys.dlq_of(partition), limit=count):
        found += [_letter(keys, partition, ident, fields) for ident, fields in page]
    return found


async def dlq_list(
    client: aioredis.Redis, prefix: Keys | str, *, count: int | None = 100
) -> list[DeadLetter]:
    """The oldest ``count`` dead letters (``None``: all of them), in the order they came.

    On several partitions every partition's stream is read; letters are ordered by their
    entry id, then partition.
    """
    keys = Keys.of(prefix)
    if not keys.partitioned:
        return await _stream_letters(client, keys, 0, count)
    found: list[DeadLetter] = []
    for partition in range(keys.partitions):
        found += await _stream_letters(client, keys, partition, count)
    found.sort(key=lambda letter: (position_key(letter.entry_id), letter.partition))
    return found if count is None else found[:count]


async def dlq_show(client: aioredis.Redis, prefix: Keys | str, ident: str) -> DeadLetter:
    """One dead letter; :class:`DeadLetterNotFoundError` when there is none with that id."""
    keys = Keys.of(prefix)
    partition, entry_id = parse_letter_id(keys, ident)
    dlq = keys.dlq_of(partition)
    try:
        page = await client.xrange(dlq, entry_id, entry_id, count=1) or []
    except rexc.ResponseError:  # not a stream id at all
        page = []
    if not page:
        raise DeadLetterNotFoundError(f"no dead letter {ident!r} in {dlq}")
    return _letter(keys, partition, page[0][0], page[0][1])


def _log_fields(letter: DeadLetter, action: str, **extra: str) -> list[str]:
    fields = [
        "action", action,
        "dlq_id", letter.id,
        "at", _now(),
        "projection", letter.projection,
        "version", str(letter.version),
        "position", letter.position,
        "error_type", letter.error_type,
        "error", letter.error,
        "deliveries", str(letter.deliveries),
        "consumer", letter.consumer,
    ]  # fmt: skip
    for name, value in extra.items():
        fields += [name, value]
    for name, value in letter.entry.items():
        fields += [f"entry.{name}", value]
    return fields


DROP_SCRIPT: Final = """
-- KEYS: dlq, dlq log. ARGV: letter id, then the log entry's field/value pairs.
if redis.call('XDEL', KEYS[1], ARGV[1]) == 0 then return 0 end
local fields = {}
for j = 2, #ARGV do fields[j - 1] = ARGV[j] end
redis.call('XADD', KEYS[2], '*', unpack(fields))
return 1
"""

_RETRY_CHECKS: Final = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[3] then return -2 end
if (redis.call('HGET', KEYS[2], 'position') or '') ~= ARGV[2] then return -1 end
if redis.call('XDEL', KEYS[4], ARGV[4]) == 0 then return -3 end
"""

RETRY_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- KEYS: lease, meta, view pointer, dlq, dlq log, changes stream, then the kind hashes written.
-- ARGV: lease owner, expected checkpoint, generation, letter id, log field count N,
--   N pairs, then per kind hash what write_docs reads.
-- Returns 1 done; 0 lease lost; -1 checkpoint moved; -2 generation moved; -3 letter gone."""
    + _RETRY_CHECKS
    + """local n = tonumber(ARGV[5])
local fields = {}
for j = 1, 2 * n do fields[j] = ARGV[5 + j] end
redis.call('XADD', KEYS[5], '*', unpack(fields))
write_docs(7, 6 + 2 * n, nil)
record_changes(KEYS[6], ARGV[2], ARGV[2], nil)
return 1
"""
)

RETRY_PARTITION_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- The partitioned layout: every key under the partition's hash tag (the record of the
-- retry in the global dlq log is written by the caller afterwards).
-- KEYS: lease, meta, view pointer, dlq, changes stream, then the kind hashes written.
-- ARGV: lease owner, expected checkpoint, generation, letter id, then per kind hash what
--   write_docs reads.
-- Returns 1 done; 0 lease lost; -1 checkpoint moved; -2 generation moved; -3 letter gone."""
    + _RETRY_CHECKS
    + """write_docs(6, 5, nil)
record_changes(KEYS[5], ARGV[2], ARGV[2], nil)
return 1
"""
)


async def dlq_drop(
    client: aioredis.Redis, prefix: Keys | str, ident: str, *, reason: str, by: str = "operator"
) -> DeadLetter:
    """Record the letter with ``reason`` in ``<prefix>:dlq:log`` and delete it.

    In one script on one partition; in the partitioned layout the letter is deleted first
    and the record follows in a second command (the two streams are on different slots).
    """
    if not reason.strip():
        raise DeadLetterError("dropping a dead letter needs a reason")
    keys = Keys.of(prefix)
    letter = await dlq_show(client, keys, ident)
    record = _log_fields(letter, "drop", reason=reason.strip(), by=by)
    dlq = keys.dlq_of(letter.partition)
    if keys.partitioned:
        done = await client.xdel(dlq, letter.entry_id)
        if done:
            await client.xadd(keys.dlq_log, dict(zip(record[::2], record[1::2], strict=True)))
    else:
        done = await client.register_script(DROP_SCRIPT)(
            keys=[dlq, keys.dlq_log], args=[letter.entry_id, *record]
        )
    if not done:
        raise DeadLetterNotFoundError(f"dead letter {ident!r} was removed meanwhile")
    return letter


async def dlq_retry(
    client: aioredis.Redis,
    prefix: Keys | str,
    ident: str,
    *,
    by: str = "operator",
    lease_ms: int = 15_000,
) -> DeadLetter:
    """Apply a dead letter's entry to the live view and remove it (see the module docstring).

    The view written is that of the letter's partition. Raises
    :class:`DeadLetterStillFailsError` (nothing changed) when the projection still cannot
    apply it, :class:`DeadLetterError` when its projection or version is not served.
    """
    keys = Keys.of(prefix)
    letter = await dlq_show(client, keys, ident)
    projection = PROJECTIONS.get(letter.projection)
    if projection is None or projection.version != letter.version:
        raise DeadLetterError(
            f"dead letter {ident} belongs to {letter.projection} v{letter.version}, which this "
            "code does not serve; drop it with a reason instead"
        )
    partition = letter.partition
    view = await current_view_keys(client, keys, projection, partition=partition)
    owner = f"dlq-retry:{secrets.token_hex(6)}"
    leases = Leases(client)
    await leases.seize(view.lease, owner, lease_ms)  # the live projector pauses
    try:
        views = RedisViewStore(client, keys)
        try:
            docs, checkpoint = await views.load_paged(
                projection,
                generation=view.generation,
                partition=partition,
                without=projection.own_kinds,
            )
        except ViewChangedError as exc:
            raise DeadLetterError(
                f"the view of {projection.view} moved ({exc}); try again"
            ) from exc
        entry = decode_entry(Position(letter.position), letter.entry)
        own = OwnDocs(projection, views)
        own.loaded(whole=checkpoint is None)
        await own.recall(docs, [entry], generation=view.generation, partition=partition)
        fold = FoldRun(projection, docs, fresh=False)
        fold.apply_all([entry])
        if fold.failures:
            _, failure = fold.failures[0]
            raise DeadLetterStillFailsError(
                f"{projection.name} still cannot apply {letter.position}: "
                f"{type(failure).__name__}: {failure}"
            )
        doc_keys, doc_args = doc_change_args(fold.take(), view)
        record = _log_fields(letter, "retry", by=by)
        head: list[bytes | str | int] = [
            owner,
            checkpoint or "",
            str(view.generation),
            letter.entry_id,
        ]
        if keys.partitioned:
            script = RETRY_PARTITION_SCRIPT
            script_keys = [view.lease, view.meta, view.pointer, view.dlq, view.changes, *doc_keys]
            args = [*head, *doc_args]
        else:
            script = RETRY_SCRIPT
            script_keys = [
                view.lease,
                view.meta,
                view.pointer,
                view.dlq,
                keys.dlq_log,
                view.changes,
            ]
            script_keys += doc_keys
            args = [*head, len(record) // 2, *record, *doc_args]
        result = await client.register_script(script)(keys=script_keys, args=args)
        if result == -3:
            raise DeadLetterNotFoundError(f"dead letter {ident!r} was removed meanwhile")
        if result != 1:
            raise DeadLetterError(
                f"the view of {projection.view} changed under the retry ({result}); try again"
            )
        if keys.partitioned:
            await client.xadd(keys.dlq_log, dict(zip(record[::2], record[1::2], strict=True)))
    finally:
        await leases.release(view.lease, owner)
    return letter
