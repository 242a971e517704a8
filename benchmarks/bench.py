"""The ledger against the physical limit (raw Redis) and a naive FastStream peer, in one run.

``python -m benchmarks.bench`` (``make bench``; ``make bench-smoke`` for the small CI run)
starts its own redis-server (AOF everysec, fresh data directory, free port), generates a
realistic event stream (:mod:`benchmarks.workload`) and measures, side by side:

- **limit**: pipelined raw ``XADD`` of the encoded entries; raw ``XRANGE`` + decode;
- **naive peer**: FastStream publishing and consuming one message at a time;
- **ours**: the store's batch append, HTTP batch ingest (one and several clients), the
  projection catch-up of the whole log, live latency publish → visible, end-to-end
  throughput publish → projected, Redis memory per event, and ``as_of`` queries.

It prints one Markdown table (and writes it, with the raw numbers, to ``--out``). A stage
that fails is reported and makes the exit status non-zero; timings are never asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import gc
import io
import json
import os
import platform
import pstats
import re
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import redis.asyncio as aioredis

from events import (
    ENTRY_CODECS,
    AnyEvent,
    Position,
    codec,
    encode,
    from_fields,
    position_key,
    recorded_at_of,
    to_fields,
)
from projections import PROJECTIONS
from services.client import LedgerClient
from services.logging import configure_logging
from services.projector.collector import tune_collector
from services.projector.pool import REBUILD_FROM, ProjectorPool
from services.projector.replay import Replay, replay_together
from services.runtime.redis_server import RedisProcess, free_port
from services.store.connection import connect
from services.store.keys import Keys
from services.store.redis import RedisEventStore
from services.views.asof import ASOF_PROJECTIONS
from services.views.redis import load_checkpoint
from services.views.snapshots import DEFAULT_EVERY, SnapshotStore

from .workload import FEED, Workload, check

ROOT = Path(__file__).resolve().parent.parent
BATCH = 1000
QUERY_PATH = "/v1/projections/community-victims"


# --- results ----------------------------------------------------------------------------------


@dataclass
class Results:
    """Every measured number, by name, plus what failed."""

    values: dict[str, Any] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    profiles: dict[str, str] = field(default_factory=dict)

    def get(self, name: str) -> Any:
        return self.values.get(name)


async def stage(results: Results, name: str, body: Callable[[], Awaitable[None]]) -> None:
    """Run one stage; a failure is recorded (and printed) instead of ending the run."""
    print(f"[bench] {name} …", file=sys.stderr, flush=True)
    started = time.perf_counter()
    try:
        await body()
    except Exception as exc:  # a stage failing must not hide the others' numbers
        results.failures[name] = f"{type(exc).__name__}: {exc}"
        traceback.print_exc()
    print(f"[bench] {name} done in {time.perf_counter() - started:.1f} s", file=sys.stderr)


class Profiled:
    """cProfile around a block when profiling is on; keeps the top lines by own time."""

    def __init__(self, results: Results, name: str, enabled: bool, lines: int = 25) -> None:
        self.results, self.name, self.enabled, self.lines = results, name, enabled, lines
        self.profile = cProfile.Profile() if enabled else None

    def __enter__(self) -> Profiled:
        if self.profile is not None:
            self.profile.enable()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.profile is not None:
            self.profile.disable()
            self.results.profiles[self.name] = top_lines(pstats.Stats(self.profile), self.lines)


def top_lines(stats: pstats.Stats, lines: int) -> str:
    """The ``lines`` functions with the most own time, as pstats prints them."""
    out = io.StringIO()
    stats.stream = out  # type: ignore[attr-defined]
    stats.sort_stats("tottime").print_stats(lines)
    text = out.getvalue()
    start = text.find("   ncalls")
    return text[start:] if start >= 0 else text


def rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


# --- the limit ----------------------------------------------------------------------------------


async def limit_write(client: aioredis.Redis, entries: Sequence[Any], key: str) -> float:
    """Raw pipelined XADD of pre-encoded entries, ``BATCH`` per round trip; seconds taken."""
    started = time.perf_counter()
    for start in range(0, len(entries), BATCH):
        pipe = client.pipeline(transaction=False)
        for fields in entries[start : start + BATCH]:
            pipe.xadd(key, fields)
        await pipe.execute()
    return time.perf_counter() - started


async def limit_read(client: aioredis.Redis, key: str) -> tuple[int, float]:
    """Raw XRANGE in batches of ``BATCH`` plus the typed decode of every entry."""
    started = time.perf_counter()
    n, after = 0, "-"
    while True:
        entries: Any = await client.xrange(key, after, "+", count=BATCH)
        for _, fields in entries:
            from_fields(fields)
        n += len(entries)
        if len(entries) < BATCH:
            break
        after = "(" + entries[-1][0].decode()
    return n, time.perf_counter() - started


# --- the naive peer -------------------------------------------------------------------------------


async def naive_peer(url: str, events: Sequence[AnyEvent], stream: str) -> float:
    """FastStream: publish one message at a time, consume one at a time; seconds end to end.

    The consumer gets the body FastStream decoded, converts it to the typed event and folds
    it into a dict of deaths per community.
    """
    from faststream.redis import RedisBroker, StreamSub

    n = len(events)
    bodies = [msgspec.json.encode(e) for e in events]
    deaths: dict[str, int] = {}
    seen = 0
    done = asyncio.Event()
    broker = RedisBroker(url, logger=None)  # type: ignore[arg-type]  # quiet, as ours

    @broker.subscriber(stream=StreamSub(stream, polling_interval=10, last_id="0"))
    async def handle(body: dict[str, Any]) -> None:  # FastStream decodes the JSON itself
        nonlocal seen
        event: Any = msgspec.convert(body, AnyEvent)
        for line in getattr(event, "victims", ()):
            deaths[line.community] = deaths.get(line.community, 0) + line.best
        seen += 1
        if seen == n:
            done.set()

    await broker.start()
    try:
        started = time.perf_counter()
        for body in bodies:
            await broker.publish(body, stream=stream)
        await asyncio.wait_for(done.wait(), timeout=max(60.0, n / 200))
        return time.perf_counter() - started
    finally:
        await broker.stop()


# --- the HTTP service in a subprocess -------------------------------------------------------------


class Server:
    """``ledger serve`` (the real wiring) in a child process on a free port.

    With ``projector_processes`` > 0 it is the deployed shape (``deploy/docker-compose.yml``):
    the API runs without projectors and that many ``ledger project`` children, on the same
    settings, share the projections through their leases. Otherwise ``projectors`` says
    whether the API process runs them itself.
    """

    def __init__(
        self,
        redis_url: str,
        *,
        prefix: str,
        projectors: bool,
        workdir: Path,
        projector_processes: int = 0,
        profile: Path | None = None,
        root: Path = ROOT,
    ) -> None:
        self.port = free_port()
        self.root = root  # the source tree whose `services.cli` runs
        self.feed_token = secrets.token_urlsafe(24)
        self.reader_token = secrets.token_urlsafe(24)
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix, self.workdir = prefix, workdir
        self.log_path = workdir / f"serve-{prefix}.log"
        self.projector_processes = projector_processes
        in_api = projectors and projector_processes == 0
        self.env = {
            **os.environ,
            "LEDGER_REDIS_URL": redis_url,
            "LEDGER_HTTP_PORT": str(self.port),
            "LEDGER_KEY_PREFIX": prefix,
            "LEDGER_PROJECTORS": "1" if in_api else "0",
            "LEDGER_DATA_DIR": str(workdir / f"serve-{prefix}"),
            "LEDGER_TOKENS": f"feed:{FEED}={self.feed_token},reader={self.reader_token}",
            "LEDGER_INBOX_FEEDS": FEED,
            # the rates measured are the service's, not the per-token limits' (a limited
            # service is waited out: the client on 429, the as_of loop too)
            "LEDGER_READ_RATE": os.environ.get("LEDGER_READ_RATE", "0"),
            "LEDGER_FEED_RATE": os.environ.get("LEDGER_FEED_RATE", "0"),
            "LEDGER_FEED_EVENTS_PER_HOUR": os.environ.get("LEDGER_FEED_EVENTS_PER_HOUR", "0"),
        }
        self.profile = profile
        self.process: subprocess.Popen[bytes] | None = None
        self.projectors: list[tuple[subprocess.Popen[bytes], Path]] = []

    @property
    def shape(self) -> str:
        """Which processes run what, for the report."""
        return service_shape(self.env["LEDGER_PROJECTORS"] == "1", self.projector_processes)

    async def __aenter__(self) -> Server:
        try:
            await self._start()
        except BaseException:
            await self.__aexit__()  # no child outlives a start that failed
            raise
        return self

    async def _start(self) -> None:
        command = [sys.executable]
        if self.profile is not None:
            command += ["-m", "cProfile", "-o", str(self.profile)]
        command += ["-m", "services.cli", "serve"]
        self.process = self._spawn(command, self.log_path)
        for i in range(self.projector_processes):
            log_path = self.workdir / f"project-{self.prefix}-{i + 1}.log"
            command = [sys.executable, "-m", "services.cli", "project"]
            self.projectors.append((self._spawn(command, log_path), log_path))
        if self.projector_processes:  # the deployed shape writes as-of snapshots beside them
            log_path = self.workdir / f"snapshots-{self.prefix}.log"
            command = [sys.executable, "-m", "services.cli", "snapshots"]
            self.projectors.append((self._spawn(command, log_path), log_path))
        deadline = time.monotonic() + 180
        async with httpx.AsyncClient(base_url=self.url) as http:
            while time.monotonic() < deadline:
                self.check()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/readyz")).status_code == 200:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError("ledger serve did not become ready within 180 s")

    def _spawn(self, command: list[str], log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("wb") as log:
            return subprocess.Popen(  # starting it does not block
                command, cwd=self.root, env=self.env, stdout=log, stderr=subprocess.STDOUT
            )

    def check(self) -> None:
        """Raise if the API or a projector process has exited (with the end of its log)."""
        children = [("ledger serve", self.process, self.log_path)]
        children += [(path.stem, process, path) for process, path in self.projectors]
        for name, process, path in children:
            if process is not None and process.poll() is not None:
                raise RuntimeError(
                    f"{name} exited with status {process.returncode}: {path.read_text()[-2000:]}"
                )

    def peak_memory(self) -> dict[str, int]:
        """Each child's peak resident memory so far (``VmHWM``), bytes, by its log's name."""
        children = [("serve", self.process)]
        children += [(path.stem.replace(f"-{self.prefix}", ""), p) for p, path in self.projectors]
        peaks: dict[str, int] = {}
        for name, process in children:
            if process is None or process.poll() is not None:
                continue
            with contextlib.suppress(OSError):
                status = Path(f"/proc/{process.pid}/status").read_text()
                kib = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
                if kib:
                    peaks[name] = int(kib[1]) * 1024
        return peaks

    async def __aexit__(self, *exc: object) -> None:
        """SIGTERM to every child still running, then wait (60 s) and kill what remains."""
        children = [process for process, _ in self.projectors]
        if self.process is not None:
            children.append(self.process)
        running = [process for process in children if process.poll() is None]
        for process in running:
            process.send_signal(signal.SIGTERM)
        for process in running:
            try:
                await asyncio.to_thread(process.wait, 60)
            except subprocess.TimeoutExpired:
                process.kill()
                await asyncio.to_thread(process.wait)

    def client(self) -> LedgerClient:
        return LedgerClient(self.url, self.feed_token, timeout=60.0)


def service_shape(projectors_in_api: bool, projector_processes: int) -> str:
    """The processes of a :class:`Server` in words: "API process + 2 projector processes"."""
    if projector_processes:
        plural = "es" if projector_processes > 1 else ""
        return f"API process + {projector_processes} projector process{plural} + snapshot process"
    if projectors_in_api:
        return "one API process with the projectors inside"
    return "API process, no projectors"


async def publish_all(server: Server, workloads: Sequence[Sequence[AnyEvent]]) -> float:
    """Each workload by its own client, all at once, batches of ``BATCH``; seconds taken."""

    async def one(events: Sequence[AnyEvent]) -> None:
        async with server.client() as ledger:
            # a batch retried after a timeout answers "duplicate" for what the first try
            # wrote: that is the idempotent contract, so only the count is checked
            results = await ledger.publish(events, batch_size=BATCH)
            if len(results) != len(events):
                raise RuntimeError(f"{len(results)} results for {len(events)} events")

    started = time.perf_counter()
    await asyncio.gather(*(one(events) for events in workloads))
    return time.perf_counter() - started


# --- visibility: the query API, or the stored checkpoint ----------------------------------


class Visibility:
    """Where the community-victims view stands: through the query API when it exists."""

    def __init__(self, client: aioredis.Redis, server: Server, prefix: str) -> None:
        self.client, self.prefix = client, prefix
        self.http = httpx.AsyncClient(
            base_url=server.url, headers={"Authorization": f"Bearer {server.reader_token}"}
        )
        self.via_api = False

    async def probe(self) -> str:
        response = await self.http.get(QUERY_PATH)
        if response.status_code == 200 and "position" in response.json():
            self.via_api = True
            return f"GET {QUERY_PATH} (its `position`)"
        return (
            f"the stored view's checkpoint (GET {QUERY_PATH} answered "
            f"{response.status_code}: the query API is not there yet)"
        )

    async def position(self) -> Position | None:
        if self.via_api:
            try:
                response = await self.http.get(QUERY_PATH)
            except httpx.TransportError:
                return None  # not seen this time; the watcher asks again
            raw = response.json().get("position") if response.status_code == 200 else None
            return None if raw is None else Position(raw)
        return await load_checkpoint(self.client, self.prefix, PROJECTIONS["community-victims"])

    async def aclose(self) -> None:
        await self.http.aclose()


async def all_caught_up(client: aioredis.Redis, prefix: str, head: Position) -> bool:
    """Whether every projection's stored checkpoint has reached ``head``."""
    for projection in PROJECTIONS.values():
        checkpoint = await load_checkpoint(client, prefix, projection)
        if checkpoint is None or position_key(checkpoint) < position_key(head):
            return False
    return True


async def wait_caught_up(
    client: aioredis.Redis,
    prefix: str,
    head: Position,
    limit_s: float,
    check: Callable[[], None] | None = None,
) -> float:
    """Poll (every 2 ms) until every view includes ``head``; the time it happened.

    ``check`` (when given) is called on every poll and raises to stop waiting, e.g. when a
    projector process died and the views would never get there.
    """
    deadline = time.monotonic() + limit_s
    while not await all_caught_up(client, prefix, head):
        if check is not None:
            check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the views did not reach {head} within {limit_s:.0f} s")
        await asyncio.sleep(0.002)
    return time.perf_counter()


async def wait_snapshots(
    client: aioredis.Redis, prefix: str, limit_s: float, check: Callable[[], None]
) -> float:
    """Poll (every 0.1 s) until no as-of snapshot is due any more; the time it happened."""
    store = SnapshotStore(client, prefix)
    deadline = time.monotonic() + limit_s
    while True:
        length = int(await client.xlen(Keys(prefix).log))
        refs = [await store.refs(PROJECTIONS[name]) for name in ASOF_PROJECTIONS]
        if all(length - (found[-1].ordinal if found else 0) < DEFAULT_EVERY for found in refs):
            return time.perf_counter()
        check()
        if time.monotonic() > deadline:
            raise TimeoutError(f"the as-of snapshots were not written within {limit_s:.0f} s")
        await asyncio.sleep(0.1)


async def live_latency(
    server: Server,
    visibility: Visibility,
    workload: Workload,
    *,
    rate_per_s: int,
    seconds: float,
    tick: float = 0.01,
    breakdown: dict[str, list[float]] | None = None,
) -> tuple[list[float], float, int]:
    """Offer ``rate_per_s`` events/s (a batch due every ``tick``, open loop) for ``seconds``.

    A batch counts from the moment it is due, so a slow answer delays the batches behind it
    and that delay is measured too (no coordinated omission). One publisher sends in log
    order; batches that queued up while a request was out go together in the next request,
    as a feed's client would. Returns every batch's latency publish → visible (seconds), the
    worst lag seen (the age of the oldest published batch not yet visible) and the events
    offered. Every batch becomes visible in the end, so the worst lag is the worst latency.

    The measuring process's own collector is settled first (see the first lines).

    ``breakdown`` (when given) receives, per batch, when its publish was answered
    (``published``) and when the stored community-victims checkpoint included it
    (``stored``, polled in Redis every 2 ms beside the API), both counted from when it was due.
    """
    # This process holds the workload and what the earlier stages left: its garbage is
    # collected now and the rest frozen, so that no long collection of the measuring process
    # (seconds at 1M events) falls inside the stage and counts as the service's latency.
    gc.collect()
    gc.freeze()
    per_tick = max(1, round(rate_per_s * tick))
    ticks = round(seconds / tick)
    queue: asyncio.Queue[tuple[float, list[AnyEvent]] | None] = asyncio.Queue()
    sent: list[tuple[float, Position]] = []  # (due time, last position of the batch)
    latencies: list[float] = []
    finished = False

    async def publisher(ledger: LedgerClient) -> None:
        nonlocal finished
        while True:
            items = [await queue.get()]
            while not queue.empty():
                items.append(queue.get_nowait())
            batches = [item for item in items if item is not None]
            if batches:
                events = [e for _, batch in batches for e in batch]
                results = await ledger.publish(events, batch_size=BATCH)
                end = 0
                answered = time.perf_counter()
                for due, batch in batches:
                    end += len(batch)
                    sent.append((due, results[end - 1].position))
                    stored_wait.append(sent[-1])
                    if breakdown is not None:
                        breakdown.setdefault("published", []).append(answered - due)
            if None in items:
                finished = True
                return

    stored_wait: list[tuple[float, Position]] = []

    async def watch_stored() -> None:
        view = PROJECTIONS["community-victims"]
        while breakdown is not None and (not finished or stored_wait):
            seen = await load_checkpoint(visibility.client, visibility.prefix, view)
            now = time.perf_counter()
            while (
                stored_wait
                and seen is not None
                and position_key(stored_wait[0][1]) <= position_key(seen)
            ):
                breakdown.setdefault("stored", []).append(now - stored_wait.pop(0)[0])
            await asyncio.sleep(0.002)

    async def watch() -> None:
        while not finished or sent:
            seen = await visibility.position()
            now = time.perf_counter()
            while sent and seen is not None and position_key(sent[0][1]) <= position_key(seen):
                latencies.append(now - sent.pop(0)[0])
            if sent and now - sent[0][0] > 120:
                raise TimeoutError("a live batch was not visible after 120 s")
            await asyncio.sleep(0.002)

    async with server.client() as ledger:
        sending = asyncio.create_task(publisher(ledger))
        watcher = asyncio.create_task(watch())
        stored_watcher = asyncio.create_task(watch_stored())
        started = time.perf_counter()
        for i in range(ticks):
            due = started + i * tick
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((due, workload.take(per_tick)))
        queue.put_nowait(None)
        await sending
        await watcher
        await stored_watcher
    if len(latencies) != ticks:
        raise RuntimeError(f"{len(latencies)} of {ticks} live batches were seen")
    return latencies, max(latencies), ticks * per_tick


async def view_memory(client: aioredis.Redis, prefix: str, events: int) -> dict[str, float]:
    """Redis memory of every stored view's keys per log event, by ``<view>:<kind>`` (a bucketed
    kind's buckets together), the largest first."""
    per_kind: dict[str, float] = {}
    async for key in client.scan_iter(match=f"{prefix}:{{view:*", count=1000):
        name = key.decode() if isinstance(key, bytes) else str(key)
        tag, _, kind = name.partition("}:")
        view = tag.split(":")[2]  # <prefix>:{view:<name>:v<version>[:<gen>]
        kind = kind.partition(":")[0]  # a bucketed kind's buckets: <kind>:<bucket>
        size = int(await client.memory_usage(key, samples=0) or 0) / events
        per_kind[f"{view}:{kind}"] = per_kind.get(f"{view}:{kind}", 0.0) + size
    return dict(sorted(per_kind.items(), key=lambda item: -item[1]))


async def head_of(client: aioredis.Redis, key: str) -> Position:
    """The last position of a stream that is not empty."""
    last: Any = await client.xrevrange(key, count=1)
    if not last:
        raise RuntimeError(f"{key} is empty")
    return Position(last[0][0].decode())


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux's ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def redis_cpu(client: aioredis.Redis) -> float:
    """Redis's CPU seconds so far (user + system, from ``INFO cpu``)."""
    info = await client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


async def redis_forks(client: aioredis.Redis) -> int:
    """The child processes Redis has forked so far (``INFO stats``): with the AOF on and no
    RDB saves (the bench's Redis), each is an AOF rewrite. A rewrite's child serializes the
    whole dataset on a core of its own, so one that falls inside the live stage weighs on
    its latency (BENCHMARKS.md, 2026-12-07 20:00-21:05): the stage counts them."""
    return int((await client.info("stats"))["total_forks"])


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


# --- the run -------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> Results:
    results = Results()
    n = args.events
    work = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    redis_dir = work / "redis"
    redis_dir.mkdir()
    profile_on = args.profile
    with RedisProcess(data_dir=redis_dir, fsync="everysec") as redis_proc:
        url = redis_proc.url
        client = connect(url, socket_timeout=120, socket_connect_timeout=5)
        info = await client.info("server")
        results.values["redis_version"] = info["redis_version"]

        print(f"[bench] generating {n:,} events …", file=sys.stderr, flush=True)
        t = time.perf_counter()
        main_workload = Workload(seed=args.seed)
        events = main_workload.take(n)
        check(events[: min(n, 20_000)])
        results.values["generate_s"] = time.perf_counter() - t
        results.values["mix"] = dict(main_workload.counts)
        mean_json = statistics.mean(len(encode(e)) for e in events[:10_000])
        results.values["mean_event_json_bytes"] = mean_json
        entry_bytes = (sum(map(len, to_fields(e).values())) for e in events[:10_000])
        results.values["mean_entry_field_bytes"] = statistics.mean(entry_bytes)

        # --- limit: raw write, raw read + decode
        async def raw() -> None:
            entries = [to_fields(e) for e in events]
            seconds = await limit_write(client, entries, "raw:log")
            results.values["limit_xadd"] = rate(n, seconds)
            stream_bytes = int(await client.memory_usage("raw:log", samples=0) or 0)
            results.values["limit_bytes_per_event"] = stream_bytes / n
            read, seconds = await limit_read(client, "raw:log")
            if read != n:
                raise RuntimeError(f"read back {read} of {n} entries")
            results.values["limit_read_decode"] = rate(n, seconds)
            await client.delete("raw:log")

        await stage(results, "limit", raw)

        # --- naive peer
        async def peer() -> None:
            peer_events = Workload(seed=args.seed + 1, namespace="peer-").take(args.peer_events)
            seconds = await naive_peer(url, peer_events, "peer:stream")
            results.values["peer_e2e"] = rate(len(peer_events), seconds)
            await client.delete("peer:stream")

        await stage(results, "naive peer", peer)

        # --- ours: the store's batch append builds the big log
        prefix = "ledger"
        keys = Keys(prefix)

        async def store_append() -> None:
            store = RedisEventStore(client, prefix=prefix)
            started = time.perf_counter()
            with Profiled(results, "store append", profile_on):
                for start in range(0, n, BATCH):
                    await store.append(events[start : start + BATCH])
            results.values["store_append"] = rate(n, time.perf_counter() - started)
            length = await store.length()
            if length != n:
                raise RuntimeError(f"the log holds {length} events, not {n}")
            per_key = {}
            for name, key in (
                ("log", keys.log),
                ("ids", keys.ids),
                ("entities", keys.entities),
                ("history", keys.history),
            ):
                per_key[name] = int(await client.memory_usage(key, samples=0) or 0) / n
            for name, key in (("ids", keys.ids), ("entities", keys.entities)):
                buckets = 0  # the index's buckets (services/store/keys.py)
                async for bucket in client.scan_iter(match=f"{key}:*", count=1000):
                    buckets += int(await client.memory_usage(bucket, samples=0) or 0)
                per_key[name] += buckets / n
            results.values["bytes_per_event"] = per_key

        await stage(results, "store append", store_append)
        # The generated events are not needed past here; a service process never holds them.
        # Kept, they sit in this process's heap through the in-process catch-up and rebuilds
        # (700,000 tracked objects at 300,000 events), which then ran 18-30 % slower
        # (BENCHMARKS.md, 2026-12-06 19:30 UTC).
        events.clear()
        gc.collect()

        # --- ours: catch-up of the whole log by every projection
        async def catch_up() -> None:
            # a longer socket timeout than the service's 1 s: on a big log one view's load
            # (HGETALL) or commit can take longer (see BENCHMARKS.md)
            pool_client = connect(url, socket_timeout=60)
            try:
                pool = ProjectorPool(pool_client, prefix=prefix, consumer="bench-catch-up")
                started = time.perf_counter()
                with Profiled(results, "catch-up", profile_on):
                    await asyncio.wait_for(pool.run_until_caught_up(), timeout=args.timeout)
                results.values["catch_up"] = rate(n, time.perf_counter() - started)
                per_kind = await view_memory(client, prefix, n)
                results.values["view_bytes_per_event"] = sum(per_kind.values())
                results.values["view_bytes_by_kind"] = per_kind
            finally:
                await pool_client.aclose()

        await stage(results, "catch-up", catch_up)

        # --- ours: `ledger replay` of each view alone, then of all of them together
        async def rebuild() -> None:
            rebuild_client = connect(url, socket_timeout=60)
            try:
                timings: dict[str, float] = {}
                for projection in PROJECTIONS.values():
                    started = time.perf_counter()
                    await Replay(rebuild_client, projection, prefix=prefix).run()
                    timings[projection.name] = rate(n, time.perf_counter() - started)
                started = time.perf_counter()
                with Profiled(results, "replay all", profile_on):
                    for one in await replay_together(
                        rebuild_client, list(PROJECTIONS.values()), prefix=prefix
                    ):
                        if isinstance(one, Exception):
                            raise one
                timings["all"] = rate(n, time.perf_counter() - started)
                results.values["rebuild"] = timings
            finally:
                await rebuild_client.aclose()

        await stage(results, "rebuild", rebuild)

        # --- ours: HTTP ingest (1 client, then several), projectors off
        async def http_ingest() -> None:
            ingest_profile = work / "serve-ingest.prof" if profile_on else None
            async with Server(
                url, prefix="ingest", projectors=False, workdir=work, profile=ingest_profile
            ) as server:
                one = Workload(seed=args.seed + 2, namespace="h-").take(args.http_events)
                seconds = await publish_all(server, [one])
                results.values["client_ingest"] = rate(len(one), seconds)
                per_client = args.http_events // args.clients
                many = [
                    Workload(seed=args.seed + 10 + c, namespace=f"k{c}-").take(per_client)
                    for c in range(args.clients)
                ]
                seconds = await publish_all(server, many)
                results.values["http_ingest"] = rate(per_client * args.clients, seconds)
            if ingest_profile is not None and ingest_profile.exists():
                results.profiles["ledger serve (HTTP ingest)"] = top_lines(
                    pstats.Stats(str(ingest_profile)), 30
                )

        await stage(results, "HTTP ingest", http_ingest)

        # --- ours: the service with its projectors over the big log
        async def service() -> None:
            started = time.perf_counter()
            async with Server(
                url,
                prefix=prefix,
                projectors=True,
                workdir=work,
                projector_processes=args.projector_processes,
            ) as server:
                results.values["service_shape"] = server.shape
                # The catch-up stage left every checkpoint at the head, so "caught up" alone
                # would hold while the projectors still load their views. Ready means one
                # fresh event is in every view: each projection is loaded and following.
                await publish_all(server, [Workload(seed=args.seed + 4, namespace="w-").take(1)])
                head = await head_of(client, keys.log)
                ready_at = await wait_caught_up(client, prefix, head, args.timeout, server.check)
                results.values["service_ready_s"] = ready_at - started
                if args.projector_processes:
                    # the first snapshots of the big log fold its whole history: the live
                    # stage measures the steady state after them
                    done_at = await wait_snapshots(client, prefix, args.timeout, server.check)
                    results.values["snapshots_ready_s"] = done_at - started
                visibility = Visibility(client, server, prefix)
                try:
                    results.values["visibility"] = await visibility.probe()
                    breakdown: dict[str, list[float]] = {}
                    forks = await redis_forks(client)
                    latencies, lag, sent = await live_latency(
                        server,
                        visibility,
                        Workload(seed=args.seed + 3, namespace="live-"),
                        rate_per_s=args.live_rate,
                        seconds=args.live_seconds,
                        breakdown=breakdown,
                    )
                    for what, found in breakdown.items():
                        print(
                            f"[bench] live {what}: p50 {percentile(found, 0.5) * 1000:.1f} ms, "
                            f"p99 {percentile(found, 0.99) * 1000:.1f} ms",
                            file=sys.stderr,
                        )
                    results.values["live_p50_ms"] = percentile(latencies, 0.50) * 1000
                    results.values["live_p99_ms"] = percentile(latencies, 0.99) * 1000
                    results.values["live_max_ms"] = max(latencies) * 1000
                    results.values["live_lag_s"] = lag
                    results.values["live_events"] = sent
                    results.values["live_aof_rewrites"] = await redis_forks(client) - forks

                    # end to end at full speed: publish → every view includes it
                    e2e = [
                        Workload(seed=args.seed + 20 + c, namespace=f"e{c}-").take(
                            args.e2e_events // args.clients
                        )
                        for c in range(args.clients)
                    ]
                    total = sum(map(len, e2e))
                    started = time.perf_counter()
                    await publish_all(server, e2e)
                    head = await head_of(client, keys.log)
                    visible_at = await wait_caught_up(
                        client, prefix, head, args.timeout, server.check
                    )
                    results.values["ours_e2e"] = rate(total, visible_at - started)

                    await as_of(results, visibility, client, keys, limit_s=args.timeout)
                finally:
                    await visibility.aclose()
                    results.values["peak_memory"] = server.peak_memory()

        await stage(results, "service (live, end to end, as_of)", service)
        await client.aclose()
    results.values["workdir"] = str(work)
    return results


async def as_of(
    results: Results,
    visibility: Visibility,
    client: aioredis.Redis,
    keys: Keys,
    *,
    limit_s: float,
    budget_s: float = 30.0,
) -> None:
    """``as_of`` the middle of the big log (by time), through the query API when it exists.

    The position is tried first, then the ISO time of that position. Each request may take
    up to ``limit_s``; it is asked 5 times, or fewer once the answers took ``budget_s`` in
    all (a slow answer is still a number for the table; five of them would hold up the run).
    The table shows the median and the first answer, which is cold (the snapshot not yet
    read), and the target holds only when both are within it.
    """
    results.values["as_of_via_api"] = visibility.via_api
    if not visibility.via_api:
        results.values["as_of_s"] = None
        return
    first: Any = await client.xrange(keys.log, count=1)
    last = await head_of(client, keys.log)
    middle_ms = (int(first[0][0].decode().split("-")[0]) + int(last.split("-")[0])) // 2
    candidates = [f"{middle_ms}-0", recorded_at_of(f"{middle_ms}-0").isoformat()]
    for value in candidates:
        timings: list[float] = []
        while len(timings) < 5 and sum(timings) < budget_s:
            started = time.perf_counter()
            try:
                response = await visibility.http.get(
                    QUERY_PATH, params={"as_of": value}, timeout=limit_s
                )
            except httpx.TimeoutException:
                raise RuntimeError(f"as_of={value} did not answer within {limit_s:.0f} s") from None
            if response.status_code == 429:  # over the reader's rate: wait it out, ask again
                await asyncio.sleep(float(response.headers.get("retry-after", "1")))
                continue
            timings.append(time.perf_counter() - started)
            if response.status_code != 200:
                break
        else:
            results.values["as_of_s"] = statistics.median(timings)
            results.values["as_of_max_s"] = max(timings)
            results.values["as_of_first_s"] = timings[0]  # cold: the snapshot not yet read
            results.values["as_of_runs"] = len(timings)
            results.values["as_of_param"] = value
            return
    raise RuntimeError(f"as_of answered {response.status_code}: {response.text[:300]}")


# --- the table ------------------------------------------------------------------------------


def fmt_rate(value: float | None) -> str:
    return "—" if value is None else f"{value:,.0f} ev/s"


def fmt_ratio(ours: float | None, other: float | None) -> str:
    if ours is None or other is None or other == 0:
        return "—"
    return f"{ours / other:.2f}x"


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("met" if ok else "**not met**")


def table(results: Results, args: argparse.Namespace) -> str:
    v = results.values
    xadd, read = v.get("limit_xadd"), v.get("limit_read_decode")
    peer = v.get("peer_e2e")
    rows: list[tuple[str, str, str, str, str, str, str, str]] = []

    def add_rate(
        name: str, limit: float | None, ours: float | None, target: str, ok: bool | None
    ) -> None:
        rows.append(
            (name, fmt_rate(limit), "—", fmt_rate(ours), fmt_ratio(ours, limit), "—", target,
             verdict(ok))
        )  # fmt: skip

    store = v.get("store_append")
    add_rate("store append, batches of 1,000 (direct)", xadd, store, "—", None)
    client = v.get("client_ingest")
    add_rate(
        "client batch ingest, 1 client (HTTP)",
        xadd,
        client,
        "≥ 0.6x limit",
        None if client is None or xadd is None else client >= 0.6 * xadd,
    )
    http = v.get("http_ingest")
    add_rate(
        f"HTTP batch ingest, {args.clients} clients",
        xadd,
        http,
        "≥ 30,000 ev/s",
        None if http is None else http >= 30_000,
    )
    catch = v.get("catch_up")
    fresh = "built as a rebuild" if args.events >= REBUILD_FROM else "followed"
    add_rate(
        f"catch-up, {len(PROJECTIONS)} projections, {args.events:,}-event log "
        f"(fresh views {fresh})",
        read,
        catch,
        "≥ 150,000 ev/s and ≥ 0.25x limit",
        None if catch is None or read is None else catch >= 150_000 and catch >= 0.25 * read,
    )
    for name, value in (v.get("rebuild") or {}).items():
        what = "all views together" if name == "all" else name
        add_rate(f"ledger replay: {what}, {args.events:,}-event log", read, value, "—", None)
    e2e = v.get("ours_e2e")
    rows.append(
        (
            "end to end: publish → in every view",
            "—",
            fmt_rate(peer),
            fmt_rate(e2e),
            "—",
            fmt_ratio(e2e, peer),
            "≥ 20x peer",
            verdict(None if e2e is None or peer is None else e2e >= 20 * peer),
        )
    )
    p50, p99 = v.get("live_p50_ms"), v.get("live_p99_ms")
    lag: float = v.get("live_lag_s") or 0.0
    rewrites = v.get("live_aof_rewrites")
    live = (
        "—"
        if p99 is None
        else f"p50 {p50:.1f} ms, p99 {p99:.1f} ms, max lag {lag * 1000:.0f} ms"
        + ("" if rewrites is None else f"; AOF rewrites in the stage: {rewrites}")
    )
    rows.append(
        (
            f"live publish → visible at {args.live_rate:,} ev/s for {args.live_seconds:g} s "
            f"({service_shape(True, args.projector_processes)})",
            "—",
            "—",
            live,
            "—",
            "—",
            "p99 ≤ 50 ms, lag ≤ 1 s",
            verdict(None if p99 is None else p99 <= 50 and lag <= 1),
        )
    )
    per = v.get("bytes_per_event")
    limit_bytes = v.get("limit_bytes_per_event")
    total = None if per is None else sum(per.values())
    detail = (
        "—"
        if per is None
        else f"{total:.0f} B (log {per['log']:.0f}, ids {per['ids']:.0f}, "
        f"entities {per['entities']:.0f}, history {per['history']:.0f})"
    )
    rows.append(
        (
            "Redis memory per event, all indexes",
            "—" if limit_bytes is None else f"{limit_bytes:.0f} B (bare stream)",
            "—",
            detail,
            fmt_ratio(total, limit_bytes),
            "—",
            "≤ 300 B",
            verdict(None if total is None else total <= 300),
        )
    )
    asof, first = v.get("as_of_s"), v.get("as_of_first_s")
    if asof is not None:
        asof_text = f"{asof * 1000:.0f} ms (median of {v.get('as_of_runs')}"
        asof_text += ")" if first is None else f"; the first, cold, {first * 1000:,.0f} ms)"
    elif v.get("as_of_via_api") is False:
        asof_text = "n/a yet (no query API)"
    else:
        asof_text = "— (failed, see below)"
    rows.append(
        (
            f"as_of query over {args.events:,} events",
            "—",
            "—",
            asof_text,
            "—",
            "—",
            "≤ 1 s",
            verdict(None if asof is None else max(asof, first or 0) <= 1),
        )
    )
    header = ("measure", "limit", "naive peer", "ours", "ours/limit", "ours/peer", "target", "")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def report(results: Results, args: argparse.Namespace, elapsed: float) -> str:
    v = results.values
    cpu = os.cpu_count()
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    parts = [
        f"Run {time.strftime('%Y-%m-%d %H:%M %Z')} on {platform.node()}: {cpu} cores, "
        f"{mem:.0f} GiB, Python {platform.python_version()}, Redis {v.get('redis_version')} "
        f"(AOF everysec), {elapsed:.0f} s.",
        f"Command: `python -m benchmarks.bench {' '.join(sys.argv[1:])}`",
        f"Events: {args.events:,} (mix {v.get('mix')}; mean event JSON "
        f"{v.get('mean_event_json_bytes', 0):.0f} B; its entry's field values "
        f"{v.get('mean_entry_field_bytes', 0):.0f} B in codec {args.entry_codec}); "
        f"peer {args.peer_events:,}; HTTP "
        f"{args.http_events:,}; end to end {args.e2e_events:,}.",
        f"Visible measured through: {v.get('visibility', 'n/a')}.",
        "Service stages (live, end to end, as_of) ran as: "
        f"{v.get('service_shape') or service_shape(True, args.projector_processes)} "
        "(`ledger serve`"
        + (
            " with LEDGER_PROJECTORS=0, plus `ledger project` children sharing the leases"
            " and `ledger snapshots`)."
            if args.projector_processes
            else " with LEDGER_PROJECTORS=1)."
        ),
        "",
        table(results, args),
        "",
    ]
    if v.get("service_ready_s") is not None:
        parts.append(
            f"Service ready (API answering, a fresh event in every view) "
            f"{v['service_ready_s']:.1f} s after start."
        )
    if v.get("snapshots_ready_s") is not None:
        parts.append(
            f"The first as-of snapshots of the log were written {v['snapshots_ready_s']:.1f} s "
            "after start; the live stage ran after them."
        )
    if v.get("view_bytes_per_event") is not None:
        parts.append(
            f"Views after catch-up: {v['view_bytes_per_event']:.0f} B of Redis per log event."
        )
    if v.get("view_bytes_by_kind"):
        kinds = ", ".join(
            f"{name} {size:,.0f}" for name, size in v["view_bytes_by_kind"].items() if size >= 1
        )
        parts.append(f"Views by kind, B per log event: {kinds}.")
    if v.get("peak_memory"):
        peaks = ", ".join(
            f"{name} {size / 2**20:,.0f} MiB" for name, size in v["peak_memory"].items()
        )
        parts.append(f"Peak resident memory per service process (VmHWM): {peaks}.")
    if results.failures:
        parts.append("Failed stages:")
        parts += [f"- {name}: {error}" for name, error in results.failures.items()]
    return "\n".join(parts)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks.bench", description=__doc__)
    p.add_argument("--events", type=int, default=1_000_000, help="events of the big log")
    p.add_argument("--peer-events", type=int, default=20_000, help="events through the peer")
    p.add_argument("--http-events", type=int, default=100_000, help="events per HTTP stage")
    p.add_argument("--e2e-events", type=int, default=40_000, help="events end to end")
    p.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients")
    p.add_argument("--live-rate", type=int, default=2000, help="events/s offered live")
    p.add_argument("--live-seconds", type=float, default=30.0, help="length of the live stage")
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--timeout", type=float, default=900.0, help="limit of each wait, seconds")
    p.add_argument(
        "--projector-processes",
        type=int,
        default=1,
        help="`ledger project` processes beside the API in the service stages, as deployed "
        "(0: the projectors inside `ledger serve`)",
    )
    p.add_argument(
        "--entry-codec",
        type=int,
        choices=ENTRY_CODECS,
        default=codec.ENTRY_CODEC,
        help="the log entries' codec in the in-process stages (limit, store append, catch-up; "
        "0: JSON as before codecs, 1: MessagePack, 2: with the zstd dictionary)",
    )
    p.add_argument("--profile", action="store_true", help="cProfile the in-process stages")
    p.add_argument("--out", type=Path, help="write the report and raw numbers here (JSON)")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    codec.ENTRY_CODEC = args.entry_codec
    if args.projector_processes < 0:
        p.error("--projector-processes must be 0 or more")
    configure_logging(level="WARNING")
    tune_collector()  # as every process of the service does (services.projector.pool)
    started = time.perf_counter()
    results = asyncio.run(run(args))
    text = report(results, args, time.perf_counter() - started)
    print(text)
    for name, lines in results.profiles.items():
        print(f"\n## profile: {name}\n```\n{lines}```")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(
            json.dumps(
                {
                    "report": text,
                    "values": results.values,
                    "failures": results.failures,
                    "profiles": results.profiles,
                },
                indent=2,
                default=str,
            )
        )
    return 1 if results.failures else 0


if __name__ == "__main__":
    sys.exit(main())
