"""Operator commands on the log: ``export``, ``erase`` and ``audit`` (``import``:
:mod:`services.cli.importing`)."""

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
from services.ops.pads import DEFAULT_WINDOW, read_quick_withdrawals
from services.ops.transfer import export_events
from services.protection.audit import parse_since, read_audit, record_command
from services.protection.erasure import Erasure
from services.protection.erasure import erase as erase_text
from services.store.base import AppendRejectedError

__all__ = ["audit", "erase", "export"]


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
