"""Operator commands on the views: ``replay``, ``status``, ``verify``, ``prune`` and ``dlq``.

They talk to Redis directly (``LEDGER_REDIS_URL``, or the embedded Redis a ``ledger serve``
on the same data directory runs), through the operator tools' wiring
(:func:`services.bootstrap.ops`).
"""

from __future__ import annotations

import sys
from typing import Annotated

import msgspec
import typer
from rich.table import Table

from services.bootstrap import Ops
from services.cli.app import (
    dlq_app,
    err,
    fail,
    main,
    out,
    projections_named,
    run_ops,
    settings_or_exit,
)
from services.cli.progress import progress_display
from services.errors import LedgerError
from services.ops.dead_letters import DeadLetter, dlq_drop, dlq_list, dlq_retry, dlq_show
from services.ops.prune import DEFAULT_MAX_LAG, Pruned
from services.ops.prune import prune as prune_versions
from services.ops.status import ledger_status
from services.ops.verify import VerifyResult, verify_all
from services.projector.collector import tune_collector
from services.projector.replay import BATCH, Replay, replay_together
from services.projector.replay_records import parse_until, refuse_until_partitioned
from services.protection.audit import record_command
from services.views.generations import view_keys

__all__ = [
    "dlq_drop_command",
    "dlq_list_command",
    "dlq_retry_command",
    "dlq_show_command",
    "prune",
    "replay",
    "status",
    "verify",
]


@main.command()
def replay(
    projection: Annotated[str, typer.Argument(help="A projection's name, or all.")],
    until: Annotated[
        str | None,
        typer.Option(help="Build the view as it stood at a log position or ISO datetime."),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            help="Events per batch (each batch's documents are written once, with the checkpoint)."
        ),
    ] = BATCH,
) -> None:
    """Rebuild a view beside the live one and swap it in (resumes an interrupted rebuild)."""
    try:
        chosen = projections_named(projection)
        bound = None if until is None else parse_until(until)
        if bound is not None:
            refuse_until_partitioned(settings_or_exit().keys)
    except LedgerError as exc:
        raise fail(exc, 2) from None
    tune_collector()  # a rebuild folds the whole log, as the projectors do

    async def work(tools: Ops) -> None:
        client, settings = tools.client, tools.settings
        if bound is None:
            label = ", ".join(f"{one.name} v{one.version}" for one in chosen)
            with progress_display(label, stream=sys.stderr) as progress:
                records = await replay_together(
                    client,
                    chosen,
                    prefix=settings.keys,
                    batch_size=batch_size,
                    progress=progress,
                )
            for one, record in zip(chosen, records, strict=True):
                if isinstance(record, Exception):
                    raise record
                err.print(
                    f"{one.name} v{one.version}: generation {record.generation} is live "
                    f"at {record.checkpoint or 'the empty log'} ({record.done} events)",
                    soft_wrap=True,
                )
            return
        for one in chosen:
            with progress_display(f"{one.name} v{one.version}", stream=sys.stderr) as progress:
                job = Replay(
                    client,
                    one,
                    prefix=settings.keys,
                    batch_size=batch_size,
                    progress=progress,
                )
                name, checkpoint = await job.build_until(bound)
            keys = view_keys(settings.keys, one, name)
            out.print(
                f"{one.name} v{one.version} as of {checkpoint or 'the empty log'} is built "
                f"under generation {name}:\n"
                + "".join(
                    f"  {kind}: HGETALL {key}:<bucket> of every bucket 0 to 1fff (hex)\n"
                    if kind in keys.bucketed
                    else f"  {kind}: HGETALL {key}\n"
                    for kind, key in keys.kinds.items()
                )
                + f"  checkpoint: HGET {keys.meta} position\n"
                + f"  in Python: services.views.redis.load_view(client, {settings.key_prefix!r}, "
                f"PROJECTIONS[{one.name!r}], generation={name!r})",
                soft_wrap=True,
                highlight=False,
            )

    run_ops(work)


@main.command()
def status(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
    max_lag: Annotated[
        int | None,
        typer.Option(
            help="Exit with status 2 when any view lags more than this (summed over partitions)."
        ),
    ] = None,
) -> None:
    """Views (generation, checkpoint, lag in entries and seconds, pending, consumers, dead
    letters), log and Redis."""
    found = run_ops(lambda tools: ledger_status(tools.client, tools.settings.keys))
    if as_json:
        sys.stdout.write(msgspec.json.encode(found).decode() + "\n")
    else:
        table = Table(
            "projection",
            "part",
            "version",
            "gen",
            "position",
            "lag",
            "lag s",
            "pending",
            "consumers",
            "dead",
            "rebuild",
        )
        for row in found.projections:
            table.add_row(
                row.name,
                str(row.partition),
                str(row.version),
                str(row.generation),
                row.position or "-",
                str(row.lag),
                f"{row.lag_seconds:.1f}",
                str(row.pending),
                str(len(row.consumers)),
                str(row.dead_letters),
                row.rebuild or "-",
            )
        out.print(table)
        log, redis_ = found.log, found.redis
        out.print(
            f"log: {log.length} events in {log.partitions} partition(s), "
            f"first {log.first or '-'}, last {log.last or '-'}\n"
            f"redis: used_memory {redis_.used_memory}, maxmemory {redis_.maxmemory}, "
            f"policy {redis_.maxmemory_policy}, appendonly {redis_.appendonly}, "
            f"appendfsync {redis_.appendfsync}, save {redis_.save!r}",
            highlight=False,
            soft_wrap=True,
        )
    if max_lag is not None and found.max_lag() > max_lag:
        err.print(f"lag {found.max_lag()} exceeds --max-lag {max_lag}")
        raise typer.Exit(2)


@main.command()
def verify(
    projection: Annotated[str, typer.Argument(help="A projection's name, or all.")],
) -> None:
    """Compare stored views with the pure fold of the log to their checkpoints; 1 if any differ."""
    try:
        chosen = projections_named(projection)
    except LedgerError as exc:
        raise fail(exc, 2) from None
    tune_collector()  # it folds the whole log, as the projectors do

    async def work(tools: Ops) -> list[VerifyResult]:
        keys = tools.settings.keys
        return [result for one in chosen for result in await verify_all(tools.client, keys, one)]

    results = run_ops(work)
    bad = 0
    for result in results:
        part = f" partition {result.partition}" if len(results) > len(chosen) else ""
        head = (
            f"{result.projection} v{result.version}{part} (generation {result.generation}) at "
            f"{result.checkpoint or '-'}: {result.events} events"
        )
        if result.unapplied:
            head += f", {len(result.unapplied)} not applicable (dead letters)"
        if result.ok:
            out.print(f"{head}: ok", highlight=False, soft_wrap=True)
            continue
        bad += 1
        out.print(f"{head}: {len(result.differences)} differences", highlight=False, soft_wrap=True)
        for diff in result.differences:
            out.print(
                f"  {diff.kind}/{diff.id}\n    stored:   {diff.stored}\n"
                f"    expected: {diff.expected}",
                highlight=False,
                soft_wrap=True,
            )
    if bad:
        raise typer.Exit(1)


@main.command()
def prune(
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="List what would be removed; remove nothing.")
    ] = False,
    max_lag: Annotated[
        int,
        typer.Option(
            min=0,
            help="Remove an earlier version only while the current view lags at most this.",
        ),
    ] = DEFAULT_MAX_LAG,
) -> None:
    """Remove the keys and consumer groups earlier projection versions left (once the current
    version's view has caught up and no process of the earlier one runs); 1 if any is kept."""

    async def work(tools: Ops) -> list[Pruned]:
        found = await prune_versions(
            tools.client, tools.settings.keys, dry_run=dry_run, max_lag=max_lag
        )
        removed = [f"{one.name}:v{one.version}" for one in found if one.kept is None]
        if removed and not dry_run:
            await record_command(
                tools.client, tools.settings, "ledger prune", {"removed": ",".join(removed)}
            )
        return found

    found = run_ops(work)
    if not found:
        out.print("no earlier projection version left anything")
        return
    for one in found:
        what = f"{len(one.keys)} keys, {len(one.groups)} consumer groups"
        if one.kept is not None:
            verdict = f"kept: {one.kept}"
        else:
            verdict = "would be removed" if dry_run else "removed"
        out.print(
            f"{one.name}:v{one.version} (current v{one.current}): {what}: {verdict}",
            highlight=False,
            soft_wrap=True,
        )
        if dry_run:
            for name in [*one.keys, *one.groups]:
                out.print(f"  {name}", highlight=False, soft_wrap=True)
    if any(one.kept is not None for one in found):
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list_command(
    limit: Annotated[int, typer.Option(help="How many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List dead letters, oldest first."""

    async def work(tools: Ops) -> list[DeadLetter]:
        await record_command(tools.client, tools.settings, "ledger dlq list", {"limit": limit})
        return await dlq_list(tools.client, tools.settings.keys, count=limit)

    letters = run_ops(work)
    if as_json:
        sys.stdout.write(msgspec.json.encode(letters).decode() + "\n")
        return
    for letter in letters:
        out.print(
            f"{letter.id}  {letter.projection} v{letter.version}  at {letter.position}  "
            f"{letter.error_type}: {letter.error[:120]}",
            highlight=False,
            soft_wrap=True,
        )
    if not letters:
        err.print("no dead letters")


@dlq_app.command("show")
def dlq_show_command(ident: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Show one dead letter with its entry."""

    async def work(tools: Ops) -> DeadLetter:
        await record_command(tools.client, tools.settings, "ledger dlq show", {"id": ident})
        return await dlq_show(tools.client, tools.settings.keys, ident)

    letter = run_ops(work)
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(letter)).decode() + "\n")


@dlq_app.command("retry")
def dlq_retry_command(ident: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Apply a dead letter to the live view (after a fix) and remove it; the retry is logged."""
    letter = run_ops(lambda tools: dlq_retry(tools.client, tools.settings.keys, ident, by="cli"))
    err.print(f"retried {letter.id}: {letter.projection} now includes {letter.position}")


@dlq_app.command("drop")
def dlq_drop_command(
    ident: Annotated[str, typer.Argument(help="The dead letter's id.")],
    reason: Annotated[str, typer.Option(help="Why it is dropped (recorded in the dlq log).")],
) -> None:
    """Drop a dead letter, recording it and the reason in the dead-letter log."""
    letter = run_ops(
        lambda tools: dlq_drop(tools.client, tools.settings.keys, ident, reason=reason, by="cli")
    )
    err.print(f"dropped {letter.id} ({letter.projection} at {letter.position}): {reason}")
