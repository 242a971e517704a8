"""The ``ledger`` command line.

- ``ledger serve [--no-projectors]`` runs the service (see :mod:`services.bootstrap`).
- ``ledger seed reference [--url URL] [--token TOKEN]`` publishes the reference scenario
  through the public HTTP API, as any feed would.
- ``ledger project`` runs the projectors only (the projector containers of the deployment).
- Operator commands talk to Redis directly (``LEDGER_REDIS_URL``, or the embedded Redis a
  ``ledger serve`` on the same data directory runs): ``replay <projection>|all [--until]``,
  ``status [--json] [--max-lag N]``, ``verify <projection>|all``, ``dlq list|show|retry|drop``,
  ``export --out FILE``, ``import FILE`` / ``import --acled FILE.csv --feed NAME``,
  ``audit [--since ISO|position] [--json]`` (who read exact community figures).

Seeding and feed tokens: a feed token publishes only its own feed's events, and the
reference scenario has events of several feeds. ``seed`` therefore picks a token per event
``source``: ``--token`` (or ``LEDGER_SEED_TOKEN``) when given is used for every event (so it
suits a scenario of one feed, or a server that lets that token publish them all); otherwise
the feed tokens of ``LEDGER_TOKENS``; otherwise, on the embedded default, the tokens file the
server generated in the data directory (it holds a feed token per reference feed). Events are
sent in scenario order, each run of consecutive events of one feed as one batch. Seeding
twice writes nothing new: the scenario's event ids are fixed, so the second time every event
answers ``duplicate``.

Any :class:`~services.errors.SettingsError` ends the command with its message on stderr and
exit status 2; a refused publication with status 1.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from events import AnyEvent
from services.errors import LedgerError, SettingsError
from services.protection.auth import feed_tokens, load_tokens_file, tokens_path
from services.settings import Settings, load_settings

main = typer.Typer(
    name="ledger",
    help="incident-ledger: an event-sourced ledger of conflict incidents and statements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
seed = typer.Typer(help="Publish a known data set through the HTTP API.", no_args_is_help=True)
main.add_typer(seed, name="seed")

_err = Console(stderr=True)
_R = TypeVar("_R")


def _fail(exc: LedgerError, code: int) -> typer.Exit:
    _err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
    return typer.Exit(code)


def _settings() -> Settings:
    try:
        return load_settings()
    except SettingsError as exc:
        raise _fail(exc, 2) from None


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
    from services.bootstrap import run  # noqa: PLC0415  # keep `ledger --help` light

    settings = _settings()
    try:
        run(settings, projectors=settings.projectors and projectors, json_logs=json_logs)
    except SettingsError as exc:
        raise _fail(exc, 2) from None
    except LedgerError as exc:  # e.g. the embedded Redis would not start
        raise _fail(exc, 1) from None


def default_url(settings: Settings) -> str:
    """The URL of the local service according to the settings."""
    host = settings.http_host
    if host in ("0.0.0.0", "::", ""):  # noqa: S104  # listening everywhere; talk to loopback
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def tokens_by_feed(settings: Settings, token: str | None) -> dict[str, str] | str:
    """The token to publish with: one for everything, or one per feed (see the module doc)."""
    if token:
        return token
    by_feed = feed_tokens(settings.tokens)
    if by_feed:
        return by_feed
    path = tokens_path(settings.data_dir)
    if settings.embedded and path.exists():
        return feed_tokens(load_tokens_file(path))
    raise SettingsError(
        "LEDGER_SEED_TOKEN: no token to publish with; pass --token, set LEDGER_SEED_TOKEN or "
        f"LEDGER_TOKENS, or start `ledger serve` once on the embedded default to create {path}"
    )


def batches(
    events: Sequence[AnyEvent], tokens: dict[str, str] | str
) -> list[tuple[str, list[AnyEvent]]]:
    """Consecutive runs of one feed's events with the token to send them with, in order."""
    runs: list[tuple[str, list[AnyEvent]]] = []
    for source, run in itertools.groupby(events, key=lambda e: e.source):
        if isinstance(tokens, str):
            runs.append((tokens, list(run)))
            continue
        if source not in tokens:
            raise SettingsError(
                f"LEDGER_TOKENS: no feed token for feed {source!r} "
                f"(add feed:{source}=<token>, or pass --token)"
            )
        runs.append((tokens[source], list(run)))
    return runs


async def _publish(url: str, runs: list[tuple[str, list[AnyEvent]]], progress: Progress) -> int:
    from services.client import LedgerClient  # noqa: PLC0415  # httpx only when publishing

    task = progress.add_task("publishing", total=sum(len(r) for _, r in runs))
    appended = 0
    for token, run in runs:
        client = LedgerClient(url, token)
        try:
            results = await client.publish(run)
        finally:
            await client.aclose()
        appended += sum(getattr(r, "status", None) == "appended" for r in results)
        progress.advance(task, len(run))
    return appended


@seed.command("reference")
def seed_reference(
    url: Annotated[
        str | None, typer.Option(help="Base URL of the API (default: from the settings).")
    ] = None,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="LEDGER_SEED_TOKEN",
            help="A token for every event (default: a feed token per event's source).",
            show_envvar=True,
        ),
    ] = None,
) -> None:
    """Publish the reference scenario (coastal Syria, March 2025) through the HTTP API."""
    from services.reference import scenario  # noqa: PLC0415  # keep `ledger --help` light

    settings = _settings()
    events = scenario()
    try:
        runs = batches(
            events, tokens_by_feed(settings, token or os.environ.get("LEDGER_SEED_TOKEN"))
        )
    except SettingsError as exc:
        raise _fail(exc, 2) from None
    target = url or default_url(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=_err, transient=True) as progress:
        try:
            appended = asyncio.run(_publish(target, runs, progress))
        except LedgerError as exc:
            raise _fail(exc, 1) from None
    _err.print(
        f"published {len(events)} reference events to {target}: "
        f"{appended} appended, {len(events) - appended} already there",
        soft_wrap=True,
    )


# --- operator commands: they talk to Redis directly -------------------------------------------

dlq_app = typer.Typer(
    help="Dead letters of the projectors: list, show, retry, drop.", no_args_is_help=True
)
main.add_typer(dlq_app, name="dlq")

_out = Console()


def redis_url_for(settings: Settings) -> str:
    """The Redis the operator commands use: LEDGER_REDIS_URL, else the running embedded one."""
    if settings.redis_url:
        return settings.redis_url
    from services.runtime.embedded import port_path, running_url  # noqa: PLC0415  # keep `ledger --help` light

    url = running_url(settings.data_dir)
    if url is None:
        raise LedgerError(
            f"the embedded Redis is not running (no {port_path(settings.data_dir)}): start "
            f"`ledger serve` with LEDGER_DATA_DIR={settings.data_dir}, or set LEDGER_REDIS_URL"
        )
    return url


def _run_ops(work: Callable[[Any, Settings], Awaitable[_R]]) -> _R:
    """Run ``work(client, settings)`` on a Redis client for the configured Redis."""
    import redis.exceptions as rexc  # noqa: PLC0415

    from services.store.redis import connect  # noqa: PLC0415

    settings = _settings()
    try:
        url = redis_url_for(settings)
    except LedgerError as exc:
        raise _fail(exc, 1) from None

    async def go() -> _R:
        client = connect(url, cluster=settings.cluster, socket_timeout=60)
        try:
            try:
                await client.ping()
            except (rexc.ConnectionError, rexc.TimeoutError, OSError) as exc:
                pool = getattr(client, "connection_pool", None)
                where = pool.connection_kwargs if pool is not None else {}
                raise LedgerError(
                    f"cannot reach Redis at {where.get('host', url)}:{where.get('port', '')}: {exc}"
                ) from None
            return await work(client, settings)
        finally:
            await client.aclose()

    try:
        return asyncio.run(go())
    except LedgerError as exc:
        raise _fail(exc, 1) from None


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
    import argparse  # noqa: PLC0415

    from services.logging import configure_logging  # noqa: PLC0415
    from services.projector.runner import serve_projectors  # noqa: PLC0415

    settings = _settings()
    try:
        url = redis_url_for(settings)
        for name in projection or []:
            projections_named(name)
    except LedgerError as exc:
        raise _fail(exc, 2) from None
    configure_logging(json=json_logs)
    args = argparse.Namespace(
        redis_url=url,
        prefix=settings.key_prefix,
        projection=projection or None,
        claim_idle_ms=settings.claim_idle_ms,
        lease_ms=lease_ms,
        batch_size=batch_size,
        consumer=consumer,
    )
    try:
        asyncio.run(serve_projectors(args))
    except LedgerError as exc:
        raise _fail(exc, 1) from None


@main.command()
def snapshots(
    json_logs: Annotated[
        bool | None,
        typer.Option("--json-logs/--console-logs", help="Log format (default: JSON unless a TTY)."),
    ] = None,
) -> None:
    """Write the as-of snapshots, until SIGTERM/SIGINT (a process beside `ledger project`).

    It lowers its own scheduling priority (nice 10): a snapshot of a big log's state takes
    seconds of CPU, which on a shared machine should come from idle time, not from the API's
    or the projectors' (at 1M events it held live latency at seconds without).
    """
    from services.logging import configure_logging  # noqa: PLC0415
    from services.views.asof import SnapshotsOffError, serve_snapshots  # noqa: PLC0415

    os.nice(10)
    settings = _settings()
    try:
        url = redis_url_for(settings)
    except LedgerError as exc:
        raise _fail(exc, 2) from None
    configure_logging(json=json_logs)
    try:
        asyncio.run(serve_snapshots(settings, url))
    except SnapshotsOffError as exc:
        raise _fail(exc, 2) from None
    except LedgerError as exc:
        raise _fail(exc, 1) from None


def projections_named(name: str) -> list[Any]:
    """The projection ``name`` or every one for ``all`` (:class:`LedgerError` otherwise)."""
    from services.projector.replay import projections_named as named  # noqa: PLC0415

    return named(name)


@main.command()
def replay(
    projection: Annotated[str, typer.Argument(help="A projection's name, or all.")],
    until: Annotated[
        str | None,
        typer.Option(help="Build the view as it stood at a log position or ISO datetime."),
    ] = None,
    batch_size: Annotated[int, typer.Option(help="Events per batch.")] = 1000,
) -> None:
    """Rebuild a view beside the live one and swap it in (resumes an interrupted rebuild)."""
    from services.ops.core import progress_display  # noqa: PLC0415
    from services.projector.replay import Replay, parse_until, refuse_until_partitioned  # noqa: PLC0415
    from services.views.stored import view_keys  # noqa: PLC0415

    try:
        chosen = projections_named(projection)
        bound = None if until is None else parse_until(until)
        if bound is not None:
            refuse_until_partitioned(_settings().keys)
    except LedgerError as exc:
        raise _fail(exc, 2) from None

    async def work(client: Any, settings: Settings) -> None:
        for one in chosen:
            with progress_display(f"{one.name} v{one.version}", stream=sys.stderr) as progress:
                job = Replay(
                    client,
                    one,
                    prefix=settings.keys,
                    batch_size=batch_size,
                    progress=progress,
                )
                if bound is None:
                    record = await job.run()
                    _err.print(
                        f"{one.name} v{one.version}: generation {record.generation} is live "
                        f"at {record.checkpoint or 'the empty log'} ({record.done} events)",
                        soft_wrap=True,
                    )
                    continue
                name, checkpoint = await job.build_until(bound)
            keys = view_keys(settings.keys, one, name)
            _out.print(
                f"{one.name} v{one.version} as of {checkpoint or 'the empty log'} is built "
                f"under generation {name}:\n"
                + "".join(f"  {kind}: HGETALL {key}\n" for kind, key in keys.kinds.items())
                + f"  checkpoint: HGET {keys.meta} position\n"
                + f"  in Python: services.views.stored.load_view(client, {settings.key_prefix!r}, "
                f"PROJECTIONS[{one.name!r}], generation={name!r})",
                soft_wrap=True,
                highlight=False,
            )

    _run_ops(work)


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
    """Views (generation, checkpoint, lag, pending, consumers, dead letters), log and Redis."""
    import msgspec  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    from services.ops.core import ledger_status  # noqa: PLC0415

    found = _run_ops(lambda client, settings: ledger_status(client, settings.keys))
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
                str(row.pending),
                str(len(row.consumers)),
                str(row.dead_letters),
                row.rebuild or "-",
            )
        _out.print(table)
        log, redis_ = found.log, found.redis
        _out.print(
            f"log: {log.length} events in {log.partitions} partition(s), "
            f"first {log.first or '-'}, last {log.last or '-'}\n"
            f"redis: used_memory {redis_.used_memory}, maxmemory {redis_.maxmemory}, "
            f"policy {redis_.maxmemory_policy}, appendonly {redis_.appendonly}, "
            f"appendfsync {redis_.appendfsync}, save {redis_.save!r}",
            highlight=False,
            soft_wrap=True,
        )
    if max_lag is not None and found.max_lag() > max_lag:
        _err.print(f"lag {found.max_lag()} exceeds --max-lag {max_lag}")
        raise typer.Exit(2)


@main.command()
def verify(
    projection: Annotated[str, typer.Argument(help="A projection's name, or all.")],
) -> None:
    """Compare stored views with the pure fold of the log to their checkpoints; 1 if any differ."""
    from services.ops.core import verify_all  # noqa: PLC0415

    try:
        chosen = projections_named(projection)
    except LedgerError as exc:
        raise _fail(exc, 2) from None

    async def work(client: Any, settings: Settings) -> list[Any]:
        return [result for one in chosen for result in await verify_all(client, settings.keys, one)]

    results = _run_ops(work)
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
            _out.print(f"{head}: ok", highlight=False, soft_wrap=True)
            continue
        bad += 1
        _out.print(
            f"{head}: {len(result.differences)} differences", highlight=False, soft_wrap=True
        )
        for diff in result.differences:
            _out.print(
                f"  {diff.kind}/{diff.id}\n    stored:   {diff.stored}\n"
                f"    expected: {diff.expected}",
                highlight=False,
                soft_wrap=True,
            )
    if bad:
        raise typer.Exit(1)


@dlq_app.command("list")
def dlq_list_command(
    limit: Annotated[int, typer.Option(help="How many, oldest first.")] = 100,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """List dead letters, oldest first."""
    import msgspec  # noqa: PLC0415

    from services.ops.core import dlq_list  # noqa: PLC0415

    letters = _run_ops(lambda client, settings: dlq_list(client, settings.keys, count=limit))
    if as_json:
        sys.stdout.write(msgspec.json.encode(letters).decode() + "\n")
        return
    for letter in letters:
        _out.print(
            f"{letter.id}  {letter.projection} v{letter.version}  at {letter.position}  "
            f"{letter.error_type}: {letter.error[:120]}",
            highlight=False,
            soft_wrap=True,
        )
    if not letters:
        _err.print("no dead letters")


@dlq_app.command("show")
def dlq_show_command(ident: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Show one dead letter with its entry."""
    import msgspec  # noqa: PLC0415

    from services.ops.core import dlq_show  # noqa: PLC0415

    letter = _run_ops(lambda client, settings: dlq_show(client, settings.keys, ident))
    sys.stdout.write(msgspec.json.format(msgspec.json.encode(letter)).decode() + "\n")


@dlq_app.command("retry")
def dlq_retry_command(ident: Annotated[str, typer.Argument(help="The dead letter's id.")]) -> None:
    """Apply a dead letter to the live view (after a fix) and remove it; the retry is logged."""
    from services.ops.core import dlq_retry  # noqa: PLC0415

    letter = _run_ops(lambda client, settings: dlq_retry(client, settings.keys, ident, by="cli"))
    _err.print(f"retried {letter.id}: {letter.projection} now includes {letter.position}")


@dlq_app.command("drop")
def dlq_drop_command(
    ident: Annotated[str, typer.Argument(help="The dead letter's id.")],
    reason: Annotated[str, typer.Option(help="Why it is dropped (recorded in the dlq log).")],
) -> None:
    """Drop a dead letter, recording it and the reason in the dead-letter log."""
    from services.ops.core import dlq_drop  # noqa: PLC0415

    letter = _run_ops(
        lambda client, settings: dlq_drop(client, settings.keys, ident, reason=reason, by="cli")
    )
    _err.print(f"dropped {letter.id} ({letter.projection} at {letter.position}): {reason}")


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
    """Export the log as JSON lines (position, recorded_at, type, v, event)."""
    from services.ops.core import progress_display  # noqa: PLC0415
    from services.ops.transfer import export_events  # noqa: PLC0415
    from services.store.sealing import keyring_for  # noqa: PLC0415

    async def work(client: Any, settings: Settings) -> int:
        keyring = keyring_for(settings.keyring, client, settings.key_prefix)
        with out.open("wb") as handle, progress_display("export", stream=sys.stderr) as progress:
            return await export_events(
                client,
                settings.keys,
                handle,
                start=start,
                end=end,
                progress=progress,
                keyring=keyring,
            )

    written = _run_ops(work)
    _err.print(f"exported {written} events to {out}")


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
    from services.ops.core import progress_display  # noqa: PLC0415
    from services.ops.transfer import (  # noqa: PLC0415
        OnError,
        acled_rows,
        count_lines,
        import_acled,
        import_lines,
    )
    from services.store.redis import RedisEventStore  # noqa: PLC0415

    if on_error not in ("stop", "skip"):
        raise _fail(SettingsError("--on-error must be stop or skip"), 2)
    if (path is None) == (acled is None):
        raise _fail(SettingsError("give a JSON-lines file or --acled FILE.csv (one of them)"), 2)
    if acled is not None and not feed:
        raise _fail(
            SettingsError("--acled needs --feed NAME (the feed the rows are published as)"), 2
        )

    mode: OnError = "skip" if on_error == "skip" else "stop"

    from services.store.sealing import SealingStore, keyring_for  # noqa: PLC0415

    async def work(client: Any, settings: Settings) -> Any:
        store = SealingStore(
            RedisEventStore(
                client,
                prefix=settings.key_prefix,
                partitions=settings.partitions,
                cluster=settings.cluster,
            ),
            keyring_for(settings.keyring, client, settings.key_prefix),
        )
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

    report = _run_ops(work)
    for problem in report.problems:
        _err.print(f"line {problem.line}: {problem.message}", soft_wrap=True, highlight=False)
    _err.print(
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
    from events import InvalidEventError  # noqa: PLC0415
    from services.store.base import AppendRejectedError  # noqa: PLC0415
    from services.store.redis import RedisEventStore  # noqa: PLC0415
    from services.store.sealing import SealingStore, keyring_for  # noqa: PLC0415
    from services.store.sealing import erase as erase_text  # noqa: PLC0415

    if kind not in ("incident", "statement"):
        raise _fail(SettingsError(f"KIND must be incident or statement, got {kind!r}"), 2)

    async def work(client: Any, settings: Settings) -> Any:
        store = SealingStore(
            RedisEventStore(
                client,
                prefix=settings.key_prefix,
                partitions=settings.partitions,
                cluster=settings.cluster,
            ),
            keyring_for(settings.keyring, client, settings.key_prefix),
        )
        try:
            return await erase_text(store, kind, ident, reason)  # type: ignore[arg-type]
        except (InvalidEventError, AppendRejectedError) as exc:
            raise LedgerError(str(exc)) from None

    done = _run_ops(work)
    _err.print(
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
) -> None:
    """Who read exact community figures: token, endpoint, filters, when (oldest first)."""
    import msgspec  # noqa: PLC0415

    from services.protection.audit import parse_since, read_audit  # noqa: PLC0415

    if since is not None:
        try:
            parse_since(since)
        except LedgerError as exc:
            raise _fail(exc, 2) from None
    entries = _run_ops(
        lambda client, settings: read_audit(client, settings.key_prefix, since=since)
    )
    if as_json:
        sys.stdout.write("".join(msgspec.json.encode(e).decode() + "\n" for e in entries))
        return
    for e in entries:  # one line per entry, so the trail greps
        filters = " ".join(f"{k}={v}" for k, v in sorted(e.filters.items())) or "-"
        _out.print(
            f"{e.id}  {e.at:%Y-%m-%dT%H:%M:%S}Z  {e.token}  {e.endpoint}  {filters}  "
            f"position={e.position or '-'}  lines={e.lines}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
    _err.print(f"{len(entries)} audit entries")
