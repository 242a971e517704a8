"""Operators' use cases: status, verification, dead letters, export and import."""
