"""Encoding, decoding, upcasting and the wire format of the log.

Wire format of one stream entry: plain fields, readable by ``redis-cli XRANGE`` and by any
language. Every entry written now says its codec in ``c``; an entry without ``c`` is codec 0,
as written before codecs, and reads on unchanged.

- **codec 0** (no ``c``): ``type`` (the event's tag), ``event_id`` (UUID), ``v`` (schema
  version) and ``data`` (the whole event as JSON, including ``type`` and ``event_id``).
- **codec 1** (``c`` = ``1``): ``type``, ``v``, ``source`` (the publishing feed) and ``d``: the
  rest of the event as a MessagePack map with the same keys and values as its JSON, less
  ``type`` and ``source`` (the entry says them) and less ``schema_version`` when it equals
  ``v``; ``event_id`` is its 16 bytes (bin), dates and times are ISO 8601 text as in JSON.
  Nothing is said twice.
- **codec 2** (``c`` = ``2``, written by default, :data:`ENTRY_CODEC`): as codec 1, ``d``
  compressed as one zstd frame with the dictionary ``events/data/entries-2.zdict`` (id 2,
  named in the frame's header; trained by ``tools/train_entry_dictionary.py`` on a corpus
  other than the benchmark's). A dictionary once shipped never changes: a new one is a new
  codec.

To read ``d`` anywhere: decompress with the dictionary (codec 2), decode the MessagePack map,
then add ``type``, ``source`` and (unless present) ``schema_version`` = ``v`` from the entry;
the README shows it in a few lines. An entry may carry a fifth field, ``sealed``
(:mod:`services.store.sealing`), kept as written whatever the codec.

Schemas only grow. A breaking change bumps a type's ``SCHEMA_VERSION`` and registers an
upcaster ``(tag, N) -> dict -> dict`` that turns the raw version-N dict into version N+1;
old entries are upcast step by step before the typed decode, on every read.
"""

from __future__ import annotations

import datetime as dt
import functools
import gc
import re
import threading
import uuid
from collections.abc import Callable, Mapping
from importlib import resources
from typing import Any, Final

import msgspec
import zstandard

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

ENTRY_JSON: Final = 0
"""Codec of an entry without a ``c`` field: ``type``, ``event_id``, ``v``, ``data`` (JSON)."""
ENTRY_MSGPACK: Final = 1
"""``c`` = 1: ``type``, ``v``, ``source``, ``d`` (the rest of the event as MessagePack)."""
ENTRY_ZSTD: Final = 2
"""``c`` = 2: as 1, ``d`` compressed by zstd with the shipped dictionary
(``events/data/entries-2.zdict``)."""
ENTRY_CODECS: Final = (ENTRY_JSON, ENTRY_MSGPACK, ENTRY_ZSTD)

ENTRY_CODEC: int = ENTRY_ZSTD
"""The codec new entries are written with (the benchmark sets it to compare them)."""

DICTIONARY: Final = "entries-2.zdict"
"""The zstd dictionary of codec 2, in ``events/data`` (``tools/train_entry_dictionary.py``)."""
DICTIONARY_ID: Final = 2
"""The id in that dictionary's header (and in every frame compressed with it)."""
_LEVEL: Final = 3

_mp_encoder: Final = msgspec.msgpack.Encoder(uuid_format="bytes")
_KEPT: Final = (uuid.UUID,)
_mp_decoder: Final = msgspec.msgpack.Decoder(AnyEvent)
_mp_raw_decoder: Final = msgspec.msgpack.Decoder(dict[str, Any])


ZSTD_MAGIC: Final = 0x28
"""The first byte of every zstd frame (stored forms are told apart by it)."""


class DictionaryCodec:
    """A zstd compressor and decompressor with a shipped dictionary (the log's entries of
    codec 2 here, the views' documents in ``services.views.codec``): frames without a
    checksum, with their size and the dictionary's id.

    Safe to share between threads: the dictionary is loaded once, and each thread gets a
    compressor and a decompressor of its own (zstd's may not be used by two threads at once;
    as-of folds decode pages in worker threads while the event loop decodes too).

    ``name`` is the dictionary's file in the package ``package``'s ``data`` folder;
    :class:`CodecError` when the file does not hold the id ``dict_id``.
    """

    def __init__(self, package: str, name: str, dict_id: int, level: int = 3) -> None:
        raw = resources.files(package).joinpath("data", name).read_bytes()
        dictionary = zstandard.ZstdCompressionDict(raw, dict_type=zstandard.DICT_TYPE_FULLDICT)
        if dictionary.dict_id() != dict_id:
            raise CodecError(f"{name} has id {dictionary.dict_id()}, not {dict_id}")
        dictionary.precompute_compress(level=level)
        self._dictionary, self._level = dictionary, level
        self._own = threading.local()

    def _mine(self) -> tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor]:
        pair: tuple[zstandard.ZstdCompressor, zstandard.ZstdDecompressor] | None = getattr(
            self._own, "pair", None
        )
        if pair is None:
            compressor = zstandard.ZstdCompressor(
                level=self._level,
                dict_data=self._dictionary,
                write_checksum=False,
                write_content_size=True,
            )
            pair = self._own.pair = (
                compressor,
                zstandard.ZstdDecompressor(dict_data=self._dictionary),
            )
        return pair

    def compress(self, data: bytes) -> bytes:
        """``data`` as one frame."""
        return self._mine()[0].compress(data)

    def decompress(self, frame: bytes) -> bytes:
        """A frame's data; :class:`zstandard.ZstdError` when it is not a frame of this
        dictionary."""
        return self._mine()[1].decompress(frame)


@functools.cache
def _zstd() -> DictionaryCodec:
    """Codec 2's compressor and decompressor, made once on first use."""
    return DictionaryCodec(__package__, DICTIONARY, DICTIONARY_ID, _LEVEL)


def _map_header(count: int) -> bytes:
    if count < 16:
        return bytes((0x80 | count,))
    return b"\xde" + count.to_bytes(2, "big")


def _read_map_header(data: bytes) -> tuple[int, int]:
    """A MessagePack map's size and where its first key starts."""
    first = data[0] if data else 0
    if 0x80 <= first <= 0x8F:
        return first & 0x0F, 1
    if first == 0xDE and len(data) >= 3:
        return int.from_bytes(data[1:3], "big"), 3
    raise CodecError("entry data is not a MessagePack map")


def _str(text: str) -> bytes:
    raw = text.encode()
    if len(raw) < 32:
        return bytes((0xA0 | len(raw),)) + raw
    if len(raw) < 256:
        return b"\xd9" + bytes((len(raw),)) + raw
    return b"\xda" + len(raw).to_bytes(2, "big") + raw


_TYPE_KEY: Final = _str("type")
_ID_KEY: Final = _str("event_id")
_SOURCE_KEY: Final = _str("source")
_VERSION_KEY: Final = _str("schema_version")
_UUID_BYTES: Final = 18  # bin8 header, length, 16 bytes


def _joined(data: bytes, head: bytes, added: int, source: bytes) -> bytes:
    """The MessagePack of the whole event again: ``data`` with ``head`` (its tag, and its
    version unless ``data`` keeps one) and its feed (``added`` keys in all)."""
    first = data[0] if data else 0
    if 0x80 <= first <= 0x8F:
        count, at = first & 0x0F, 1
    else:
        count, at = _read_map_header(data)
    held = at + _HELD_VERSION  # where a schema_version kept in ``d`` is
    if data[held : held + len(_VERSION_KEY)] == _VERSION_KEY:
        head, added = head[: -len(_VERSION_KEY) - 1], added - 1
    size = len(source)
    if size < 32:
        feed = _SOURCE_KEY + bytes((0xA0 | size,)) + source
    else:
        feed = _SOURCE_KEY + _str(source.decode("utf-8", "replace"))
    return _map_header(count + added) + head + feed + data[at:]


class _Kind(msgspec.Struct, frozen=True):
    """What decoding an entry of one event type needs, worked out once."""

    tag: str
    version: bytes
    """The current schema version as the entry's ``v`` spells it."""
    head: bytes
    """The MessagePack of ``type`` and of ``schema_version`` at the current version."""


def _kinds() -> dict[Any, _Kind]:
    kinds: dict[Any, _Kind] = {}
    for tag, cls in EVENT_TYPES.items():
        version = cls.SCHEMA_VERSION
        head = _TYPE_KEY + _str(tag) + _VERSION_KEY + _mp_encoder.encode(version)
        kind = _Kind(tag, str(version).encode(), head)
        kinds[tag] = kinds[tag.encode()] = kind
    return kinds


_KINDS: Final = _kinds()
_HELD_VERSION: Final = len(_ID_KEY) + _UUID_BYTES


def to_fields(event: Event, codec: int | None = None) -> dict[str, str | bytes]:
    """The stream entry fields for an event in ``codec`` (default :data:`ENTRY_CODEC`; see the
    module docstring)."""
    flat = entry_values(event, codec)
    return dict(zip(flat[::2], flat[1::2], strict=True))  # type: ignore[arg-type]


def entry_values(event: Event, codec: int | None = None) -> list[str | bytes]:
    """:func:`to_fields` as the flat list ``XADD`` takes (names and values), the data last."""
    codec = ENTRY_CODEC if codec is None else codec
    cls = type(event)
    if codec == ENTRY_JSON:
        return [
            "type",
            event.type,
            "event_id",
            str(event.event_id),
            "v",
            _VERSION_TEXT[cls],
            "data",
            _encoder.encode(event),
        ]
    version = cls.SCHEMA_VERSION
    # through builtins: msgspec's MessagePack would write a datetime as a UTC timestamp and
    # lose its offset, JSON's text keeps it (a UUID stays 16 bytes)
    rest = msgspec.to_builtins(event, builtin_types=_KEPT)
    tag, source = rest.pop("type"), rest.pop("source")
    held = rest.get("schema_version", 0)
    if held == version:
        del rest["schema_version"]  # the entry's ``v`` says it
    elif not held:  # left out as the default: kept (after the id), not to be read as ``v``
        rest = {"event_id": rest.pop("event_id"), "schema_version": 0, **rest}
    data = _mp_encoder.encode(rest)
    if codec == ENTRY_ZSTD:
        data = _zstd().compress(data)
    elif codec != ENTRY_MSGPACK:
        raise CodecError(f"no entry codec {codec}")
    return [
        "c",
        _CODEC_TEXT[codec],
        "type",
        tag,
        "v",
        _VERSION_TEXT[cls],
        "source",
        source,
        "d",
        data,
    ]


_CODEC_TEXT: Final = {codec: str(codec) for codec in ENTRY_CODECS}
_VERSION_TEXT: Final = {cls: str(cls.SCHEMA_VERSION) for cls in EVENT_TYPES.values()}


def _field(fields: Mapping[Any, Any], name: str) -> Any:
    value = fields.get(name.encode())
    return fields.get(name) if value is None else value


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def entry_codec(fields: Mapping[bytes, bytes] | Mapping[str, Any]) -> int:
    """The codec an entry was written with (0 for one without a ``c`` field)."""
    c = _field(fields, "c")
    if c is None:
        return ENTRY_JSON
    try:
        codec = int(c)
    except ValueError as exc:
        raise CodecError(f"bad entry codec {c!r}") from exc
    if codec not in ENTRY_CODECS:
        raise CodecError(f"entry codec {codec} is not one this code reads")
    return codec


def _packed(fields: Mapping[Any, Any], codec: int, tag: str, version: int) -> bytes:
    """The whole event of a codec 1 or 2 entry as MessagePack."""
    data, source = _field(fields, "d"), _field(fields, "source")
    if data is None or source is None:
        raise CodecError("entry has no d or source field")
    head = _TYPE_KEY + _str(tag) + _VERSION_KEY + _mp_encoder.encode(version)
    return _whole(codec, _bytes(data), head, _bytes(source))


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _whole(codec: int, data: bytes, head: bytes, source: bytes) -> bytes:
    if codec == ENTRY_ZSTD:
        try:
            data = _zstd().decompress(data)
        except zstandard.ZstdError as exc:
            raise CodecError(f"entry data does not decompress: {exc}") from exc
    try:
        return _joined(data, head, 3, source)
    except IndexError as exc:
        raise CodecError("entry data is truncated") from exc


def entry_data(fields: Mapping[bytes, bytes] | Mapping[str, Any]) -> bytes:
    """The event of an entry as JSON, at the schema version it was written with (what an
    entry of codec 0 holds in ``data``); :class:`CodecError` when it has none."""
    codec = entry_codec(fields)
    if codec == ENTRY_JSON:
        data = _field(fields, "data")
        if data is None:
            raise CodecError("entry has no data field")
        return data if isinstance(data, bytes) else str(data).encode()
    tag, version = _tag_and_version(fields)
    if version == current_version(tag):
        return encode(from_fields(fields))  # the same bytes a codec 0 entry would hold
    return _encoder.encode(_raw_of(_packed(fields, codec, tag, version)))


def json_fields(fields: Mapping[bytes, bytes] | Mapping[str, Any]) -> dict[str, str]:
    """An entry of any codec as text fields in codec 0's form (``type``, ``event_id``, ``v``,
    ``data`` as JSON), its other fields (``sealed``) kept: what operators are shown.

    :class:`CodecError` when its event does not decode (a codec 0 entry is only decoded as
    text, never checked).
    """
    as_text = {_text(k): v for k, v in fields.items()}
    if entry_codec(fields) == ENTRY_JSON:
        return {k: _text(v) for k, v in as_text.items()}
    tag, version = _tag_and_version(fields)
    data = entry_data(fields)
    ident = _header_decoder_id.decode(data).event_id
    shown = {"type": tag, "event_id": ident, "v": str(version), "data": data.decode()}
    for name in ("c", "type", "v", "source", "d"):
        as_text.pop(name, None)
    return shown | {k: _text(v) for k, v in as_text.items()}


class _Ident(msgspec.Struct):
    event_id: str = ""


_header_decoder_id: Final = msgspec.json.Decoder(_Ident)


def _tag_and_version(fields: Mapping[Any, Any]) -> tuple[str, int]:
    tag, v = _field(fields, "type"), _field(fields, "v")
    if tag is None:
        raise CodecError("entry has no type field")
    tag = _text(tag)
    if tag not in EVENT_TYPES:
        raise CodecError(f"unknown event type {tag!r}")
    try:
        version = int(v) if v is not None else current_version(tag)
    except ValueError as exc:
        raise CodecError(f"bad schema version {v!r}") from exc
    return tag, version


def _raw_of(packed: bytes) -> dict[str, Any]:
    """A MessagePack event as the dict its JSON form decodes to (the id as text)."""
    try:
        raw = _mp_raw_decoder.decode(packed)
    except msgspec.DecodeError as exc:
        raise CodecError(str(exc)) from exc
    ident = raw.get("event_id")
    if isinstance(ident, bytes) and len(ident) == 16:
        raw["event_id"] = str(uuid.UUID(bytes=ident))
    return raw


def from_fields(fields: Mapping[bytes, bytes] | Mapping[str, Any]) -> AnyEvent:
    """Decode a stream entry of any codec, upcasting an old schema version first."""
    get = fields.get
    c = get(b"c")  # type: ignore[call-overload]
    if c is None:
        c = get("c")  # type: ignore[call-overload]
    if c in _FAST:  # a current-version entry of codec 1 or 2, as redis-py returns it
        kind = _KINDS.get(get(b"type"))  # type: ignore[call-overload]
        data, source = get(b"d"), get(b"source")  # type: ignore[call-overload]
        if kind is not None and get(b"v") == kind.version and data and source is not None:  # type: ignore[call-overload]
            packed = _whole(_FAST[c], data, kind.head, source)
            try:
                event: AnyEvent = _mp_decoder.decode(packed)
            except msgspec.DecodeError as exc:
                raise CodecError(str(exc)) from exc
            if event.type != kind.tag:
                raise CodecError(f"entry of type {kind.tag!r} holds a {event.type!r} event")
            return event
    codec = entry_codec(fields)
    if _field(fields, "type") is None or (codec == ENTRY_JSON and _field(fields, "data") is None):
        raise CodecError("entry has no data or type field")
    tag, version = _tag_and_version(fields)
    current = version == current_version(tag)
    if codec == ENTRY_JSON:
        data = _field(fields, "data")
        event = decode(data) if current else _upcast_raw(_raw_decoder.decode, data, tag, version)
    else:
        packed = _packed(fields, codec, tag, version)
        if current:
            try:
                event = _mp_decoder.decode(packed)
            except msgspec.DecodeError as exc:
                raise CodecError(str(exc)) from exc
        else:
            event = _upcast_raw(_raw_of, packed, tag, version)
    if event.type != tag:
        raise CodecError(f"entry of type {tag!r} holds a {event.type!r} event")
    return event


_FAST: Final = {b"1": ENTRY_MSGPACK, b"2": ENTRY_ZSTD}


def _upcast_raw(
    decoder: Callable[[Any], dict[str, Any]], data: Any, tag: str, version: int
) -> AnyEvent:
    try:
        converted: AnyEvent = msgspec.convert(upcast(decoder(data), tag, version), AnyEvent)
    except (msgspec.DecodeError, msgspec.ValidationError, KeyError, TypeError) as exc:
        raise CodecError(f"{tag} v{version}: {exc}") from exc
    return converted


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
