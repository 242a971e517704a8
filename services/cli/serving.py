"""The commands that run the ledger's processes: ``run`` (the default: every process under one
supervisor), ``serve``, ``project``, ``snapshots``."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from services.cli import processes, supervised
from services.cli.app import fail, main, projections_named, redis_url_for, settings_or_exit
from services.errors import LedgerError, SettingsError
from services.logging import configure_logging
from services.projector.snapshots import SnapshotsOffError

__all__ = ["project", "run", "serve", "snapshots"]


@main.command()
def serve(
    projectors: Annotated[
        bool,
        typer.Option(
            "--projectors/--no-projectors",
            help="Run the projectors in this process (default: LEDGER_PROJECTORS).",
            show_default=False,
        ),
    ] = True,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
) -> None:
    """Run the ledger: HTTP API, Redis inbox, projectors (and an embedded Redis by default)."""
    settings = settings_or_exit()
    try:
        processes.run(settings, projectors=settings.projectors and projectors, json_logs=json_logs)
    except SettingsError as exc:
        raise fail(exc, 2) from None
    except LedgerError as exc:  # e.g. the embedded Redis would not start
        raise fail(exc, 1) from None


@main.command()
def run(
    projectors: Annotated[
        int, typer.Option("--projectors", min=1, max=16, help="Projector processes.")
    ] = 1,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
) -> None:
    """Run the ledger as deployed, in the foreground: API, projectors and snapshot writer as
    supervised processes (on an embedded Redis by default); Ctrl-C stops everything."""
    settings = settings_or_exit()
    try:
        code = supervised.run_supervised(settings, projectors=projectors, json_logs=json_logs)
    except SettingsError as exc:
        raise fail(exc, 2) from None
    except LedgerError as exc:  # e.g. the embedded Redis would not start
        raise fail(exc, 1) from None
    raise typer.Exit(code)


@main.command()
def project(
    projection: Annotated[
        list[str] | None,
        typer.Option("--projection", "-p", help="A projection to run (repeatable; default: all)."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Entries per batch.")] = 1000,
    lease_ms: Annotated[int, typer.Option(help="Lease time of a projection, ms.")] = 10_000,
    consumer: Annotated[
        str | None, typer.Option(help="Consumer name (default: host-pid-random).")
    ] = None,
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
) -> None:
    """Run the projectors only, until SIGTERM/SIGINT (refuses a Redis that may evict keys)."""
    settings = settings_or_exit()
    try:
        url = redis_url_for(settings)
        chosen = [one for name in projection or [] for one in projections_named(name)]
    except LedgerError as exc:
        raise fail(exc, 2) from None
    configure_logging(json=json_logs)
    work = processes.project(
        settings,
        redis_url=url,
        projections=chosen or None,
        consumer=consumer,
        lease_ms=lease_ms,
        batch_size=batch_size,
    )
    try:
        processes.run_loop(work)
    except LedgerError as exc:
        raise fail(exc, 1) from None


def idle_priority() -> None:
    """Give this process CPU only when nothing else wants it (``SCHED_IDLE``), or the
    lowest nice value where that policy does not exist."""
    if hasattr(os, "sched_setscheduler") and hasattr(os, "SCHED_IDLE"):
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    else:
        os.nice(19)


@main.command()
def snapshots(
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
) -> None:
    """Write the as-of snapshots, until SIGTERM/SIGINT (a process beside `ledger project`).

    It runs only on otherwise idle CPU (Linux's ``SCHED_IDLE``; nice 19 elsewhere): it folds
    the log again for its snapshots, CPU which on a shared machine should come from idle
    time, not from the API's or the projectors' (at 1M events it held live latency at seconds
    without any lowering, and doubled its p50 at nice 10).
    """
    idle_priority()
    settings = settings_or_exit()
    try:
        url = redis_url_for(settings)
    except LedgerError as exc:
        raise fail(exc, 2) from None
    configure_logging(json=json_logs)
    try:
        processes.run_loop(processes.write_snapshots(settings, redis_url=url))
    except SnapshotsOffError as exc:
        raise fail(exc, 2) from None
    except LedgerError as exc:
        raise fail(exc, 1) from None
