"""Progress of long operator commands: a rich bar on a terminal, else log lines."""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from services.projector.replay import ProgressCallback

__all__ = ["progress_display"]


class _Rate(ProgressColumn):
    """Events per second."""

    def render(self, task: Task) -> Text:
        speed = task.speed
        return Text("" if speed is None else f"{speed:,.0f} ev/s")


@contextlib.contextmanager
def progress_display(
    label: str, *, stream: TextIO | None = None, every: float = 2.0
) -> Iterator[ProgressCallback]:
    """A progress callback ``(done, total)``: a rich bar on a terminal, else log lines.

    Off a terminal a line ``<label>: done/total events, rate/s, ETA`` is written at most
    every ``every`` seconds, and once at the end.
    """
    out = stream or sys.stderr
    console = Console(file=out)
    if console.is_terminal:
        columns = (
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            _Rate(),
            TimeRemainingColumn(),
        )
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(label, total=None)

            def update(done: int, total: int) -> None:
                progress.update(task, completed=done, total=max(total, done))

            yield update
        return
    started = time.monotonic()
    last_line = 0.0
    state = {"done": 0, "total": 0}

    def line() -> None:
        elapsed = max(time.monotonic() - started, 1e-6)
        done, total = state["done"], state["total"]
        rate = done / elapsed
        eta = f"{(total - done) / rate:.0f}s" if rate > 0 and total > done else "0s"
        out.write(f"{label}: {done}/{total} events, {rate:,.0f}/s, ETA {eta}\n")
        out.flush()

    def report(done: int, total: int) -> None:
        nonlocal last_line
        state["done"], state["total"] = done, max(total, done)
        now = time.monotonic()
        if now - last_line >= every:
            last_line = now
            line()

    yield report
    if state["done"]:
        line()
