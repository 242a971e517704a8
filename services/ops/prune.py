"""``ledger prune``: remove what earlier versions of the projections left in Redis.

A projection's new version is built from the log beside the earlier one, which then stops
changing: its view (every generation, every partition), the string naming its active
generation, its lease, the record and lock of its rebuilds, its as-of snapshots, and its
consumer group ``projector:<name>:v<version>`` on every log partition. :func:`prune` finds
them by one ``SCAN`` over the key prefix (and ``XINFO GROUPS`` on each log) and removes
them (``UNLINK``, ``XGROUP DESTROY``), per earlier version, only when

- the projection's current version is *ready*: its view has a checkpoint in every partition,
  at most ``max_lag`` log entries behind, and no rebuild of it is under way; and
- no process of the earlier version still runs: none holds its projector's lease, its
  snapshot writer's lease or its rebuild lock.

Otherwise the earlier version is kept, with the reason. Only versions below the current one
are touched (the keys of a newer version, left by going back to an older release, stay), and
only keys of the projections this release knows. Dead letters of an earlier version stay in
the dead-letter stream: they are a record of what was not applied.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc

from projections import PROJECTIONS, Projection
from services.projector.replay_records import replay_status
from services.resp import text
from services.store.keys import Keys
from services.views.freshness import view_state

__all__ = ["DEFAULT_MAX_LAG", "Pruned", "owner_of", "prune"]

DEFAULT_MAX_LAG: Final = 1_000
"""Log entries the current version's view may lag and still count as ready."""

_REBUILDING: Final = frozenset({"building", "swapping"})
_UNLINK_CHUNK: Final = 1_000


class Pruned(msgspec.Struct, frozen=True, kw_only=True):
    """One earlier version of a projection: what it left, and whether it was removed."""

    name: str
    version: int
    current: int
    """The projection's current version."""
    keys: list[str]
    """Its keys, sorted."""
    groups: list[str]
    """Its consumer groups, as ``<log>/<group>``."""
    kept: str | None = None
    """Why nothing of it was removed (``None``: removed, or would be on a dry run)."""


@functools.cache
def _key_pattern(prefix: str, names: frozenset[str]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(name) for name in sorted(names, key=len, reverse=True))
    return re.compile(
        rf"^{re.escape(prefix)}:(?:\{{p\d+\}}:)?"
        r"(?:\{view:|view:|viewptr:|lease:|replay:|replay-lock:|snapshot:\{)"
        rf"(?P<name>{alternatives}):v(?P<version>\d+)(?=[:}}]|$)"
    )


def owner_of(keys: Keys, key: str, names: Iterable[str] = PROJECTIONS) -> tuple[str, int] | None:
    """The projection version (name, version) ``key`` belongs to, in every layout of
    :mod:`services.store.keys`, or ``None``: a key of no view version, or of a projection
    not among ``names``."""
    match = _key_pattern(keys.prefix, frozenset(names)).match(key)
    return None if match is None else (match["name"], int(match["version"]))


def _glob(text_: str) -> str:
    """``text_`` with the characters ``SCAN MATCH`` reads as a pattern escaped."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text_)


def _is_lock(keys: Keys, key: str) -> bool:
    """Whether ``key`` is held only while a process of its version runs (a lease or lock)."""
    local = key.removeprefix(f"{keys.prefix}:")
    local = re.sub(r"^\{p\d+\}:", "", local)
    return local.startswith(("lease:", "replay-lock:")) or (
        local.startswith("snapshot:") and local.endswith(":lease")
    )


async def _found_keys(
    client: aioredis.Redis, keys: Keys, current: dict[str, Projection]
) -> dict[tuple[str, int], list[str]]:
    found: dict[tuple[str, int], list[str]] = {}
    async for raw in client.scan_iter(match=f"{_glob(keys.prefix)}:*", count=1000):
        key = text(raw)
        owner = owner_of(keys, key, current)
        if owner is not None and owner[1] < current[owner[0]].version:
            found.setdefault(owner, []).append(key)
    return found


_GROUP: Final = re.compile(r"^projector:(?P<name>.+):v(?P<version>\d+)$")


async def _found_groups(
    client: aioredis.Redis, keys: Keys, current: dict[str, Projection]
) -> dict[tuple[str, int], list[tuple[str, str]]]:
    found: dict[tuple[str, int], list[tuple[str, str]]] = {}
    for log in keys.logs:
        try:
            groups: list[dict[str, Any]] = await client.xinfo_groups(log)
        except rexc.ResponseError:  # no log yet
            continue
        for group in groups:
            name = text(group["name"])
            match = _GROUP.match(name)
            if match is None or match["name"] not in current:
                continue
            version = int(match["version"])
            if version < current[match["name"]].version:
                found.setdefault((match["name"], version), []).append((log, name))
    return found


async def _not_ready(
    client: aioredis.Redis, keys: Keys, projection: Projection, max_lag: int
) -> str | None:
    """Why ``projection``'s current version is not ready yet (``None``: it is)."""
    rebuild = await replay_status(client, keys, projection)
    if rebuild is not None and rebuild.state in _REBUILDING:
        return f"{projection.view} is being rebuilt"
    for partition in range(keys.partitions):
        row = await view_state(client, keys, projection, partition=partition)
        where = f" (partition {partition})" if keys.partitions > 1 else ""
        if row.position is None:
            return f"{projection.view} has no view yet{where}"
        if row.lag > max_lag:
            return f"{projection.view} lags {row.lag} entries{where}, more than {max_lag}"
    return None


async def prune(
    client: aioredis.Redis,
    prefix: Keys | str,
    *,
    dry_run: bool = False,
    max_lag: int = DEFAULT_MAX_LAG,
    projections: Sequence[Projection] | None = None,
) -> list[Pruned]:
    """Find, and unless ``dry_run`` remove, what every earlier version of ``projections``
    (default: all) left under ``prefix`` (module docstring); one :class:`Pruned` per
    earlier version found, by name and version."""
    keys = Keys.of(prefix)
    current = {p.name: p for p in (PROJECTIONS.values() if projections is None else projections)}
    found_keys = await _found_keys(client, keys, current)
    found_groups = await _found_groups(client, keys, current)
    readiness: dict[str, str | None] = {}
    results: list[Pruned] = []
    for name, version in sorted(found_keys.keys() | found_groups.keys()):
        projection = current[name]
        if name not in readiness:
            readiness[name] = await _not_ready(client, keys, projection, max_lag)
        own = sorted(found_keys.get((name, version), []))
        groups = found_groups.get((name, version), [])
        kept = readiness[name]
        locks = [key for key in own if _is_lock(keys, key)]
        if kept is None and any([await client.exists(key) for key in locks]):
            kept = f"a process of {name}:v{version} still runs (it holds a lease or lock)"
        if kept is None and not dry_run:
            await _remove(client, own, groups)
        results.append(
            Pruned(
                name=name,
                version=version,
                current=projection.version,
                keys=own,
                groups=[f"{log}/{group}" for log, group in groups],
                kept=kept,
            )
        )
    return results


async def _remove(
    client: aioredis.Redis, names: Sequence[str], groups: Sequence[tuple[str, str]]
) -> None:
    """``UNLINK`` ``names`` (one command a key: on a cluster they lie on many slots) and
    destroy ``groups``, in one round trip per thousand keys."""
    for start in range(0, max(len(names), 1), _UNLINK_CHUNK):
        async with client.pipeline(transaction=False) as pipe:
            # execute_command: a cluster pipeline's unlink() is a coroutine of its own
            for name in names[start : start + _UNLINK_CHUNK]:
                pipe.execute_command("UNLINK", name)
            if start == 0:
                for log, group in groups:
                    pipe.execute_command("XGROUP", "DESTROY", log, group)
            await pipe.execute()
