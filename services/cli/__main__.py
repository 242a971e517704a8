"""``python -m services.cli``: the ``ledger`` command line."""

from services.cli import main

main()
