"""The one place each process is wired: the API, the projectors, the snapshot writer, the tools.

One function per process makes every part from the settings, without connecting anywhere:

- :func:`api` (``ledger serve``): the Redis clients (1 s timeouts, and a long one for the
  projectors' loads of whole views), the sealing event store, the HTTP app (with its read
  side and operator routes), the Redis inbox consumer and, unless turned off, the projector
  pool with the as-of snapshot writer beside it;
- every process also posts its degraded parts to the health board
  (:mod:`services.runtime.health_board`), where every ``/readyz`` finds them;
- :func:`projectors` (``ledger project``): the projector pool alone;
- :func:`snapshots` (``ledger snapshots``): the snapshot writer alone;
- :func:`ops` (the operator commands): a client with a long timeout and the sealing store.

:func:`http_app` is where the HTTP app meets its parts: :func:`api` and the tests call it,
the tests with their own store (an in-memory one, a hanging one), client or live hub. The
processes themselves (signals, uvicorn, the embedded Redis) are run by
:mod:`services.cli.processes`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from typing import Any, Protocol, cast

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog
from litestar import Litestar
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisClusterException

from projections import Projection
from services.errors import LedgerError, SettingsError
from services.health import HealthOf
from services.http.admin import AdminDeps
from services.http.app import build_http_app
from services.http.ingest import APPEND_TIMEOUT
from services.http.live import LiveHub
from services.http.side import ProjectorState, ReadSide, projector_state_of
from services.ingest.asyncapi import asyncapi_document
from services.ingest.inbox import build_inbox
from services.metrics import IngestMetrics
from services.projector.lease import process_name
from services.projector.pool import ProjectorPool
from services.projector.snapshots import SnapshotsOffError, snapshotter_for
from services.protection.auth import Authenticator
from services.protection.limits import limits_of
from services.runtime.checks import RedisSetup, check_redis
from services.runtime.health_board import HealthPoster
from services.settings import Settings
from services.store.base import EventStore
from services.store.compaction import ClusterFiles, ServerFiles
from services.store.connection import BULK_SOCKET_TIMEOUT, connect, describe, learn_slots
from services.store.headroom import Headroom
from services.store.keyring import Keyring, keyring_for
from services.store.redis import RedisEventStore
from services.store.sealing import Files, SealingStore

__all__ = [
    "Component",
    "Ops",
    "Service",
    "api",
    "event_store",
    "http_app",
    "ops",
    "projectors",
    "snapshots",
]

log = structlog.get_logger(__name__)


class Component(Protocol):
    """A part of a process with a lifetime: the inbox consumer, the projector pool, …."""

    async def start(self) -> None:
        """Start working (in the background); return once started."""
        ...

    async def stop(self) -> None:
        """Finish in-flight work and stop."""
        ...


class Service:
    """Everything one process runs, built by one of the wiring functions."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: aioredis.Redis,
        store: EventStore | None = None,
        http: Litestar | None = None,
        components: Mapping[str, Component],
        bulk_client: aioredis.Redis | None = None,
    ) -> None:
        self.settings, self.client, self.http = settings, client, http
        self._store = store
        self.bulk_client = bulk_client
        """A second client with a long timeout, for the projectors' loads of whole views
        (see :data:`services.store.connection.BULK_SOCKET_TIMEOUT`); readers keep the 1 s one,
        so a reader asking too much of a big view gets a prompt 503 rather than a long wait."""
        self.components = dict(components)
        self._started: list[str] = []
        self.address: tuple[str, int] | None = None
        """Where the HTTP API listens, once the process has bound it."""
        self.embedded: Any = None
        """The embedded Redis the process started for this service, if any."""

    @property
    def store(self) -> EventStore:
        """The event store (of a process that has one)."""
        if self._store is None:
            raise LedgerError("this process has no event store")
        return self._store

    @property
    def app(self) -> Litestar:
        """The HTTP app (of a process that serves one)."""
        if self.http is None:
            raise LedgerError("this process serves no HTTP API")
        return self.http

    async def check(self) -> RedisSetup:
        """Refuse a Redis that may evict keys (:func:`services.runtime.checks.check_redis`)."""
        return await check_redis(self.client)

    async def start(self) -> None:
        """Start the background components (inbox, projectors, …), in order.

        On a cluster the clients learn the slot map first: commands sent before it go to one
        node, and a burst of MOVED replies under concurrency makes redis-py resend commands.
        """
        if self.settings.cluster:
            await learn_slots(self.client)
            if self.bulk_client is not None:
                await learn_slots(self.bulk_client)
        for name, component in self.components.items():
            await component.start()
            self._started.append(name)
            log.info("component.started", component=name)

    async def stop(self) -> None:
        """Stop the started components in reverse order, then close the Redis clients."""
        while self._started:
            name = self._started.pop()
            try:
                await self.components[name].stop()
            except Exception:
                log.exception("component.stop_failed", component=name)
            else:
                log.info("component.stopped", component=name)
        await self.client.aclose()
        if self.bulk_client is not None:
            await self.bulk_client.aclose()


def _url(settings: Settings, redis_url: str | None) -> str:
    url = redis_url or settings.redis_url
    if url is None:
        raise SettingsError("LEDGER_REDIS_URL is unset and no embedded Redis was started")
    return url


def event_store(settings: Settings, client: aioredis.Redis, *, strict: bool = True) -> SealingStore:
    """The event store of ``settings``: the Redis store, sealing private text on its way in.

    ``strict``: acknowledge appends only once the configured replicas have them
    (``LEDGER_WAIT_REPLICAS``); the service does, the operator tools need not.
    """
    keyring: Keyring = keyring_for(settings.keyring, client, settings.key_prefix)
    # erasure rewrites Redis's files: the server's, or every node's of a cluster
    files: Files = (
        ClusterFiles(cast("RedisCluster", client)) if settings.cluster else ServerFiles(client)
    )
    return SealingStore(
        RedisEventStore(
            client,
            prefix=settings.key_prefix,
            partitions=settings.partitions,
            cluster=settings.cluster,
            wait_replicas=settings.wait_replicas if strict else 0,
            wait_timeout_ms=settings.wait_timeout_ms,
        ),
        keyring,
        files,
    )


def http_app(
    settings: Settings,
    *,
    store: EventStore,
    client: aioredis.Redis | None = None,
    sealing: SealingStore | None = None,
    metrics: IngestMetrics | None = None,
    append_timeout: float = APPEND_TIMEOUT,
    asyncapi: Callable[[], Mapping[str, Any]] | None = None,
    projector_state: ProjectorState | None = None,
    live: LiveHub | None = None,
    health: Sequence[HealthOf] = (),
    process: str | None = None,
) -> Litestar:
    """The HTTP app of ``settings`` over ``store`` (authenticating with ``settings.tokens``).

    Ingest always. With ``client``, the Redis holding the views: the read side (over the
    keys of ``settings``, suppressing small counts below ``settings.suppression_k``),
    ``/readyz`` asking that Redis, and the operator routes; without it those answer 404 and
    the process is always ready. ``sealing`` is ``store`` when it seals private text
    (erasure and the private text of read answers need it; without it answers read the
    sources of statements and revisions from ``store`` as stored). ``projector_state`` tells
    ``/readyz`` how this process's projectors are doing and ``health`` which of its parts
    are degraded (``process``: the name it posts them under on the health board); ``live``
    replaces the read side's live hub (tests poll faster).
    """
    read = admin = None
    if client is not None:
        read = ReadSide(
            client,
            settings.keys,
            projector_state=projector_state,
            live=live,
            suppression_k=settings.suppression_k,
            sealing=sealing or store,
            health=health,
            process=process,
        )
        admin = AdminDeps(client, settings.keys)
    return build_http_app(
        store=store,
        auth=Authenticator(settings.tokens),
        metrics=metrics or IngestMetrics(),
        ping=None if client is None else client.ping,
        append_timeout=append_timeout,
        asyncapi=asyncapi,
        read=read,
        admin=admin,
        sealing=sealing,
        limits=limits_of(settings, client),
        headroom=None
        if client is None or settings.cluster
        else Headroom(client, settings.ingest_memory_percent),
    )


def api(
    settings: Settings, *, redis_url: str | None = None, projectors: bool | None = None
) -> Service:
    """The ``ledger serve`` process for ``settings`` (whose tokens must be filled in).

    ``redis_url`` overrides ``settings.redis_url`` (the embedded Redis's URL); ``projectors``
    overrides ``settings.projectors``. Nothing connects here. The Redis inbox is off on a
    cluster (FastStream's Redis broker has no cluster client: feeds publish over HTTP).
    """
    url = _url(settings, redis_url)
    if not settings.tokens:
        raise SettingsError("LEDGER_TOKENS is empty: no one could publish or read")
    client = connect(url, cluster=settings.cluster)
    bulk = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    store = event_store(settings, client)
    components: dict[str, Component] = {}
    health: list[HealthOf] = []
    metrics = IngestMetrics()
    asyncapi = None
    if settings.cluster:
        log.warning("inbox.off", reason="FastStream's Redis broker has no cluster client")
    else:
        inbox = build_inbox(settings, store, url, metrics=metrics)
        components["inbox"] = inbox
        health.append(inbox.part.health)
        asyncapi = lambda: asyncapi_document(settings.keys)  # noqa: E731  # reads best here
    state = None
    if settings.projectors if projectors is None else projectors:
        pool = _pool(settings, client, bulk)
        components["projectors"] = pool
        health.append(pool.health)
        state = projector_state_of(pool)
        writer = snapshotter_for(client, settings)
        if writer is not None:  # as-of snapshots, written where the projectors run
            components["snapshots"] = writer
            health.append(writer.part.health)
    process = f"api:{process_name()}"
    http = http_app(
        settings,
        store=store,
        client=client,
        sealing=store,
        metrics=metrics,
        asyncapi=asyncapi,
        projector_state=state,
        health=health,
        process=process,
    )
    components["health"] = HealthPoster(client, settings.keys, process, health)
    return Service(
        settings=settings,
        client=client,
        store=store,
        http=http,
        components=components,
        bulk_client=bulk,
    )


def _pool(
    settings: Settings, client: aioredis.Redis, bulk: aioredis.Redis, **options: Any
) -> ProjectorPool:
    return ProjectorPool(
        client,
        prefix=settings.keys,
        claim_idle_ms=settings.claim_idle_ms,
        load_client=bulk,
        **options,
    )


def projectors(
    settings: Settings,
    *,
    redis_url: str | None = None,
    projections: Iterable[Projection] | None = None,
    consumer: str | None = None,
    lease_ms: int = 10_000,
    batch_size: int = 1000,
) -> Service:
    """The ``ledger project`` process: the projector pool of ``settings`` alone (``projections``:
    those only, default every one); its component ``projectors``."""
    url = _url(settings, redis_url)
    client = connect(url, cluster=settings.cluster)
    bulk = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    pool = _pool(
        settings,
        client,
        bulk,
        projections=projections,
        consumer=consumer,
        lease_ms=lease_ms,
        batch_size=batch_size,
    )
    poster = HealthPoster(client, settings.keys, f"projector:{pool.consumer}", [pool.health])
    return Service(
        settings=settings,
        client=client,
        components={"projectors": pool, "health": poster},
        bulk_client=bulk,
    )


def snapshots(settings: Settings, *, redis_url: str | None = None) -> Service:
    """The ``ledger snapshots`` process: the as-of snapshot writer alone (its component
    ``snapshots``); :class:`SnapshotsOffError` when ``settings`` turn snapshots off.

    Its client has the long timeout: writing the first snapshots of a long log folds the
    whole history and encodes big states.
    """
    url = _url(settings, redis_url)
    client = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    writer = snapshotter_for(client, settings)
    if writer is None:
        raise SnapshotsOffError(
            "as-of snapshots are off: LEDGER_SNAPSHOT_EVERY is 0 or the log is partitioned"
        )
    poster = HealthPoster(client, settings.keys, f"snapshots:{writer.owner}", [writer.part.health])
    return Service(
        settings=settings, client=client, components={"snapshots": writer, "health": poster}
    )


class Ops(msgspec.Struct, frozen=True, kw_only=True):
    """What an operator command works with: a client, the settings, the event store."""

    client: aioredis.Redis
    settings: Settings
    store: SealingStore
    """The event store, sealing on the way in (imports, erasures) and restoring private text
    on the way out (exports)."""


@contextlib.asynccontextmanager
async def ops(settings: Settings, *, redis_url: str | None = None) -> AsyncIterator[Ops]:
    """The operator tools' wiring: a client with a 60 s timeout (they read whole logs and
    views), checked to answer first (:class:`LedgerError` naming where it is not), closed
    afterwards."""
    url = _url(settings, redis_url)
    client = connect(url, cluster=settings.cluster, socket_timeout=60)
    try:
        try:
            await client.ping()
        except (rexc.ConnectionError, rexc.TimeoutError, OSError, RedisClusterException) as exc:
            raise LedgerError(f"cannot reach Redis at {describe(url)}: {exc}") from None
        yield Ops(
            client=client, settings=settings, store=event_store(settings, client, strict=False)
        )
    finally:
        await client.aclose()
