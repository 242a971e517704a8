"""A supervisor of child processes in the foreground: restarts, signals, nothing left behind.

:class:`Supervisor` runs in the main thread of its process (``ledger run``). It starts every
child, then waits for signals: a child that exits is started again after a back-off (0.5 s,
doubling to 30 s; back to 0.5 s once a child has run for a minute), its exit code or signal
logged as the reason. A child that exits with code 2 (its settings or its command line are
wrong) cannot be helped by a restart: everything is stopped and the supervisor returns 2.

**Signals.** SIGINT (Ctrl-C) and SIGTERM stop everything: each command child gets SIGTERM
and is given :attr:`Supervisor.grace` seconds to finish (its in-flight work, its leases),
then SIGKILL; the children that hold state (the embedded Redis) are stopped last, cleanly. A
second SIGINT or SIGTERM during that kills the rest at once.

**Nothing left behind.** Each command child leads a process group of its own, so the
terminal's Ctrl-C reaches the supervisor alone (which stops the children in order) and a
stop signal reaches whatever a child started in turn. On Linux every child is also told to
get SIGTERM when the supervisor dies (``PR_SET_PDEATHSIG``), so even a ``kill -9`` of the
supervisor leaves no orphan running.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Protocol

import structlog

__all__ = ["Child", "Command", "Supervisor", "die_with_parent"]

FIRST_BACKOFF: Final = 0.5
MAX_BACKOFF: Final = 30.0
STABLE_SECONDS: Final = 60.0
"""A child that ran this long before it exited is restarted after the first back-off again."""
FATAL_EXIT: Final = 2
"""The exit code of a child whose settings or command line are wrong: restarting is futile."""

_PR_SET_PDEATHSIG: Final = 1

log = structlog.get_logger("services.supervisor")


def die_with_parent() -> Callable[[], None] | None:
    """A ``preexec_fn`` asking the kernel to send the child SIGTERM when this process dies
    (Linux; ``None`` elsewhere). Only for children started from the main thread: the kernel
    ties it to the thread that forked."""
    if not sys.platform.startswith("linux"):
        return None
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def arm() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
        if os.getppid() != parent:  # the supervisor died before the request took hold
            os._exit(1)

    return arm


class Child(Protocol):
    """One supervised child: a command, or a server the supervisor runs itself."""

    name: str

    def start(self) -> None:
        """Start it (raises when it cannot be started: the supervisor retries)."""
        ...

    def exited(self) -> str | None:
        """Why it is no longer running (``None`` while it runs)."""
        ...

    def exit_code(self) -> int | None:
        """Its exit code once it exited by itself (``None``: running, or killed by a signal)."""
        ...

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM, or a clean shutdown)."""
        ...

    def kill(self) -> None:
        """Stop it at once (SIGKILL)."""
        ...

    @property
    def pid(self) -> int | None:
        """Its process id while it runs."""
        ...


class Command:
    """A command child: ``argv`` with ``env``, leading a process group of its own."""

    def __init__(self, name: str, argv: Sequence[str], env: Mapping[str, str]) -> None:
        self.name = name
        self.argv = list(argv)
        self.env = dict(env)
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(  # noqa: S603  # our own interpreter and command
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            process_group=0,
            preexec_fn=die_with_parent(),  # noqa: PLW1509  # started from the main thread only
        )

    @property
    def pid(self) -> int | None:
        process = self.process
        return process.pid if process is not None and process.poll() is None else None

    def exited(self) -> str | None:
        process = self.process
        if process is None:
            return "not started"
        code = process.poll()
        if code is None:
            return None
        if code < 0:
            return f"killed by {signal.Signals(-code).name}"
        return f"exited with code {code}"

    def exit_code(self) -> int | None:
        code = None if self.process is None else self.process.poll()
        return code if code is not None and code >= 0 else None

    def _signal_group(self, sig: signal.Signals) -> None:
        process = self.process
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, sig)

    def terminate(self) -> None:
        self._signal_group(signal.SIGTERM)

    def kill(self) -> None:
        self._signal_group(signal.SIGKILL)


class _Slot:
    """What the supervisor knows of one child: when it started, when to start it again."""

    def __init__(self, child: Child) -> None:
        self.child = child
        running = child.exited() is None  # started before the supervisor (the Redis)
        self.started_at = time.monotonic()
        self.backoff = 0.0
        self.due: float | None = None if running else 0.0
        """When to start the child (``None``: it runs)."""
        self.starts = int(running)


class Supervisor:
    """Runs ``children`` (started in order; ``last`` ones are stopped after the others)
    until a signal (see the module docstring)."""

    def __init__(
        self,
        children: Sequence[Child],
        *,
        last: Sequence[Child] = (),
        grace: float = 20.0,
        on_started: Callable[[], None] | None = None,
    ) -> None:
        self.slots = [_Slot(child) for child in [*last, *children]]
        self.last = {id(child) for child in last}
        self.grace = grace
        self.on_started = on_started
        self.signals: list[int] = []
        self._reader: socket.socket | None = None

    # --- waiting -------------------------------------------------------------------------

    def _on_signal(self, signum: int, _: Any) -> None:
        self.signals.append(signum)

    def _wait(self, seconds: float) -> None:
        """Sleep until a signal arrives (a child's exit included) or ``seconds`` pass."""
        reader = self._reader
        assert reader is not None  # noqa: S101  # set by run()
        ready, _, _ = select.select([reader], [], [], max(0.0, seconds))
        if ready:
            with contextlib.suppress(BlockingIOError):
                while reader.recv(512):
                    pass

    @contextlib.contextmanager
    def _signals_installed(self) -> Any:
        reader, writer = socket.socketpair()
        reader.setblocking(False)
        writer.setblocking(False)
        self._reader = reader
        previous_fd = signal.set_wakeup_fd(writer.fileno())
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        previous_chld = signal.signal(signal.SIGCHLD, lambda *_: None)  # wakes the select
        try:
            yield
        finally:
            signal.set_wakeup_fd(previous_fd)
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            signal.signal(signal.SIGCHLD, previous_chld)
            reader.close()
            writer.close()
            self._reader = None

    # --- running ------------------------------------------------------------------------

    def run(self) -> int:
        """Supervise until a signal; 0, or 2 when a child's settings were wrong."""
        with self._signals_installed():
            code = self._supervise()
            self._stop_all()
        return code

    def _supervise(self) -> int:
        announced = False
        while not self.signals:
            now = time.monotonic()
            for slot in self.slots:
                if slot.due is None:
                    reason = slot.child.exited()
                    if reason is None:
                        continue
                    if slot.child.exit_code() == FATAL_EXIT:
                        log.error("supervisor.child_failed", child=slot.child.name, reason=reason)
                        return FATAL_EXIT
                    self._schedule(slot, now, reason)
                if slot.due is not None and slot.due <= now:
                    self._start(slot, now)
            if not announced and all(s.due is None for s in self.slots):
                announced = True
                log.info(
                    "supervisor.started",
                    children={s.child.name: s.child.pid for s in self.slots},
                )
                if self.on_started is not None:
                    self.on_started()
            pending = [s.due for s in self.slots if s.due is not None]
            self._wait(min([1.0, *(due - time.monotonic() for due in pending)]))
        log.info("supervisor.stopping", signal=signal.Signals(self.signals[0]).name)
        return 0

    def _schedule(self, slot: _Slot, now: float, reason: str) -> None:
        if now - slot.started_at >= STABLE_SECONDS:
            slot.backoff = 0.0
        slot.backoff = FIRST_BACKOFF if slot.backoff <= 0 else min(slot.backoff * 2, MAX_BACKOFF)
        slot.due = now + slot.backoff
        log.warning(
            "supervisor.child_exited", child=slot.child.name, reason=reason, restart_in=slot.backoff
        )

    def _start(self, slot: _Slot, now: float) -> None:
        try:
            slot.child.start()
        except Exception as exc:  # e.g. the embedded Redis would not come up: try again
            self._schedule(slot, now, f"could not start: {type(exc).__name__}: {exc}")
            return
        slot.due, slot.started_at = None, now
        slot.starts += 1
        if slot.starts > 1:
            log.info("supervisor.child_restarted", child=slot.child.name, pid=slot.child.pid)

    # --- stopping -----------------------------------------------------------------------

    def _stop_all(self) -> None:
        """Stop the children (those of ``last`` after the others), within the grace time."""
        first = [s.child for s in self.slots if id(s.child) not in self.last]
        then = [s.child for s in self.slots if id(s.child) in self.last]
        for group in (first, then):
            self._stop(group)
        log.info("supervisor.stopped")

    def _stop(self, children: list[Child]) -> None:
        seen = len(self.signals)
        for child in children:
            if child.exited() is None:
                child.terminate()
        deadline = time.monotonic() + self.grace
        while any(c.exited() is None for c in children):
            if time.monotonic() > deadline or len(self.signals) > seen:
                for child in children:
                    if child.exited() is None:
                        log.warning("supervisor.child_killed", child=child.name)
                        child.kill()
                seen = len(self.signals)
                deadline = time.monotonic() + self.grace
            self._wait(0.1)
