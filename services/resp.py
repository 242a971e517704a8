"""Values of Redis replies as text, whatever protocol version and decoding a client uses.

A client made with ``decode_responses`` answers ``str``, one without answers ``bytes``, and
RESP3 nests some replies differently from RESP2: the service reads replies through these
helpers so that no module has to care which.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["field", "paired", "stream_entries", "text"]


def text(value: Any) -> str:
    """A reply value as text (bytes decoded as UTF-8; anything else through ``str``)."""
    return value.decode() if isinstance(value, bytes) else str(value)


def paired(flat: Sequence[Any]) -> dict[Any, Any]:
    """A flat list of fields and values (``HGETALL`` in RESP2, a stream entry a script
    returns) as a mapping."""
    return dict(zip(flat[::2], flat[1::2], strict=True))


def field(fields: Mapping[Any, Any], name: str) -> Any:
    """The value of field ``name`` of a stream entry, whether its keys are bytes or text."""
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def stream_entries(reply: Any) -> list[tuple[str, Mapping[Any, Any]]]:
    """The entries of a one-stream ``XREAD``/``XREADGROUP`` reply, whatever RESP shape it came
    in (an entry the log no longer holds comes with empty fields)."""
    if not reply:
        return []
    streams = reply.values() if isinstance(reply, Mapping) else (r[1] for r in reply)
    found: list[tuple[str, Mapping[Any, Any]]] = []
    for entries in streams:
        for entry in entries:
            # RESP3 nests a stream's entries one level deeper.
            items = entry if entry and isinstance(entry[0], list | tuple) else [entry]
            found.extend((text(ident), fields or {}) for ident, fields in items)
    return found
