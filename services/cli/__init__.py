"""The ``ledger`` command line."""

from services.cli.commands import main

__all__ = ["main"]
