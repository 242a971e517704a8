"""The event base, its envelope, and the value types events are made of.

Every event is a frozen, keyword-only msgspec Struct tagged by a permanent dotted name
(``incident.reported``). The envelope fields live on :class:`Event`: ``event_id`` (chosen by
the publisher, the idempotency key), ``source`` (the publishing feed), ``schema_version``
and the optional ``expected_version`` precondition. The log position and ``recorded_at``
are assigned by the store and travel beside the event in :class:`Recorded`.
"""

from __future__ import annotations

import datetime as dt
import functools
import uuid
from collections.abc import Iterable
from typing import Annotated, ClassVar, Final, Literal, NewType

import msgspec
from msgspec import Meta

# --- identifiers ---------------------------------------------------------------------------

# Patterns end in ``$(?!\n)``: a bare ``$`` also matches before a final newline, which would
# let ``"syr-1\n"`` through as an id; the lookahead keeps the pattern valid in JSON Schema.
ID_PATTERN = r"^[A-Za-z0-9._:-]{1,128}$(?!\n)"
EntityId = Annotated[str, Meta(pattern=ID_PATTERN, description="1-128 chars of A-Za-z0-9._:-")]
FeedName = Annotated[
    str,
    Meta(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$(?!\n)", description="the publishing feed's name"),
]
Country = Annotated[str, Meta(pattern=r"^[A-Z]{3}$(?!\n)", description="ISO 3166-1 alpha-3")]
Slug = Annotated[
    str, Meta(pattern=r"^[a-z0-9][a-z0-9-]{0,127}$(?!\n)", description="lowercase slug")
]
ShortText = Annotated[str, Meta(min_length=1, max_length=200)]
Reason = Annotated[str, Meta(min_length=1, max_length=2000)]
Url = Annotated[str, Meta(pattern=r"^https?://\S+$(?!\n)", max_length=2000)]
Count = Annotated[int, Meta(ge=0, le=100_000_000, description="a non-negative head count")]
AwareDatetime = Annotated[dt.datetime, Meta(tz=True, description="ISO 8601 with a zone")]

Position = NewType("Position", str)
"""A log position: the Redis stream entry id ``<milliseconds>-<sequence>``."""

Qualifier = Literal["exact", "at_least", "approximately", "range"]
VictimStatus = Literal["civilian", "combatant", "unknown"]
Party = Literal["civilians", "side_a", "side_b", "unknown"]
"""Whose dead a party line counts, as UCDP GED splits an event's deaths: civilians, the
fighters of side A, of side B, or dead of unknown status."""
PARTIES: tuple[Party, ...] = ("civilians", "side_a", "side_b", "unknown")
Grading = Literal["confirmed", "fair", "weak", "contested", "discounted"]
"""Airwars grading, strongest first."""
GRADING_ORDER: tuple[Grading, ...] = ("confirmed", "fair", "weak", "contested", "discounted")

# --- value objects -------------------------------------------------------------------------


class Value(
    msgspec.Struct,
    frozen=True,
    gc=False,
    kw_only=True,
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """Base of the value objects inside events: frozen, keyword-only, strict.

    ``gc=False`` (here, on :class:`Event` and :class:`Recorded`): a frozen struct built
    from its fields cannot be part of a reference cycle, so the cyclic garbage collector
    need not track it; a catch-up holding millions of them otherwise spends about a third
    of its time in collections (BENCHMARKS.md).
    """


class Estimate(Value, frozen=True):
    """A UCDP-style count: ``best`` with reliable ``low`` and ``high`` bounds."""

    low: Count
    best: Count
    high: Count


class Fatalities(Estimate, frozen=True):
    """Deaths of one incident, with how the source phrased the number."""

    qualifier: Qualifier = "exact"


class VictimLine(Estimate, frozen=True):
    """The dead of one community and status within one incident (counts only, no names).

    ``qualifier`` says how the source phrased the line, as for :class:`Fatalities`
    (``at_least``: a lower bound), so the qualifier travels into every sum the line is in.
    """

    community: Slug
    status: VictimStatus = "unknown"
    qualifier: Qualifier = "exact"


class PartyLine(Estimate, frozen=True):
    """The dead of one party within one incident (UCDP GED's ``deaths_a``, ``deaths_b``,
    ``deaths_civilians``, ``deaths_unknown``), with how the source phrased the number."""

    party: Party
    qualifier: Qualifier = "exact"


class Side(Value, frozen=True):
    """One side of an incident as its source names it (ACLED's ``actor1`` with
    ``assoc_actor_1`` and ``inter1``; UCDP GED's ``side_a``). Kept as data: a side named
    "Civilians (Syria)" with an associated group is never turned into community counts."""

    name: ShortText
    associates: Annotated[list[ShortText], Meta(max_length=50)] = []
    kind: ShortText | None = None
    """The actor type as the source codes it (ACLED ``inter1``: "State forces", …)."""


class Sides(Value, frozen=True):
    """The two sides of an incident and how they met (ACLED ``interaction``, UCDP dyad)."""

    side_a: Side | None = None
    side_b: Side | None = None
    interaction: ShortText | None = None
    dyad: ShortText | None = None
    """UCDP's dyad name (``Government of Syria - IS``)."""


class Place(Value, frozen=True):
    """Where an incident happened, down to the precision ``geo_precision`` states."""

    adm1: ShortText
    adm2: ShortText | None = None
    name: ShortText | None = None
    lat: Annotated[float, Meta(ge=-90, le=90)] | None = None
    lon: Annotated[float, Meta(ge=-180, le=180)] | None = None


class Source(Value, frozen=True):
    """A published source a report or statement rests on."""

    publisher: ShortText
    url: Url | None = None
    published_at: AwareDatetime | None = None


# --- the event base ------------------------------------------------------------------------


class Event(
    msgspec.Struct,
    frozen=True,
    gc=False,
    kw_only=True,
    tag_field="type",
    forbid_unknown_fields=True,
    omit_defaults=True,
):
    """Base of every event. Subclasses set a permanent ``tag`` and ``SCHEMA_VERSION``."""

    SCHEMA_VERSION: ClassVar[int] = 1

    event_id: uuid.UUID
    source: FeedName
    schema_version: Annotated[int, Meta(ge=0)] = 0
    """Optional on input; 0 means "the current version" and is normalised on ingest."""
    expected_version: Annotated[int, Meta(ge=0, le=2**53)] | None = None
    """Optional precondition: the entity's version the publisher saw. Never stored."""

    @property
    def entity(self) -> str:
        """The key of the entity this event belongs to (``incident:<id>``, ``statement:<id>``)."""
        raise NotImplementedError

    @property
    def type(self) -> str:
        """The permanent tag of the event's class."""
        return str(self.__struct_config__.tag)


class Recorded(msgspec.Struct, frozen=True, gc=False):
    """An event as the log holds it: the event plus where and when it was recorded.

    ``sealed`` is the entry's sealed private text (the ``sealed`` field of the log entry,
    see ``services.store.sealing``), ``None`` when the event carries none.
    """

    position: Position
    recorded_at: dt.datetime
    event: Event
    sealed: str | None = None


_ids_json: Final = msgspec.json.Encoder().encode
_texts_of: Final = msgspec.json.Decoder(list[str]).decode


def id_texts(events: Iterable[Event]) -> list[str]:
    """The events' ids as text (``str(event_id)``), all in one pass through msgspec: about a
    tenth of the cost of ``str`` on each ``UUID`` (1.6 µs), which ingest paid three times
    an event."""
    return _texts_of(_ids_json([event.event_id for event in events]))


def recorded_at_of(position: str) -> dt.datetime:
    """The UTC time a log position was assigned (its millisecond part)."""
    return _at_millis(position.partition("-")[0])


@functools.lru_cache(maxsize=1024)
def _at_millis(millis: str) -> dt.datetime:
    """The time of a position's millisecond part, made once per millisecond: the entries of
    one append share it (a script's time stands still), and making a ``datetime`` took a
    reader 1.4 µs an entry (0.2 µs with this memo)."""
    return dt.datetime.fromtimestamp(int(millis) / 1000, tz=dt.UTC)


def position_key(position: str) -> tuple[int, int]:
    """A sortable key for a log position (``"0-0"`` sorts first)."""
    ms, _, seq = position.partition("-")
    return int(ms), int(seq or 0)
