"""The ``ledger`` command line: its apps, and what every command shares.

- ``ledger run [--projectors N]`` runs the deployed shape, every process under one
  supervisor in the foreground: the default (``make run``; :mod:`services.cli.supervised`).
- ``ledger serve [--no-projectors]`` runs the service in one process (see
  :mod:`services.bootstrap`).
- ``ledger seed reference [--url URL] [--token TOKEN]`` publishes the reference scenario
  through the public HTTP API, as any feed would.
- ``ledger project`` runs the projectors only (the projector containers of the deployment).
- Operator commands talk to Redis directly (``LEDGER_REDIS_URL``, or the embedded Redis a
  ``ledger serve`` on the same data directory runs): ``replay <projection>|all [--until]``,
  ``status [--json] [--max-lag N]``, ``verify <projection>|all``, ``dlq list|show|retry|drop``,
  ``export --out FILE``, ``import FILE`` / ``import --acled|--ucdp FILE --feed NAME`` /
  ``import --gdelt FILE --subject SLUG`` (:mod:`services.cli.importing`),
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
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from services.bootstrap import Ops, ops
from services.errors import LedgerError, SettingsError
from services.projector.replay_records import projections_named as _named
from services.runtime.embedded import port_path, running_url
from services.settings import Settings, load_settings

__all__ = [
    "dlq_app",
    "err",
    "fail",
    "main",
    "out",
    "projections_named",
    "redis_url_for",
    "run_ops",
    "seed",
    "settings_or_exit",
]

main = typer.Typer(
    name="ledger",
    help="incident-ledger: an event-sourced ledger of conflict incidents and statements.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold tokens
)
seed = typer.Typer(help="Publish a known data set through the HTTP API.", no_args_is_help=True)
main.add_typer(seed, name="seed")
dlq_app = typer.Typer(
    help="Dead letters of the projectors: list, show, retry, drop.", no_args_is_help=True
)
main.add_typer(dlq_app, name="dlq")

err = Console(stderr=True)
out = Console()
_R = TypeVar("_R")


def fail(exc: LedgerError, code: int) -> typer.Exit:
    """Print ``exc`` as an error and the exit that ends the command with ``code``."""
    err.print(Text.assemble(("error: ", "bold red"), str(exc)), soft_wrap=True)
    return typer.Exit(code)


def settings_or_exit() -> Settings:
    """The settings from the environment; exit status 2 naming the variable when one is bad."""
    try:
        return load_settings()
    except SettingsError as exc:
        raise fail(exc, 2) from None


def redis_url_for(settings: Settings) -> str:
    """The Redis the operator commands use: LEDGER_REDIS_URL, else the running embedded one."""
    if settings.redis_url:
        return settings.redis_url
    url = running_url(settings.data_dir)
    if url is None:
        raise LedgerError(
            f"the embedded Redis is not running (no {port_path(settings.data_dir)}): start "
            f"`ledger serve` with LEDGER_DATA_DIR={settings.data_dir}, or set LEDGER_REDIS_URL"
        )
    return url


def run_ops(work: Callable[[Ops], Awaitable[_R]]) -> _R:
    """Run ``work`` with the operator tools' wiring (:func:`services.bootstrap.ops`) for the
    configured Redis; exit status 1 on a :class:`LedgerError`."""
    settings = settings_or_exit()
    try:
        url = redis_url_for(settings)
    except LedgerError as exc:
        raise fail(exc, 1) from None

    async def go() -> _R:
        async with ops(settings, redis_url=url) as tools:
            return await work(tools)

    try:
        return asyncio.run(go())
    except LedgerError as exc:
        raise fail(exc, 1) from None


def projections_named(name: str) -> list[Any]:
    """The projection ``name`` or every one for ``all`` (:class:`LedgerError` otherwise)."""
    return _named(name)
