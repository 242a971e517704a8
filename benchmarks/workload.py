"""A realistic, self-consistent stream of events for the benchmarks.

The mix follows the field-report feeds the ledger serves: about 83 % first reports of
incidents across several countries and communities, 10 % casualty revisions, 1 %
retractions, 1 % merges of duplicates, 5 % diplomatic statements (a few of them retracted
later). Every revision, retraction and merge targets an incident that is live at that point
of the stream, so the whole stream appends cleanly in order. A ``namespace`` keeps the ids of
independent streams apart (several clients publishing at once).

Events are built from a few templates with fresh ids and figures (``msgspec.structs.replace``)
so that a million of them take seconds, and each is in its stored form (current schema
version, Goldstein filled in).
"""

from __future__ import annotations

import datetime as dt
import random
import uuid
from collections.abc import Iterator

import msgspec

from events import (
    AnyEvent,
    CasualtiesRevised,
    Fatalities,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Place,
    Source,
    Speaker,
    StatementIssued,
    StatementRetracted,
    Target,
    VictimLine,
    normalise,
    problems,
)

FEED = "bench"
"""The feed every generated event is published as."""

COMMUNITIES = (
    "sunni-arab", "alawite", "kurdish", "druze", "christian", "turkmen",
    "ismaili", "yazidi", "shia-arab", "assyrian", "armenian", "circassian",
)  # fmt: skip

PLACES = {
    "SYR": ("Idlib", "Aleppo", "Hama", "Homs", "Latakia", "Tartus", "Deir ez-Zor", "As-Suwayda"),
    "IRQ": ("Nineveh", "Kirkuk", "Anbar", "Salah al-Din", "Diyala"),
    "LBN": ("South Lebanon", "Beqaa", "Nabatieh"),
    "YEM": ("Taiz", "Marib", "Hodeidah", "Sanaa"),
}
COUNTRIES = tuple(PLACES)
SPEAKERS = ("FRA", "DEU", "GBR", "USA", "TUR", "RUS", "CHN", "QAT", "SAU", "IRN", "JOR", "EGY")
STANCES = {"111": "condemn", "051": "support", "036": "call_for_meeting", "130": "warn"}
START = dt.date(2023, 1, 1)
SUBJECTS = tuple(
    f"{country.lower()}-{topic}-{year}-{month:02d}"
    for country in COUNTRIES
    for topic in ("civilians", "shelling", "detentions")
    for year in (2023, 2024)
    for month in range(1, 13)
)
"""Statements are about one of 288 subjects (a country, a topic and a month)."""


def _reported_template() -> IncidentReported:
    return IncidentReported(
        event_id=uuid.uuid4(),
        source=FEED,
        incident_id="tpl",
        occurred_start=START,
        country="SYR",
        place=Place(adm1="Idlib", adm2="Maarrat al-Nu'man"),
        geo_precision=2,
        violence_type="state_based",
        event_type="Explosions/Remote violence",
        sub_event_type="Shelling/artillery/missile attack",
        perpetrators=["Syrian Arab Army"],
        civilian_targeting=True,
        fatalities=Fatalities(low=1, best=1, high=1),
        sources=[Source(publisher="SOHR", url="https://example.org/reports/1")],
        grading="fair",
    )


def _statement_template() -> StatementIssued:
    return StatementIssued(
        event_id=uuid.uuid4(),
        source=FEED,
        statement_id="tpl",
        issued_at=dt.datetime(2024, 3, 2, 10, 0, tzinfo=dt.UTC),
        speakers=[Speaker(country="FRA", name="Ministry of Foreign Affairs")],
        target=Target(country="SYR"),
        subject="syria-civilians",
        cameo_code="111",
        stance="condemn",
        sources=[Source(publisher="Foreign ministry", url="https://example.org/statements/1")],
    )


class Workload:
    """Generates the event stream; deterministic for a given ``seed`` and ``namespace``."""

    def __init__(self, *, seed: int = 7, namespace: str = "") -> None:
        self.rng = random.Random(seed)
        self.namespace = namespace
        self.live: list[str] = []
        self.statements: list[str] = []
        self.incidents = 0
        self.issued = 0
        self._reported_tpl: IncidentReported = normalise(_reported_template())  # type: ignore[assignment]
        self._statement_tpl: StatementIssued = normalise(_statement_template())  # type: ignore[assignment]
        self.counts: dict[str, int] = {}

    def _id(self) -> uuid.UUID:
        return uuid.UUID(int=self.rng.getrandbits(128), version=4)

    def _figures(self) -> tuple[Fatalities, list[VictimLine]]:
        rng = self.rng
        lines = []
        total = 0
        for community in rng.sample(COMMUNITIES, rng.choice((1, 1, 1, 2, 2, 3))):
            best = rng.randint(0, 12)
            total += best
            lines.append(
                VictimLine(
                    low=best,
                    best=best,
                    high=best + rng.randint(0, 3),
                    community=community,
                    status=rng.choice(("civilian", "civilian", "combatant", "unknown")),
                )
            )
        high = sum(line.high for line in lines) + rng.randint(0, 4)
        fatalities = Fatalities(
            low=total, best=total, high=high, qualifier="exact" if high == total else "range"
        )
        return fatalities, lines

    def _take_live(self) -> str:
        """Remove and return a random live incident (swap with the last: O(1))."""
        live = self.live
        i = self.rng.randrange(len(live))
        live[i], live[-1] = live[-1], live[i]
        return live.pop()

    def _report(self) -> IncidentReported:
        rng = self.rng
        self.incidents += 1
        ident = f"{self.namespace}i-{self.incidents}"
        self.live.append(ident)
        country = rng.choice(COUNTRIES)
        fatalities, victims = self._figures()
        return msgspec.structs.replace(
            self._reported_tpl,
            event_id=self._id(),
            incident_id=ident,
            occurred_start=START + dt.timedelta(days=rng.randrange(730)),
            country=country,
            place=Place(adm1=rng.choice(PLACES[country])),
            geo_precision=rng.randint(1, 4),
            fatalities=fatalities,
            victims=victims,
            grading=rng.choice(("confirmed", "fair", "fair", "weak", "contested")),
        )

    def _revise(self) -> CasualtiesRevised:
        fatalities, victims = self._figures()
        return CasualtiesRevised(
            event_id=self._id(),
            source=FEED,
            schema_version=CasualtiesRevised.SCHEMA_VERSION,
            incident_id=self.rng.choice(self.live),
            fatalities=fatalities,
            victims=victims,
            sources=[Source(publisher="Hospital records")],
            reason="hospital records",
        )

    def _retract(self) -> IncidentRetracted:
        return IncidentRetracted(
            event_id=self._id(),
            source=FEED,
            schema_version=IncidentRetracted.SCHEMA_VERSION,
            incident_id=self._take_live(),
            reason="the report was wrong",
        )

    def _merge(self) -> IncidentMerged:
        dup = self._take_live()
        return IncidentMerged(
            event_id=self._id(),
            source=FEED,
            schema_version=IncidentMerged.SCHEMA_VERSION,
            incident_id=dup,
            into=self.rng.choice(self.live),
            reason="the same incident reported twice",
        )

    def _statement(self) -> StatementIssued:
        rng = self.rng
        self.issued += 1
        ident = f"{self.namespace}s-{self.issued}"
        self.statements.append(ident)
        code = rng.choice(tuple(STANCES))
        return msgspec.structs.replace(
            self._statement_tpl,
            event_id=self._id(),
            statement_id=ident,
            speakers=[Speaker(country=rng.choice(SPEAKERS), name="Ministry of Foreign Affairs")],
            subject=rng.choice(SUBJECTS),
            cameo_code=code,
            stance=STANCES[code],
            goldstein=None,
        )

    def _unsay(self) -> StatementRetracted:
        statements = self.statements
        i = self.rng.randrange(len(statements))
        statements[i], statements[-1] = statements[-1], statements[i]
        return StatementRetracted(
            event_id=self._id(),
            source=FEED,
            schema_version=StatementRetracted.SCHEMA_VERSION,
            statement_id=statements.pop(),
            reason="misattributed",
        )

    def next(self) -> AnyEvent:
        """The next event of the stream."""
        r = self.rng.random()
        event: AnyEvent
        if len(self.live) < 10 or r < 0.83:
            event = self._report()
        elif r < 0.93:
            event = self._revise()
        elif r < 0.94:
            event = self._retract()
        elif r < 0.95:
            event = self._merge()
        elif r < 0.997 or not self.statements:
            event = normalise(self._statement())  # type: ignore[assignment]
        else:
            event = self._unsay()
        self.counts[event.type] = self.counts.get(event.type, 0) + 1
        return event

    def __iter__(self) -> Iterator[AnyEvent]:
        while True:
            yield self.next()

    def take(self, n: int) -> list[AnyEvent]:
        """The next ``n`` events."""
        return [self.next() for _ in range(n)]


def check(events: list[AnyEvent]) -> None:
    """Raise ``ValueError`` when any event breaks a domain rule (a generator bug)."""
    for i, event in enumerate(events):
        found = problems(event)
        if found:
            raise ValueError(f"generated event {i} ({event.type}) is invalid: {found}")
