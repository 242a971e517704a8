"""The wiring of the ``ledger serve`` process: the one place where the parts meet.

:func:`build_app` makes every part from the settings without connecting anywhere: the Redis
client (1 s timeouts), the event store, the HTTP app (with its read side), the Redis inbox
consumer, the projector pool and, beside the projectors, the as-of snapshotter
(:mod:`services.views.asof`). :func:`serve` runs them: the embedded Redis first (when no
``LEDGER_REDIS_URL`` is set), then the inbox and the projectors, then uvicorn; on SIGINT or
SIGTERM it stops in the reverse order, uvicorn first (in-flight requests finish) and the
embedded Redis last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable, Generator, Mapping
from typing import Any, Protocol

import redis.asyncio as aioredis
import structlog
import uvicorn
from litestar import Litestar

from services.errors import SettingsError
from services.http import build_http_app
from services.http.admin import AdminDeps
from services.http.read import ReadSide, projector_state_of
from services.logging import configure_logging, redactor
from services.metrics import IngestMetrics
from services.projector.runner import ProjectorPool, tune_collector
from services.protection.auth import Authenticator, ensure_tokens
from services.runtime.checks import check_redis
from services.runtime.embedded import EmbeddedRedis
from services.settings import Settings
from services.store.base import EventStore
from services.store.redis import BULK_SOCKET_TIMEOUT, RedisEventStore, connect, learn_slots
from services.store.sealing import SealingStore, keyring_for
from services.views.asof import snapshotter_for

log = structlog.get_logger(__name__)


class Component(Protocol):
    """A part of the service with a lifetime: the inbox consumer, the projector pool."""

    async def start(self) -> None:
        """Start working (in the background); return once started."""
        ...

    async def stop(self) -> None:
        """Finish in-flight work and stop."""
        ...


class Service:
    """Everything one ``ledger serve`` process runs, built by :func:`build_app`."""

    def __init__(
        self,
        *,
        settings: Settings,
        client: aioredis.Redis,
        store: EventStore,
        http: Litestar,
        components: Mapping[str, Component],
        bulk_client: aioredis.Redis | None = None,
    ) -> None:
        self.settings, self.client, self.store, self.http = settings, client, store, http
        self.bulk_client = bulk_client
        """A second client with a long timeout, for the projectors' loads of whole views
        (see :data:`services.store.redis.BULK_SOCKET_TIMEOUT`); readers keep the 1 s one, so
        a reader asking too much of a big view gets a prompt 503 rather than a long wait."""
        self.components = dict(components)
        self._started: list[str] = []
        self.address: tuple[str, int] | None = None
        """Where the HTTP API listens, once :func:`serve` has bound it."""
        self.embedded: EmbeddedRedis | None = None
        """The embedded Redis :func:`serve` started for this service, if any."""

    async def start(self) -> None:
        """Start the background components (inbox, projectors), in order.

        On a cluster the client learns the slot map first: commands sent before it go to one
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
        """Stop the started components in reverse order, then close the Redis client."""
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


def _inbox(settings: Settings, store: EventStore, redis_url: str) -> Component | None:
    """The Redis inbox consumer, when ``services.ingest.inbox`` is installed (not on a cluster)."""
    if settings.cluster:
        log.warning(
            "inbox.off",
            reason="FastStream's Redis broker has no cluster client: feeds publish over HTTP",
        )
        return None
    try:
        from services.ingest.inbox import build_inbox  # noqa: PLC0415  # optional until the inbox lands
    except ImportError:
        log.warning("inbox.unavailable", reason="services.ingest.inbox is not installed")
        return None
    inbox: Component = build_inbox(settings, store, redis_url)
    return inbox


def _asyncapi(inbox: Component | None) -> Callable[[], Mapping[str, Any]] | None:
    """A renderer of the inbox's AsyncAPI document, when the inbox offers one."""
    if inbox is None:
        return None
    try:
        from services.ingest.inbox import asyncapi_json  # noqa: PLC0415  # optional until the inbox lands
    except ImportError:
        return None
    return lambda: asyncapi_json(inbox)  # type: ignore[arg-type]


def build_app(
    settings: Settings, *, redis_url: str | None = None, projectors: bool | None = None
) -> Service:
    """Wire the service for ``settings`` (whose tokens :func:`ensure_tokens` has filled).

    ``redis_url`` overrides ``settings.redis_url`` (the embedded Redis's URL); ``projectors``
    overrides ``settings.projectors``. Nothing connects here.
    """
    url = redis_url or settings.redis_url
    if url is None:
        raise SettingsError("LEDGER_REDIS_URL is unset and no embedded Redis was started")
    if not settings.tokens:
        raise SettingsError("LEDGER_TOKENS is empty: no one could publish or read")
    client = connect(url, cluster=settings.cluster)
    bulk = connect(url, cluster=settings.cluster, socket_timeout=BULK_SOCKET_TIMEOUT)
    store = SealingStore(
        RedisEventStore(
            client,
            prefix=settings.key_prefix,
            partitions=settings.partitions,
            cluster=settings.cluster,
            wait_replicas=settings.wait_replicas,
            wait_timeout_ms=settings.wait_timeout_ms,
        ),
        keyring_for(settings.keyring, client, settings.key_prefix),
    )
    components: dict[str, Component] = {}
    inbox = _inbox(settings, store, url)
    if inbox is not None:
        components["inbox"] = inbox
    if settings.projectors if projectors is None else projectors:
        components["projectors"] = ProjectorPool(
            client, prefix=settings.keys, claim_idle_ms=settings.claim_idle_ms, load_client=bulk
        )
        snapshots = snapshotter_for(client, settings)
        if snapshots is not None:  # as-of snapshots, written where the projectors run
            components["snapshots"] = snapshots
    running = components.get("projectors")
    read = ReadSide(
        client,
        settings.keys,
        projector_state=None if running is None else projector_state_of(running),
        suppression_k=settings.suppression_k,
    )
    http = build_http_app(
        store=store,
        auth=Authenticator(settings.tokens),
        metrics=IngestMetrics(),
        ping=client.ping,
        asyncapi=_asyncapi(inbox),
        read=read,
        admin=AdminDeps(client, settings.keys),
    )
    return Service(
        settings=settings,
        client=client,
        store=store,
        http=http,
        components=components,
        bulk_client=bulk,
    )


class _Server(uvicorn.Server):
    """uvicorn, leaving signals to :func:`serve` (which stops the rest of the service too)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.listening = asyncio.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self.listening.set()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class _Stopper:
    """Turns SIGINT/SIGTERM into a graceful stop; a second SIGINT forces uvicorn to exit."""

    def __init__(self) -> None:
        self.requested = asyncio.Event()
        self.server: _Server | None = None
        self.on_stop: list[Callable[[], None]] = []
        """Called at the first signal (e.g. to end open live streams at once)."""

    def __call__(self, sig: signal.Signals) -> None:
        log.info("service.stopping", signal=sig.name)
        if self.server is not None:
            if self.server.should_exit and sig == signal.SIGINT:
                self.server.force_exit = True
            self.server.should_exit = True
        for hook in self.on_stop:
            hook()
        self.requested.set()

    @contextlib.contextmanager
    def installed(self) -> Generator[None, None, None]:
        loop = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            loop.add_signal_handler(sig, self, sig)
        try:
            yield
        finally:
            for sig in signals:
                loop.remove_signal_handler(sig)


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one) for uvicorn to listen on.

    The protocol is named (``IPPROTO_TCP``, not the default 0): asyncio sets ``TCP_NODELAY``
    on the connections it accepts only then. Without it every answer whose head and body go
    out in two writes waited for the client's delayed ACK: about 40 ms per request.

    Raises :class:`SettingsError` naming the variables when the address cannot be bound.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SettingsError(
            f"LEDGER_HTTP_HOST/LEDGER_HTTP_PORT: cannot listen on {host}:{port}: {exc.strerror}"
        ) from None
    return sock


async def serve(
    settings: Settings,
    *,
    projectors: bool | None = None,
    ready: Callable[[Service], Awaitable[None]] | None = None,
) -> None:
    """Run the service until SIGINT/SIGTERM (see the module docstring).

    ``ready`` is awaited once uvicorn listens (for tests and tools).
    """
    settings = ensure_tokens(settings)
    redactor().add(t.secret for t in settings.tokens)
    stopper = _Stopper()
    embedded: EmbeddedRedis | None = None
    with stopper.installed():
        try:
            redis_url = settings.redis_url
            if settings.embedded:
                embedded = EmbeddedRedis(settings)
                redis_url = await asyncio.to_thread(embedded.start)
            if stopper.requested.is_set():
                return
            service = build_app(settings, redis_url=redis_url, projectors=projectors)
            service.embedded = embedded
            read = service.http.state.get("read")
            if read is not None:
                stopper.on_stop.append(read.live.close)
            try:
                await check_redis(service.client)
                await service.start()
                sock = bind(settings.http_host, settings.http_port)
                service.address = sock.getsockname()[:2]
                log.info("http.listening", host=service.address[0], port=service.address[1])
                server = _Server(
                    uvicorn.Config(
                        service.http,
                        host=settings.http_host,
                        port=settings.http_port,
                        log_config=None,
                        access_log=False,
                        lifespan="on",
                        timeout_graceful_shutdown=10,
                    )
                )
                stopper.server = server
                if not stopper.requested.is_set():
                    await _serve_until_stopped(server, sock, service, ready)
            finally:
                await service.stop()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
    log.info("service.stopped")


async def _serve_until_stopped(
    server: _Server,
    sock: socket.socket,
    service: Service,
    ready: Callable[[Service], Awaitable[None]] | None,
) -> None:
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    if ready is not None:
        listening = asyncio.create_task(server.listening.wait())
        await asyncio.wait((listening, serving), return_when=asyncio.FIRST_COMPLETED)
        listening.cancel()
        if server.started:
            await ready(service)
    try:
        await serving
    finally:
        sock.close()


def run(
    settings: Settings, *, projectors: bool | None = None, json_logs: bool | None = None
) -> None:
    """Configure logging and run :func:`serve` in a fresh event loop until stopped."""
    configure_logging(json=json_logs, secrets=[t.secret for t in settings.tokens])
    tune_collector()
    asyncio.run(serve(settings, projectors=projectors))
