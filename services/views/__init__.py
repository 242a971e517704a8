"""The read side's storage: stored views, their freshness, as-of reads from snapshots."""
