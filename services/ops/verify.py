"""``ledger verify``: a stored view compared, document by document, with the pure fold.

The log (of the view's partition) is folded up to the stored view's checkpoint with the
projection's pure ``apply`` (:class:`~services.views.fold.FoldRun`, which sets aside the
entries it cannot apply, as the projectors dead-letter them) and every document is compared
with the stored one, and so is a listing index (:mod:`services.views.listing`) with the
places of the fold's documents. On several partitions every partition view is compared with
the fold of its own partition's log (:func:`verify_all`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import msgspec
import redis.asyncio as aioredis

from projections import Listed, Projection
from services.store.keys import Keys
from services.store.log import LogReader, decode_page
from services.views.codec import decode_doc, encode_doc, readable
from services.views.errors import CorruptViewError
from services.views.fold import FoldRun
from services.views.generations import ViewKeys, span_of, view_keys
from services.views.listing import stored_index
from services.views.redis import RedisViewStore

__all__ = ["Difference", "VerifyResult", "verify", "verify_all"]


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
    views = RedisViewStore(client, keys)
    generation = await views.generation(projection, partition=partition)
    stored, checkpoint = await views.raw(projection, generation=generation, partition=partition)
    fold = FoldRun(projection, projection.initial(), fresh=True)
    events = 0
    if checkpoint is not None:
        async for page in LogReader(client, keys, partition).pages(until=checkpoint):
            fold.apply_all(decode_page(page))
            events += len(page)
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
                    stored=None if raw is None else readable(projection, kind, raw),
                    expected=None if want is None else readable(projection, kind, encode_doc(want)),
                )
            )
    if checkpoint is not None:
        view = view_keys(keys, projection, generation, partition=partition)
        for kind, where in projection.listed.items():
            differences += await _index_differences(
                client, view, kind=kind, where=where, expected=expected, checkpoint=checkpoint
            )
    return VerifyResult(
        projection=projection.name,
        version=projection.version,
        generation=generation,
        checkpoint=checkpoint,
        events=events,
        differences=differences,
        unapplied=[p for p, _ in fold.failures],
        partition=partition,
    )


async def _index_differences(
    client: aioredis.Redis,
    view: ViewKeys,
    *,
    kind: str,
    where: Callable[[Any], Listed],
    expected: Mapping[str, Mapping[str, msgspec.Struct]],
    checkpoint: str,
) -> list[Difference]:
    """Where the stored listing index of ``kind`` and the fold's documents disagree: each id
    listed elsewhere than its document's place (kind ``<kind>:ix``, ``stored`` and
    ``expected`` as ``<group> <day> <span>``), and the index's own inconsistencies."""
    entries, problems, at = await stored_index(client, view, kind)
    if at != checkpoint:  # the view moved since its documents were read: compared next time
        return [Difference(kind=f"{kind}:ix", id="*", stored=at, expected=checkpoint)]
    want: dict[str, tuple[str, int, int]] = {}
    for ident, doc in expected.get(kind, {}).items():
        listed = where(doc)
        if listed.group:
            want[ident] = (listed.group, listed.day, span_of(listed))
    found = [
        Difference(
            kind=f"{kind}:ix",
            id=ident,
            stored=None if ident not in entries else "{} {} {}".format(*entries[ident]),
            expected=None if ident not in want else "{} {} {}".format(*want[ident]),
        )
        for ident in sorted(set(entries) | set(want))
        if entries.get(ident) != want.get(ident)
    ]
    return found + [
        Difference(kind=f"{kind}:ix", id="*", stored=problem, expected=None) for problem in problems
    ]


async def verify_all(
    client: aioredis.Redis, prefix: Keys | str, projection: Projection
) -> list[VerifyResult]:
    """:func:`verify` of every partition's view of ``projection``, in partition order."""
    keys = Keys.of(prefix)
    return [await verify(client, keys, projection, partition=p) for p in range(keys.partitions)]
