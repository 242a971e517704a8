"""Fault tests: processes killed with ``kill -9`` and restarted, Redis going away."""
