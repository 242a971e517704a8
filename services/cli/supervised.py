"""``ledger run``: the deployed shape as child processes under one supervisor, in the foreground.

The default way to run the ledger (``make run``). One supervisor
(:class:`services.runtime.supervisor.Supervisor`) starts:

- the embedded Redis (:mod:`services.runtime.embedded`) when ``LEDGER_REDIS_URL`` is unset,
  first, and stops it last (it flushes its AOF); with ``LEDGER_REDIS_URL`` set, that Redis;
- ``api``: ``ledger serve --no-projectors``, the HTTP API and the Redis inbox;
- ``projector-1`` … ``projector-N``: ``ledger project``, sharing the projections through
  their leases (``--projectors N``, default 1);
- ``snapshots``: ``ledger snapshots``, the as-of snapshot writer (unless snapshots are off).

Every child gets the Redis URL and the tokens through its environment (``LEDGER_REDIS_URL``,
``LEDGER_TOKENS``), as in a deployment; on the embedded default the tokens are generated once
into the data directory, where ``ledger seed reference`` and the operator commands find them
and the Redis's port and password. A child that dies is started again, and Ctrl-C stops
everything, leaving no process behind (see the supervisor's module). ``ledger serve`` (the
API with the projectors inside it) remains for tests and tiny setups.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping

import structlog

from services.logging import configure_logging, redactor
from services.protection.auth import ensure_tokens
from services.reference import REFERENCE_FEEDS
from services.runtime.embedded import EmbeddedRedis
from services.runtime.supervisor import Child, Command, Supervisor, die_with_parent
from services.settings import Settings

__all__ = ["EmbeddedChild", "children_of", "run_supervised"]

log = structlog.get_logger("services.supervisor")


class EmbeddedChild:
    """The embedded Redis as a supervised child (started by the supervisor's process)."""

    name = "redis"

    def __init__(self, embedded: EmbeddedRedis) -> None:
        self.embedded = embedded
        self.started = False

    @property
    def pid(self) -> int | None:
        return self.embedded.process.pid

    def start(self) -> None:
        self.embedded.start()
        self.started = True

    def exited(self) -> str | None:
        if not self.started:
            return "not started"
        return None if self.embedded.process.running else "redis-server is gone"

    def exit_code(self) -> int | None:
        return None

    def terminate(self) -> None:
        self.embedded.stop()  # SHUTDOWN: the AOF is flushed

    def kill(self) -> None:
        self.embedded.process.kill()


def children_of(
    settings: Settings, env: Mapping[str, str], *, projectors: int = 1, json_logs: bool | None
) -> list[Child]:
    """The command children of the deployed shape for ``settings`` (see the module docstring),
    each with ``env`` as its environment."""
    ledger = [sys.executable, "-m", "services.cli"]
    logs = [] if json_logs is None else ["--json-logs" if json_logs else "--console-logs"]
    children: list[Child] = [Command("api", [*ledger, "serve", "--no-projectors", *logs], env)]
    # a consumer name per projector that outlives its process: one restarted after a crash
    # takes its predecessor's leases and pending entries over at once, without waiting for
    # the leases to expire (the supervisor restarts it only once the old one is gone)
    name = f"{socket.gethostname()}-run{os.getpid()}"
    children += [
        Command(
            f"projector-{n}",
            [*ledger, "project", "--consumer", f"{name}-projector-{n}", *logs],
            env,
        )
        for n in range(1, projectors + 1)
    ]
    if settings.snapshot_every > 0 and not settings.keys.partitioned:
        children.append(Command("snapshots", [*ledger, "snapshots", *logs], env))
    return children


def run_supervised(settings: Settings, *, projectors: int = 1, json_logs: bool | None) -> int:
    """Run the deployed shape until SIGINT/SIGTERM (see the module docstring); the exit code.

    Raises :class:`~services.errors.LedgerError` when the embedded Redis does not start.
    """
    configure_logging(json=json_logs, secrets=[t.secret for t in settings.tokens])
    settings = ensure_tokens(settings, feeds=REFERENCE_FEEDS)
    redactor().add(t.secret for t in settings.tokens)
    env = {**os.environ, "LEDGER_TOKENS": ",".join(f"{t.name}={t.secret}" for t in settings.tokens)}
    last: list[Child] = []
    if settings.embedded:
        embedded = EmbeddedRedis(settings, preexec=die_with_parent())
        redis = EmbeddedChild(embedded)
        redis.start()
        last.append(redis)
        env["LEDGER_REDIS_URL"] = embedded.url
    children = children_of(settings, env, projectors=projectors, json_logs=json_logs)
    try:
        return Supervisor(children, last=last).run()
    finally:
        for child in last:  # stopped already unless the supervisor itself failed
            if child.exited() is None:
                child.terminate()
