"""Waiting for a condition: the one way a test waits, polling until a deadline."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

__all__ = ["DEADLINE", "until"]

DEADLINE = 10.0
"""Seconds a condition may take to hold before the test fails, unless told otherwise."""


async def until(
    condition: Callable[[], Awaitable[bool] | bool],
    what: str,
    *,
    within: float = DEADLINE,
    every: float = 0.01,
    gone: Callable[[], str | None] | None = None,
    context: Callable[[], str] | None = None,
) -> None:
    """Poll ``condition`` (sync or async) until it holds; fail naming ``what`` otherwise.

    The test fails after ``within`` seconds (a check still unanswered then included), or as
    soon as ``gone()`` names a reason to stop waiting (what the condition waits on has died).
    ``context()`` is added to the failure message (a process's log tail, say). The poll
    interval ``every`` is the cadence of the check, not a synchronisation: the condition
    itself decides.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await _answer(result, deadline, every, what)
        if result:
            return
        extra = "" if context is None else f":\n{context()}"
        reason = None if gone is None else gone()
        if reason is not None:
            pytest.fail(f"{reason} while waiting for {what}{extra}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}{extra}")
        await asyncio.sleep(every)


async def _answer(check: Awaitable[bool], deadline: float, every: float, what: str) -> bool:
    """The answer of one check, which may take until the deadline (at least ``every``); a
    check still unanswered then fails the test, naming where every task of the loop waits."""
    task = asyncio.ensure_future(check)
    done, _ = await asyncio.wait({task}, timeout=max(deadline - time.monotonic(), every))
    if not done:
        stuck = _tasks()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        pytest.fail(f"the check for {what} did not answer by the deadline; tasks wait in:\n{stuck}")
    return task.result()


def _tasks() -> str:
    """Where every other task of the loop waits, outermost call first."""
    current = asyncio.current_task()
    lines = [
        f"{task.get_name()}: {_awaiting(task.get_coro())}"
        for task in asyncio.all_tasks()
        if task is not current
    ]
    return "\n".join(sorted(lines))


def _awaiting(coro: Any) -> str:
    """The chain of coroutines ``coro`` awaits, each with its file and line."""
    calls: list[str] = []
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        if frame is not None:
            name = getattr(coro, "__qualname__", type(coro).__name__)
            calls.append(f"{name} ({frame.f_code.co_filename}:{frame.f_lineno})")
        coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    return " -> ".join(calls) or "running"
