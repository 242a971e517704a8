"""The ``ledger`` CLI run in process against a test's Redis and key prefix."""

from __future__ import annotations

from typer.testing import CliRunner, Result

__all__ = ["ledger"]


def ledger(redis_url: str, prefix: str, *args: str, **env: str) -> Result:
    """Run ``ledger <args>`` with ``LEDGER_REDIS_URL``, ``LEDGER_KEY_PREFIX``, no tokens, and
    any other ``LEDGER_*`` variables given as ``env`` (``LEDGER_PARTITIONS="3"``). It runs its
    own event loop: call it from a worker thread in an async test."""
    from services.cli import main

    variables = {"LEDGER_REDIS_URL": redis_url, "LEDGER_KEY_PREFIX": prefix, "LEDGER_TOKENS": ""}
    return CliRunner().invoke(main, list(args), env={**variables, **env})
