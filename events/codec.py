"""Encoding, decoding, upcasting and the wire format of the log.

Wire format of one stream entry (plain fields, readable by ``redis-cli XRANGE`` and by any
language): ``type`` (the event's tag), ``event_id`` (UUID), ``v`` (schema version) and
``data`` (the whole event as JSON, including ``type`` and ``event_id``).

Schemas only grow. A breaking change bumps a type's ``SCHEMA_VERSION`` and registers an
upcaster ``(tag, N) -> dict -> dict`` that turns the raw version-N dict into version N+1;
old entries are upcast step by step before the typed decode, on every read.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
from collections.abc import Callable, Mapping
from typing import Any, Final

import msgspec

from .base import Event
from .errors import CodecError, InvalidEventError, Problem
from .incidents import (
    CasualtiesRevised,
    IncidentDisputed,
    IncidentEvents,
    IncidentMerged,
    IncidentRedacted,
    IncidentReported,
    IncidentRetracted,
)
from .rules import normalise, problems
from .statements import StatementEvents, StatementIssued, StatementRedacted, StatementRetracted
from .tables import role_of_title

AnyEvent = IncidentEvents | StatementEvents
"""Every event type the log can hold."""

EVENT_TYPES: Final[dict[str, type[Event]]] = {
    str(cls.__struct_config__.tag): cls
    for cls in (
        IncidentReported,
        CasualtiesRevised,
        IncidentRetracted,
        IncidentMerged,
        StatementIssued,
        StatementRetracted,
        IncidentRedacted,
        StatementRedacted,
        IncidentDisputed,
    )
}

MAX_BATCH: Final = 5000
"""Most events one submission may carry."""

Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


def _incident_reported_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 carried a bare death count and its qualifier; v2 carries a low/best/high estimate."""
    deaths = raw.pop("fatalities")
    qualifier = raw.pop("fatalities_qualifier", "exact")
    raw["fatalities"] = {"low": deaths, "best": deaths, "high": deaths, "qualifier": qualifier}
    return raw


def _statement_issued_v1_to_v2(raw: dict[str, Any]) -> dict[str, Any]:
    """v1 had one ``speaker``; v2 has ``speakers`` so joint statements are one event."""
    raw["speakers"] = [raw.pop("speaker")]
    return raw


def _victim_lines_gain_a_qualifier(raw: dict[str, Any]) -> dict[str, Any]:
    """``incident.reported`` v2 → v3 and ``incident.casualties_revised`` v1 → v2: a victim
    line may now carry a ``qualifier``; an older line has none, which means ``exact`` (the
    default), so the payload is unchanged."""
    return raw


def _statement_issued_v2_to_v3(raw: dict[str, Any]) -> dict[str, Any]:
    """v2 held a speaker's office as free text in ``role``; v3 keeps that text as ``title``
    and sets ``role`` to the ranked role it clearly is (``events/data/speaker_titles.tsv``),
    else ``other_official``. The time's precision is new: a v2 time is exact (the default)."""
    speakers = raw.get("speakers")
    if isinstance(speakers, list):
        for speaker in speakers:
            if not isinstance(speaker, dict):
                continue  # not a speaker: the typed decode names the field
            title = speaker.pop("role", None)
            if isinstance(title, str):
                speaker["title"] = title
                speaker["role"] = role_of_title(title)
            elif title is not None:
                speaker["title"] = title  # not text: the typed decode names ``title``
    return raw


def _figures_gain_parties(raw: dict[str, Any]) -> dict[str, Any]:
    """``incident.reported`` v3 → v4 and ``incident.casualties_revised`` v2 → v3: figures may
    now carry deaths by party, a source time and (revisions) the fields a source changed;
    an older event has none of them (no party line: its dead are not split by party), so
    the payload is unchanged."""
    return raw


def _revisions_may_clear(raw: dict[str, Any]) -> dict[str, Any]:
    """``incident.casualties_revised`` v3 → v4: a revision may name fields it clears
    (``cleared``); an older one clears none, so the payload is unchanged."""
    return raw


UPCASTERS: Final[dict[tuple[str, int], Upcaster]] = {
    ("incident.reported", 1): _incident_reported_v1_to_v2,
    ("incident.reported", 2): _victim_lines_gain_a_qualifier,
    ("incident.reported", 3): _figures_gain_parties,
    ("incident.casualties_revised", 1): _victim_lines_gain_a_qualifier,
    ("incident.casualties_revised", 2): _figures_gain_parties,
    ("incident.casualties_revised", 3): _revisions_may_clear,
    ("statement.issued", 1): _statement_issued_v1_to_v2,
    ("statement.issued", 2): _statement_issued_v2_to_v3,
}

_decoder: Final = msgspec.json.Decoder(AnyEvent)
_encoder: Final = msgspec.json.Encoder()
_raw_decoder: Final = msgspec.json.Decoder(dict[str, Any])


class _Header(msgspec.Struct):
    type: str = ""
    schema_version: int = 0


_header_decoder: Final = msgspec.json.Decoder(_Header)
_list_decoder: Final = msgspec.json.Decoder(list[msgspec.Raw])
_batch_decoder: Final = msgspec.json.Decoder(list[AnyEvent])


def current_version(tag: str) -> int:
    """The schema version new events of this type are written with."""
    return EVENT_TYPES[tag].SCHEMA_VERSION


def upcast(raw: dict[str, Any], tag: str, version: int) -> dict[str, Any]:
    """Bring a raw version-``version`` dict of type ``tag`` up to the current version."""
    target = current_version(tag)
    if version > target:
        raise CodecError(f"{tag} v{version} is newer than this code's v{target}")
    while version < target:
        step = UPCASTERS.get((tag, version))
        if step is None:
            raise CodecError(f"no upcaster for {tag} v{version}")
        raw = step(raw)
        version += 1
    raw["schema_version"] = target
    return raw


def encode(event: Event) -> bytes:
    """The event as JSON."""
    return _encoder.encode(event)


def decode(data: bytes | str) -> AnyEvent:
    """Decode a current-version event from JSON; :class:`CodecError` on anything else."""
    try:
        event: AnyEvent = _decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise CodecError(str(exc)) from exc
    return event


# --- the wire format of the log ------------------------------------------------------------


def to_fields(event: Event) -> dict[str, str | bytes]:
    """The stream entry fields for an event (see the module docstring)."""
    return {
        "type": event.type,
        "event_id": str(event.event_id),
        "v": str(type(event).SCHEMA_VERSION),
        "data": encode(event),
    }


def from_fields(fields: Mapping[bytes, bytes] | Mapping[str, Any]) -> AnyEvent:
    """Decode a stream entry, upcasting an old schema version first."""
    get = fields.get
    data = get(b"data") or get("data")  # type: ignore[call-overload]
    tag = get(b"type") or get("type")  # type: ignore[call-overload]
    v = get(b"v") or get("v")  # type: ignore[call-overload]
    if data is None or tag is None:
        raise CodecError("entry has no data or type field")
    tag = tag.decode() if isinstance(tag, bytes) else str(tag)
    if tag not in EVENT_TYPES:
        raise CodecError(f"unknown event type {tag!r}")
    try:
        version = int(v) if v is not None else current_version(tag)
    except ValueError as exc:
        raise CodecError(f"bad schema version {v!r}") from exc
    if version == current_version(tag):
        event = decode(data)
    else:
        try:
            raw = _raw_decoder.decode(data)
            event = msgspec.convert(upcast(raw, tag, version), AnyEvent)
        except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
            raise CodecError(f"{tag} v{version}: {exc}") from exc
    if event.type != tag:
        raise CodecError(f"entry of type {tag!r} holds a {event.type!r} event")
    return event


# --- submissions: validation with every field at fault named --------------------------------

_TOO_DEEP: Final = "malformed JSON: nested too deeply"
_FIELD_IN_MSG = re.compile(r"(?:missing required field|unknown field) `(?P<name>[^`]+)`")


def _problem_of(exc: msgspec.ValidationError | msgspec.DecodeError) -> Problem:
    """Turn msgspec's ``"… - at `$.a.b[0]`"`` message into a Problem with a dotted path."""
    message, _, path = str(exc).partition(" - at `$")
    path = path.rstrip("`").lstrip(".")
    named = _FIELD_IN_MSG.search(message)
    if named:
        path = f"{path}.{named['name']}" if path else named["name"]
    if isinstance(exc, msgspec.DecodeError) and not isinstance(exc, msgspec.ValidationError):
        return Problem(path or "body", f"malformed JSON: {message}")
    return Problem(path or "body", message)


def _parse_one(raw: msgspec.Raw | bytes, now: dt.datetime | None) -> AnyEvent:
    try:
        header = _header_decoder.decode(raw)
        tag = header.type
        version = header.schema_version
        if tag in EVENT_TYPES and version > current_version(tag):
            # a future version's shape is unknown: name the version, not a field it broke
            message = f"{tag} is at version {current_version(tag)}"
            raise InvalidEventError([Problem("schema_version", message)])
        if tag in EVENT_TYPES and 0 < version < current_version(tag):
            event: AnyEvent = msgspec.convert(
                upcast(_raw_decoder.decode(raw), tag, version),
                AnyEvent,
            )
        else:
            event = _decoder.decode(raw)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise InvalidEventError([_problem_of(exc)]) from exc
    except RecursionError as exc:  # msgspec's answer to JSON nested deeper than it decodes
        raise InvalidEventError([Problem("body", _TOO_DEEP)]) from exc
    except CodecError as exc:
        raise InvalidEventError([Problem("schema_version", str(exc))]) from exc
    except KeyError as exc:  # an old-version payload missing what its upcaster needs
        field = str(exc.args[0]) if exc.args else "schema_version"
        message = f"Object missing required field `{field}` (schema_version {version})"
        raise InvalidEventError([Problem(field, message)]) from exc
    except (TypeError, AttributeError) as exc:
        message = f"not a valid schema_version {version} {tag}: {exc}"
        raise InvalidEventError([Problem("schema_version", message)]) from exc
    if version > current_version(event.type):
        raise InvalidEventError(
            [Problem("schema_version", f"{event.type} is at version {current_version(event.type)}")]
        )
    found = problems(event, now=now)
    if found:
        raise InvalidEventError(found)
    return _submitted_form(event)


def _submitted_form(event: AnyEvent) -> AnyEvent:
    """The stored form, but keeping the submitted precondition.

    The store checks ``expected_version`` on append and strips it when it writes the event.
    An event in that form already (the usual submission) is returned as it is.
    """
    if event.schema_version == type(event).SCHEMA_VERSION and not (
        isinstance(event, StatementIssued) and event.goldstein is None
    ):
        return event
    stored = normalise(event)
    return msgspec.structs.replace(stored, expected_version=event.expected_version)  # type: ignore[return-value]


def parse_submission(data: bytes | msgspec.Raw, *, now: dt.datetime | None = None) -> AnyEvent:
    """Validate one submitted event and return its stored form (with ``expected_version``).

    ``now`` is the moment of receipt (dates after it are refused, see :mod:`events.rules`).
    Raises :class:`InvalidEventError` naming every field at fault.
    """
    return _parse_one(data, now)


class BatchProblem(msgspec.Struct, frozen=True):
    """A problem of one event within a submitted batch."""

    index: int
    field: str
    message: str


class InvalidBatchError(InvalidEventError):
    """Raised when any event of a submitted batch is invalid; nothing of the batch is valid.

    ``batch_problems`` lists every event's problems with its index in the batch.
    """

    def __init__(self, batch_problems: list[BatchProblem]) -> None:
        self.batch_problems = batch_problems
        super().__init__([Problem(f"[{p.index}].{p.field}", p.message) for p in batch_problems])


def _valid_batch(body: bytes, now: dt.datetime | None) -> list[AnyEvent] | None:
    """The submitted forms of an array of valid current-version events, in one decode.

    ``None`` when anything is off (not decodable as events, empty, too long, an old or a
    future schema version, a broken rule): :func:`parse_batch` then takes the event-by-event
    path, which names every problem (and upcasts old versions).
    """
    # A batch decodes to tens of thousands of objects at once, none of them garbage yet:
    # the cyclic collector would walk them again and again while they are being built.
    collecting = gc.isenabled()
    gc.disable()
    try:
        decoded: list[AnyEvent] = _batch_decoder.decode(body)
    except (msgspec.ValidationError, msgspec.DecodeError, RecursionError):
        return None
    finally:
        if collecting:
            gc.enable()
    if not decoded or len(decoded) > MAX_BATCH:
        return None
    for event in decoded:
        version = event.schema_version
        if (version and version != type(event).SCHEMA_VERSION) or problems(event, now=now):
            return None
    return [_submitted_form(event) for event in decoded]


def parse_batch(body: bytes, *, now: dt.datetime | None = None) -> tuple[list[AnyEvent], bool]:
    """Validate a submission body: one event object or a JSON array of them.

    ``now`` is the moment of receipt (dates after it are refused, see :mod:`events.rules`).

    Returns the stored forms and whether the body was an array. Raises
    :class:`InvalidBatchError` listing every invalid event's problems (index 0 for a single
    object, and for a body that is not JSON or not an object/array at all).
    """
    is_array = body.lstrip()[:1] == b"["
    if is_array:
        valid = _valid_batch(body, now)
        if valid is not None:
            return valid, True
    try:
        raws = _list_decoder.decode(body) if is_array else [msgspec.Raw(body)]
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        problem = _problem_of(exc)
        raise InvalidBatchError([BatchProblem(0, problem.field, problem.message)]) from exc
    except RecursionError as exc:
        raise InvalidBatchError([BatchProblem(0, "body", _TOO_DEEP)]) from exc
    if not raws:
        raise InvalidBatchError([BatchProblem(0, "body", "an empty array carries no event")])
    if len(raws) > MAX_BATCH:
        raise InvalidBatchError(
            [BatchProblem(MAX_BATCH, "body", f"at most {MAX_BATCH} events per submission")]
        )
    events: list[AnyEvent] = []
    found: list[BatchProblem] = []
    for i, raw in enumerate(raws):
        try:
            events.append(_parse_one(raw, now))
        except InvalidEventError as exc:
            found += [BatchProblem(i, p.field, p.message) for p in exc.problems]
    if found:
        raise InvalidBatchError(found)
    return events, is_array
