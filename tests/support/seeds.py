"""Seeds of random tests: chosen once, and named in the failure message of whatever fails."""

from __future__ import annotations

import contextlib
import os
import random
from collections.abc import Iterator

import pytest

__all__ = ["replaying", "seed_of"]


def seed_of(variable: str) -> int:
    """The seed ``variable`` names (to replay a run), else a fresh one."""
    return int(os.environ.get(variable) or random.randrange(2**32))


@contextlib.contextmanager
def replaying(variable: str, seed: int) -> Iterator[None]:
    """Add ``variable=seed`` to the message of an assertion or a failure inside the block, so
    a failing run says how to replay it before anything is asserted."""
    hint = f"(replay with {variable}={seed})"
    try:
        yield
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{hint}") from exc
    except pytest.fail.Exception as exc:
        pytest.fail(f"{exc.msg}\n{hint}")
