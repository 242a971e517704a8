"""Operator tools over Redis: status, verification of views, dead letters, progress display.

- :func:`ledger_status`: per projection its version, active generation, checkpoint, lag,
  pending entries, consumers and dead letters; the log's length and ends; the Redis server's
  memory and persistence settings.
- :func:`verify`: the pure fold of the log up to a stored view's checkpoint, compared
  document by document with the stored view.
- Dead letters (``<prefix>:dlq``, written by the runner and by rebuilds): :func:`dlq_list`,
  :func:`dlq_show`, :func:`dlq_retry` and :func:`dlq_drop`. Retrying applies the one entry to
  the live view once its projection can apply it (the runner's checkpoint is already past
  it): it takes the view's lease (pausing the live projector), loads the view, applies the
  entry, and in one Lua script writes the changed documents (keeping the checkpoint), deletes
  the letter and records the retry in ``<prefix>:dlq:log``; then it gives the lease back.
  Dropping records the letter with the reason in ``<prefix>:dlq:log`` and deletes it, in one
  script: nothing leaves the dead-letter stream without a trace.

A retried entry is applied on top of the view's later events: that is the operator's call,
right for entries whose effect does not depend on what came after them.

**Partitions.** On several partitions (or a cluster) every view is kept per partition:
status has one row per (projection, partition) and ``--max-lag`` looks at each
projection's lag summed over its partitions; :func:`verify_all` compares each partition
view with the fold of its own partition's log; every partition has its dead-letter stream
(``<prefix>:{p<N>}:dlq``) and a letter's id names it (``p<N>:<entry id>``). A retry writes
the view of the letter's partition in one script whose keys all share that partition's
hash tag; the record in the global ``<prefix>:dlq:log`` follows in a second command (so
does a drop's). One partition on one node keeps the single-script behaviour above.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import sys
import time
from collections.abc import Iterator, Mapping
from typing import Any, Final, TextIO

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from events import Position, position_key
from projections import PROJECTIONS, Projection
from services.errors import LedgerError
from services.projector.replay import FoldRun, ProgressCallback, replay_status
from services.projector.runner import RELEASE_SCRIPT, ProjectorPool
from services.runtime.checks import redis_setup
from services.store.keys import Keys
from services.views.stored import (
    LUA_WRITE_DOCS,
    CorruptViewError,
    ViewChangedError,
    active_generation,
    current_view_keys,
    decode_doc,
    doc_change_args,
    encode_doc,
    joined,
    load_kinds_raw,
    load_view_paged,
)

__all__ = [
    "RETRY_PARTITION_SCRIPT",
    "DeadLetter",
    "DeadLetterError",
    "DeadLetterNotFoundError",
    "DeadLetterStillFailsError",
    "Difference",
    "LedgerStatus",
    "LogStatus",
    "OpsError",
    "RedisStatus",
    "VerifyResult",
    "ViewStatus",
    "dlq_drop",
    "dlq_list",
    "dlq_retry",
    "dlq_show",
    "ledger_status",
    "letter_id",
    "parse_letter_id",
    "progress_display",
    "verify",
    "verify_all",
]

_PAGE: Final = 1000


class OpsError(LedgerError):
    """Root of the errors of the operator tools."""


class DeadLetterError(OpsError):
    """Root of the errors of handling one dead letter."""


class DeadLetterNotFoundError(DeadLetterError):
    """Raised when the dead-letter stream holds no entry with the given id."""


class DeadLetterStillFailsError(DeadLetterError):
    """Raised by a retry when the projection still cannot apply the entry; nothing changed."""


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


# --- status ------------------------------------------------------------------------------------


class ViewStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projection's stored view stands."""

    name: str
    version: int
    generation: int
    position: str | None
    lag: int
    pending: int
    consumers: list[str]
    holder: str | None
    dead_letters: int
    rebuild: str | None
    """The state of the latest rebuild (``building``, ``swapping``, ``done``), if any."""
    partition: int = 0
    """The log partition the view folds (0 on one partition)."""


class LogStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The event log: how many events and where it begins and ends.

    On several partitions ``length`` counts every partition and ``first``/``last`` are the
    partitions' ends joined (:func:`services.views.stored.joined`).
    """

    length: int
    first: str | None
    last: str | None
    partitions: int = 1


class RedisStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The Redis server's memory and persistence settings (``None``: it would not say)."""

    used_memory: int | None
    maxmemory: int | None
    maxmemory_policy: str | None
    appendonly: bool | None
    appendfsync: str | None
    save: str | None


class LedgerStatus(msgspec.Struct, frozen=True, kw_only=True):
    """What ``ledger status`` shows."""

    projections: list[ViewStatus]
    log: LogStatus
    redis: RedisStatus

    def lags(self) -> dict[tuple[str, int], int]:
        """Per projection (name, version) its lag summed over the partitions."""
        summed: dict[tuple[str, int], int] = {}
        for row in self.projections:
            key = (row.name, row.version)
            summed[key] = summed.get(key, 0) + row.lag
        return summed

    def max_lag(self) -> int:
        """The largest lag of any projection (summed over its partitions)."""
        return max(self.lags().values(), default=0)


async def _dead_letter_counts(
    client: aioredis.Redis, prefix: Keys | str
) -> dict[tuple[str, str, int], int]:
    counts: dict[tuple[str, str, int], int] = {}
    for letter in await dlq_list(client, prefix, count=None):
        key = (letter.projection, str(letter.version), letter.partition)
        counts[key] = counts.get(key, 0) + 1
    return counts


async def ledger_status(
    client: aioredis.Redis, prefix: Keys | str, projections: list[Projection] | None = None
) -> LedgerStatus:
    """Status of every (projection, partition) view, of the log and of the Redis server."""
    keys = Keys.of(prefix)
    chosen = list(PROJECTIONS.values()) if projections is None else projections
    by_name = {p.name: p for p in chosen}
    pool = ProjectorPool(client, prefix=keys, projections=chosen)
    rows = await pool.status()
    dead = await _dead_letter_counts(client, keys)
    rebuilds: dict[str, str | None] = {}
    for projection in chosen:
        rebuild = await replay_status(client, keys, projection)
        rebuilds[projection.name] = None if rebuild is None else rebuild.state
    views = []
    for row in rows:
        projection = by_name[row.name]
        group = f"projector:{projection.name}:v{projection.version}"
        consumers: list[str] = []
        with contextlib.suppress(rexc.ResponseError):  # no log or no group yet
            consumers = [
                _text(c["name"])
                for c in await client.xinfo_consumers(keys.log_of(row.partition), group)
            ]
        views.append(
            ViewStatus(
                name=row.name,
                version=row.version,
                generation=row.generation,
                position=row.position,
                lag=row.lag,
                pending=row.pending,
                consumers=consumers,
                holder=row.holder,
                dead_letters=dead.get((row.name, str(row.version), row.partition), 0),
                rebuild=rebuilds[row.name],
                partition=row.partition,
            )
        )
    firsts: list[Position | None] = []
    lasts: list[Position | None] = []
    length = 0
    for log in keys.logs:
        first = await client.xrange(log, "-", "+", count=1) or []
        last = await client.xrevrange(log, "+", "-", count=1) or []
        firsts.append(Position(_text(first[0][0])) if first else None)
        lasts.append(Position(_text(last[0][0])) if last else None)
        length += int(await client.xlen(log))
    setup = await redis_setup(client)
    return LedgerStatus(
        projections=views,
        log=LogStatus(
            length=length,
            first=joined(firsts),
            last=joined(lasts),
            partitions=keys.partitions,
        ),
        redis=RedisStatus(
            used_memory=setup.used_memory,
            maxmemory=setup.maxmemory,
            maxmemory_policy=setup.maxmemory_policy,
            appendonly=setup.appendonly,
            appendfsync=setup.appendfsync,
            save=setup.save,
        ),
    )


# --- verify ------------------------------------------------------------------------------------


class Difference(msgspec.Struct, frozen=True):
    """One document where the stored view and the fold disagree (``None``: absent there)."""

    kind: str
    id: str
    stored: str | None
    expected: str | None


class VerifyResult(msgspec.Struct, frozen=True, kw_only=True):
    """The comparison of a stored view with the pure fold of the log up to its checkpoint."""

    projection: str
    version: int
    generation: int
    checkpoint: str | None
    events: int
    """Log entries folded (those up to the checkpoint)."""
    differences: list[Difference]
    unapplied: list[str]
    """Positions the projection could not apply (dead letters, skipped by the view too)."""
    partition: int = 0
    """The log partition whose view was compared (0 on one partition)."""

    @property
    def ok(self) -> bool:
        """Whether the stored view equals the fold."""
        return not self.differences


async def verify(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> VerifyResult:
    """Fold the partition's log up to its stored view's checkpoint and compare every document.

    On one partition the partition is the whole log; see :func:`verify_all` for every one.
    """
    keys = Keys.of(prefix)
    kinds = list(projection.doc_types)
    generation = await active_generation(client, keys, projection, partition=partition)
    replies, checkpoint = await load_kinds_raw(
        client, keys, projection, kinds, generation=generation, partition=partition
    )
    stored = {
        kind: {
            _text(ident): raw if isinstance(raw, bytes) else raw.encode()
            for ident, raw in reply.items()
        }
        for kind, reply in zip(kinds, replies, strict=True)
    }
    fold = FoldRun(projection, projection.initial(), fresh=True)
    log = keys.log_of(partition)
    events = 0
    if checkpoint is not None:
        start = "-"
        while True:
            page = await client.xrange(log, start, checkpoint, count=_PAGE) or []
            fold.apply_all(page)
            events += len(page)
            if len(page) < _PAGE:
                break
            start = f"({_text(page[-1][0])}"
    expected = fold.docs.kinds() if checkpoint is not None else {}
    differences: list[Difference] = []
    for kind in projection.doc_types:
        mine = stored.get(kind, {})
        theirs = expected.get(kind, {})
        for ident in sorted(set(mine) | set(theirs)):
            raw = mine.get(ident)
            want = theirs.get(ident)
            if raw is not None and want is not None:
                try:
                    if decode_doc(projection, kind, raw) == want:
                        continue
                except CorruptViewError:
                    pass
            differences.append(
                Difference(
                    kind=kind,
                    id=ident,
                    stored=None if raw is None else raw.decode(errors="replace"),
                    expected=None if want is None else encode_doc(want).decode(),
                )
            )
    return VerifyResult(
        projection=projection.name,
        version=projection.version,
        generation=generation,
        checkpoint=checkpoint,
        events=events,
        differences=differences,
        unapplied=[p for p, _, _ in fold.failures],
        partition=partition,
    )


async def verify_all(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> list[VerifyResult]:
    """:func:`verify` of every partition's view of ``projection``, in partition order."""
    keys = Keys.of(prefix)
    return [await verify(client, keys, projection, partition=p) for p in range(keys.partitions)]


# --- dead letters ------------------------------------------------------------------------------


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
    """The log entry's own fields (``type``, ``event_id``, ``v``, ``data``)."""
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


def _letter(keys: Keys, partition: int, ident: Any, raw: Mapping[Any, Any] | None) -> DeadLetter:
    fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
    entry = {k[len("entry.") :]: v for k, v in fields.items() if k.startswith("entry.")}

    def number(name: str) -> int:
        try:
            return int(fields.get(name, "0"))
        except ValueError:
            return 0

    return DeadLetter(
        id=letter_id(keys, partition, _text(ident)),
        projection=fields.get("projection", ""),
        version=number("version"),
        position=fields.get("position", ""),
        error_type=fields.get("error_type", ""),
        error=fields.get("error", ""),
        deliveries=number("deliveries"),
        consumer=fields.get("consumer", ""),
        entry=entry,
        partition=partition,
        entry_id=_text(ident),
    )


async def _stream_letters(
    client: aioredis.Redis, keys: Keys, partition: int, count: int | None
) -> list[DeadLetter]:
    dlq = keys.dlq_of(partition)
    found: list[DeadLetter] = []
    start = "-"
    while count is None or len(found) < count:
        want = _PAGE if count is None else min(_PAGE, count - len(found))
        page = await client.xrange(dlq, start, "+", count=want) or []
        found += [_letter(keys, partition, ident, fields) for ident, fields in page]
        if len(page) < want:
            break
        start = f"({_text(page[-1][0])}"
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
--   N pairs, then per kind hash: its kind, puts P, deletes R, P pairs, R ids.
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
-- ARGV: lease owner, expected checkpoint, generation, letter id, then per kind hash:
--   its kind, puts P, deletes R, P pairs, R ids.
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
    await client.set(view.lease, owner, px=lease_ms)  # the live projector pauses
    try:
        try:
            docs, checkpoint = await load_view_paged(
                client, keys, projection, generation=view.generation, partition=partition
            )
        except ViewChangedError as exc:
            raise DeadLetterError(
                f"the view of {projection.view} moved ({exc}); try again"
            ) from exc
        fold = FoldRun(projection, docs, fresh=False)
        if not fold.apply(Position(letter.position), letter.entry):
            _, _, failure = fold.failures[0]
            raise DeadLetterStillFailsError(
                f"{projection.name} still cannot apply {letter.position}: "
                f"{type(failure).__name__}: {failure}"
            )
        doc_keys, doc_args = doc_change_args(fold.take(), view.kinds)
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
        await client.register_script(RELEASE_SCRIPT)(keys=[view.lease], args=[owner])
    return letter


# --- progress on a terminal, or as log lines --------------------------------------------------


class _Rate(ProgressColumn):
    """Events per second."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} ev/s")


@contextlib.contextmanager
def progress_display(
    label: str, *, stream: TextIO | None = None, every: float = 2.0
) -> Iterator[ProgressCallback]:
    """A progress callback ``(done, total)``: a rich bar on a terminal, else log lines.

    Off a terminal a line ``<label>: done/total events, rate/s, ETA`` is written at most
    every ``every`` seconds, and once at the end.
    """
    out = stream or sys.stderr
    console = Console(file=out)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=max(total, done))

            yield update
        return
    started = time.monotonic()
    last_line = 0.0
    state = {"done": 0, "total": 0}

    def line() -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        done, total = state["done"], state["total"]
        rate = done / elapsed
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 and total > done else "0s"
        out.write(f"{label}: {done}/{total} events, {rate:,.0f}/s, ETA {eta}\n")
        out.flush()

    def report(done: int, total: int) -> None:
        nonlocal last_line
        state["done"], state["total"] = done, max(total, done)
        now = time.monotonic()
        if now - last_line >= every:
            last_line = now
            line()

    yield report
    if state["done"]:
        line()
