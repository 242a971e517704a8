"""``ledger seed reference``: the reference scenario published through the public HTTP API.

Seeding and feed tokens: a feed token publishes only its own feed's events, and the
reference scenario has events of several feeds. ``seed`` therefore picks a token per event
``source``: ``--token`` (or ``LEDGER_SEED_TOKEN``) when given is used for every event (so it
suits a scenario of one feed, or a server that lets that token publish them all); otherwise
the feed tokens of ``LEDGER_TOKENS``; otherwise, on the embedded default, the tokens file the
server generated in the data directory (it holds a feed token per reference feed). Events are
published in order, one run of a feed's events at a time. Seeding twice writes nothing new:
the scenario's event ids are fixed, so the second time every event answers ``duplicate``.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from collections.abc import Sequence
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from events import AnyEvent
from services.cli.app import err, fail, seed, settings_or_exit
from services.client import LedgerClient
from services.errors import LedgerError, SettingsError
from services.protection.auth import feed_tokens, load_tokens_file, tokens_path
from services.reference import scenario
from services.settings import Settings

__all__ = ["batches", "default_url", "seed_reference", "tokens_by_feed"]


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
    settings = settings_or_exit()
    events = scenario()
    try:
        runs = batches(
            events, tokens_by_feed(settings, token or os.environ.get("LEDGER_SEED_TOKEN"))
        )
    except SettingsError as exc:
        raise fail(exc, 2) from None
    target = url or default_url(settings)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn())
    with Progress(*columns, TimeElapsedColumn(), console=err, transient=True) as progress:
        try:
            appended = asyncio.run(_publish(target, runs, progress))
        except LedgerError as exc:
            raise fail(exc, 1) from None
    err.print(
        f"published {len(events)} reference events to {target}: "
        f"{appended} appended, {len(events) - appended} already there",
        soft_wrap=True,
    )
