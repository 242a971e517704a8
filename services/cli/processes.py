"""The processes the command line runs, each until SIGTERM/SIGINT: wiring, then running.

- :func:`serve` (``ledger serve``): the embedded Redis first (when no ``LEDGER_REDIS_URL`` is
  set), then the service of :func:`services.bootstrap.api` (inbox, projectors, snapshot
  writer), then uvicorn; on SIGINT or SIGTERM it stops in the reverse order, uvicorn first
  (in-flight requests finish) and the embedded Redis last.
- :func:`project` (``ledger project``): the projectors alone. A projector that meets an
  unexpected error restarts by itself (:mod:`services.projector.healing`); the process exits
  with :class:`~services.projector.errors.ProjectorFailedError` only if a worker's task
  itself dies, for its supervisor to start it again.
- :func:`write_snapshots` (``ledger snapshots``): the as-of snapshot writer alone.

All three run on uvloop's event loop (:func:`run_loop`) and uvicorn parses HTTP with
httptools: side by side with asyncio's loop and h11, on this service's requests, each cut the
API's CPU per small request by about a tenth (``BENCHMARKS.md``).

Each refuses a Redis that may evict keys before it starts any work
(:func:`services.runtime.checks.check_redis`); while that Redis cannot be reached at all,
each waits for it (0.1 s doubling to 5 s, the reason logged) until a signal ends the wait, so
a process started before its Redis, or beside a Redis being restarted, comes up with it
instead of dying.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from typing import Any, TypeVar

import structlog
import uvicorn

from projections import Projection
from services import bootstrap
from services.bootstrap import Service, api
from services.health import backoff
from services.http.server import Server, Stopper, bind, serve_until_stopped
from services.logging import configure_logging, redactor
from services.projector.collector import tune_collector
from services.projector.errors import ProjectorFailedError
from services.projector.pool import ProjectorPool
from services.protection.auth import ensure_tokens
from services.reference import REFERENCE_FEEDS
from services.runtime.embedded import EmbeddedRedis
from services.settings import Settings
from services.signals import stop_on_signals
from services.store.connection import REDIS_DOWN

__all__ = ["project", "run", "run_loop", "serve", "write_snapshots"]

log = structlog.get_logger("services.bootstrap")

T = TypeVar("T")


def run_loop(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` to its end in a fresh event loop: uvloop's where it is installed (every
    platform but Windows), else asyncio's."""
    try:
        import uvloop  # noqa: PLC0415  # optional where it cannot be installed
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)


async def serve(
    settings: Settings,
    *,
    projectors: bool | None = None,
    ready: Callable[[Service], Awaitable[None]] | None = None,
) -> None:
    """Run ``ledger serve`` until SIGINT/SIGTERM (see the module docstring).

    ``ready`` is awaited once uvicorn listens (for tests and tools).
    """
    settings = ensure_tokens(settings, feeds=REFERENCE_FEEDS)
    redactor().add(t.secret for t in settings.tokens)
    stopper = Stopper()
    embedded: EmbeddedRedis | None = None
    with stopper.installed():
        try:
            redis_url = settings.redis_url
            if settings.embedded:
                embedded = EmbeddedRedis(settings)
                redis_url = await asyncio.to_thread(embedded.start)
            if stopper.requested.is_set():
                return
            service = api(settings, redis_url=redis_url, projectors=projectors)
            service.embedded = embedded
            read = service.app.state.get("read")
            if read is not None:
                stopper.on_stop.append(read.live.close)
            try:
                if not await checked(service, stopper.requested):
                    return
                await service.start()
                sock = bind(settings.http_host, settings.http_port)
                service.address = sock.getsockname()[:2]
                log.info("http.listening", host=service.address[0], port=service.address[1])
                server = Server(
                    uvicorn.Config(
                        service.app,
                        host=settings.http_host,
                        port=settings.http_port,
                        log_config=None,
                        http="httptools",
                        access_log=False,
                        lifespan="on",
                        timeout_graceful_shutdown=10,
                    )
                )
                stopper.server = server
                if not stopper.requested.is_set():
                    announce = None if ready is None else functools.partial(ready, service)
                    await serve_until_stopped(server, sock, announce)
            finally:
                await service.stop()
        finally:
            if embedded is not None:
                await asyncio.to_thread(embedded.stop)
    log.info("service.stopped")


def run(
    settings: Settings, *, projectors: bool | None = None, json_logs: bool | None = None
) -> None:
    """Configure logging and run :func:`serve` in a fresh event loop until stopped."""
    configure_logging(json=json_logs, secrets=[t.secret for t in settings.tokens])
    tune_collector()
    run_loop(serve(settings, projectors=projectors))


async def checked(service: Service, stopped: asyncio.Event) -> bool:
    """Run the Redis checks of ``service``, waiting while its Redis cannot be reached; whether
    they passed (``False``: ``stopped`` was set first). A refused setup raises."""
    wait = 0.0
    while True:
        try:
            await service.check()
        except REDIS_DOWN as exc:
            wait = backoff(wait)
            log.warning("redis.unreachable_at_start", error=str(exc)[:300], retry_in=wait)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopped.wait(), wait)
            if stopped.is_set():
                return False
        else:
            return True


async def _until_stopped(
    service: Service, failing: Callable[[], Awaitable[Any]] | None = None
) -> None:
    """Check the Redis, start ``service`` and run it until a signal (or ``failing()`` ends)."""
    stopped = stop_on_signals()
    try:
        if not await checked(service, stopped):
            await service.stop()
            return
    except BaseException:
        await service.stop()
        raise
    await service.start()
    log.info(
        "process.started", components=list(service.components), prefix=service.settings.key_prefix
    )
    waits = [asyncio.ensure_future(stopped.wait())]
    if failing is not None:
        waits.append(asyncio.ensure_future(failing()))
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
        await service.stop()


async def project(
    settings: Settings,
    *,
    redis_url: str | None = None,
    projections: Iterable[Projection] | None = None,
    consumer: str | None = None,
    lease_ms: int = 10_000,
    batch_size: int = 1000,
) -> None:
    """Run the projectors until SIGTERM/SIGINT: ``ledger project``.

    :class:`ProjectorFailedError` when a worker's task died (the process exits, for its
    supervisor to start it again); workers restart after the errors they meet by themselves.
    """
    tune_collector()
    service = bootstrap.projectors(
        settings,
        redis_url=redis_url,
        projections=projections,
        consumer=consumer,
        lease_ms=lease_ms,
        batch_size=batch_size,
    )
    pool = service.components["projectors"]
    assert isinstance(pool, ProjectorPool)  # noqa: S101  # what bootstrap.projectors makes
    await _until_stopped(service, pool.wait_failure)

    failure = pool.failure() if pool.crashed() else None
    if failure is not None:  # exit, for the supervisor to start the process again
        raise ProjectorFailedError(
            f"a projector stopped on {type(failure).__name__}: {failure}"
        ) from failure
    log.info("projector.stopped", consumer=pool.consumer)


async def write_snapshots(settings: Settings, *, redis_url: str | None = None) -> None:
    """Write the as-of snapshots until SIGTERM/SIGINT: ``ledger snapshots``.

    A process of its own in a deployment: writing the first snapshots of a long log folds
    the whole history and encodes big states, which would stall projectors or readers
    sharing a process with it. :class:`~services.projector.snapshots.SnapshotsOffError`
    when ``settings`` turn them off.
    """
    tune_collector()
    service = bootstrap.snapshots(settings, redis_url=redis_url)
    await _until_stopped(service)
    log.info("snapshotter.stopped")
