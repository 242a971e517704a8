"""The projection runner: folds the log into stored views, exactly once, surviving crashes.

One :class:`ProjectorPool` per process runs one worker task per projection (and log
partition): :mod:`services.projector.worker`. A worker reads the log through its
projection's consumer group (:mod:`services.projector.group`) or, for a backlog, through the
pool's shared reader (:mod:`services.projector.catch_up`), applies each batch in memory to
the projection's :class:`~projections.docs.Docs`, and commits documents, dead letters and
checkpoint in one script (:mod:`services.projector.commit`). Several processes can run
pools over the same prefix: each projection is applied by the holder of its lease, the
others stand by and take over within one lease time when it dies. On several partitions
the pools share the leases fairly through a registry of live pools (:meth:`_heartbeat`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Final, Literal

import msgspec
import redis.asyncio as aioredis
import redis.exceptions as rexc
import structlog

from events import Position
from projections import PROJECTIONS, Projection
from projections.docs import Docs
from services.health import ERROR_CHARS, PartHealth
from services.projector.catch_up import SharedReader
from services.projector.commit import Commits
from services.projector.errors import ProjectorFailedError
from services.projector.lease import Leases, process_name
from services.projector.replay import Replay, run_together
from services.projector.replay_pages import Pages
from services.projector.worker import Worker, WorkerState
from services.resp import text
from services.store.connection import REDIS_DOWN
from services.store.keys import Keys
from services.store.log import LogReader
from services.store.positions import above
from services.views.freshness import group_info, view_state
from services.views.generations import CHECKPOINT_FIELD, current_view_keys
from services.views.own import RESIDENT
from services.views.redis import VIEW_PAGE, RedisViewStore

__all__ = [
    "REBUILD_FROM",
    "ProjectionStatus",
    "ProjectorPool",
    "Step",
    "StepHook",
]

Step = Literal["before_commit", "after_commit"]
"""Points of a batch a :data:`StepHook` is called at (``after_commit`` comes before the ack)."""

StepHook = Callable[[str, Step], Awaitable[None]]
"""Called with the projection's name at each :data:`Step`; fault tests raise from it."""

_log = structlog.get_logger(__name__)

REBUILD_FROM: Final = 50_000
"""Log entries from which a pool builds its fresh views as a rebuild before following the
log (:meth:`ProjectorPool._build_fresh`)."""


class ProjectionStatus(msgspec.Struct, frozen=True, kw_only=True):
    """Where one projection's stored view stands, and this pool's worker for it."""

    name: str
    version: int
    position: Position | None
    """The view's checkpoint: the last log position it includes."""
    lag: int
    """Log entries after the checkpoint, not yet in the view."""
    pending: int
    """Entries delivered to the projection's consumer group and not yet acked."""
    holder: str | None
    """The consumer holding the projection's lease, if any."""
    state: WorkerState
    """This pool's worker for the projection: waiting for the lease, running, …."""
    generation: int = 0
    """The active generation of the view (see :mod:`services.views.generations`)."""
    partition: int = 0
    """The log partition the view folds (0 on one partition)."""
    lag_seconds: float = 0.0
    """How long ago the oldest entry not yet in the view was recorded."""
    error: str | None = None
    """While the worker is degraded (it restarted after an unexpected error and has made
    no progress since): that error."""
    restarts: int = 0
    """Terms of this pool's worker ended by an unexpected error."""


class ProjectorPool:
    """One worker per projection, each applying the log to its stored view.

    ``consumer`` names this process in the consumer groups and as the lease owner (default:
    host, pid and a random suffix). ``hook`` is for fault tests: it is awaited before and after
    each commit and may raise to simulate a crash there. ``load_client`` loads views at the
    start of a term and builds fresh views (a long timeout: big views, batch jobs).
    ``follow=False`` keeps the live log on the consumer groups' path (:attr:`follow`).
    ``resident``: the own documents (most of a view) a worker holds at most after a commit
    (:mod:`services.views.own`).
    """

    def __init__(
        self,
        redis_client: aioredis.Redis,
        *,
        prefix: Keys | str = "ledger",
        projections: Iterable[Projection] | None = None,
        claim_idle_ms: int = 30_000,
        batch_size: int = 1000,
        consumer: str | None = None,
        lease_ms: int = 10_000,
        block_ms: int = 1000,
        hook: StepHook | None = None,
        catch_up_entries: int = 10_000,
        catch_up_seconds: float = 0.25,
        read_size: int = 2000,
        read_keep: int = 8,
        load_page: int = VIEW_PAGE,
        load_client: aioredis.Redis | None = None,
        rebuild_from: int = REBUILD_FROM,
        follow: bool = True,
        resident: int = RESIDENT,
    ) -> None:
        self.client = redis_client
        self.keys = Keys.of(prefix)
        self.prefix = self.keys.prefix
        self.claim_idle_ms = claim_idle_ms
        self.batch_size = batch_size
        self.consumer = consumer or process_name()
        self.lease_ms = lease_ms
        self.lease_retry = min(max(lease_ms / 4000, 0.05), 2.0)
        self.block_ms = self._block_ms(redis_client, block_ms)
        self.hook = hook
        self.catch_up_entries = catch_up_entries
        self.catch_up_seconds = catch_up_seconds
        self.rebuild_from = rebuild_from
        self.follow = follow
        """Whether workers follow the live log through the shared reader (one read for the
        pool, one script a batch: :meth:`~services.projector.catch_up.CatchUp.follow`);
        ``False``: through their consumer groups, delivered, committed, then acked."""
        self.resident = resident
        """Own documents a worker holds at most after a commit (:mod:`services.views.own`)."""
        self.load_client = load_client or redis_client
        """The client of long reads and batch jobs: view loads, the rebuild of fresh views."""
        self.views = RedisViewStore(
            redis_client, self.keys, bulk_client=load_client, page=load_page
        )
        self.leases = Leases(redis_client)
        self.logs = [LogReader(redis_client, self.keys, p) for p in range(self.keys.partitions)]
        self.readers = [SharedReader(log, read_size, read_keep) for log in self.logs]
        self.commits = [Commits(redis_client) for _ in self.logs]
        """Per log partition: the workers' commits following the log, sent together."""
        self.progress = asyncio.Event()
        self.faulted = asyncio.Event()
        """Set whenever a worker meets an unexpected error (it restarts by itself)."""
        self._stop = asyncio.Event()
        chosen = PROJECTIONS.values() if projections is None else projections
        self._workers = [
            Worker(self, p, partition) for p in chosen for partition in range(self.keys.partitions)
        ]
        self.share = len(self._workers)
        """How many leases this pool may hold: all of them on one partition; on several, a
        fair share of the workers over the live pools (:meth:`_heartbeat`)."""
        self._tasks: list[asyncio.Task[None]] = []
        self._built: asyncio.Task[None] | None = None
        self._preloaded: dict[
            tuple[str, int], tuple[int, Position | None, Docs[msgspec.Struct]]
        ] = {}

    @staticmethod
    def _block_ms(client: aioredis.Redis, wanted: int) -> int:
        """The read block time, kept well under the client's socket timeout."""
        pool = getattr(client, "connection_pool", None)  # a cluster client has none
        options = pool.connection_kwargs if pool is not None else client.get_connection_kwargs()  # type: ignore[no-untyped-call]
        timeout = options.get("socket_timeout")
        if timeout:
            return max(10, min(wanted, int(timeout * 1000) // 2))
        return wanted

    @property
    def stopping(self) -> bool:
        """Whether :meth:`stop` was called."""
        return self._stop.is_set()

    @property
    def running(self) -> bool:
        """Whether workers were started and have not all ended."""
        return any(not t.done() for t in self._tasks)

    async def pause(self, seconds: float) -> None:
        """Wait ``seconds``, or less if the pool is stopped meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    def may_take(self) -> bool:
        """Whether a worker may compete for a lease: the pool holds less than its share."""
        return sum(w.state == "running" for w in self._workers) < self.share

    def surplus(self) -> Worker | None:
        """The worker that should give its lease up (the last running one), when the pool
        holds more than its share; else ``None``."""
        running = [w for w in self._workers if w.state == "running"]
        return running[-1] if len(running) > self.share else None

    async def _heartbeat(self) -> None:
        """Keep this pool in the registry of live pools and its :attr:`share` up to date.

        The registry is a sorted set ``<prefix>:projectors`` (consumer → last beat, ms);
        members silent for a lease time are dropped, so a dead process's share returns to
        the others as its leases expire. The share is the workers over the live pools,
        rounded up: with two processes on 16 partitions of 4 projections each holds 32.
        """
        key = self.keys.projectors
        while not self.stopping:
            with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):
                now = int(time.time() * 1000)
                await self.client.zadd(key, {self.consumer: now})
                await self.client.zremrangebyscore(key, 0, now - self.lease_ms)
                live = max(1, int(await self.client.zcard(key)))
                self.share = -(-len(self._workers) // live)
            await self.pause(self.lease_ms / 3000)
        with contextlib.suppress(*REDIS_DOWN, rexc.RedisError):
            await self.client.zrem(key, self.consumer)

    async def start(self) -> None:
        """Start one worker task per projection (they compete for their leases), after the
        rebuild of the fresh views with a long log (:meth:`_build_fresh`)."""
        if self._tasks:
            return
        self._stop.clear()
        self._built = asyncio.create_task(self._build_fresh(), name="projector:build")
        self._tasks = [
            self._built,
            *(asyncio.create_task(w.run(), name=f"projector:{w.name}") for w in self._workers),
        ]
        if self.keys.partitions > 1:
            self._tasks.append(asyncio.create_task(self._heartbeat(), name="projector:beat"))

    async def built(self) -> None:
        """Wait until the rebuild of fresh views the pool started with has ended (whatever
        its outcome: a view it did not build is caught up by its worker)."""
        if self._built is not None and not self._built.done():
            await asyncio.wait([self._built])

    def preloaded(
        self, projection: Projection, partition: int, generation: int | str
    ) -> tuple[Position | None, Docs[msgspec.Struct]] | None:
        """The checkpoint and documents of ``generation`` of the view as the pool's rebuild
        of fresh views left them in memory (once; ``None``: the worker loads the view): every
        document but own ones it dropped (:mod:`services.views.own`)."""
        found = self._preloaded.pop((projection.name, partition), None)
        if found is None or found[0] != generation:
            return None
        return found[1], found[2]

    async def _build_fresh(self) -> None:
        """Build the views that have no checkpoint yet as a rebuild does, when the log holds
        at least :attr:`rebuild_from` entries, before the workers start.

        A view far behind is built fastest as a batch job: one read of the log for all of
        them, documents written once per batch (:func:`~services.projector.replay.
        replay_together`), then swapped in; the workers then follow the log from there.
        The rebuild takes the views' rebuild locks, so of several pools starting together
        one builds, and the others' workers wait for the leases as usual. A rebuild that
        fails (another one runs, Redis went away) is left: the workers catch the view up
        the usual way, and the next rebuild resumes it.
        """
        if self.rebuild_from <= 0:
            return
        try:
            entries = sum([await log.length() for log in self.logs])
            if entries < self.rebuild_from:
                return
            fresh = []
            chosen = {w.projection.name: w.projection for w in self._workers}
            for projection in chosen.values():
                for partition in range(self.keys.partitions):
                    keys = await current_view_keys(
                        self.client, self.keys, projection, partition=partition
                    )
                    if await self.client.hget(keys.meta, CHECKPOINT_FIELD) is not None:
                        break
                else:
                    fresh.append(projection)
            if not fresh:
                return
            _log.info("projector.building_fresh", views=[p.view for p in fresh], entries=entries)
            # a batch job, as `ledger replay` is: on the long-timeout client (at 10M events
            # the service client's 1 s timeout ended one at 2M entries, BENCHMARKS.md)
            bulk = self.load_client
            pages = Pages(bulk, self.keys, keep=2 + 2 * len(fresh))
            jobs = [
                Replay(bulk, p, prefix=self.keys, pages=pages, resident=self.resident)
                for p in fresh
            ]
            results = await run_together(jobs)
        except (*REDIS_DOWN, rexc.RedisError) as exc:
            _log.warning("projector.build_fresh_failed", error=str(exc))
            return
        except Exception:  # a fault of the rebuild itself: the workers catch the views up
            _log.exception("projector.build_fresh_failed")
            return
        for job, projection, result in zip(jobs, fresh, results, strict=True):
            for partition, built in job.built.items():
                self._preloaded[projection.name, partition] = built
            if isinstance(result, Exception):
                _log.warning(
                    "projector.build_fresh_failed",
                    view=projection.view,
                    error_type=type(result).__name__,
                    error=str(result)[:500],
                )

    async def stop(self) -> None:
        """Finish the batches in flight, release the leases, and end the workers (a rebuild
        of fresh views still running is cancelled: the next start resumes it)."""
        self._stop.set()
        if self._built is not None and not self._built.done():
            self._built.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def abort(self) -> None:
        """End every worker at once, as a crash would: no batch finished, no lease released.

        The Redis client can absorb a cancellation that lands while it writes a command, so
        the cancellation is repeated until every task has ended.
        """
        pending = {t for t in self._tasks if not t.done()}
        while pending:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=0.1)
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def failure(self) -> BaseException | None:
        """The last unexpected error a worker met, if one did (it restarted after it)."""
        return next((w.error for w in self._workers if w.error is not None), None)

    def crashed(self) -> bool:
        """Whether a worker's task itself died (a worker restarts after any error it meets,
        so only a fault of the restarting itself does this)."""
        return any(w.state == "failed" for w in self._workers)

    def health(self) -> dict[str, PartHealth]:
        """The workers that restarted after an unexpected error and have made no progress
        since (or whose task died), by ``projector:<name>``: a :data:`HealthOf`."""
        found: dict[str, PartHealth] = {}
        for worker in self._workers:
            error = worker.error
            dead = worker.state == "failed"
            if error is not None and (dead or worker.healing.degraded):
                found[f"projector:{worker.name}"] = PartHealth(
                    state="failed" if dead else "restarting",
                    error=f"{type(error).__name__}: {error}"[:ERROR_CHARS],
                    restarts=worker.healing.restarts,
                )
        return found

    async def wait_failure(self) -> BaseException | None:
        """Wait until every worker task has ended (they end only when the pool stops, or
        when a task itself dies); the last unexpected error met, if any."""
        if self._tasks:
            await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        return self.failure()

    async def run_until_caught_up(self) -> None:
        """Apply until every view's checkpoint reaches the log's head as it is now.

        Caught up also means nothing is left pending in the projections' groups (entries
        redelivered after a crash are settled). Starts the workers when they are not running
        (and stops them again afterwards). The view may be advanced by another pool holding
        the lease; that counts too. Bound the wait with ``asyncio.timeout``;
        :class:`ProjectorFailedError` as soon as a worker meets an unexpected error (it
        restarts by itself, but a caller waiting for the views wants to know).
        """
        started_here = not self.running
        if started_here:
            await self.start()
        self.faulted.clear()
        try:
            heads = [await log.head() for log in self.logs]
            if all(head is None for head in heads):
                return
            while not await self._caught_up(heads):
                error = self.failure()
                if error is not None and self.faulted.is_set():
                    raise ProjectorFailedError(f"{type(error).__name__}: {error}") from error
                self.progress.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.progress.wait(), 0.05)
        finally:
            if started_here:
                await self.stop()

    async def _caught_up(self, heads: Sequence[Position | None]) -> bool:
        for worker in self._workers:
            head = heads[worker.partition]
            if head is None:
                continue
            keys = await current_view_keys(
                self.client, self.keys, worker.projection, partition=worker.partition
            )
            info = await group_info(self.client, keys.log, keys.group)
            if info is None or int(info["pending"]):
                return False
            raw = await self.client.hget(keys.meta, CHECKPOINT_FIELD)
            if above(head, None if raw is None else Position(text(raw))):
                return False
        return True

    def _error_of(self, worker: Worker) -> str | None:
        found = self.health().get(f"projector:{worker.name}")
        return None if found is None else found.error

    async def status(self) -> list[ProjectionStatus]:
        """Checkpoint, lag, pending count and lease holder of every projection of the pool
        (:func:`services.views.freshness.view_state`), and the state of its worker here."""
        rows = []
        for worker in self._workers:
            found = await view_state(
                self.client, self.keys, worker.projection, partition=worker.partition
            )
            rows.append(
                ProjectionStatus(
                    name=found.name,
                    partition=found.partition,
                    version=found.version,
                    position=found.position,
                    lag=found.lag,
                    lag_seconds=found.lag_seconds,
                    pending=found.pending,
                    holder=found.holder,
                    state=worker.state,
                    generation=found.generation,
                    error=self._error_of(worker),
                    restarts=worker.healing.restarts,
                )
            )
        return rows
