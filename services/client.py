"""A typed Python client of the ledger's HTTP API: publish event Structs, get typed errors.

::

    async with LedgerClient("http://127.0.0.1:8000", token) as ledger:
        results = await ledger.publish([event, ...])

:meth:`LedgerClient.publish` sends the events as JSON arrays of at most ``batch_size``
events, batch after batch, and returns one :class:`~services.store.base.Appended` per
event in order. An answer of 503, or no answer at all (connection refused, reset, timed
out), is retried with the *same* events, so the same event ids: appends are idempotent by
event id, and an event that was written before the answer got lost comes back as
``duplicate`` with its original position. Between attempts the client waits the longer of
the server's ``Retry-After`` and an exponential backoff. An answer of 429 (the token over
its rate) is waited out for as long as its ``Retry-After`` says, without counting against
the retries; a 429 asking for longer than ``max_wait`` (a feed's hourly quota spent) raises
:class:`PublishLimitedError`.

Every error derives from :class:`PublishError`; each carries ``published``, the results of
the batches accepted before the failing one (a batch is all or nothing on the server).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Final, Self

import httpx
import msgspec

from events import AnyEvent, encode
from services.errors import LedgerError
from services.store.base import Appended

DEFAULT_BATCH: Final = 1000
"""Events per request unless told otherwise (the API takes up to 5,000)."""


class PublishProblem(msgspec.Struct, frozen=True):
    """One field at fault: the event's index in the whole publish call, the field, what."""

    index: int
    field: str
    message: str


class PublishError(LedgerError):
    """Root of the client's errors. ``published`` holds the batches accepted before it."""

    def __init__(self, message: str, published: list[Appended] | None = None) -> None:
        self.published: list[Appended] = published or []
        super().__init__(message)


class PublishRejectedError(PublishError):
    """Raised on 422: an event is invalid, or breaks a rule of the log; its batch is unwritten.

    ``errors`` lists every problem with the event's index in the whole publish call.
    """

    def __init__(self, errors: list[PublishProblem], published: list[Appended]) -> None:
        self.errors = errors
        text = "; ".join(f"[{e.index}].{e.field}: {e.message}" for e in errors[:5])
        super().__init__(f"events rejected: {text}", published)


class PublishConflictError(PublishError):
    """Raised on 409: an event conflicts with its entity's version; its batch is unwritten.

    ``index`` is the event's place in the whole publish call, ``entity`` its entity and
    ``current_version`` the entity's version on the server.
    """

    def __init__(
        self,
        *,
        index: int,
        entity: str,
        current_version: int,
        message: str,
        published: list[Appended],
    ) -> None:
        self.index, self.entity, self.current_version = index, entity, current_version
        super().__init__(f"[{index}] {entity}: {message} (version {current_version})", published)


class PublishIdReusedError(PublishError):
    """Raised on 409 ``id_reused`` or ``id_taken``: an event id the ledger holds came with
    another body, or is another feed's; its batch is unwritten. Never retried: the event
    needs a new id.

    ``index`` is the event's place in the whole publish call, ``reason`` the answer's
    ``error`` and ``position`` the original event's position (``id_reused`` only).
    """

    def __init__(
        self,
        *,
        index: int,
        reason: str,
        position: str | None,
        message: str,
        published: list[Appended],
    ) -> None:
        self.index, self.reason, self.position = index, reason, position
        super().__init__(f"[{index}] {reason}: {message}", published)


class PublishAuthError(PublishError):
    """Raised on 401 (unknown or missing token) or 403 (the token may not publish these)."""

    def __init__(self, status: int, message: str, published: list[Appended]) -> None:
        self.status = status
        super().__init__(f"{status}: {message}", published)


class PublishNotOwnerError(PublishAuthError):
    """Raised on 403 ``not_owner``: an event changes an incident or statement another feed
    owns; its batch is unwritten. ``index`` is the event's place in the whole publish call,
    ``owner`` the owning feed (disagree with ``incident.disputed`` instead)."""

    def __init__(self, *, index: int, owner: str, message: str, published: list[Appended]) -> None:
        self.index, self.owner = index, owner
        super().__init__(403, f"[{index}] {message}", published)


class ServiceUnavailableError(PublishError):
    """Raised when the ledger answered 503 or could not be reached on every attempt.

    ``attempts`` is how many requests were made for the failing batch. Re-publishing the
    same events later is safe.
    """

    def __init__(self, message: str, attempts: int, published: list[Appended]) -> None:
        self.attempts = attempts
        super().__init__(message, published)


class UnexpectedResponseError(PublishError):
    """Raised on any other answer (413, 415, 5xx other than 503, a body that is not JSON)."""

    def __init__(self, status: int, message: str, published: list[Appended]) -> None:
        self.status = status
        super().__init__(f"{status}: {message}", published)


class _Accepted(msgspec.Struct):
    results: list[Appended]


class _Invalid(msgspec.Struct):
    errors: list[PublishProblem]


class _Conflict(msgspec.Struct):
    index: int
    message: str
    error: str = "conflict"
    entity: str = ""
    current_version: int = 0
    position: str | None = None


class _NotOwner(msgspec.Struct):
    error: str
    index: int = 0
    owner: str = ""
    message: str = ""


class _Error(msgspec.Struct):
    message: str = ""


def _retry_after(response: httpx.Response) -> float:
    """Seconds the server asked to wait (``Retry-After`` in seconds), 0 when it did not."""
    try:
        return max(0.0, float(response.headers.get("retry-after", "0")))
    except ValueError:  # an HTTP date: the ledger never sends one; fall back to backoff
        return 0.0


class PublishLimitedError(PublishError):
    """Raised on a 429 whose ``Retry-After`` is longer than the client waits (``max_wait``):
    the feed's hourly quota is spent. ``retry_after`` is the seconds the ledger asked for."""

    def __init__(self, message: str, retry_after: float, published: list[Appended]) -> None:
        self.retry_after = retry_after
        super().__init__(message, published)


class LedgerClient:
    """Publishes events to one ledger with one bearer token (a feed token).

    ``retries`` is how many times a batch is re-sent after a 503 or a transport error;
    the wait before retry *n* (0-based) is ``max(Retry-After, backoff * 2**n)``, capped at
    ``max_wait`` seconds. ``transport`` replaces httpx's network transport (for an
    in-process app: ``httpx.ASGITransport(app)``).
    """

    def __init__(
        self,
        base_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.2,
        max_wait: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        if retries < 0:
            raise ValueError("retries must not be negative")
        self.retries, self.backoff, self.max_wait = retries, backoff, max_wait
        self._http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
            timeout=timeout,
            transport=transport,
        )

    def __repr__(self) -> str:  # never the token
        return f"LedgerClient({str(self._http.base_url)!r})"

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def publish(
        self, events: Sequence[AnyEvent], *, batch_size: int = DEFAULT_BATCH
    ) -> list[Appended]:
        """Publish ``events`` in order, ``batch_size`` per request; one result per event.

        Raises :class:`PublishRejectedError`, :class:`PublishConflictError`,
        :class:`PublishAuthError`, :class:`ServiceUnavailableError` or
        :class:`UnexpectedResponseError`; batches before the failing one stay written.
        """
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        published: list[Appended] = []
        for start in range(0, len(events), batch_size):
            batch = events[start : start + batch_size]
            body = b"[" + b",".join(encode(event) for event in batch) + b"]"
            published += await self._send(body, start, published)
        return published

    async def _send(self, body: bytes, offset: int, published: list[Appended]) -> list[Appended]:
        """POST one batch, retrying on 503 and transport errors; decode the answer."""
        attempt = 0
        while True:
            attempt += 1
            wait = min(self.backoff * 2 ** (attempt - 1), self.max_wait)
            try:
                response = await self._http.post("/v1/events", content=body)
            except httpx.TransportError as exc:
                reason = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code == 429:
                    await self._wait_out(response, published)
                    attempt -= 1  # a rate limit is no failure: it spends no retry
                    continue
                if response.status_code != 503:
                    return self._answer(response, offset, published)
                reason = "503: " + _message(response)
                wait = min(max(wait, _retry_after(response)), self.max_wait)
            if attempt > self.retries:
                raise ServiceUnavailableError(
                    f"the ledger is unavailable after {attempt} attempts: {reason}",
                    attempt,
                    list(published),
                )
            await asyncio.sleep(wait)

    async def _wait_out(self, response: httpx.Response, published: list[Appended]) -> None:
        """Sleep the ``Retry-After`` of a 429, or raise when it is longer than ``max_wait``."""
        wait = max(_retry_after(response), self.backoff)
        if wait > self.max_wait:
            raise PublishLimitedError(
                f"429: {_message(response)}", _retry_after(response), list(published)
            )
        await asyncio.sleep(wait)

    @staticmethod
    def _answer(response: httpx.Response, offset: int, published: list[Appended]) -> list[Appended]:
        status, content = response.status_code, response.content
        done = list(published)
        try:
            if status in (200, 201, 202):
                return msgspec.json.decode(content, type=_Accepted).results
            if status == 422:
                invalid = msgspec.json.decode(content, type=_Invalid)
                errors = [
                    PublishProblem(e.index + offset, e.field, e.message) for e in invalid.errors
                ]
                raise PublishRejectedError(errors, done)
            if status == 409:
                conflict = msgspec.json.decode(content, type=_Conflict)
                if conflict.error in ("id_reused", "id_taken"):
                    raise PublishIdReusedError(
                        index=conflict.index + offset,
                        reason=conflict.error,
                        position=conflict.position,
                        message=conflict.message,
                        published=done,
                    )
                raise PublishConflictError(
                    index=conflict.index + offset,
                    entity=conflict.entity,
                    current_version=conflict.current_version,
                    message=conflict.message,
                    published=done,
                )
            refused = _not_owner(content) if status == 403 else None
            if refused is not None:
                raise PublishNotOwnerError(
                    index=refused.index + offset,
                    owner=refused.owner,
                    message=refused.message,
                    published=done,
                )
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise UnexpectedResponseError(status, f"unreadable answer: {exc}", done) from exc
        if status in (401, 403):
            raise PublishAuthError(status, _message(response), done)
        raise UnexpectedResponseError(status, _message(response), done)


def _not_owner(content: bytes) -> _NotOwner | None:
    """The body of a 403 ``not_owner`` answer, or ``None`` for any other 403."""
    try:
        refused = msgspec.json.decode(content, type=_NotOwner)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return refused if refused.error == "not_owner" else None


def _message(response: httpx.Response) -> str:
    """The ``message`` of an error body, or the start of the body as text."""
    try:
        return msgspec.json.decode(response.content, type=_Error).message or response.text[:200]
    except (msgspec.DecodeError, msgspec.ValidationError):
        return response.text[:200]
