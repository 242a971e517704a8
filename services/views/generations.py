"""Which keys a view's documents live under: its generations and the pointer to the live one.

``ledger replay`` rebuilds a view beside the live one (blue/green): the string
``<prefix>:viewptr:<name>:v<version>`` names the active generation, whose keys carry
``:g<N>`` inside the hash tag (``<prefix>:{view:<name>:v<version>:g<N>}:<kind>``). A view
without a pointer is generation 0 and keeps the keys without a generation part, so
installations from before generations read on unchanged. Views built ``--until`` a position
live under the generation ``until-<position>`` and are only read when asked for by name.
Readers resolve the pointer and then read it again inside the ``MULTI`` with the hashes; when
it moved in between they read again, so a reader never mixes two generations
(:func:`snapshot`).
Every key is built by :class:`services.store.keys.Keys`; :class:`ViewKeys` gathers those of
one view (and one generation and partition).

A kind named in :data:`BUCKETED` keeps each document whose stored bytes and id are at most
:data:`LISTPACK_VALUE` bytes in one of :data:`ID_BUCKETS` small hashes, ``<kind
hash>:<bucket>`` (:func:`~services.store.keys.bucket_of` of the document id), which Redis
keeps as listpacks, and a longer one in the kind's own hash: in one big hash every field
costs Redis about 55 bytes of its own, as much as such a document (an incident's date: 12
bytes; its victims' contribution: 54 on average). A document that changes size moves.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Final

import msgspec
import redis.asyncio as aioredis

from events import Position
from projections import Listed, Projection
from projections.docs import MAX_BEFORE
from services.resp import paired, text
from services.store.keys import BUCKETS, ID_BUCKETS, Keys, bucket_of
from services.views.errors import CorruptViewError, UnlistableChangeError, ViewError

__all__ = [
    "BUCKETED",
    "BUCKETS_SCRIPT",
    "CHECKPOINT_FIELD",
    "DAY_PART",
    "LISTING_PARTS",
    "LISTPACK_VALUE",
    "ORDINAL_FIELD",
    "POINTER_RETRIES",
    "SPAN",
    "SPANNED_PART",
    "Generation",
    "ViewKeys",
    "active_generation",
    "checkpoint_of",
    "current_view_keys",
    "generation_suffix",
    "parse_generation",
    "read_buckets",
    "read_whole",
    "snapshot",
    "span_of",
    "view_keys",
    "wholes",
]

CHECKPOINT_FIELD: Final = "position"
"""The field of a view's meta hash holding its checkpoint."""
ORDINAL_FIELD: Final = "ordinal"
"""The field of a view's meta hash holding its checkpoint's ordinal: how many entries of the
log partition are at or before the checkpoint (written with it, in the same script)."""

POINTER_RETRIES: Final = 50
"""How often a reader reads again when the view's generation moved under it."""

BUCKETED: Final[dict[tuple[str, int], frozenset[str]]] = {
    ("country-stance", 4): frozenset({"incident"}),
    ("community-victims", 5): frozenset({"incident"}),
}
"""The kinds kept in buckets, by view name and version (a version's layout never changes:
a kind joins this table with its projection's next version): kinds of many documents,
most of them short."""
LISTPACK_VALUE: Final = 64
"""The longest document (and id) kept in a bucket: Redis's default
``hash-max-listpack-value``, past which a bucket would turn into an ordinary hash."""

DAY_PART: Final = "0"
"""The part of a listing index's day holding the ids that stand for their day alone (a span
of 0: most)."""
SPANNED_PART: Final = "s"
"""The part of a listing index's day holding the ids that stand for more days than their
own (a span above 0): a range of days asks the days beyond it only for these."""
LISTING_PARTS: Final = (DAY_PART, SPANNED_PART)
"""Every part of a listing index's day. Each stays a listpack up to
``zset-max-listpack-entries`` ids (1,024 in the shipped configurations; a group is one
status, country and adm1, so a day rarely lists that many)."""


SPAN: Final = MAX_BEFORE + 1
"""A listed document's span of days is kept as one number, ``before + SPAN * after``."""


def span_of(listed: Listed) -> int:
    """The span of days ``listed`` stands for, as its listing index keeps it (the score of
    its id): ``before + SPAN * after``. :class:`UnlistableChangeError` when ``before`` or
    ``after`` is out of bounds."""
    if not 0 <= listed.before <= MAX_BEFORE or listed.after < 0:
        raise UnlistableChangeError(
            f"a listed span is out of bounds: {listed.before} days before, {listed.after} after"
        )
    return listed.before + SPAN * listed.after


Generation = int | str
"""A view generation: a number (0 = the keys without a generation part), or the name of a
view built up to a position (``until-<position>``)."""


class ViewKeys(msgspec.Struct, frozen=True):
    """The Redis names that belong to one projection version (and one of its generations)."""

    name: str
    version: int
    kinds: dict[str, str]
    """Document kind → the hash holding that kind's documents."""
    meta: str
    """The meta hash (field ``position`` is the checkpoint, ``ordinal`` its ordinal)."""
    changes: str
    """The stream of commits and the documents each changed (readers follow it)."""
    lease: str
    """The lease key of the projector working on this view."""
    group: str
    """The consumer group on the log that feeds this view."""
    generation: Generation = 0
    """The generation these document and meta keys belong to."""
    pointer: str = ""
    """The string naming the view's active generation."""
    partition: int = 0
    """The log partition this view folds."""
    log: str = ""
    """The log (partition) that feeds the view."""
    dlq: str = ""
    """The dead-letter stream of the view's projector."""
    bucketed: frozenset[str] = frozenset()
    """The kinds kept in buckets (:data:`BUCKETED`)."""
    listed: Mapping[str, Callable[[Any], Listed]] = msgspec.field(default_factory=dict)
    """Per kind kept in a listing index, its documents' places there
    (:attr:`projections.Projection.listed`)."""

    def holders(self, kind: str, ident: str) -> list[str]:
        """The hashes that may hold the document ``ident`` of ``kind``: its bucket and the
        kind's hash, or the kind's hash."""
        base = self.kinds[kind]
        return [f"{base}:{bucket_of(ident)}", base] if kind in self.bucketed else [base]

    def hashes(self, kind: str) -> list[str]:
        """Every hash of one kind: its one hash, and all its buckets (to drop them)."""
        base = self.kinds[kind]
        if kind not in self.bucketed:
            return [base]
        return [base, *(f"{base}:{bucket}" for bucket in BUCKETS)]

    def buckets_of(self, kind: str, idents: Iterable[str]) -> list[str]:
        """The bucket of each of ``idents`` when ``kind`` is bucketed, else none."""
        return [bucket_of(ident) for ident in idents] if kind in self.bucketed else []


def generation_suffix(generation: Generation) -> str:
    """The part a generation adds inside the hash tag (empty for generation 0)."""
    if isinstance(generation, str):
        if not generation or "{" in generation or "}" in generation:
            raise ValueError(f"not a generation name: {generation!r}")
        return generation
    if generation < 0:
        raise ValueError(f"a generation is not negative, got {generation}")
    return "" if generation == 0 else f"g{generation}"


def view_keys(
    prefix: Keys | str, projection: Projection, generation: Generation = 0, *, partition: int = 0
) -> ViewKeys:
    """The keys and the consumer group of ``projection``'s stored view under ``prefix``.

    ``generation`` picks the document and meta keys (default: generation 0, the keys of a
    view that was never rebuilt); :func:`current_view_keys` resolves the active one. On
    several partitions (or a cluster) each partition has its own view, fed by the group of
    the same name on that partition's log; ``log`` names that log.
    """
    keys = Keys.of(prefix)
    name, version = projection.name, projection.version
    gen = generation_suffix(generation)
    p = partition
    return ViewKeys(
        name=name,
        version=version,
        kinds={kind: keys.view(name, version, kind, gen, p) for kind in projection.doc_types},
        meta=keys.view_meta(name, version, gen, p),
        changes=keys.view_changes(name, version, gen, p),
        lease=keys.lease(name, version, p),
        group=keys.group(name, version),
        generation=generation,
        pointer=keys.view_pointer(name, version, p),
        partition=p,
        log=keys.log_of(p),
        dlq=keys.dlq_of(p),
        bucketed=BUCKETED.get((name, version), frozenset()),
        listed=projection.listed,
    )


BUCKETS_SCRIPT: Final = """
-- KEYS[1]: a bucketed kind's hash (its buckets are KEYS[1] .. ':' .. hex bucket).
-- ARGV: the first and the last bucket to read, as numbers.
-- Returns every field and value of those buckets, one flat list.
local out = {}
for b = tonumber(ARGV[1]), tonumber(ARGV[2]) do
  local got = redis.call('HGETALL', KEYS[1] .. ':' .. string.format('%x', b))
  for x = 1, #got do out[#out + 1] = got[x] end
end
return out
"""
"""Reads buckets of a bucketed kind in one command: a whole read costs the client what the
documents cost, not 8,192 commands (Redis spends about 12 ms on the empty buckets)."""


def read_buckets(pipe: Any, keys: ViewKeys, kind: str, first: int = 0, last: int = -1) -> Any:
    """Queue on ``pipe`` (or run on a client) the read of buckets ``first`` to ``last`` (all
    by default) of a bucketed kind (:data:`BUCKETS_SCRIPT`); its reply is a flat list."""
    last = ID_BUCKETS - 1 if last < 0 else last
    return pipe.eval(BUCKETS_SCRIPT, 1, keys.kinds[kind], first, last)


def read_whole(pipe: Any, keys: ViewKeys, kinds: Iterable[str]) -> None:
    """Queue on ``pipe`` the reads of ``kinds`` whole: the kind's hash, and the buckets of a
    bucketed kind in one more command (:func:`wholes` gathers the replies)."""
    for kind in kinds:
        pipe.hgetall(keys.kinds[kind])
        if kind in keys.bucketed:
            read_buckets(pipe, keys, kind)


def wholes(
    replies: Sequence[Any], keys: ViewKeys, kinds: Sequence[str]
) -> tuple[list[dict[Any, Any]], list[Any]]:
    """The documents of each of ``kinds`` (id → stored bytes) from the replies of
    :func:`read_whole` at the start of ``replies``, and the replies after them."""
    found: list[dict[Any, Any]] = []
    at = 0
    for kind in kinds:
        docs = replies[at]
        at += 1
        if kind in keys.bucketed:
            docs = {**paired(replies[at]), **docs}
            at += 1
        found.append(docs)
    return found, list(replies[at:])


def parse_generation(raw: bytes | str | None) -> int:
    """The generation a pointer's value names (no pointer: 0)."""
    if raw is None:
        return 0
    value = text(raw)
    try:
        return int(value)
    except ValueError:
        raise CorruptViewError(f"a view pointer holds {value!r}, not a generation") from None


async def active_generation(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> int:
    """The generation of ``projection``'s view that readers and the runner use now."""
    pointer = Keys.of(prefix).view_pointer(projection.name, projection.version, partition)
    return parse_generation(await client.get(pointer))


async def current_view_keys(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection, *, partition: int = 0
) -> ViewKeys:
    """The keys of the active generation of ``projection``'s view (of one partition)."""
    generation = await active_generation(client, prefix, projection, partition=partition)
    return view_keys(prefix, projection, generation, partition=partition)


def checkpoint_of(raw: bytes | str | None) -> Position | None:
    return None if raw is None else Position(text(raw))


async def snapshot(
    client: aioredis.Redis,
    prefix: Keys | str,
    projection: Projection,
    generation: Generation | None,
    commands: Any,
    *,
    partition: int = 0,
) -> tuple[ViewKeys, list[Any]]:
    """Run ``commands(pipe, keys)`` in one MULTI on the active (or the given) generation.

    With no ``generation`` given the pointer is read inside the same MULTI; when it moved
    since it was resolved the snapshot is taken again on the new generation.
    """
    for _ in range(POINTER_RETRIES):
        resolved = (
            await active_generation(client, prefix, projection, partition=partition)
            if generation is None
            else generation
        )
        keys = view_keys(prefix, projection, resolved, partition=partition)
        async with client.pipeline(transaction=True) as pipe:
            pipe.get(keys.pointer)
            commands(pipe, keys)
            replies = await pipe.execute()
        if generation is not None or parse_generation(replies[0]) == resolved:
            return keys, replies[1:]
    raise ViewError(f"the view pointer of {projection.name} v{projection.version} keeps moving")
