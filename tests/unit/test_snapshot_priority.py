"""``ledger snapshots`` runs only on otherwise idle CPU.

The process lowers its own scheduling, so the check runs in a child process: the policy it
ends with is read back from the kernel.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

CHECK = (
    "import os; from services.cli.serving import idle_priority; idle_priority(); "
    "print(os.sched_getscheduler(0) == os.SCHED_IDLE)"
)


@pytest.mark.skipif(not hasattr(os, "SCHED_IDLE"), reason="SCHED_IDLE is Linux's")
def test_the_snapshot_process_takes_the_idle_scheduling_policy() -> None:
    """After :func:`idle_priority` the process is scheduled ``SCHED_IDLE``."""
    found = subprocess.run(
        [sys.executable, "-c", CHECK], capture_output=True, text=True, check=True, timeout=60
    )
    assert found.stdout.strip() == "True"
