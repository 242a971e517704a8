"""The ledger's processes as children of a test: ``ledger serve``, ``ledger project`` and the
supervised default, ``ledger run``.

Each runs ``python -m services.cli`` with its settings in the environment, its output in a
log file whose tail failure messages quote, and is started, stopped (SIGTERM or SIGINT) or
killed (SIGKILL) by the test. :func:`descendants` lists what a process started, from
``/proc``, so a test can kill one child or check that none is left.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import httpx

from services.runtime.binaries import free_port
from tests.support.waiting import until

__all__ = [
    "FEEDS",
    "OPERATOR",
    "PREFIX",
    "READER",
    "ROOT",
    "TOKENS",
    "UNLIMITED",
    "LedgerRun",
    "LedgerServer",
    "Projector",
    "descendants",
    "tokens_env",
]

ROOT = Path(__file__).resolve().parents[2]
"""The project's root: the children run there, with it on their path."""
PREFIX = "ledger"
"""The key prefix ``ledger serve`` runs under in these tests."""
FEEDS = ("sohr", "acled", "ucdp", "airwars", "hrw")
TOKENS = {feed: f"feed-{feed}-{'k' * 24}" for feed in FEEDS}
"""A feed token per feed of :data:`FEEDS`."""
READER = "reader-" + "r" * 26
OPERATOR = "operator-" + "o" * 24


UNLIMITED: dict[str, str] = {"LEDGER_READ_RATE": "0", "LEDGER_FEED_RATE": "0"}
"""Rate limits off for the processes these tests start: they poll and publish as fast as
they can to load the service (the limits have tests of their own: tests/security)."""


def tokens_env() -> str:
    """``LEDGER_TOKENS`` for the served process."""
    entries = [f"feed:{feed}={secret}" for feed, secret in TOKENS.items()]
    return ",".join([*entries, f"reader={READER}", f"operator={OPERATOR}"])


class LedgerServer:
    """``ledger serve`` as a child process on a free port, against a given Redis URL."""

    def __init__(self, redis_url: str, log_dir: Path, *, projectors: bool = True) -> None:
        self.redis_url, self.log_dir, self.projectors = redis_url, log_dir, projectors
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = log_dir / "ledger-serve.log"

    @property
    def base_url(self) -> str:
        """Where the API answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, extra_env: Mapping[str, str] | None = None) -> None:
        """Start the process; :meth:`wait_ready` waits until it answers."""
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LEDGER_REDIS_URL": self.redis_url,
            "LEDGER_TOKENS": tokens_env(),
            "LEDGER_HTTP_HOST": "127.0.0.1",
            "LEDGER_HTTP_PORT": str(self.port),
            "LEDGER_KEY_PREFIX": PREFIX,
            "LEDGER_PROJECTORS": "1" if self.projectors else "0",
            "LEDGER_CLAIM_IDLE_MS": "1000",
            **UNLIMITED,
            **(extra_env or {}),
        }
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "serve", "--json-logs"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def wait_ready(self, limit: float = 30.0) -> None:
        """Poll ``/healthz`` until it answers 200; fail if the process exits."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1.0) as http:

            async def answers() -> bool:
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/healthz")).status_code == 200
                return False

            await until(
                answers,
                "ledger serve to answer",
                within=limit,
                every=0.05,
                gone=self.gone,
                context=self.tail,
            )

    def alive(self) -> bool:
        """Whether the process runs."""
        return self.process is not None and self.process.poll() is None

    def gone(self) -> str | None:
        """Why waiting on the process is pointless (it exited), or ``None`` while it runs."""
        return None if self.alive() else "ledger serve died"

    def stop(self) -> int | None:
        """SIGTERM and wait (SIGKILL after 30 s); the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        return process.returncode

    def tail(self, chars: int = 4000) -> str:
        """The end of the process's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


class Projector:
    """The projector as a child process, started and killed by the test."""

    def __init__(
        self, url: str, prefix: str, log_dir: Path, env: dict[str, str] | None = None
    ) -> None:
        self.url, self.prefix, self.log_dir = url, prefix, log_dir
        self.env = env or {}
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self) -> None:
        """Start a new projector process (a new consumer name each time)."""
        self.starts += 1
        log = (self.log_dir / f"projector-{self.starts}.log").open("wb")
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LEDGER_REDIS_URL": self.url,
            "LEDGER_KEY_PREFIX": self.prefix,
            "LEDGER_CLAIM_IDLE_MS": "500",
            **self.env,
        }
        self.process = subprocess.Popen(
            [
                sys.executable, "-m", "services.cli", "project",
                "--lease-ms", "1000",
                "--batch-size", "500",
                "--json-logs",
            ],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()

    def alive(self) -> bool:
        """Whether the process is running."""
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """``kill -9`` and reap it."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> int:
        """SIGTERM (a clean stop) and its exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(30)

    def tail(self) -> str:
        """The end of the latest process's output, for failure messages."""
        text = (self.log_dir / f"projector-{self.starts}.log").read_text(errors="replace")
        return text[-3000:]


def descendants(pid: int) -> dict[int, str]:
    """Every living process ``pid`` started, directly or not: pid → its command line
    (Linux ``/proc``)."""
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie is gone, only not yet reaped
            continue
        parents[int(entry.name)] = int(fields[1])
        commands[int(entry.name)] = command
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, its_parent in parents.items():
            if its_parent == parent and child not in found:
                found[child] = commands[child]
                frontier.append(child)
    return found


class LedgerRun:
    """``ledger run`` (the supervised default) as a child process in a session of its own."""

    CHILDREN = {
        "api": " serve ",
        "projector": " project ",
        "snapshots": " snapshots",
        "redis": "redis-server",
    }
    """How each supervised child is told apart by its command line."""

    def __init__(
        self, data_dir: Path, env: Mapping[str, str] | None = None, *, port: int | None = None
    ) -> None:
        self.data_dir = data_dir
        self.env = dict(env or {})
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir / "ledger-run.log"
        self.expected = set(self.CHILDREN)
        """The children it runs: no Redis of its own with ``LEDGER_REDIS_URL`` set, no
        snapshot writer on a partitioned log."""
        if "LEDGER_REDIS_URL" in self.env:
            self.expected.discard("redis")
        if (
            self.env.get("LEDGER_REDIS_CLUSTER") == "1"
            or self.env.get("LEDGER_PARTITIONS", "1") != "1"
        ):
            self.expected.discard("snapshots")

    @property
    def base_url(self) -> str:
        """Where the API answers."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Start the supervisor (``ledger run --json-logs``)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "LEDGER_DATA_DIR": str(self.data_dir),
            "LEDGER_HTTP_HOST": "127.0.0.1",
            "LEDGER_HTTP_PORT": str(self.port),
            "LEDGER_CLAIM_IDLE_MS": "1000",
            **UNLIMITED,
            **self.env,
        }
        with self.log_path.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "services.cli", "run", "--json-logs"],
                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    @property
    def pid(self) -> int:
        """The supervisor's process id."""
        assert self.process is not None
        return self.process.pid

    def alive(self) -> bool:
        """Whether the supervisor runs."""
        return self.process is not None and self.process.poll() is None

    def gone(self) -> str | None:
        """Why waiting on it is pointless (it exited), or ``None`` while it runs."""
        return None if self.alive() else "ledger run exited"

    def children(self) -> dict[str, int]:
        """The supervised children running now: name (api, projector, snapshots, redis) →
        pid."""
        found: dict[str, int] = {}
        for pid, command in descendants(self.pid).items():
            for name, mark in self.CHILDREN.items():
                if mark in f"{command} ":
                    found[name] = pid
        return found

    async def wait_ready(self, limit: float = 60.0) -> None:
        """Poll ``/readyz`` until it answers 200 and every child runs."""
        async with httpx.AsyncClient(base_url=self.base_url, timeout=1.0) as http:

            async def ready() -> bool:
                if set(self.children()) != self.expected:
                    return False
                with contextlib.suppress(httpx.TransportError):
                    return (await http.get("/readyz")).status_code == 200
                return False

            await until(
                ready, "ledger run to be ready", within=limit, every=0.05,
                gone=self.gone, context=self.tail,
            )  # fmt: skip

    def interrupt(self, timeout: float = 60.0) -> int:
        """SIGINT, as Ctrl-C on its terminal, and wait; the exit code."""
        assert self.process is not None
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout)

    def kill_all(self) -> None:
        """SIGKILL the supervisor and everything it started (a test's last resort)."""
        if self.process is None:
            return
        for pid in [*descendants(self.pid), self.pid]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.process.wait(10)

    def tail(self, chars: int = 4000) -> str:
        """The end of the supervisor's log (its children's included), for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""
