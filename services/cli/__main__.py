"""``python -m services.cli``: the ``ledger`` command line."""

from services.cli.commands import main

main()
