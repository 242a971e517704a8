"""``make run`` on a fresh clone: it installs what running needs and starts ``ledger run``.

The clone is a copy of the files git tracks (what a clone of the working tree holds), in a
temporary directory with no ``.venv``. ``make -n`` shows what each of the README's two
commands would do; then ``make run`` itself creates the environment, installs the package
without the test extras and starts the supervised shape, which answers ready; Ctrl-C (SIGINT
to make's process group, as a terminal sends it) stops it with nothing left running.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
from collections.abc import Iterable
from pathlib import Path

import httpx
import pytest

from services.runtime.binaries import free_port
from tests.support.processes import ROOT, descendants
from tests.support.tools import missing
from tests.support.waiting import until


def fresh_clone(into: Path) -> Path:
    """A copy of every file git tracks in the project, under ``into``."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
    ).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    return into


def make() -> str:
    """The ``make`` binary (fails under CI, skips elsewhere, when there is none)."""
    found = shutil.which("make")
    if found is None:
        missing("make is not installed")
    return found


def clean_env() -> dict[str, str]:
    """The environment without this run's own settings, virtualenv or enclosing ``make``
    (under ``make test`` a child make would otherwise inherit its flags)."""
    own = ("LEDGER_", "VIRTUAL_ENV", "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")
    return {key: value for key, value in os.environ.items() if not key.startswith(own)}


def planned(clone: Path, target: str) -> list[str]:
    """What ``make -n <target>`` would run in ``clone``."""
    done = subprocess.run(
        [make(), "-n", target],
        cwd=clone,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return done.stdout.splitlines()


def still_running(pids: Iterable[int]) -> list[int]:
    """Those of ``pids`` whose process still exists."""
    return [pid for pid in pids if Path(f"/proc/{pid}").exists()]


def start_make_run(clone: Path, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``make run`` in ``clone`` in a session of its own, its output in ``log``."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [make(), "run"], cwd=clone, env=env, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip


class TestTheTwoCommands:
    """``make run`` installs the package alone; ``make test`` adds the test extras."""

    def test_make_run_installs_no_test_extras_and_runs_the_supervised_shape(
        self, tmp_path: Path
    ) -> None:
        """The plan: a venv, ``pip install -e .`` (no ``[test]``, at the tested versions),
        then ``ledger run``."""
        steps = planned(fresh_clone(tmp_path / "clone"), "run")
        installs = [step for step in steps if "pip install" in step and "-e" in step]
        assert installs == [".venv/bin/python -m pip install --quiet -c constraints.txt -e ."]
        assert steps[-1] == ".venv/bin/ledger run"

    def test_make_test_installs_the_test_extras(self, tmp_path: Path) -> None:
        """The plan installs ``.[test]`` at the tested versions before the checks and the
        suite."""
        steps = planned(fresh_clone(tmp_path / "clone"), "test")
        assert ".venv/bin/python -m pip install --quiet -c constraints.txt -e '.[test]'" in steps
        assert steps[-1] == ".venv/bin/pytest"


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_make_run_on_a_fresh_clone_starts_and_ctrl_c_stops_everything(
    tmp_path: Path,
) -> None:
    """From nothing to a ready API, then SIGINT to make's group leaves no process."""
    clone = fresh_clone(tmp_path / "clone")
    port = free_port()
    env = clean_env()
    env.update({"LEDGER_HTTP_PORT": str(port), "LEDGER_DATA_DIR": str(tmp_path / "var")})
    process = await asyncio.to_thread(start_make_run, clone, env, tmp_path / "make-run.log")

    def tail() -> str:
        return (tmp_path / "make-run.log").read_text(errors="replace")[-3000:]

    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1.0) as http:

            async def ready() -> bool:
                try:
                    return (await http.get("/readyz")).status_code == 200
                except httpx.TransportError:
                    return False

            await until(
                ready, "make run to serve", within=480, every=0.5, context=tail,
                gone=lambda: None if process.poll() is None else "make run exited",
            )  # fmt: skip
        started = descendants(process.pid)
        commands = " ".join(started.values())
        for part in ("ledger run", " serve --no-projectors", " project ", " snapshots", "redis"):
            assert part in f"{commands} ", (part, commands)
        assert not (clone / ".venv" / "bin" / "pytest").exists()  # no test extras
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C on make's terminal
        await asyncio.to_thread(process.wait, 60)
        left = still_running(started)
        assert left == [], tail()
    finally:
        if process.poll() is None:
            for pid in [*descendants(process.pid), process.pid]:
                os.kill(pid, signal.SIGKILL)
            process.wait(10)
