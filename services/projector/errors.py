"""The errors of the projectors (the runner's workers, rebuilds and the snapshot writer)."""

from __future__ import annotations

from services.errors import LedgerError

__all__ = [
    "CheckpointMovedError",
    "GenerationMovedError",
    "LeaseLostError",
    "ProjectorFailedError",
    "RebalancedError",
    "RunnerError",
]


class RunnerError(LedgerError):
    """Root of the projection runner's errors."""


class LeaseLostError(RunnerError):
    """Raised inside a worker when its lease turns out to be another's (or gone).

    The lease expired while the worker was paused or cut off and another process took it.
    The worker drops its state and competes for the lease again; nothing was committed.
    """


class CheckpointMovedError(RunnerError):
    """Raised inside a worker when the stored checkpoint is not the one its state is built on.

    Something else committed to the view since the worker loaded it; the worker reloads.
    """


class GenerationMovedError(RunnerError):
    """Raised inside a worker when its view's active generation is no longer the one it writes.

    A rebuild (:mod:`services.projector.replay`) swapped a new generation in; the worker
    reloads the new one and goes on from its checkpoint.
    """


class RebalancedError(RunnerError):
    """Raised inside a worker whose pool holds more than its fair share of the leases.

    Another projector process joined: the worker gives its lease up so that process can
    take it (see :meth:`services.projector.pool.ProjectorPool.surplus`).
    """


class ProjectorFailedError(RunnerError):
    """Raised by :meth:`~services.projector.pool.ProjectorPool.run_until_caught_up` and by a
    projector process (``ledger project``, which then exits for its supervisor to restart
    it) when a worker stopped on an error.

    The error is not one of Redis being unreachable (those are retried): a stored view that
    no longer decodes, or a fault injected by a test. The cause is chained.
    """
