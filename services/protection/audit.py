"""The audit trail: who read exact community figures or private text, exported the log or
read dead letters, through which endpoint, when.

Exact counts of the dead by community are special-category data (GDPR Art. 9). Every answer
that carries them to a cleared role (``analyst`` or ``operator``; readers get them
suppressed, see :mod:`projections.suppression`) is recorded in the stream
``<prefix>:audit`` (:attr:`~services.store.keys.Keys.audit`) *before* the answer is sent: when
the record cannot be written the request fails (503, like any Redis outage) and nothing is
disclosed unrecorded.

The service only ever appends to the stream: no ``MAXLEN``, no ``XTRIM``, no ``XDEL``. Keeping
or archiving it is the data controller's decision, not the service's.

An entry's fields (all strings): ``token`` (the token's name, e.g. ``analyst``; never its
secret), ``role``, ``endpoint`` (``GET`` and the route's path template), ``filters`` (a JSON
object of the query and path parameters that were given), ``position`` (the log position
answered from, empty when none), ``as_of`` (empty unless asked) and ``lines`` (how many
exact community lines the answer held). The entry id gives the time to the millisecond.

The same stream records every answer that carries decrypted private text (an incident's
notes and urls, a timeline's speaker names; any role), every ``ledger export`` (before the
file is written; ``lines`` 0) and every read of dead letters (``GET /v1/admin/dlq``,
``ledger dlq list|show``). Operator commands are named by :func:`cli_principal`.

``ledger audit [--since ISO|position] [--json]`` lists the trail (:func:`read_audit`).
"""

from __future__ import annotations

import datetime as dt
import getpass
import hmac
import os
import re
from collections.abc import Mapping
from typing import Final

import msgspec
import redis.asyncio as aioredis

from events import recorded_at_of
from services.errors import LedgerError
from services.resp import field, text
from services.settings import Settings, Token
from services.store.keys import Keys
from services.store.log import stream_pages

__all__ = [
    "AuditEntry",
    "InvalidSinceError",
    "cli_principal",
    "parse_since",
    "read_audit",
    "record_access",
    "record_command",
    "record_read",
]

PAGE: Final = 1000
"""Entries read per ``XRANGE`` call."""
_POSITION: Final = re.compile(r"^\d{1,20}(-\d{1,20})?$")


class InvalidSinceError(LedgerError):
    """Raised when ``--since`` is neither an ISO 8601 date-time nor a stream position."""


class AuditEntry(msgspec.Struct, frozen=True, kw_only=True):
    """One answer that carried exact community figures."""

    id: str
    at: dt.datetime
    token: str
    role: str
    endpoint: str
    filters: dict[str, str]
    position: str | None
    as_of: str | None
    lines: int


async def record_read(
    client: aioredis.Redis,
    prefix: str,
    *,
    token: Token,
    endpoint: str,
    filters: Mapping[str, object],
    position: str | None,
    as_of: str | None = None,
    lines: int,
) -> str:
    """Append the record of one answer with exact figures or private text; its entry id."""
    return await record_access(
        client,
        prefix,
        principal=token.name,
        role=token.role,
        endpoint=endpoint,
        filters=filters,
        position=position,
        as_of=as_of,
        lines=lines,
    )


async def record_access(
    client: aioredis.Redis,
    prefix: str,
    *,
    principal: str,
    role: str,
    endpoint: str,
    filters: Mapping[str, object],
    position: str | None = None,
    as_of: str | None = None,
    lines: int = 0,
) -> str:
    """Append the record of one access by ``principal`` (a token's name, or ``cli:<user>``
    for an operator command); its entry id."""
    given = {name: str(value) for name, value in filters.items() if value is not None}
    fields = {
        "token": principal,
        "role": role,
        "endpoint": endpoint,
        "filters": msgspec.json.encode(given).decode(),
        "position": position or "",
        "as_of": as_of or "",
        "lines": str(lines),
    }
    ident = await client.xadd(Keys(prefix).audit, fields)  # type: ignore[arg-type]
    return ident.decode() if isinstance(ident, bytes) else str(ident)


async def record_command(
    client: aioredis.Redis, settings: Settings, endpoint: str, filters: Mapping[str, object]
) -> str:
    """Append the record of an operator command (named by :func:`cli_principal`)."""
    return await record_access(
        client,
        settings.key_prefix,
        principal=cli_principal(settings),
        role="operator",
        endpoint=endpoint,
        filters=filters,
    )


def cli_principal(settings: Settings, environ: Mapping[str, str] | None = None) -> str:
    """Who runs an operator command, for the audit trail: the name of the operator token in
    ``LEDGER_OPERATOR_TOKEN`` (one of ``LEDGER_TOKENS``), else ``cli:<OS user>``.

    Raises :class:`~services.errors.LedgerError` when ``LEDGER_OPERATOR_TOKEN`` is set but is
    not an operator token of the settings.
    """
    env = os.environ if environ is None else environ
    presented = env.get("LEDGER_OPERATOR_TOKEN")
    if not presented:
        return f"cli:{getpass.getuser()}"
    for token in settings.tokens:
        if token.role == "operator" and hmac.compare_digest(
            token.secret.encode(), presented.encode()
        ):
            return token.name
    raise LedgerError("LEDGER_OPERATOR_TOKEN is not an operator token of LEDGER_TOKENS")


def parse_since(text: str) -> str:
    """The first stream id at or after ``text``: a position (``ms[-seq]``) or ISO date-time.

    A date-time without a zone is taken as UTC. Raises :class:`InvalidSinceError`.
    """
    text = text.strip()
    if _POSITION.match(text):
        return text if "-" in text else f"{text}-0"
    try:
        moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidSinceError(
            f"--since must be an ISO 8601 date-time or a stream position, got {text!r}"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    millis = int(moment.timestamp() * 1000)
    return f"{max(millis, 0)}-0"


def _value(fields: Mapping[bytes | str, bytes | str], name: str) -> str:
    return text(field(fields, name) or b"")


def _entry(ident: bytes | str, fields: Mapping[bytes | str, bytes | str]) -> AuditEntry:
    position = ident.decode() if isinstance(ident, bytes) else str(ident)
    raw_filters = _value(fields, "filters") or "{}"
    try:
        filters = msgspec.json.decode(raw_filters, type=dict[str, str])
    except msgspec.ValidationError:  # written by this module, so never; shown as is otherwise
        filters = {"raw": raw_filters}
    lines = _value(fields, "lines")
    return AuditEntry(
        id=position,
        at=recorded_at_of(position),
        token=_value(fields, "token"),
        role=_value(fields, "role"),
        endpoint=_value(fields, "endpoint"),
        filters=filters,
        position=_value(fields, "position") or None,
        as_of=_value(fields, "as_of") or None,
        lines=int(lines) if lines.isdigit() else 0,
    )


async def read_audit(
    client: aioredis.Redis, prefix: str, *, since: str | None = None, limit: int | None = None
) -> list[AuditEntry]:
    """The audit entries from ``since`` on (see :func:`parse_since`; default: all), oldest
    first, at most ``limit``."""
    start = "-" if since is None else parse_since(since)
    found: list[AuditEntry] = []
    async for page in stream_pages(client, Keys(prefix).audit, low=start, size=PAGE, limit=limit):
        found += [_entry(ident, fields) for ident, fields in page if fields]
    return found
