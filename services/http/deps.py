"""What the HTTP handlers share: the parts they use, kept in ``app.state.ledger``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from litestar import MediaType, Request, Response

from services.metrics import IngestMetrics
from services.protection.auth import Authenticator
from services.protection.limits import Limits
from services.store.base import EventStore
from services.store.headroom import Headroom
from services.store.sealing import SealingStore

__all__ = ["HttpDeps", "Ping", "deps_of", "json_response"]

Ping = Callable[[], Awaitable[object]]
"""Asks the store's Redis whether it answers (``/readyz``)."""


class HttpDeps:
    """Everything the handlers use, kept in ``app.state.ledger``.

    ``sealing`` is the store again when it seals private text (the service's always does):
    erasure and the read side's revealing of private text need it; without it they answer
    that this process does not seal, or show documents as stored.
    """

    def __init__(
        self,
        *,
        store: EventStore,
        auth: Authenticator,
        metrics: IngestMetrics,
        ping: Ping | None,
        append_timeout: float,
        asyncapi: Callable[[], Mapping[str, Any]] | None,
        sealing: SealingStore | None = None,
        limits: Limits | None = None,
        headroom: Headroom | None = None,
    ) -> None:
        self.store, self.auth, self.metrics = store, auth, metrics
        self.ping, self.append_timeout, self.asyncapi = ping, append_timeout, asyncapi
        self.sealing = sealing
        self.limits = limits
        """Rates, quotas and open streams (:mod:`services.protection.limits`); ``None``: none."""
        self.headroom = headroom
        """Ingest's check of Redis's memory (507 before Redis refuses writes); ``None``: none."""


def deps_of(request: Request[Any, Any, Any]) -> HttpDeps:
    """The handlers' parts, from the request's app."""
    found: HttpDeps = request.app.state.ledger
    return found


def json_response(
    status: int, body: Any, headers: Mapping[str, str] | None = None
) -> Response[Any]:
    """A JSON answer with ``status``."""
    return Response(body, status_code=status, media_type=MediaType.JSON, headers=headers)
