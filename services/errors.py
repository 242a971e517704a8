"""The root of the service layer's errors."""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by the ``services`` package."""


class SettingsError(LedgerError):
    """Raised at start-up when an environment variable holds a value the service cannot use.

    The message names the variable and says what it should hold.
    """
