"""Valid events for tests, a log that records them the way a store would, and folds.

Every builder returns a valid event in its stored form (current schema version, Goldstein
filled in), keeping an ``expected_version`` given to it; keyword overrides replace any field,
e.g. ``reported("i-2", best=3, expected_version=0)`` or ``revised(event_id=same_id)``.

What the builders fill in unless told is a :class:`Scene`. Two are used:

- :data:`IDLIB` (the module-level builders): a shelling in Idlib in March 2024 reported by
  the feed ``sohr``, France condemning it; fresh random event ids. The store, runner, HTTP
  and fault tests use it.
- :data:`COAST`: the coastal killings of March 2025, in Latakia, graded ``fair``; statements
  from the feed ``gdelt`` by ministers of the countries named; event ids counted up from 1,
  so a fold is the same on every run. The projection tests use it (``COAST.reported(...)``).
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import msgspec

from events import (
    AnyEvent,
    CasualtiesRevised,
    Event,
    Fatalities,
    IncidentDisputed,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Place,
    Position,
    Recorded,
    Source,
    Speaker,
    StatementIssued,
    StatementRetracted,
    VictimLine,
    normalise,
    problems,
    recorded_at_of,
)
from projections import PROJECTIONS, State, fold, incidents
from projections.incidents import Traced
from services.views.codec import decode_view, encode_doc

__all__ = [
    "ALAWITE_VICTIMS",
    "COAST",
    "IDLIB",
    "LOG_START_MS",
    "SOURCE",
    "Log",
    "Scene",
    "disputed",
    "fatalities",
    "folded",
    "line",
    "merged",
    "mixed",
    "opening",
    "reported",
    "retracted",
    "revised",
    "roundtrip",
    "statement",
    "statement_retracted",
]

E = TypeVar("E", bound=Event)

SOURCE = "sohr"
"""The feed the module-level builders publish as unless told otherwise."""

LOG_START_MS = 1_741_600_000_000
"""Where a :class:`Log` starts: 2025-03-10, after the reference incident."""


def fatalities(
    best: int, qualifier: str = "exact", *, low: int | None = None, high: int | None = None
) -> Fatalities:
    """An estimate of deaths: ``low`` and ``high`` default to ``best``."""
    return msgspec.convert(
        {
            "low": best if low is None else low,
            "best": best,
            "high": best if high is None else high,
            "qualifier": qualifier,
        },
        Fatalities,
    )


def line(
    community: str,
    best: int,
    status: str = "civilian",
    *,
    qualifier: str = "exact",
    **bounds: int,
) -> VictimLine:
    """A victim line; ``low``/``high`` default to ``best``."""
    return msgspec.convert(
        {
            "community": community,
            "status": status,
            "low": bounds.get("low", best),
            "best": best,
            "high": bounds.get("high", best),
            "qualifier": qualifier,
        },
        VictimLine,
    )


def _random_id() -> uuid.UUID:
    return uuid.uuid4()


_counted = itertools.count(1)


def _counted_id() -> uuid.UUID:
    return uuid.UUID(int=next(_counted))


class Scene(msgspec.Struct, frozen=True, kw_only=True):
    """What built events say unless told otherwise, and how their ids are made."""

    feed: str
    """The feed incidents (and, unless :attr:`statement_feed` says, statements) come from."""
    occurred_start: dt.date
    place: Place
    geo_precision: int
    violence_type: str
    event_type: str
    sources: tuple[Source, ...]
    grading: str | None = None
    """``None``: the schema's default."""
    revised_to: int
    """The deaths a revision names unless told."""
    revision_sources: tuple[Source, ...]
    revision_reason: str
    merge_reason: str
    issued_at: dt.datetime
    speakers: tuple[Speaker, ...]
    subject: str
    statement_feed: str
    statement_sources: tuple[Source, ...]
    ids: Callable[[], uuid.UUID]

    def _build(self, cls: type[E], fields: dict[str, Any], overrides: dict[str, Any]) -> E:
        fields = {"event_id": self.ids(), "source": self.feed, **fields, **overrides}
        event = cls(**fields)
        found = problems(event)
        if found:
            raise ValueError(f"a builder made an invalid {event.type}: {found}")
        stored = normalise(event)
        assert isinstance(stored, cls)
        return msgspec.structs.replace(stored, expected_version=event.expected_version)

    def build(self, cls: type[E], **fields: Any) -> E:
        """Any event of ``cls`` from ``fields`` (with the scene's id and feed unless given)."""
        return self._build(cls, {}, fields)

    def reported(
        self,
        incident_id: str = "i-1",
        best: int = 10,
        *,
        victims: Sequence[VictimLine] | None = None,
        adm1: str | None = None,
        **overrides: Any,
    ) -> IncidentReported:
        """``incident.reported`` of ``best`` deaths (in ``adm1`` when given)."""
        fields: dict[str, Any] = {
            "incident_id": incident_id,
            "occurred_start": self.occurred_start,
            "country": "SYR",
            "place": self.place if adm1 is None else Place(adm1=adm1),
            "geo_precision": self.geo_precision,
            "violence_type": self.violence_type,
            "event_type": self.event_type,
            "civilian_targeting": True,
            "fatalities": fatalities(best),
            "sources": list(self.sources),
        }
        if victims is not None:
            fields["victims"] = list(victims)
        if self.grading is not None:
            fields["grading"] = self.grading
        return self._build(IncidentReported, fields, overrides)

    def revised(
        self,
        incident_id: str = "i-1",
        best: int | None = None,
        *,
        victims: Sequence[VictimLine] | None = None,
        **overrides: Any,
    ) -> CasualtiesRevised:
        """``incident.casualties_revised`` to ``best`` deaths."""
        fields: dict[str, Any] = {
            "incident_id": incident_id,
            "fatalities": fatalities(self.revised_to if best is None else best),
            "sources": list(self.revision_sources),
            "reason": self.revision_reason,
        }
        if victims is not None:
            fields["victims"] = list(victims)
        return self._build(CasualtiesRevised, fields, overrides)

    def retracted(self, incident_id: str = "i-1", **overrides: Any) -> IncidentRetracted:
        """``incident.retracted``."""
        fields = {"incident_id": incident_id, "reason": "the report was wrong"}
        return self._build(IncidentRetracted, fields, overrides)

    def merged(self, dup: str = "i-2", into: str = "i-1", **overrides: Any) -> IncidentMerged:
        """``incident.merged``: ``dup`` duplicates ``into``."""
        fields = {"incident_id": dup, "into": into, "reason": self.merge_reason}
        return self._build(IncidentMerged, fields, overrides)

    def statement(
        self,
        statement_id: str = "s-1",
        *countries: str,
        stance: str = "condemn",
        cameo_code: str | None = None,
        role: str = "other_official",
        title: str | None = None,
        **overrides: Any,
    ) -> StatementIssued:
        """``statement.issued`` of ``stance`` (condemning unless told); by ministers of
        ``countries`` (a joint statement when several), each with ``role`` and ``title``, or
        the scene's speakers.

        Without ``cameo_code``: 111 (criticize or denounce), or 051 (praise or endorse) for a
        supportive stance, which 111 contradicts.
        """
        if cameo_code is None:
            cameo_code = "051" if stance in ("support", "welcome") else "111"
        speakers = (
            [
                msgspec.convert(
                    {"country": c, "name": f"Minister of {c}", "role": role, "title": title},
                    Speaker,
                )
                for c in countries
            ]
            if countries
            else [msgspec.structs.replace(s, role=role, title=title) for s in self.speakers]
        )
        fields: dict[str, Any] = {
            "source": self.statement_feed,
            "statement_id": statement_id,
            "issued_at": self.issued_at,
            "speakers": speakers,
            "subject": self.subject,
            "cameo_code": cameo_code,
            "stance": stance,
            "sources": list(self.statement_sources),
        }
        return self._build(StatementIssued, fields, overrides)

    def disputed(
        self, incident_id: str = "i-1", feed: str = "acled", **overrides: Any
    ) -> IncidentDisputed:
        """``incident.disputed`` of ``incident_id`` by ``feed`` (not the scene's feed)."""
        fields: dict[str, Any] = {
            "source": feed,
            "incident_id": incident_id,
            "reason": "our sources count fewer dead",
            "sources": [Source(publisher="ACLED", url="https://acleddata.com/")],
        }
        return self._build(IncidentDisputed, fields, overrides)

    def statement_retracted(
        self, statement_id: str = "s-1", **overrides: Any
    ) -> StatementRetracted:
        """``statement.retracted``."""
        fields = {
            "source": self.statement_feed,
            "statement_id": statement_id,
            "reason": "misattributed",
        }
        return self._build(StatementRetracted, fields, overrides)


IDLIB = Scene(
    feed=SOURCE,
    occurred_start=dt.date(2024, 3, 1),
    place=Place(adm1="Idlib", adm2="Maarrat al-Nu'man"),
    geo_precision=2,
    violence_type="state_based",
    event_type="Explosions/Remote violence",
    sources=(Source(publisher="SOHR", url="https://example.org/r/1"),),
    revised_to=12,
    revision_sources=(Source(publisher="SOHR"),),
    revision_reason="hospital records",
    merge_reason="the same shelling reported twice",
    issued_at=dt.datetime(2024, 3, 2, 10, 0, tzinfo=dt.UTC),
    speakers=(Speaker(country="FRA", name="Ministry for Europe and Foreign Affairs"),),
    subject="syria-civilians",
    statement_feed=SOURCE,
    statement_sources=(Source(publisher="France Diplomatie"),),
    ids=_random_id,
)
"""A shelling in Idlib, March 2024, reported by ``sohr``; France condemns; random ids."""

_SYRIAHR = (Source(publisher="SOHR", url="https://www.syriahr.com/en/"),)

COAST = Scene(
    feed="sohr",
    occurred_start=dt.date(2025, 3, 6),
    place=Place(adm1="Latakia"),
    geo_precision=4,
    violence_type="one_sided",
    event_type="Violence against civilians",
    sources=_SYRIAHR,
    grading="fair",
    revised_to=10,
    revision_sources=_SYRIAHR,
    revision_reason="new count",
    merge_reason="same incident",
    issued_at=dt.datetime(2025, 3, 9, 12, tzinfo=dt.UTC),
    speakers=(Speaker(country="USA", name="Minister of USA"),),
    subject="syria-coast-2025",
    statement_feed="gdelt",
    statement_sources=_SYRIAHR,
    ids=_counted_id,
)
"""The coastal killings, March 2025, in Latakia, graded fair; statements from ``gdelt``;
event ids counted up from 1."""

reported = IDLIB.reported
revised = IDLIB.revised
retracted = IDLIB.retracted
merged = IDLIB.merged
statement = IDLIB.statement
disputed = IDLIB.disputed
statement_retracted = IDLIB.statement_retracted


ALAWITE_VICTIMS = VictimLine(low=4, best=6, high=6, community="alawite", status="civilian")
"""Four to six Alawite civilians killed, the victims :func:`opening` gives ``i-1``."""


def opening() -> list[AnyEvent]:
    """A first batch of the :data:`IDLIB` scene that every projection folds: three reports
    (``i-1`` with :data:`ALAWITE_VICTIMS`, ``i-3`` in Beirut) and two statements, ``s-1`` on
    ``i-1`` and ``s-2`` by France and Germany."""
    return [
        reported("i-1", 10, victims=[ALAWITE_VICTIMS]),
        reported("i-2", 7),
        reported("i-3", 3, country="LBN", place=Place(adm1="Beirut")),
        statement("s-1", incident_ids=["i-1"]),
        statement(
            "s-2",
            speakers=[
                Speaker(country="FRA", name="Foreign ministry"),
                Speaker(country="DEU", name="Federal Foreign Office"),
            ],
        ),
    ]


def mixed(count: int, rng: random.Random) -> list[AnyEvent]:
    """``count`` valid events of the :data:`IDLIB` scene: reports, revisions, retractions,
    merges and statements of one to two countries, in the proportions of a busy feed."""
    countries = ("FRA", "DEU", "USA", "GBR", "RUS", "TUR", "CHN", "IRN", "SAU", "QAT", "EGY", "JOR")
    stances = ("condemn", "support", "neutral", "welcome", "warn", "call_for_restraint")
    live: list[str] = []
    events: list[AnyEvent] = []
    for n in range(count):
        roll = rng.random()
        if roll < 0.45 or len(live) < 10:
            live.append(f"i-{n}")
            events.append(reported(f"i-{n}", rng.randint(0, 40)))
        elif roll < 0.65:
            events.append(revised(rng.choice(live), rng.randint(0, 40)))
        elif roll < 0.70:
            events.append(retracted(live.pop(rng.randrange(len(live)))))
        elif roll < 0.75:
            dup = live.pop(rng.randrange(len(live)))
            events.append(merged(dup, rng.choice(live)))
        else:
            speakers = rng.sample(countries, rng.choice((1, 1, 2)))
            events.append(
                statement(
                    f"s-{n}",
                    speakers=[Speaker(country=c, name="Foreign ministry") for c in speakers],
                    subject=f"subject-{rng.randrange(400)}",
                    stance=rng.choice(stances),
                    incident_ids=[rng.choice(live)],
                )
            )
    return events


class Log:
    """Gives events positions (``ms-seq``, one millisecond apart) as the store would."""

    def __init__(self, start_ms: int = LOG_START_MS) -> None:
        self._next = start_ms

    def record(self, event: Event) -> Recorded:
        """The event as the log holds it, at the next position."""
        position = Position(f"{self._next}-0")
        self._next += 1
        return Recorded(position, recorded_at_of(position), cast("AnyEvent", event))

    def records(self, events: Iterable[Event]) -> list[Recorded]:
        """Every event recorded in order."""
        return [self.record(e) for e in events]


def folded(name: str, *events: Event, log: Log | None = None) -> State:
    """The state of projection ``name`` after the events, recorded in order."""
    return fold(PROJECTIONS[name], (log or Log()).records(events))


def traced(*events: Event, log: Log | None = None) -> Traced:
    """The incidents fold of the events, recorded in order, into a state that also keeps
    each incident's history (the view's state only counts it)."""
    state = Traced()
    for one in (log or Log()).records(events):
        incidents.apply(state, one)
    return state


def roundtrip(name: str, state: State) -> State:
    """The state as the runner would store and load it again (:mod:`services.views.codec`)."""
    projection = PROJECTIONS[name]
    stored = {
        kind: {ident: encode_doc(doc) for ident, doc in docs.items()}
        for kind, docs in state.kinds().items()
    }
    return decode_view(projection, stored)
