"""Hypothesis strategies: histories of events from several feeds, and batches for the stores.

:func:`histories` draws a history of reports, revisions, retractions, merges, joint
statements, statement retractions and (when the shape says so) redactions, of the
:data:`~tests.support.builders.COAST` scene, each incident and statement published by a feed
drawn from :data:`FEEDS` or :data:`STATEMENT_FEEDS`. A :class:`Shape` says how many
incidents, which countries and subjects, how long, how actions are weighted, and whether the
history must be one the store accepts event by event (:data:`FOLDS` for the fold
properties, :data:`PARTITIONED` for the partition merges).

:data:`batches` draws batches of steps for the stores' agreement tests; :func:`event_of`
turns a step into an event and :func:`outcome` says what a store answered to a batch.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
import msgspec

from events import (
    AnyEvent,
    CasualtiesRevised,
    Event,
    IncidentRedacted,
    IncidentReported,
    Speaker,
    StatementRedacted,
    VictimLine,
)
from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EventStore,
    IdReusedError,
    NotOwnerError,
)
from tests.support.builders import (
    COAST,
    disputed,
    fatalities,
    line,
    merged,
    reported,
    retracted,
    revised,
    statement,
    statement_retracted,
)

__all__ = [
    "BATCH_IDS",
    "FEEDS",
    "FOLDS",
    "PARTITIONED",
    "ROLES",
    "STATEMENT_FEEDS",
    "STATUSES",
    "Shape",
    "batches",
    "event_of",
    "histories",
    "outcome",
]

FEEDS = ("sohr", "acled", "airwars", "ucdp")
"""The feeds incidents of a drawn history come from."""
STATEMENT_FEEDS = ("gdelt", "un-watch")
"""The feeds statements of a drawn history come from."""
PLACES = [("SYR", "Latakia"), ("SYR", "Tartus"), ("SYR", "Rif Dimashq"), ("LBN", "North")]
GRADINGS = ["confirmed", "fair", "weak", "contested", "discounted"]
COMMUNITIES = ["alawite", "christian", "druze"]
STATUSES = ["civilian", "combatant", "unknown"]
"""Victim statuses drawn."""
CAMEO = {
    "condemn": "111",
    "demand_accountability": "111",
    "support": "051",
    "neutral": "010",
    "call_for_meeting": "026",
}
ROLES = ("foreign_minister", "spokesperson", "other_official")
"""Speaker roles drawn when a shape ranks its speakers."""


class Shape(msgspec.Struct, frozen=True, kw_only=True):
    """What a drawn history looks like."""

    incidents: int
    """How many incident ids there are (``i-0`` …)."""
    countries: tuple[str, ...]
    subjects: tuple[str, ...]
    actions: tuple[str, ...]
    """The actions drawn from (repeat one to weigh it): report, revise, retract, merge,
    redact, dispute, state, unstate, redact_statement."""
    longest: int
    """Most actions drawn."""
    days: int
    """Incidents occur on one of this many days from 2025-03-01."""
    hours: int
    """Statements are issued within this many hours of 2025-03-07."""
    named: int
    """Most incidents a statement names."""
    valid: bool
    """Whether every event must be one the store accepts after those before it (merges only
    of live incidents into live ones); else a merge may name an incident not reported yet."""
    notes: bool = False
    """Whether reports carry sealed notes now and then."""
    spread: bool = False
    """Whether figures spread low and high around the sums of their lines (else lines are
    exact and fatalities at least their sum)."""
    windows: bool = False
    """Whether reports draw a date precision and now and then an end (some beyond a year),
    so that windows of occurrence span days, weeks, months and years; else one day each."""
    ranked: bool = False
    """Whether speakers get a role drawn from :data:`ROLES` and statement times a precision
    (exact, day or a range); else every speaker is another official at an exact time."""


FOLDS = Shape(
    incidents=6,
    countries=("USA", "RUS", "FRA", "CHN"),
    subjects=("syria-coast", "gaza"),
    actions=("report", "revise", "retract", "merge", "state", "unstate"),
    longest=40,
    days=20,
    windows=True,
    hours=60,
    named=2,
    valid=False,
    spread=True,
    ranked=True,
)
"""The histories of the fold properties."""

PARTITIONED = Shape(
    incidents=10,
    countries=("USA", "RUS", "FRA", "CHN", "GBR"),
    subjects=("syria-coast", "gaza", "sudan"),
    actions=(
        *["report"] * 3,
        "revise",
        "retract",
        *["merge"] * 2,
        "redact",
        "dispute",
        *["state"] * 3,
        "unstate",
        "redact_statement",
    ),
    longest=60,
    days=9,
    hours=4,
    named=3,
    valid=True,
    notes=True,
)
"""The histories of the partition merges: valid under the store's rules, with redactions."""


@st.composite
def _figures(draw: st.DrawFn, shape: Shape) -> dict[str, Any]:
    """Valid figures: victim lines and fatalities at least their sums, low ≤ best ≤ high."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(COMMUNITIES), st.sampled_from(STATUSES)),
            unique=True,
            max_size=4 if shape.spread else 3,
        )
    )
    if not shape.spread:
        lines = [line(c, draw(st.integers(0, 30)), s) for c, s in keys]
        best = sum(v.best for v in lines) + draw(st.integers(0, 10))
        return {
            "victims": lines,
            "fatalities": fatalities(best, high=best + draw(st.integers(0, 5))),
        }
    spread: list[VictimLine] = []
    for community, status in keys:
        best = draw(st.integers(0, 50))
        low, high = best - draw(st.integers(0, best)), best + draw(st.integers(0, 9))
        spread.append(line(community, best, status, low=low, high=high))
    extra = [draw(st.integers(0, 20)) for _ in range(3)]
    low = sum(v.low for v in spread) + extra[0]
    best = max(sum(v.best for v in spread), low) + extra[1]
    high = max(sum(v.high for v in spread), best) + extra[2]
    return {"victims": spread, "fatalities": fatalities(best, low=low, high=high)}


@st.composite
def histories(draw: st.DrawFn, shape: Shape = PARTITIONED) -> list[Event]:
    """A history of ``shape`` (see the module docstring)."""
    ids = [f"i-{n}" for n in range(shape.incidents)]
    incident: dict[str, str] = {}  # id -> live / retracted / merged
    said: dict[str, str] = {}  # statement id -> live / retracted
    feed_of: dict[str, str] = {}  # entity -> the feed that reported or issued it
    events: list[Event] = []
    for n in range(draw(st.integers(1, shape.longest))):
        action = draw(st.sampled_from(shape.actions))
        live = sorted(i for i, status in incident.items() if status == "live")
        if action == "report":
            fresh = [i for i in ids if i not in incident]
            if not fresh:
                continue
            ident = draw(st.sampled_from(fresh))
            country, adm1 = draw(st.sampled_from(PLACES))
            feed_of[ident] = draw(st.sampled_from(FEEDS))
            extra: dict[str, Any] = {}
            if shape.notes:
                extra["notes"] = draw(st.sampled_from([None, "[sealed]"]))
            days = dt.timedelta(days=draw(st.integers(0, shape.days)))
            if shape.windows:
                extra["date_precision"] = draw(st.sampled_from([1, 1, 2, 3, 4, 5]))
                spans = st.sampled_from([None, None, 0, 1, 6, 40, 400])
                if (span := draw(spans)) is not None:
                    extra["occurred_end"] = dt.date(2025, 3, 1) + days + dt.timedelta(days=span)
            events.append(
                COAST.reported(
                    ident,
                    source=feed_of[ident],
                    country=country,
                    adm1=adm1,
                    occurred_start=dt.date(2025, 3, 1) + days,
                    grading=draw(st.sampled_from(GRADINGS)),
                    **extra,
                    **draw(_figures(shape)),
                )
            )
            incident[ident] = "live"
        elif action in ("revise", "retract", "merge") and live:
            ident = draw(st.sampled_from(live))
            if action == "revise":
                events.append(COAST.revised(ident, source=feed_of[ident], **draw(_figures(shape))))
            elif action == "retract":
                events.append(COAST.retracted(ident, source=feed_of[ident]))
                incident[ident] = "retracted"
            else:
                targets = [
                    i
                    for i in (live if shape.valid else ids)
                    if i != ident and incident.get(i, "live") == "live"
                ]
                if not targets:
                    continue
                events.append(
                    COAST.merged(ident, draw(st.sampled_from(targets)), source=feed_of[ident])
                )
                incident[ident] = "merged"
        elif action == "redact" and incident:
            events.append(_redacted(draw(st.sampled_from(sorted(incident)))))
        elif action == "dispute" and live:
            ident = draw(st.sampled_from(live))
            others = [feed for feed in FEEDS if feed != feed_of[ident]]
            events.append(COAST.disputed(ident, feed=draw(st.sampled_from(others))))
        elif action == "state":
            stance = draw(st.sampled_from(sorted(CAMEO)))
            speakers = draw(
                st.lists(st.sampled_from(shape.countries), min_size=1, max_size=3, unique=True)
            )
            feed_of[f"s-{n}"] = draw(st.sampled_from(STATEMENT_FEEDS))
            events.append(
                COAST.statement(
                    f"s-{n}",
                    source=feed_of[f"s-{n}"],
                    subject=draw(st.sampled_from(shape.subjects)),
                    stance=stance,
                    cameo_code=CAMEO[stance],
                    incident_ids=draw(
                        st.lists(
                            st.sampled_from(sorted(incident) if shape.valid and incident else ids),
                            max_size=shape.named if incident or not shape.valid else 0,
                            unique=True,
                        )
                    ),
                    **draw(_voices(shape, speakers)),
                )
            )
            said[f"s-{n}"] = "live"
        elif action == "unstate" and "live" in said.values():
            gone = draw(
                st.sampled_from(sorted(s for s, status in said.items() if status == "live"))
            )
            events.append(COAST.statement_retracted(gone, source=feed_of[gone]))
            said[gone] = "retracted"
        elif action == "redact_statement" and said:
            events.append(_statement_redacted(draw(st.sampled_from(sorted(said)))))
    return events


@st.composite
def _voices(draw: st.DrawFn, shape: Shape, countries: Sequence[str]) -> dict[str, Any]:
    """A statement's speakers (one per country) and its time, ranked when the shape says."""
    issued_at = dt.datetime(2025, 3, 7, tzinfo=dt.UTC) + dt.timedelta(
        hours=draw(st.integers(0, shape.hours))
    )
    if not shape.ranked:
        speakers = [Speaker(country=c, name=f"Minister of {c}") for c in countries]
        return {"speakers": speakers, "issued_at": issued_at}
    precision = draw(st.sampled_from(["exact", "exact", "day", "range"]))
    end = None
    if precision == "range":
        end = issued_at + dt.timedelta(hours=draw(st.integers(0, 30)))
    speakers = [
        Speaker(country=c, name=f"Minister of {c}", role=draw(st.sampled_from(ROLES)))
        for c in countries
    ]
    return {
        "speakers": speakers,
        "issued_at": issued_at,
        "issued_precision": precision,
        "issued_end": end,
    }


def _redacted(incident_id: str) -> Event:
    """An ``incident.redacted`` from the operators' feed."""
    return COAST.build(IncidentRedacted, incident_id=incident_id, source="ops", reason="erasure")


def _statement_redacted(statement_id: str) -> Event:
    """A ``statement.redacted`` from the operators' feed."""
    return COAST.build(StatementRedacted, statement_id=statement_id, source="ops", reason="erasure")


# --- batches for the stores ---------------------------------------------------------------------

BATCH_IDS = ("a", "b")
"""The entity ids store batches are drawn over."""

_ident = st.sampled_from(BATCH_IDS)
_step = st.one_of(  # creations weigh more, so that later steps find something to change
    *[st.tuples(st.just("report"), _ident)] * 3,
    *[st.tuples(st.just("issue"), _ident)] * 2,
    st.tuples(st.just("revise"), _ident),
    st.tuples(st.just("retract"), _ident),
    *[st.tuples(st.just("merge"), _ident, _ident)] * 2,
    st.tuples(st.just("unissue"), _ident),
    st.tuples(st.just("resend"), st.integers(0, 50)),
    st.tuples(st.just("squat"), st.integers(0, 50)),
    st.tuples(st.just("reword"), st.integers(0, 50)),
    st.tuples(st.just("trespass"), _ident),
    st.tuples(st.just("dispute"), _ident),
)
batches = st.lists(
    st.lists(
        st.tuples(_step, st.none() | st.none() | st.none() | st.integers(0, 3)),
        min_size=1,
        max_size=3,
    ),
    min_size=1,
    max_size=12,
)
"""Batches of (step, expected version or ``None``); a step stands for an event
(:func:`event_of`)."""


def event_of(step: tuple[Any, ...], expected: int | None, sent: Sequence[AnyEvent]) -> AnyEvent:
    """The event a drawn step stands for: ``resend`` repeats an earlier one, ``squat`` sends
    its id as another feed, ``reword`` with more dead (a report or revision; other events are
    resent as they were); ``trespass`` revises as another
    feed, ``dispute`` disputes as another feed."""
    kind = step[0]
    if kind in ("resend", "squat", "reword"):
        if not sent:
            return reported("a")
        earlier = sent[step[1] % len(sent)]
        changed: AnyEvent = earlier
        if kind == "squat":
            changed = msgspec.structs.replace(earlier, source="acled")
        elif kind == "reword" and isinstance(earlier, IncidentReported | CasualtiesRevised):
            more = fatalities(earlier.fatalities.best + 1, high=earlier.fatalities.high + 1)
            changed = msgspec.structs.replace(earlier, fatalities=more)
        return changed
    if kind == "trespass":
        return revised(step[1], source="acled")
    if kind == "dispute":
        return disputed(step[1], feed="acled")
    extra: dict[str, Any] = {"expected_version": expected}
    if kind == "revise":
        return revised(step[1], **extra)
    if kind == "retract":
        return retracted(step[1], **extra)
    if kind == "merge" and step[1] != step[2]:
        return merged(step[1], step[2], **extra)
    if kind == "issue":
        return statement(step[1], **extra)
    if kind == "unissue":
        return statement_retracted(step[1], **extra)
    return reported(step[1], **extra)


async def outcome(
    store: EventStore, batch: list[AnyEvent], *, places: bool = True
) -> tuple[Any, ...]:
    """What an append answered, without the store-specific positions (with each event's place
    in the one log when ``places``; a partitioned log has no one order)."""
    try:
        answers = await store.append(batch)
    except ConflictError as exc:
        return ("conflict", exc.index, exc.entity, exc.current, exc.message)
    except NotOwnerError as exc:
        return ("forbidden", exc.index, exc.entity, exc.owner)
    except IdReusedError as exc:
        place = None
        if places and exc.position is not None:
            place = [r.position for r in await store.read(count=100_000)].index(exc.position)
        return (exc.reason, exc.index, place, exc.earlier)
    except AppendRejectedError as exc:
        return ("rejected", exc.index, exc.field, exc.message)
    if not places:
        return ("ok", tuple((a.event_id, a.status) for a in answers))
    log = [r.position for r in await store.read(count=100_000)]
    return ("ok", tuple((a.event_id, a.status, log.index(a.position)) for a in answers))
