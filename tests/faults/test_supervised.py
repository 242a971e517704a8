"""``ledger run``, the default: every child killed with ``kill -9`` comes back; Ctrl-C leaves
nothing behind.

The supervisor runs as ``make run`` starts it (nothing configured but a temporary data
directory and a free port): the embedded Redis, the API, a projector and the snapshot writer
as its children. Each child in turn is killed with SIGKILL and must be running again, the
API answering ready, within :data:`BACK_WITHIN` seconds; the reference scenario published
afterwards is then read back caught up. SIGINT (Ctrl-C) must end the supervisor with status
0 and leave none of the processes it started, and nothing listening on its ports.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.protection.auth import load_tokens_file, tokens_path
from services.runtime.embedded import port_path
from tests.support.processes import ROOT, LedgerRun, descendants
from tests.support.waiting import until

BACK_WITHIN = 15.0
"""Seconds a killed child may take to run (and the API to answer ready) again."""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a living process (a zombie is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def listening(port: int) -> bool:
    """Whether something accepts connections on 127.0.0.1:``port``."""
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_killed_children_come_back_and_ctrl_c_leaves_no_process(tmp_path: Path) -> None:
    """kill -9 of the API, the projector, the snapshot writer and the Redis: each is back
    within seconds and the service works; SIGINT then stops every process it started."""
    run = LedgerRun(tmp_path / "var")
    run.start()
    try:
        await run.wait_ready()
        took: dict[str, float] = {}
        for name in ("api", "projector", "snapshots", "redis"):
            old = run.children()[name]
            os.kill(old, signal.SIGKILL)
            killed = time.monotonic()
            await until(
                lambda: run.children().get(name, old) != old,  # noqa: B023  # awaited here
                f"{name} to be started again",
                within=BACK_WITHIN,
                gone=run.gone,
                context=run.tail,
            )
            await run.wait_ready(limit=BACK_WITHIN)
            took[name] = round(time.monotonic() - killed, 1)
        seeding = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "services.cli", "seed", "reference", "--url", run.base_url],
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT), "LEDGER_DATA_DIR": str(run.data_dir)},
            stderr=asyncio.subprocess.PIPE,
        )
        _, errors = await asyncio.wait_for(seeding.communicate(), 60)
        assert seeding.returncode == 0, errors.decode()
        tokens = {t.name: t.secret for t in load_tokens_file(tokens_path(run.data_dir))}
        async with httpx.AsyncClient(
            base_url=run.base_url, headers={"authorization": f"Bearer {tokens['reader']}"}
        ) as http:

            async def caught_up() -> bool:
                answer = (await http.get("/v1/projections/community-victims")).json()
                return bool(answer["lag"] == 0 and answer["total"]["best"] == 1476)

            await until(caught_up, "the reference scenario to be read back", within=30)
        started = descendants(run.pid)
        redis_port = int(port_path(run.data_dir).read_text())
        assert run.interrupt() == 0, run.tail()
        left = {pid: command for pid, command in started.items() if alive(pid)}
        assert left == {}
        assert not listening(run.port)
        assert not listening(redis_port)
        print(f"\nledger run: back after kill -9 within {took} s")  # the figures of the test
    finally:
        if run.alive():
            run.kill_all()
