"""The errors of reading and writing stored views."""

from __future__ import annotations

from services.errors import LedgerError

__all__ = [
    "AsOfError",
    "CorruptViewError",
    "UnknownKindError",
    "UnlistableChangeError",
    "ViewChangedError",
    "ViewError",
    "ViewMovedError",
]


class ViewError(LedgerError):
    """Root of the errors of reading a stored view."""


class UnknownKindError(ViewError):
    """Raised when a document kind is asked for that the projection does not declare."""


class CorruptViewError(ViewError):
    """Raised when a stored document does not decode as its kind's type.

    The view was written by another version of the projection (whose fold meaning changed
    without a version bump) or by hand; rebuilding it under a new version is the remedy.
    """


class UnlistableChangeError(ViewError):
    """Raised before a write that would leave a listing index wrong: a document of a kind
    kept in one deleted (its place there is known only from the document), or a group name
    holding white space or ``:``. Nothing is written."""


class ViewChangedError(ViewError):
    """Raised by a paged load when the checkpoint moved while the view was read.

    Someone else committed to the view meanwhile: the caller does not hold the view's lease
    (or lost it), so the pages it read may mix two checkpoints and must be thrown away.
    """


class ViewMovedError(ViewError):
    """Raised by a view store's write when the view is not where the writer's state is.

    Its checkpoint is not the one the writer expected, or the generation written is no
    longer the active one: someone else wrote the view meanwhile, so the writer reloads.
    """


class AsOfError(ViewError):
    """Root of the errors of as-of reads and snapshots."""
