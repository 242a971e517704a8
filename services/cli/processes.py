"""The processes the command line runs, each until SIGTERM/SIGINT: wiring, then running.

- :func:`serve` (``ledger serve``): the embedded Redis first (when no ``LEDGER_REDIS_URL`` is
  set), then the service of :func:`services.bootstrap.api` (inbox, projectors, snapshot
  writer), then uvicorn; on SIGINT or SIGTERM it stops in the reverse order, uvicorn first
  (in-flight requests finish) and the embedded Redis last.
- :func:`project` (``ledger project``): the projectors alone; the process exits with
  :class:`~services.projector.errors.ProjectorFailedError` when a projector stops on an error,
  for its supervisor to start it again.
- :func:`write_snapshots` (``ledger snapshots``): the as-of snapshot writer alone.

Each refuses a Redis that may evict keys before it starts any work
(:func:`services.runtime.checks.check_redis`).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

import structlog
import uvicorn

from projections import Projection
from services import bootstrap
from services.bootstrap import Service, api
from services.http.server import Server, Stopper, bind, serve_until_stopped
from services.logging import configure_logging, redactor
from services.projector.errors import ProjectorFailedError
from services.projector.pool import ProjectorPool, tune_collector
from services.protection.auth import ensure_tokens
from services.reference import REFERENCE_FEEDS
from services.runtime.embedded import EmbeddedRedis
from services.settings import Settings
from services.signals import stop_on_signals

__all__ = ["project", "run", "serve", "write_snapshots"]

log = structlog.get_logger("services.bootstrap")


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
                await service.check()
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
    asyncio.run(serve(settings, projectors=projectors))


async def _until_stopped(
    service: Service, failing: Callable[[], Awaitable[Any]] | None = None
) -> None:
    """Check the Redis, start ``service`` and run it until a signal (or ``failing()`` ends)."""
    try:
        await service.check()
    except BaseException:
        await service.stop()
        raise
    stopped = stop_on_signals()
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

    :class:`ProjectorFailedError` when a projector stopped on an error (the process exits,
    for its supervisor to start it again).
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

    failure = pool.failure()
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
    service = bootstrap.snapshots(settings, redis_url=redis_url)
    await _until_stopped(service)
    log.info("snapshotter.stopped")
