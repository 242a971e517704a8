"""The records of rebuilds, their errors, and what a rebuild is asked for.

A rebuild of a view (:mod:`services.projector.replay`) keeps its record in the hash
``<prefix>:replay:<name>:v<version>`` (one per partition on a partitioned log): the new
generation, its state (``building``, ``swapping``, ``done``), its progress and checkpoint,
when it started and finished, and the error its last attempt stopped on.
:func:`replay_status` reads it back for ``ledger status`` and the operator routes.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Final, Literal

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from events import Position
from projections import PROJECTIONS, Projection
from services.errors import LedgerError
from services.resp import field, text
from services.store.keys import Keys
from services.store.log import stream_pages
from services.store.positions import joined
from services.views.generations import parse_generation

__all__ = [
    "ReplayError",
    "ReplayPartitionedError",
    "ReplayRecord",
    "ReplayRunningError",
    "ReplaySwapError",
    "UnknownProjectionError",
    "combine_records",
    "dead_letter_positions",
    "note_error",
    "now",
    "parse_until",
    "projections_named",
    "read_record",
    "record_of",
    "refuse_until_partitioned",
    "replay_status",
    "start_record",
]

_POSITION: Final = re.compile(r"^\d+-\d+$")


class ReplayError(LedgerError):
    """Root of the errors of rebuilding a view."""


class UnknownProjectionError(ReplayError):
    """Raised when a projection name is not one of :data:`projections.PROJECTIONS`."""


class ReplayRunningError(ReplayError):
    """Raised when another process holds the rebuild lock of the view (or took it over).

    One rebuild per view runs at a time; a rebuild whose process died leaves the lock to
    expire within its lock time, after which the same command resumes it.
    """


class ReplayPartitionedError(ReplayError):
    """Raised when ``--until`` is asked for on a log of several partitions.

    A view as it stood at a point is built from one log; on N partitions a position names
    no point of them all. Remedy: read the view as of a time with ``GET ...?as_of=``
    (:mod:`services.views.asof` merges the partitions' folds up to it). Plain rebuilds work.
    """


class ReplaySwapError(ReplayError):
    """Raised when the swap is refused although the rebuild paused the live projector.

    Another rebuild swapped first (the pointer moved), or the lease was taken from the
    rebuild. The new generation is kept; running the command again resumes and swaps.
    """


class ReplayRecord(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The record of a view's latest rebuild (``<prefix>:replay:<name>:v<version>``)."""

    projection: str
    version: int
    generation: int
    state: Literal["building", "swapping", "done"] = "building"
    done: int = 0
    """Events folded into the new generation so far."""
    total: int = 0
    """Events in the log when the last batch was read."""
    checkpoint: str = ""
    """The new generation's checkpoint."""
    started_at: str = ""
    finished_at: str = ""
    error: str = ""
    """The error the last attempt stopped on (the rebuild resumes from its checkpoint)."""
    running: bool = False
    """Whether a process holds the rebuild lock now (not stored; set by :func:`replay_status`)."""
    active_generation: int = 0
    """The view's active generation now (not stored; set by :func:`replay_status`; on
    several partitions the lowest of the partitions' ones)."""
    partitions: list[ReplayRecord] = msgspec.field(default_factory=list)
    """On several partitions: each partition's record, in partition order (not stored);
    the fields above combine them (sums, the joined checkpoint, ``done`` when all are)."""


def refuse_until_partitioned(prefix: Keys | str) -> None:
    """:class:`ReplayPartitionedError` when ``prefix`` has several log partitions."""
    keys = Keys.of(prefix)
    if keys.partitions > 1:
        raise ReplayPartitionedError(
            f"--until is not supported on {keys.partitions} log partitions: one position "
            "names no point of every partition's log; read the view as of a time with "
            "GET ...?as_of=<datetime> instead (a plain replay works)"
        )


def projections_named(name: str) -> list[Projection]:
    """The projection called ``name``, or every one for ``all``."""
    if name == "all":
        return list(PROJECTIONS.values())
    if name not in PROJECTIONS:
        known = ", ".join(sorted(PROJECTIONS))
        raise UnknownProjectionError(f"no projection {name!r}; known: {known}, or all")
    return [PROJECTIONS[name]]


def parse_until(text: str) -> Position | dt.datetime:
    """A ``--until`` bound: a log position ``ms-seq`` or an ISO 8601 datetime (UTC if naive)."""
    if _POSITION.match(text):
        return Position(text)
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReplayError(
            f"--until {text!r} is neither a log position (ms-seq) nor an ISO 8601 datetime"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


async def dead_letter_positions(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> set[str]:
    """Positions of ``projection``'s entries of ``partition`` in its dead-letter stream or
    dropped from it (the dead-letter log names the partition in ``dlq_id``, ``p<N>:<id>``)."""
    keys = Keys.of(prefix)
    mine = f"p{partition}:"
    found: set[str] = set()
    for stream in (keys.dlq_of(partition), keys.dlq_log):
        async for page in stream_pages(client, stream):
            for _, raw in page:
                # only the fields named here: the letter's copy of the entry may be any bytes
                fields = {
                    name: text(value)
                    for name in ("projection", "version", "action", "dlq_id", "position")
                    if (value := field(raw, name)) is not None
                }
                if (
                    fields.get("projection") == projection.name
                    and fields.get("version") == str(projection.version)
                    and fields.get("action", "drop") != "retry"
                    and (
                        stream != keys.dlq_log
                        or not keys.partitioned
                        or fields.get("dlq_id", "").startswith(mine)
                    )
                ):
                    found.add(fields.get("position", ""))
    return found


def record_of(projection: Projection, raw: Mapping[Any, Any]) -> ReplayRecord:
    fields = {text(k): text(v) for k, v in raw.items()}
    state = fields.get("state", "building")
    return ReplayRecord(
        projection=projection.name,
        version=projection.version,
        generation=int(fields.get("generation", "0") or 0),
        state=state if state in ("building", "swapping", "done") else "building",  # type: ignore[arg-type]
        done=int(fields.get("done", "0") or 0),
        total=int(fields.get("total", "0") or 0),
        checkpoint=fields.get("checkpoint", ""),
        started_at=fields.get("started_at", ""),
        finished_at=fields.get("finished_at", ""),
        error=fields.get("error", ""),
    )


def combine_records(projection: Projection, parts: list[ReplayRecord | None]) -> ReplayRecord:
    """One record for the partitions' records (a missing one counts as never rebuilt)."""
    found = [
        part
        if part is not None
        else ReplayRecord(projection=projection.name, version=projection.version, generation=0)
        for part in parts
    ]
    states = {part.state for part in found if part.generation}
    state: Literal["building", "swapping", "done"] = "done"
    if "swapping" in states:
        state = "swapping"
    elif "building" in states:
        state = "building"
    started = [part.started_at for part in found if part.started_at]
    finished = [part.finished_at for part in found if part.finished_at]
    errors = [f"p{p}: {part.error}" for p, part in enumerate(found) if part.error]
    checkpoints = [Position(part.checkpoint) if part.checkpoint else None for part in found]
    return ReplayRecord(
        projection=projection.name,
        version=projection.version,
        generation=max(part.generation for part in found),
        state=state,
        done=sum(part.done for part in found),
        total=sum(part.total for part in found),
        checkpoint=joined(checkpoints) or "",
        started_at=min(started, default=""),
        finished_at=max(finished, default="") if state == "done" else "",
        error="; ".join(errors)[:500],
        running=any(part.running for part in found),
        active_generation=min(part.active_generation for part in found),
        partitions=found,
    )


async def replay_status(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> ReplayRecord | None:
    """The record of the view's latest rebuild, whether one runs now, and the active generation.

    ``None`` when the view was never rebuilt. On several partitions the partitions' records
    combined (:attr:`ReplayRecord.partitions` holds each one).
    """
    keys = Keys.of(prefix)
    name, version = projection.name, projection.version
    parts: list[ReplayRecord | None] = []
    pointers: list[tuple[bool, int]] = []
    for partition in range(keys.partitions):
        async with client.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.replay(name, version, partition))
            pipe.exists(keys.replay_lock(name, version, partition))
            pipe.get(keys.view_pointer(name, version, partition))
            raw, locked, pointer = await pipe.execute()
        if not raw:
            parts.append(None)
            pointers.append((bool(locked), parse_generation(pointer)))
            continue
        record = record_of(projection, raw)
        record.running = bool(locked)
        record.active_generation = parse_generation(pointer)
        parts.append(record)
        pointers.append((record.running, record.active_generation))
    if all(part is None for part in parts):
        return None
    if len(parts) == 1:
        return parts[0]
    combined = combine_records(projection, parts)
    for part, (running, generation) in zip(combined.partitions, pointers, strict=True):
        part.running, part.active_generation = running, generation
    combined.running = any(running for running, _ in pointers)
    combined.active_generation = min(generation for _, generation in pointers)
    return combined


def now() -> str:
    """The time now as a record holds it (ISO 8601, seconds, UTC)."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


async def read_record(
    client: aioredis.Redis, key: str, projection: Projection
) -> ReplayRecord | None:
    """The record stored under ``key`` (``None``: none)."""
    raw = await client.hgetall(key)
    if not raw:
        return None
    return record_of(projection, raw)


async def start_record(
    client: aioredis.Redis, key: str, projection: Projection, generation: int
) -> ReplayRecord:
    """Write a fresh record under ``key`` of a rebuild of ``generation`` starting now."""
    await client.delete(key)
    started = now()
    await client.hset(
        key,
        mapping={
            "projection": projection.name,
            "version": str(projection.version),
            "generation": str(generation),
            "state": "building",
            "done": "0",
            "total": "0",
            "checkpoint": "",
            "started_at": started,
        },
    )
    return ReplayRecord(
        projection=projection.name,
        version=projection.version,
        generation=generation,
        started_at=started,
    )


async def note_error(client: aioredis.Redis, key: str, exc: BaseException) -> None:
    """Keep the error a rebuild stopped on in its record (when there is one; best effort)."""
    try:
        if await client.exists(key):
            await client.hset(key, "error", f"{type(exc).__name__}: {exc}"[:500])
    except (rexc.RedisError, OSError):
        pass
