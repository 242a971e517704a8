"""``ledger import``: a JSON-lines file (from ``ledger export``), or a source's own file.

``ledger import FILE`` appends the events of an export; ``--acled FILE --feed NAME`` an
ACLED export or deletions list, ``--ucdp FILE --feed NAME`` a UCDP GED or Candidate CSV,
``--gdelt FILE --subject SLUG`` a GDELT 2.0 events file. A source's file is read and
planned whole before anything is written (:mod:`services.ops.importer`); ``--dry-run``
stops there and says what would be written.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Final

import typer

from events import cameo_root, country_codes
from services.bootstrap import Ops
from services.cli.app import err, fail, main, run_ops
from services.cli.progress import progress_display
from services.errors import LedgerError, SettingsError
from services.ops.acled_import import plan_acled
from services.ops.gdelt import GDELT_FEED, plan_gdelt
from services.ops.importer import Plan, Summary, publish, read_text
from services.ops.transfer import ImportReport, OnError, count_lines, import_lines
from services.ops.ucdp import plan_ucdp, ucdp_incidents
from services.projector.replay import ProgressCallback
from services.store.rules import OPERATOR_FEED

__all__ = ["check_feed", "import_command"]

_FEED: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_SLUG: Final = re.compile(r"[a-z0-9][a-z0-9-]{0,127}")


def check_feed(name: str) -> str:
    """``name`` if a feed may import under it; :class:`SettingsError` saying why not."""
    if not _FEED.fullmatch(name):
        raise SettingsError(
            f"--feed {name!r} is not a feed name: 1 to 64 characters, lowercase letters, "
            "digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name == OPERATOR_FEED:
        raise SettingsError(f"--feed {OPERATOR_FEED} is reserved for the operators' own events")
    return name


def _print_summary(summary: Summary) -> None:
    for problem in summary.refused:
        err.print(f"line {problem.line}: {problem.message}", soft_wrap=True, highlight=False)
    for note in summary.reported:
        err.print(note, soft_wrap=True, highlight=False)
    skipped = sum(summary.skipped.values())
    reasons = "; ".join(f"{n} {why}" for why, n in summary.skipped.items())
    verb = "would be written" if summary.dry_run else "written"
    err.print(
        f"read {summary.read} rows: {summary.written} {verb}, {summary.already} already there, "
        f"{skipped} skipped" + (f" ({reasons})" if reasons else "") + f", "
        f"{len(summary.refused)} refused"
        + (
            "; nothing written (a row was refused; --on-error skip leaves it out)"
            if summary.stopped
            else ""
        )
        + ("; dry run: nothing written" if summary.dry_run else ""),
        soft_wrap=True,
        highlight=False,
    )


def _source_import(
    path: Path,
    planner: Callable[[Ops, str, ProgressCallback], Awaitable[Plan]],
    *,
    mode: OnError,
    dry_run: bool,
    batch_size: int,
) -> None:
    if not path.is_file():
        raise fail(SettingsError(f"{path} is not a readable file"), 2)
    try:
        text = read_text(path)
    except LedgerError as exc:
        raise fail(exc, 1) from None

    async def work(tools: Ops) -> Summary:
        with progress_display("plan", stream=sys.stderr) as planning:
            plan = await planner(tools, text, planning)
        with progress_display("import", stream=sys.stderr) as progress:
            return await publish(
                tools.store,
                plan,
                on_error=mode,
                dry_run=dry_run,
                batch_size=batch_size,
                progress=progress,
            )

    summary = run_ops(work)
    _print_summary(summary)
    if summary.refused or summary.stopped:
        raise typer.Exit(1)


def _lines_import(path: Path, mode: OnError, batch_size: int) -> None:
    async def work(tools: Ops) -> ImportReport:
        with progress_display("import", stream=sys.stderr) as progress, path.open("rb") as handle:
            total = count_lines(handle)
            return await import_lines(
                tools.store,
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


@main.command("import")
def import_command(
    path: Annotated[
        Path | None, typer.Argument(help="A JSON-lines file (from `ledger export`).")
    ] = None,
    *,
    acled: Annotated[
        Path | None, typer.Option(help="An ACLED export (CSV) or ACLED's deletions list.")
    ] = None,
    ucdp: Annotated[Path | None, typer.Option(help="A UCDP GED or GED Candidate CSV.")] = None,
    gdelt: Annotated[
        Path | None, typer.Option(help="A GDELT 2.0 events file (tab-separated, 61 columns).")
    ] = None,
    feed: Annotated[
        str | None, typer.Option(help="The feed ACLED or UCDP rows are published as.")
    ] = None,
    subject: Annotated[
        str | None, typer.Option(help="GDELT: the subject (slug) the statements are on.")
    ] = None,
    root: Annotated[
        str | None, typer.Option(help="GDELT: only these CAMEO roots, e.g. 01,02,11.")
    ] = None,
    actor_country: Annotated[
        str | None, typer.Option(help="GDELT: only speakers of these countries, e.g. USA,RUS.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Plan and report; write nothing.")
    ] = False,
    on_error: Annotated[
        str, typer.Option(help="stop: write nothing if a row is refused; skip: leave it out.")
    ] = "stop",
    batch_size: Annotated[int, typer.Option(help="Events per append.")] = 500,
) -> None:
    """Append events from a file through the validated, idempotent path; re-imports add nothing."""
    if on_error not in ("stop", "skip"):
        raise fail(SettingsError("--on-error must be stop or skip"), 2)
    mode: OnError = "skip" if on_error == "skip" else "stop"
    given = [p for p in (path, acled, ucdp, gdelt) if p is not None]
    if len(given) != 1:
        raise fail(SettingsError("give one file: FILE (JSON lines), --acled, --ucdp or --gdelt"), 2)
    if path is not None:
        if dry_run:
            raise fail(SettingsError("--dry-run applies to --acled, --ucdp and --gdelt files"), 2)
        _lines_import(path, mode, batch_size)
        return
    try:
        planner = _planner(
            acled=acled,
            ucdp=ucdp,
            gdelt=gdelt,
            feed=feed,
            subject=subject,
            root=root,
            actor_country=actor_country,
        )
    except SettingsError as exc:
        raise fail(exc, 2) from None
    _source_import(given[0], planner, mode=mode, dry_run=dry_run, batch_size=batch_size)


def _planner(
    *,
    acled: Path | None,
    ucdp: Path | None,
    gdelt: Path | None,
    feed: str | None,
    subject: str | None,
    root: str | None,
    actor_country: str | None,
) -> Callable[[Ops, str, ProgressCallback], Awaitable[Plan]]:
    """How the one source file given is planned (:class:`SettingsError` for a bad option)."""
    if gdelt is None:
        if not feed:
            raise SettingsError("--acled and --ucdp need --feed NAME (the feed they publish as)")
        name = check_feed(feed)
        if acled is not None:
            return lambda tools, text, progress: plan_acled(
                tools.store, text, name, progress=progress
            )

        async def ucdp_plan(tools: Ops, text: str, progress: ProgressCallback) -> Plan:
            known = await ucdp_incidents(tools.client, tools.settings.keys, name)
            return await plan_ucdp(tools.store, text, name, progress=progress, known=known)

        return ucdp_plan
    if not subject:
        raise SettingsError("--gdelt needs --subject SLUG (what the statements are on)")
    if not _SLUG.fullmatch(subject):
        raise SettingsError(
            f"--subject {subject!r} is not a slug: lowercase letters, digits and '-', "
            "starting with a letter or digit, at most 128"
        )
    topic = subject
    roots = [r.strip().zfill(2) for r in (root or "").split(",") if r.strip()]
    unknown = [r for r in roots if cameo_root(r) is None]
    if unknown:
        raise SettingsError(f"--root {','.join(unknown)}: CAMEO roots are 01 to 20")
    countries = [c.strip().upper() for c in (actor_country or "").split(",") if c.strip()]
    unknown = [c for c in countries if c not in country_codes()]
    if unknown:
        raise SettingsError(
            f"--actor-country {','.join(unknown)}: not ISO 3166-1 alpha-3 country codes"
        )
    name = check_feed(feed) if feed else GDELT_FEED
    return lambda tools, text, progress: plan_gdelt(
        tools.store, text, topic, feed=name, roots=roots, countries=countries, progress=progress
    )
