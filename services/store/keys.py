"""The names of every Redis key the ledger owns, in one place.

Everything lives under one prefix (default ``ledger``). The log is split into partitions;
the keys of one partition share the hash tag ``{p<N>}`` so that a Lua script touching one
partition stays on one cluster slot. The log's entries: :mod:`events.codec`. The
idempotency index is split into :data:`ID_BUCKETS` buckets (:func:`id_bucket`); ids indexed
before buckets stay in ``<prefix>:{p0}:ids`` under their text, and are read there. So is the
entities index (:func:`bucket_of`); entities recorded before its buckets are read in
``<prefix>:{p0}:entities`` until they change, when they move to their bucket.
``created`` is the position of an entity's first event, so an entity of one event has no
``history`` entry; one recorded before ``created`` was kept has every position there.

| key | type | holds |
|---|---|---|
| ``<prefix>:{p0}:log`` | stream | events: ``c``, ``type``, ``v``, ``source``, ``d`` [, sealed] |
| ``<prefix>:{p0}:ids:<bucket>`` | hash | event_id (16 bytes) → ``position digest`` |
| ``<prefix>:{p0}:entities:<bucket>`` | hash | entity → ``version|status|into|owner|created`` |
| ``<prefix>:{p0}:history`` | hash | entity → positions of its events after ``created`` |
| ``<prefix>:inbox:<feed>`` | stream | one feed's submissions, written by its own ACL user only |
| ``<prefix>:inbox`` | stream | the retired shared inbox: every entry is rejected |
| ``<prefix>:feeds`` | set | feeds registered for the inbox by ``ledger feeds add`` |
| ``<prefix>:inbox:rejected`` | stream | invalid submissions with their problems |
| ``<prefix>:dlq`` | stream | entries the projectors could not apply |
| ``<prefix>:limits:rate:<subject>`` | hash | a token bucket (``t``, ``s``), gone once full |
| ``<prefix>:limits:quota:<feed>:<hour>`` | string | a feed's events in one clock hour |
| ``<prefix>:audit`` | stream | who read exact community figures, where, when (never trimmed) |
| ``<prefix>:keys`` | hash | entity → data key (``LEDGER_KEYRING=redis``; see sealing) |
| ``<prefix>:{keyslots}:<bucket>`` | hash | entity → ``<page>:<slot>`` of its key (file keyring) |
| ``<prefix>:keyslots`` | hash | the same, placed before the buckets (read, never written) |
| ``<prefix>:{view:<name>:v<version>}:<kind>`` | hash | document id → stored document |
| ``<prefix>:{view:<name>:v<version>}:<kind>:<bucket>`` | hash | the same, for a bucketed kind |
| ``<prefix>:{view:<name>:v<version>}:<kind>:ix`` | set | a listed kind's groups listing any |
| ``<prefix>:{view:<name>:v<version>}:<kind>:ix:<group>`` | hash | day → documents it lists then |
| ``<prefix>:{view:<name>:v<version>}:<kind>:ix:<group>:<day>:<part>`` | sorted set | their ids |
| ``<prefix>:{view:<name>:v<version>}:meta`` | hash | ``position`` = the view's checkpoint |
| ``<prefix>:{view:<name>:v<version>}:changes`` | stream | which documents each commit changed |
| ``<prefix>:lease:<name>:v<version>`` | string | the projector holding a view's lease |
| ``<prefix>:projectors`` | sorted set | live projector processes (consumer → last beat) |
| ``<prefix>:health`` | hash | ``<process>/<part>`` → JSON of a degraded part (state, error, when) |
| ``<prefix>:viewptr:<name>:v<version>`` | string | the active generation of a view (absent: 0) |
| ``<prefix>:{view:<name>:v<version>:<gen>}:<kind>`` | hash | a view generation's documents |
| ``<prefix>:replay:<name>:v<version>`` | hash | the record of a view's latest rebuild |
| ``<prefix>:dlq:log`` | stream | what operators did with dead letters (retry, drop) |
| ``<prefix>:snapshot:{<name>:v<version>}:index`` | sorted set | snapshot positions by ordinal |
| ``<prefix>:snapshot:{<name>:v<version>}:data`` | hash | position → compressed snapshot |
| ``<prefix>:snapshot:{<name>:v<version>}:links`` | hash | position → a delta's previous position |
| ``<prefix>:snapshot:{<name>:v<version>}:lease`` | string | the snapshot writer working on it |

Consumer groups on the streams: ``projector:<name>:v<version>`` on the log (one per
projection version, :meth:`Keys.group`) and ``ledger-inbox`` on every inbox
stream (:data:`INBOX_GROUP`).

Generation 0 of a view keeps the keys without a generation part; a rebuilt generation ``g``
has ``:g<g>`` inside the hash tag, a view built up to a position ``:until-<position>``.

**Partitioned layout.** With more than one partition, or on a Redis Cluster, every view is
kept per partition (a fold of that partition's events, merged on read; see
:mod:`services.views.redis`) and *everything a projector touches in one step* lives under its
partition's hash tag, so a commit script stays on one cluster slot with the log it reads:

| key | holds |
|---|---|
| ``<prefix>:{p<N>}:view:<name>:v<version>:<gen>:<kind>`` | a partition view's documents |
| ``<prefix>:{p<N>}:view:<name>:v<version>:<gen>:meta`` | its checkpoint in that partition |
| ``<prefix>:{p<N>}:lease:<name>:v<version>`` | the lease of that (projection, partition) |
| ``<prefix>:{p<N>}:viewptr:<name>:v<version>`` | the partition view's active generation |
| ``<prefix>:{p<N>}:dlq`` | the dead letters of the partition |
| ``<prefix>:{p<N>}:replay:<name>:v<version>`` (and ``replay-lock``) | its rebuild record and lock |

``<gen>`` is ``g0`` for generation 0. The single-node, one-partition layout above is
unchanged, so existing installations read on.
"""

from __future__ import annotations

import uuid
import zlib
from typing import Final

import msgspec

ID_BUCKETS: Final = 8192
"""Buckets of the idempotency index per partition, and of a bucketed view kind
(:func:`bucket_of`). A bucket is a small hash that Redis keeps as a listpack (about 50 B per
id against 115 B in one big hash) while it holds at most ``hash-max-listpack-entries`` fields
(128 by default) and none longer than ``hash-max-listpack-value`` (64 by default): about a
million ids per partition; past that, buckets turn into ordinary hashes, one by one, and
keep working. Never changed: the bucket of an id must stay where it was written."""


BUCKETS: Final = tuple(f"{bucket:x}" for bucket in range(ID_BUCKETS))
"""Every bucket's name (hex), in order: the suffix of its key."""


def id_bucket(event_id: uuid.UUID) -> str:
    """The bucket (hex) of an event id in the idempotency index."""
    return BUCKETS[zlib.crc32(event_id.bytes) % ID_BUCKETS]


def bucket_of(ident: str) -> str:
    """The bucket (hex) of an entity in the entities index, or of a document id in a bucketed
    view kind: the CRC-32 of its UTF-8 modulo :data:`ID_BUCKETS` (scripts compute the same,
    ``services.views.scripts``)."""
    return BUCKETS[zlib.crc32(ident.encode()) % ID_BUCKETS]


RESERVED_INBOX_NAMES: Final = frozenset({"rejected"})
"""Names no feed may submit through the inbox as: ``<prefix>:inbox:rejected`` is the inbox's
own stream of refused submissions."""

INBOX_GROUP: Final = "ledger-inbox"
"""The consumer group every inbox process reads the inbox stream in."""


class Keys(msgspec.Struct, frozen=True):
    """The key names for one prefix, partition count and deployment (one node or a cluster)."""

    prefix: str = "ledger"
    partitions: int = 1
    cluster: bool = False
    """On a Redis Cluster: the partitioned layout even with one partition."""

    def __post_init__(self) -> None:
        if not self.prefix or "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"a key prefix must be non-empty and free of braces: {self.prefix!r}")
        if self.partitions < 1:
            raise ValueError(f"partitions must be at least 1, got {self.partitions}")

    @classmethod
    def of(cls, keys: Keys | str) -> Keys:
        """``keys`` itself, or the one-partition, one-node keys of the prefix ``keys``."""
        return keys if isinstance(keys, Keys) else cls(keys)

    @property
    def partitioned(self) -> bool:
        """Whether views are kept per partition under the partitions' hash tags."""
        return self.cluster or self.partitions > 1

    # --- the log, per partition ----------------------------------------------------------

    def partition_of(self, entity: str) -> int:
        """The partition holding ``entity`` (``incident:<id>``); stable across processes.

        An event goes with its own entity: a merge goes with the duplicate's id.
        """
        return zlib.crc32(entity.encode()) % self.partitions

    def tag(self, partition: int) -> str:
        """The hash tag shared by one partition's keys."""
        if not 0 <= partition < self.partitions:
            raise ValueError(f"partition {partition} is not in 0..{self.partitions - 1}")
        return f"{{p{partition}}}"

    def log_of(self, partition: int) -> str:
        """The event stream of ``partition``."""
        return f"{self.prefix}:{self.tag(partition)}:log"

    def ids_of(self, partition: int) -> str:
        """The hash event_id → ``position digest`` of ``partition`` as written before
        buckets (read, never written); its buckets are named after it
        (:meth:`id_bucket_of`)."""
        return f"{self.prefix}:{self.tag(partition)}:ids"

    def id_bucket_of(self, partition: int, event_id: uuid.UUID) -> str:
        """The bucket of the idempotency index holding ``event_id`` in ``partition``."""
        return f"{self.ids_of(partition)}:{id_bucket(event_id)}"

    def entities_of(self, partition: int) -> str:
        """The hash entity → ``version|status|into|owner|created`` of ``partition`` as written
        before buckets (read, and emptied as its entities change); its buckets are named after
        it (:meth:`entity_bucket_of`)."""
        return f"{self.prefix}:{self.tag(partition)}:entities"

    def entity_bucket_of(self, partition: int, entity: str) -> str:
        """The bucket of the entities index holding ``entity`` in ``partition``."""
        return f"{self.entities_of(partition)}:{bucket_of(entity)}"

    def entity_buckets(self, partition: int) -> list[str]:
        """Every bucket of the entities index of ``partition``."""
        older = self.entities_of(partition)
        return [f"{older}:{bucket}" for bucket in BUCKETS]

    def history_of(self, partition: int) -> str:
        """The hash entity → space-separated positions of its later events, of ``partition``."""
        return f"{self.prefix}:{self.tag(partition)}:history"

    @property
    def log(self) -> str:
        """The event stream of partition 0 (the whole log while there is one partition)."""
        return self.log_of(0)

    @property
    def ids(self) -> str:
        """The idempotency hash of partition 0."""
        return self.ids_of(0)

    @property
    def entities(self) -> str:
        """The entity-state hash of partition 0."""
        return self.entities_of(0)

    @property
    def history(self) -> str:
        """The entity-history hash of partition 0."""
        return self.history_of(0)

    @property
    def logs(self) -> tuple[str, ...]:
        """Every partition's event stream, in partition order."""
        return tuple(self.log_of(p) for p in range(self.partitions))

    # --- the inbox and the dead letters ----------------------------------------------------

    @property
    def inbox(self) -> str:
        """The retired shared inbox stream: its entries are rejected (the feed is the stream
        an entry arrives on, :meth:`inbox_of`)."""
        return f"{self.prefix}:inbox"

    def inbox_of(self, feed: str) -> str:
        """The inbox stream of ``feed``: only its own Redis user may ``XADD`` to it."""
        if feed in RESERVED_INBOX_NAMES:
            raise ValueError(f"{feed!r} names a stream of the inbox itself, not a feed's inbox")
        return f"{self.prefix}:inbox:{feed}"

    @property
    def inbox_feeds(self) -> str:
        """The set of feeds registered for the inbox by ``ledger feeds add`` (beside the
        configured ones)."""
        return f"{self.prefix}:feeds"

    @property
    def inbox_rejected(self) -> str:
        """The stream of invalid inbox submissions with their problems."""
        return f"{self.prefix}:inbox:rejected"

    @property
    def dlq(self) -> str:
        """The dead-letter stream of the projectors (of partition 0 when partitioned)."""
        return self.dlq_of(0)

    def dlq_of(self, partition: int) -> str:
        """The dead-letter stream of the projectors of ``partition``."""
        if self.partitioned:
            return f"{self.prefix}:{self.tag(partition)}:dlq"
        return f"{self.prefix}:dlq"

    @property
    def dlqs(self) -> tuple[str, ...]:
        """Every dead-letter stream (one, or one per partition)."""
        if self.partitioned:
            return tuple(self.dlq_of(p) for p in range(self.partitions))
        return (self.dlq,)

    # --- limits (services.protection.limits) ----------------------------------------------

    def rate_bucket(self, subject: str) -> str:
        """The token bucket of ``subject``: ``feed:<name>`` (HTTP and inbox alike), or
        ``token:<digest>`` for a token of another role (a digest, never the secret)."""
        return f"{self.prefix}:limits:rate:{subject}"

    def quota_count(self, feed: str, hour: int) -> str:
        """The count of ``feed``'s events in the clock hour ``hour`` (hours since the epoch)."""
        return f"{self.prefix}:limits:quota:{feed}:{hour}"

    @property
    def audit(self) -> str:
        """The audit stream of exact community figures read (never trimmed by the service)."""
        return f"{self.prefix}:audit"

    @property
    def keyring(self) -> str:
        """The hash entity → data key of the Redis keyring (kept apart from the log)."""
        return f"{self.prefix}:keys"

    @property
    def key_slots(self) -> str:
        """The one hash entity → ``<page>:<slot>`` in which the file keyring placed its keys
        before :meth:`key_slot_bucket`: still read and cleared, never written."""
        return f"{self.prefix}:keyslots"

    @property
    def key_slot_buckets(self) -> str:
        """The start of every bucket's key of the file keyring's places (the bucket's name
        completes it): one hash tag for all, so a script may touch any of them."""
        return f"{self.prefix}:{{keyslots}}:"

    def key_slot_bucket(self, entity: str) -> str:
        """The small hash entity → ``<page>:<slot>`` holding where in the file keyring's
        directory ``entity``'s key is (no key material): its :func:`bucket_of`."""
        return f"{self.key_slot_buckets}{bucket_of(entity)}"

    # --- views -------------------------------------------------------------------------------

    def view_tag(self, name: str, version: int, generation: str = "", partition: int = 0) -> str:
        """The hash tag shared by every key of one view version (and generation).

        ``generation`` is empty for generation 0, else ``g<N>`` or ``until-<position>``. In
        the partitioned layout it is the partition's tag.
        """
        if self.partitioned:
            return self.tag(partition)
        gen = f":{generation}" if generation else ""
        return f"{{view:{name}:v{version}{gen}}}"

    def _view_base(self, name: str, version: int, generation: str, partition: int) -> str:
        if self.partitioned:
            gen = generation or "g0"
            return f"{self.prefix}:{self.tag(partition)}:view:{name}:v{version}:{gen}"
        return f"{self.prefix}:{self.view_tag(name, version, generation)}"

    def _partition_part(self, partition: int) -> str:
        return f"{self.tag(partition)}:" if self.partitioned else ""

    def view(
        self, name: str, version: int, kind: str, generation: str = "", partition: int = 0
    ) -> str:
        """The hash of one document kind of a view: id → stored document (of a bucketed kind,
        the prefix of its buckets' hashes, ``<this>:<bucket>``)."""
        return f"{self._view_base(name, version, generation, partition)}:{kind}"

    def view_meta(self, name: str, version: int, generation: str = "", partition: int = 0) -> str:
        """The meta hash of a view (field ``position`` is its checkpoint)."""
        return f"{self._view_base(name, version, generation, partition)}:meta"

    def view_changes(
        self, name: str, version: int, generation: str = "", partition: int = 0
    ) -> str:
        """The stream of a view's commits: which documents each one changed (readers follow it)."""
        return f"{self._view_base(name, version, generation, partition)}:changes"

    def view_pattern(
        self, name: str, version: int, generation: str = "", partition: int = 0
    ) -> str:
        """A SCAN MATCH pattern for every key of one view version (and generation)."""
        return f"{self._view_base(name, version, generation, partition)}:*"

    def view_pointer(self, name: str, version: int, partition: int = 0) -> str:
        """The string naming the active generation of a view (absent: generation 0)."""
        return f"{self.prefix}:{self._partition_part(partition)}viewptr:{name}:v{version}"

    def replay(self, name: str, version: int, partition: int = 0) -> str:
        """The hash recording the latest rebuild of a view (:mod:`services.projector.replay`)."""
        return f"{self.prefix}:{self._partition_part(partition)}replay:{name}:v{version}"

    def replay_lock(self, name: str, version: int, partition: int = 0) -> str:
        """The lock held by the one process rebuilding a view."""
        return f"{self.prefix}:{self._partition_part(partition)}replay-lock:{name}:v{version}"

    @property
    def dlq_log(self) -> str:
        """The stream recording every retry and drop of a dead letter."""
        return f"{self.prefix}:dlq:log"

    def lease(self, name: str, version: int, partition: int = 0) -> str:
        """The lease key of one view version's projector (of one partition)."""
        return f"{self.prefix}:{self._partition_part(partition)}lease:{name}:v{version}"

    @property
    def health(self) -> str:
        """The hash of the degraded parts of every process (``<process>/<part>`` → JSON)."""
        return f"{self.prefix}:health"

    @property
    def projectors(self) -> str:
        """The sorted set of live projector processes (consumer → last heartbeat, ms)."""
        return f"{self.prefix}:projectors"

    # --- consumer groups ---------------------------------------------------------------------

    @staticmethod
    def group(name: str, version: int) -> str:
        """The consumer group on the log (of every partition) that feeds one view version."""
        return f"projector:{name}:v{version}"

    @property
    def inbox_group(self) -> str:
        """The consumer group the inbox reads its stream in (:data:`INBOX_GROUP`)."""
        return INBOX_GROUP

    # --- as-of snapshots ---------------------------------------------------------------------

    def _snapshot_base(self, name: str, version: int) -> str:
        return f"{self.prefix}:snapshot:{{{name}:v{version}}}"

    def snapshot_index(self, name: str, version: int) -> str:
        """The sorted set of one view version's snapshot positions, scored by ordinal."""
        return f"{self._snapshot_base(name, version)}:index"

    def snapshot_data(self, name: str, version: int) -> str:
        """The hash position → compressed snapshot of one view version."""
        return f"{self._snapshot_base(name, version)}:data"

    def snapshot_links(self, name: str, version: int) -> str:
        """The hash position → previous snapshot's position (``""``: a base) of one view
        version's snapshots."""
        return f"{self._snapshot_base(name, version)}:links"

    def snapshot_lease(self, name: str, version: int) -> str:
        """The lease of the snapshot writer working on one view version."""
        return f"{self._snapshot_base(name, version)}:lease"
