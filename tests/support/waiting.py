"""Waiting for a condition: the one way a test waits, polling until a deadline."""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable

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

    The test fails after ``within`` seconds, or as soon as ``gone()`` names a reason to stop
    waiting (what the condition waits on has died). ``context()`` is added to the failure
    message (a process's log tail, say). The poll interval ``every`` is the cadence of the
    check, not a synchronisation: the condition itself decides.
    """
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        extra = "" if context is None else f":\n{context()}"
        reason = None if gone is None else gone()
        if reason is not None:
            pytest.fail(f"{reason} while waiting for {what}{extra}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {within:g} s waiting for {what}{extra}")
        await asyncio.sleep(every)
