"""Every edge of the ledger (event store, runners, HTTP, CLI, embedded Redis) and the wiring."""
