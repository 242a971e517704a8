"""The free text of events that can hold personal data, listed and replaced by path.

Four fields are free text that can name or point at people: an incident report's (or
revision's) ``notes``, a source's ``url`` (of reports, revisions, disputes and statements), a
statement speaker's ``name`` and the ``reason`` of a revision, retraction, merge, dispute or
redaction. Everything else (places, codes, figures, dates, publishers, titles) is plain
data the projections read. Paths name a field inside one event: ``notes``, ``reason``,
``sources[0].url``, ``speakers[1].name``.

:func:`private_fields` lists an event's private text by path; :func:`with_private` rebuilds
the event with some of them replaced; :func:`masked` gives the replacements that hide them
(``"[sealed]"`` or ``"[erased]"`` for notes, reasons and names, ``None`` for urls: a url is optional
and ``None`` is the only value that hides it while keeping the event valid). Pure functions.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Final, TypeVar

import msgspec

from .base import Event, Source
from .errors import CodecError
from .incidents import CasualtiesRevised, IncidentDisputed, IncidentReported
from .statements import Speaker, StatementIssued

__all__ = [
    "ERASED",
    "SEALED",
    "masked",
    "private_fields",
    "private_paths",
    "sealed_form",
    "with_private",
]

SEALED: Final = "[sealed]"
"""What the log holds in place of sealed notes and speaker names."""
ERASED: Final = "[erased]"
"""What reads show in place of private text whose key was destroyed."""

_E = TypeVar("_E", bound=Event)
_PATH: Final = re.compile(
    r"^(?:notes|reason|(?P<list>sources|speakers)\[(?P<index>\d+)\]\.(?P<leaf>url|name))$"
)


_WITH_SOURCES: Final = (IncidentReported, CasualtiesRevised, IncidentDisputed, StatementIssued)
"""The event types whose sources' urls are private text."""


def _sources(event: Event) -> list[Source]:
    if isinstance(event, _WITH_SOURCES):
        return list(event.sources)
    return []


def private_fields(event: Event) -> dict[str, str]:
    """Every private text field of ``event`` that holds a value, by path, in field order."""
    found: dict[str, str] = {}
    if isinstance(event, IncidentReported | CasualtiesRevised) and event.notes is not None:
        found["notes"] = event.notes
    if isinstance(event, StatementIssued):
        for i, speaker in enumerate(event.speakers):
            found[f"speakers[{i}].name"] = speaker.name
    for i, source in enumerate(_sources(event)):
        if source.url is not None:
            found[f"sources[{i}].url"] = source.url
    reason = getattr(event, "reason", None)
    if isinstance(reason, str):
        found["reason"] = reason
    return found


def private_paths(event: Event) -> list[str]:
    """The paths of :func:`private_fields`."""
    return list(private_fields(event))


def masked(paths: Iterable[str], text: str) -> dict[str, str | None]:
    """Replacements hiding ``paths``: ``text`` for notes, reasons and names, ``None`` for
    urls."""
    return {path: None if path.endswith(".url") else text for path in paths}


def sealed_form(event: _E) -> _E:
    """``event`` as the log stores it once its private text is sealed: what
    ``with_private(event, masked(private_paths(event), SEALED))`` gives, built directly (about
    half the cost: no path to parse)."""
    changes: dict[str, object] = {}
    if isinstance(event, IncidentReported | CasualtiesRevised) and event.notes is not None:
        changes["notes"] = SEALED
    if isinstance(event, StatementIssued):
        changes["speakers"] = [msgspec.structs.replace(s, name=SEALED) for s in event.speakers]
    if isinstance(event, _WITH_SOURCES):
        changes["sources"] = [
            s if s.url is None else msgspec.structs.replace(s, url=None) for s in event.sources
        ]
    if isinstance(getattr(event, "reason", None), str):
        changes["reason"] = SEALED
    return msgspec.structs.replace(event, **changes) if changes else event


def with_private(event: _E, values: Mapping[str, str | None]) -> _E:
    """``event`` with the private fields at the given paths set to the given values.

    Raises :class:`CodecError` for a path that is not a private field of this event (a
    notes path on a statement, an index past the end of its list): values come from a
    sealed blob, and a path that does not fit means the blob is not this event's.
    """
    if not values:
        return event
    changes: dict[str, object] = {}
    sources = _sources(event)
    speakers: list[Speaker] = list(event.speakers) if isinstance(event, StatementIssued) else []
    for path, value in values.items():
        match = _PATH.match(path)
        if match is None:
            raise CodecError(f"{path!r} is not a private field path")
        if path == "notes":
            if not isinstance(event, IncidentReported | CasualtiesRevised):
                raise CodecError(f"a {event.type} event has no notes")
            changes["notes"] = value
            continue
        if path == "reason":
            if not isinstance(getattr(event, "reason", None), str) or value is None:
                raise CodecError(f"a {event.type} event has no reason to set")
            changes["reason"] = value
            continue
        index = int(match["index"])
        if match["list"] == "sources" and match["leaf"] == "url" and index < len(sources):
            sources[index] = msgspec.structs.replace(sources[index], url=value)
        elif match["list"] == "speakers" and match["leaf"] == "name" and index < len(speakers):
            if value is None:
                raise CodecError(f"{path} cannot be empty")
            speakers[index] = msgspec.structs.replace(speakers[index], name=value)
        else:
            raise CodecError(f"a {event.type} event has no private field {path!r}")
    if isinstance(event, _WITH_SOURCES):
        changes["sources"] = sources
    if isinstance(event, StatementIssued):
        changes["speakers"] = speakers
    return msgspec.structs.replace(event, **changes)
