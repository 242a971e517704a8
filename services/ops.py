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

from events import Position
from projections import PROJECTIONS, Projection

from .checks import redis_setup
from .errors import LedgerError
from .replay import FoldRun, ProgressCallback, replay_status
from .runner import RELEASE_SCRIPT, ProjectorPool
from .store.keys import Keys
from .views import (
    LUA_WRITE_DOCS,
    CorruptViewError,
    current_view_keys,
    decode_doc,
    doc_change_args,
    encode_doc,
    load_raw,
    load_view,
)

__all__ = [
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
    "progress_display",
    "verify",
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


class LogStatus(msgspec.Struct, frozen=True, kw_only=True):
    """The event log: how many events and where it begins and ends."""

    length: int
    first: str | None
    last: str | None


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

    def max_lag(self) -> int:
        """The largest lag of any projection."""
        return max((p.lag for p in self.projections), default=0)


async def _dead_letter_counts(client: aioredis.Redis, prefix: str) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for letter in await dlq_list(client, prefix, count=None):
        key = (letter.projection, str(letter.version))
        counts[key] = counts.get(key, 0) + 1
    return counts


async def ledger_status(
    client: aioredis.Redis, prefix: str, projections: list[Projection] | None = None
) -> LedgerStatus:
    """Status of every projection's view, of the log and of the Redis server."""
    chosen = list(PROJECTIONS.values()) if projections is None else projections
    pool = ProjectorPool(client, prefix=prefix, projections=chosen)
    rows = await pool.status()
    dead = await _dead_letter_counts(client, prefix)
    log = Keys(prefix).log
    views = []
    for row, projection in zip(rows, chosen, strict=True):
        group = f"projector:{projection.name}:v{projection.version}"
        consumers: list[str] = []
        with contextlib.suppress(rexc.ResponseError):  # no log or no group yet
            consumers = [_text(c["name"]) for c in await client.xinfo_consumers(log, group)]
        rebuild = await replay_status(client, prefix, projection)
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
                dead_letters=dead.get((row.name, str(row.version)), 0),
                rebuild=None if rebuild is None else rebuild.state,
            )
        )
    first = await client.xrange(log, "-", "+", count=1) or []
    last = await client.xrevrange(log, "+", "-", count=1) or []
    setup = await redis_setup(client)
    return LedgerStatus(
        projections=views,
        log=LogStatus(
            length=int(await client.xlen(log)),
            first=_text(first[0][0]) if first else None,
            last=_text(last[0][0]) if last else None,
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

    @property
    def ok(self) -> bool:
        """Whether the stored view equals the fold."""
        return not self.differences


async def verify(client: aioredis.Redis, prefix: str, projection: Projection) -> VerifyResult:
    """Fold the log up to the stored view's checkpoint and compare every document."""
    keys, stored, checkpoint = await load_raw(client, prefix, projection)
    fold = FoldRun(projection, projection.initial(), fresh=True)
    log = Keys(prefix).log
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
        generation=int(keys.generation),
        checkpoint=checkpoint,
        events=events,
        differences=differences,
        unapplied=[p for p, _, _ in fold.failures],
    )


# --- dead letters ------------------------------------------------------------------------------


class DeadLetter(msgspec.Struct, frozen=True, kw_only=True):
    """One entry of the dead-letter stream."""

    id: str
    projection: str
    version: int
    position: str
    error_type: str
    error: str
    deliveries: int
    consumer: str
    entry: dict[str, str]
    """The log entry's own fields (``type``, ``event_id``, ``v``, ``data``)."""


def _letter(ident: Any, raw: Mapping[Any, Any] | None) -> DeadLetter:
    fields = {_text(k): _text(v) for k, v in (raw or {}).items()}
    entry = {k[len("entry.") :]: v for k, v in fields.items() if k.startswith("entry.")}

    def number(name: str) -> int:
        try:
            return int(fields.get(name, "0"))
        except ValueError:
            return 0

    return DeadLetter(
        id=_text(ident),
        projection=fields.get("projection", ""),
        version=number("version"),
        position=fields.get("position", ""),
        error_type=fields.get("error_type", ""),
        error=fields.get("error", ""),
        deliveries=number("deliveries"),
        consumer=fields.get("consumer", ""),
        entry=entry,
    )


async def dlq_list(
    client: aioredis.Redis, prefix: str, *, count: int | None = 100
) -> list[DeadLetter]:
    """The oldest ``count`` dead letters (``None``: all of them), in the order they came."""
    dlq = Keys(prefix).dlq
    found: list[DeadLetter] = []
    start = "-"
    while count is None or len(found) < count:
        want = _PAGE if count is None else min(_PAGE, count - len(found))
        page = await client.xrange(dlq, start, "+", count=want) or []
        found += [_letter(ident, fields) for ident, fields in page]
        if len(page) < want:
            break
        start = f"({_text(page[-1][0])}"
    return found


async def dlq_show(client: aioredis.Redis, prefix: str, ident: str) -> DeadLetter:
    """One dead letter; :class:`DeadLetterNotFoundError` when there is none with that id."""
    try:
        page = await client.xrange(Keys(prefix).dlq, ident, ident, count=1) or []
    except rexc.ResponseError:  # not a stream id at all
        page = []
    if not page:
        raise DeadLetterNotFoundError(f"no dead letter {ident!r} in {Keys(prefix).dlq}")
    return _letter(page[0][0], page[0][1])


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

RETRY_SCRIPT: Final = (
    LUA_WRITE_DOCS
    + """
-- KEYS: lease, meta, view pointer, dlq, dlq log, then the kind hashes written.
-- ARGV: lease owner, expected checkpoint, generation, letter id, log field count N,
--   N pairs, then per kind hash: puts P, deletes R, P pairs, R ids.
-- Returns 1 done; 0 lease lost; -1 checkpoint moved; -2 generation moved; -3 letter gone.
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
if (redis.call('GET', KEYS[3]) or '0') ~= ARGV[3] then return -2 end
if (redis.call('HGET', KEYS[2], 'position') or '') ~= ARGV[2] then return -1 end
if redis.call('XDEL', KEYS[4], ARGV[4]) == 0 then return -3 end
local n = tonumber(ARGV[5])
local fields = {}
for j = 1, 2 * n do fields[j] = ARGV[5 + j] end
redis.call('XADD', KEYS[5], '*', unpack(fields))
write_docs(6, 6 + 2 * n)
return 1
"""
)


async def dlq_drop(
    client: aioredis.Redis, prefix: str, ident: str, *, reason: str, by: str = "operator"
) -> DeadLetter:
    """Record the letter with ``reason`` in ``<prefix>:dlq:log`` and delete it, atomically."""
    if not reason.strip():
        raise DeadLetterError("dropping a dead letter needs a reason")
    letter = await dlq_show(client, prefix, ident)
    keys = Keys(prefix)
    done = await client.register_script(DROP_SCRIPT)(
        keys=[keys.dlq, keys.dlq_log],
        args=[letter.id, *_log_fields(letter, "drop", reason=reason.strip(), by=by)],
    )
    if not done:
        raise DeadLetterNotFoundError(f"dead letter {ident!r} was removed meanwhile")
    return letter


async def dlq_retry(
    client: aioredis.Redis,
    prefix: str,
    ident: str,
    *,
    by: str = "operator",
    lease_ms: int = 15_000,
) -> DeadLetter:
    """Apply a dead letter's entry to the live view and remove it (see the module docstring).

    Raises :class:`DeadLetterStillFailsError` (nothing changed) when the projection still
    cannot apply it, :class:`DeadLetterError` when its projection or version is not served.
    """
    letter = await dlq_show(client, prefix, ident)
    projection = PROJECTIONS.get(letter.projection)
    if projection is None or projection.version != letter.version:
        raise DeadLetterError(
            f"dead letter {ident} belongs to {letter.projection} v{letter.version}, which this "
            "code does not serve; drop it with a reason instead"
        )
    keys = await current_view_keys(client, prefix, projection)
    owner = f"dlq-retry:{secrets.token_hex(6)}"
    await client.set(keys.lease, owner, px=lease_ms)  # the live projector pauses
    try:
        docs, checkpoint = await load_view(client, prefix, projection, generation=keys.generation)
        fold = FoldRun(projection, docs, fresh=False)
        if not fold.apply(Position(letter.position), letter.entry):
            _, _, exc = fold.failures[0]
            raise DeadLetterStillFailsError(
                f"{projection.name} still cannot apply {letter.position}: "
                f"{type(exc).__name__}: {exc}"
            )
        doc_keys, doc_args = doc_change_args(fold.take(), keys.kinds)
        record = _log_fields(letter, "retry", by=by)
        script_keys = [keys.lease, keys.meta, keys.pointer, Keys(prefix).dlq, Keys(prefix).dlq_log]
        args: list[bytes | str | int] = [
            owner,
            checkpoint or "",
            str(keys.generation),
            letter.id,
            len(record) // 2,
            *record,
            *doc_args,
        ]
        script_keys += doc_keys
        result = await client.register_script(RETRY_SCRIPT)(keys=script_keys, args=args)
        if result == -3:
            raise DeadLetterNotFoundError(f"dead letter {ident!r} was removed meanwhile")
        if result != 1:
            raise DeadLetterError(
                f"the view of {projection.view} changed under the retry ({result}); try again"
            )
    finally:
        await client.register_script(RELEASE_SCRIPT)(keys=[keys.lease], args=[owner])
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
