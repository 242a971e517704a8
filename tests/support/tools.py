"""Tools the tests drive (chromium, a compose client, redis-server): found, or the test stops.

Outside CI a test whose tool is missing skips, saying what to install. Under CI (the ``CI``
environment variable set, as ``.ci/run`` does) every tool is installed first, so a missing
one fails the test instead: a suite that skips is not a suite that passed.
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

__all__ = ["in_ci", "missing"]


def in_ci() -> bool:
    """Whether the tests run under CI (``CI`` set to anything but empty, ``0`` or ``false``)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false")


def missing(reason: str) -> NoReturn:
    """Stop the test for a missing tool: skip it, or fail it under CI."""
    if in_ci():
        pytest.fail(f"{reason} (CI installs every tool the tests drive: see .ci/run)")
    pytest.skip(reason)
