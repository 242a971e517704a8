"""Operator commands on the log: ``export``, ``import``, ``erase`` and ``audit``."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from events import InvalidEventError
from services.bootstrap import Ops
from services.cli.app import err, fail, main, out, run_ops
from services.cli.progress import progress_display
from services.errors import LedgerError, SettingsError
from services.files import open_private
from services.ops.acled import acled_rows, import_acled
from services.ops.pads import DEFAULT_WINDOW, read_quick_withdrawals
from services.ops.transfer import ImportReport, OnError, count_lines, export_events, import_lines
from services.protection.audit import parse_since, read_audit, record_command
from services.protection.erasure import Erasure
from services.protection.erasure import erase as erase_text
from services.store.base import AppendRejectedError

__all__ = ["audit", "erase", "export", "import_command"]


@main.command()
def export(
    out: Annotated[Path, typer.Option("--out", help="The JSON-lines file to write.")],
    start: Annotated[
        str | None,
        typer.Option("--from", help="First position (included; per partition: joined by ',')."),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option("--to", help="Last position (included; per partition: joined by ',')."),
    ] = None,
) -> None:
    """Export the log as JSON lines (position, recorded_at, type, v, event).

    The file holds decrypted private text: it is written with mode 0600, and the export is
    recorded in the audit trail first (named by LEDGER_OPERATOR_TOKEN's name, else cli:<user>).
    """

    async def work(tools: Ops) -> int:
        keyring = tools.store.keyring
        await record_command(
            tools.client, tools.settings, "ledger export", {"from": start, "to": end, "out": out}
        )
        with (
            open_private(out) as handle,
            progress_display("export", stream=sys.stderr) as progress,
        ):
            return await export_events(
                tools.client,
                tools.settings.keys,
                handle,
                start=start,
                end=end,
                progress=progress,
                keyring=keyring,
            )

    written = run_ops(work)
    err.print(f"exported {written} events to {out}")


@main.command("import")
def import_command(
    path: Annotated[
        Path | None, typer.Argument(help="A JSON-lines file (from `ledger export`).")
    ] = None,
    acled: Annotated[
        Path | None, typer.Option(help="An ACLED CSV export to import instead.")
    ] = None,
    feed: Annotated[str | None, typer.Option(help="The feed ACLED rows are published as.")] = None,
    on_error: Annotated[
        str, typer.Option(help="stop: write nothing after a bad line; skip: leave it out.")
    ] = "stop",
    batch_size: Annotated[int, typer.Option(help="Events per append.")] = 500,
) -> None:
    """Append events from a file through the validated, idempotent path; re-imports add nothing."""
    if on_error not in ("stop", "skip"):
        raise fail(SettingsError("--on-error must be stop or skip"), 2)
    if (path is None) == (acled is None):
        raise fail(SettingsError("give a JSON-lines file or --acled FILE.csv (one of them)"), 2)
    if acled is not None and not feed:
        raise fail(
            SettingsError("--acled needs --feed NAME (the feed the rows are published as)"), 2
        )

    mode: OnError = "skip" if on_error == "skip" else "stop"

    async def work(tools: Ops) -> ImportReport:
        store = tools.store
        with progress_display("import", stream=sys.stderr) as progress:
            if acled is not None:
                with acled.open(encoding="utf-8", newline="") as handle:
                    rows = list(acled_rows(handle))
                return await import_acled(
                    store,
                    rows,
                    feed or "",
                    on_error=mode,
                    batch_size=batch_size,
                    progress=progress,
                )
            assert path is not None  # noqa: S101  # checked above
            with path.open("rb") as handle:
                total = count_lines(handle)
                return await import_lines(
                    store,
                    handle,
                    on_error=mode,
                    batch_size=batch_size,
                    progress=progress,
                    total=total,
                )

    report = run_ops(work)
    for problem in report.problems:
        err.print(f"line {problem.line}: {problem.message}", soft_wrap=True, highlight=False)
    err.print(
        f"imported {report.lines} lines: {report.appended} appended, "
        f"{report.duplicates} already there"
        + (f", {len(report.problems)} not imported" if report.problems else "")
        + (f"; stopped at line {report.stopped_at}" if report.stopped_at is not None else ""),
        soft_wrap=True,
    )
    if report.problems:
        raise typer.Exit(1)


@main.command()
def erase(
    kind: Annotated[str, typer.Argument(help="incident or statement")],
    ident: Annotated[str, typer.Argument(help="The incident's or statement's id.")],
    reason: Annotated[
        str, typer.Option(help="Why (recorded in the redaction event; not the text itself).")
    ],
) -> None:
    """Erase an incident's or statement's private text: notes, source urls, speaker names.

    Appends incident.redacted / statement.redacted (feed ledger-operator) and destroys the
    data key: the text reads "[erased]" in the API, exports and replays from then on.
    """
    if kind not in ("incident", "statement"):
        raise fail(SettingsError(f"KIND must be incident or statement, got {kind!r}"), 2)

    async def work(tools: Ops) -> Erasure:
        try:
            return await erase_text(tools.store, kind, ident, reason)  # type: ignore[arg-type]
        except (InvalidEventError, AppendRejectedError) as exc:
            raise LedgerError(str(exc)) from None

    done = run_ops(work)
    err.print(
        f"erased {done.entity}: redaction {done.event_id} at {done.position}; "
        + ("data key destroyed" if done.key_destroyed else "no data key was left to destroy"),
        soft_wrap=True,
    )


@main.command()
def audit(
    since: Annotated[
        str | None,
        typer.Option(help="From this ISO 8601 date-time (UTC if no zone) or stream position."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a line.")] = False,
    pads: Annotated[
        bool,
        typer.Option(
            "--pads",
            help="Instead: incidents whose figures were retracted or revised down soon after "
            "being recorded (a pad read and taken back), with the feed.",
        ),
    ] = False,
    within: Annotated[int, typer.Option(min=1, help="With --pads: how soon, in seconds.")] = int(
        DEFAULT_WINDOW.total_seconds()
    ),
) -> None:
    """Who read exact community figures: token, endpoint, filters, when (oldest first)."""
    if pads:
        found = run_ops(
            lambda tools: read_quick_withdrawals(tools.store.inner, dt.timedelta(seconds=within))
        )
        for w in found:
            line = (
                msgspec.json.encode(w).decode()
                if as_json
                else (
                    f"{w.position}  {w.withdrawn_at:%Y-%m-%dT%H:%M:%S}Z  {w.feed}  {w.kind}  "
                    f"incident={w.incident_id}  best {w.best_before}->{w.best_after}  "
                    f"after {w.seconds:.0f}s"
                )
            )
            out.print(line, highlight=False, soft_wrap=True, markup=False)
        err.print(f"{len(found)} figures taken back within {within} s")
        return
    if since is not None:
        try:
            parse_since(since)
        except LedgerError as exc:
            raise fail(exc, 2) from None
    entries = run_ops(
        lambda tools: read_audit(tools.client, tools.settings.key_prefix, since=since)
    )
    if as_json:
        sys.stdout.write("".join(msgspec.json.encode(e).decode() + "\n" for e in entries))
        return
    for e in entries:  # one line per entry, so the trail greps
        filters = " ".join(f"{k}={v}" for k, v in sorted(e.filters.items())) or "-"
        out.print(
            f"{e.id}  {e.at:%Y-%m-%dT%H:%M:%S}Z  {e.token}  {e.endpoint}  {filters}  "
            f"position={e.position or '-'}  lines={e.lines}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    err.print(f"{len(entries)} audit entries")
