"""The ``ledger`` command line: every command registered on :data:`main`."""

from services.cli import feeds, importing, operating, seeding, serving, transfer
from services.cli.app import main

__all__ = ["feeds", "importing", "main", "operating", "seeding", "serving", "transfer"]
