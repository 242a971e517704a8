"""Properties of every fold over random valid histories.

(a) Folding in one go equals folding in random batches the way the runner does: after each
batch only the changed documents are written (as JSON), and the next batch starts from the
documents loaded back. (b) Retracting every incident leaves zero totals; retracting every
statement leaves no stance and no pair. (c) The community-victims query equals a direct
count over the same events. (d) A retracted statement leaves the stance and alignment states
exactly as if it had never been issued. (e) The running aggregates the folds keep (stance
rows, pair scores, victims' cells) equal a naive recomputation from the live events.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Sequence
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, given, settings

from events import (
    CasualtiesRevised,
    Event,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    Recorded,
    StatementIssued,
    position_key,
)
from projections import PROJECTIONS, Projection, State, fold
from projections.alignment import PairRow, pairs
from projections.community_victims import Cell, CommunityRow, Figures, VictimsAnswer, query
from projections.country_stance import Basis, StanceRow, stances
from services.views.codec import decode_view, encode_doc
from tests.support.builders import COAST, Log
from tests.support.strategies import FOLDS, STATUSES, histories

HISTORIES = histories(FOLDS)
"""The histories every property is checked on (events from several feeds)."""
FAMILY = {
    "condemn": "critical",
    "demand_accountability": "critical",
    "support": "supportive",
    "neutral": "procedural",
    "call_for_meeting": "procedural",
}
RANK = {"foreign_minister": 3, "spokesperson": 5, "other_official": 6}


def runner_fold(projection: Projection, records: Sequence[Recorded], cuts: Sequence[int]) -> State:
    """Fold in batches, keeping only the changed documents, stored, between batches."""
    stored: dict[str, dict[str, bytes]] = {}
    bounds = [0, *sorted(set(cuts)), len(records)]
    for start, end in itertools.pairwise(bounds):
        state = decode_view(projection, stored)
        for one in records[start:end]:
            state = projection.apply(state, one)
        for (kind, ident), doc in state.take_changes().items():
            if doc is None:
                stored.get(kind, {}).pop(ident, None)
            else:
                stored.setdefault(kind, {})[ident] = encode_doc(doc)
    return decode_view(projection, stored)


def closing(events: Sequence[Event]) -> list[Event]:
    """Retractions of every incident still live and every statement not yet retracted."""
    live: dict[str, bool] = {}
    statements: dict[str, bool] = {}
    for event in events:
        if isinstance(event, IncidentReported):
            live.setdefault(event.incident_id, True)
        elif isinstance(event, IncidentRetracted | IncidentMerged):
            live[event.incident_id] = False
        elif event.type == "statement.issued":
            statements[event.statement_id] = True  # type: ignore[attr-defined]
        elif event.type == "statement.retracted":
            statements[event.statement_id] = False  # type: ignore[attr-defined]
    return [COAST.retracted(i) for i, on in live.items() if on] + [
        COAST.statement_retracted(s) for s, on in statements.items() if on
    ]


def direct_count(events: Sequence[Event]) -> tuple[Figures, dict[str, tuple[int, int]]]:
    """Total and (best, incidents) per community over live, reported, undiscounted incidents."""
    current: dict[str, IncidentReported | CasualtiesRevised] = {}
    grading: dict[str, str] = {}
    gone: set[str] = set()
    for event in events:
        if isinstance(event, IncidentReported):
            grading[event.incident_id] = event.grading
            current[event.incident_id] = event
        elif isinstance(event, CasualtiesRevised):
            current[event.incident_id] = event
        elif isinstance(event, IncidentRetracted | IncidentMerged):
            gone.add(event.incident_id)
    total = Figures()
    communities: dict[str, tuple[int, int]] = {}
    for ident, figures_now in current.items():
        if ident in gone or ident not in grading or grading[ident] == "discounted":
            continue
        f = figures_now.fatalities
        total = total.plus(Figures(f.low, f.best, f.high))
        mine: dict[str, int] = {}
        for v in figures_now.victims:
            mine[v.community] = mine.get(v.community, 0) + v.best
        for community, best in mine.items():
            so_far, count = communities.get(community, (0, 0))
            communities[community] = (so_far + best, count + 1)
    return total, communities


def live_statements(records: Sequence[Recorded]) -> list[tuple[Recorded, StatementIssued]]:
    """The statements still live at the end (a re-issue replaces), in log order."""
    live: dict[str, tuple[Recorded, StatementIssued]] = {}
    for one in records:
        event = one.event
        if isinstance(event, StatementIssued):
            live.pop(event.statement_id, None)
            live[event.statement_id] = (one, event)
        elif event.type == "statement.retracted":
            live.pop(event.statement_id, None)  # type: ignore[attr-defined]
    return sorted(live.values(), key=lambda pair: position_key(pair[0].position))


def _span(event: StatementIssued) -> tuple[dt.datetime, dt.datetime]:
    """The moments a statement's time stands for, by its precision."""
    if event.issued_precision == "day":
        day = event.issued_at.replace(hour=0, minute=0, second=0, microsecond=0)
        return day, day + dt.timedelta(days=1, microseconds=-1)
    if event.issued_precision == "range" and event.issued_end is not None:
        return event.issued_at, event.issued_end
    return event.issued_at, event.issued_at


def _naive_basis(country: str, said: list[tuple[Recorded, StatementIssued]]) -> list[Any]:
    """The highest rank's latest statement and its rank's statements overlapping it."""

    def rank(event: StatementIssued) -> int:
        return next(RANK[s.role] for s in event.speakers if s.country == country)

    top = min(rank(e) for _, e in said)
    ranked = [(one, e) for one, e in said if rank(e) == top]
    last = _span(ranked[-1][1])
    return [(one, e) for one, e in ranked if _span(e)[0] <= last[1] and last[0] <= _span(e)[1]]


def _naive_stance(basis: list[Any]) -> tuple[str, str, tuple[str, ...]]:
    stances = tuple(dict.fromkeys(e.stance for _, e in basis))
    families = {FAMILY[s] for s in stances}
    if len(families) > 1:
        return "mixed", "mixed", stances
    return basis[-1][1].stance, families.pop(), stances


def naive_stances(records: Sequence[Recorded]) -> list[StanceRow]:
    """Every stance row recomputed from scratch, by the module's definition."""
    starts: dict[str, dt.date] = {}
    for one in records:
        if isinstance(one.event, IncidentReported):
            starts[one.event.incident_id] = one.event.occurred_start
        elif isinstance(one.event, IncidentRetracted):
            starts.pop(one.event.incident_id, None)
    live = live_statements(records)
    by_key: dict[tuple[str, str], list[tuple[Recorded, StatementIssued]]] = {}
    named: dict[str, set[str]] = {}
    for one, event in live:
        named.setdefault(event.subject, set()).update(event.incident_ids)
        for speaker in event.speakers:
            by_key.setdefault((speaker.country, event.subject), []).append((one, event))
    rows = []
    for (country, subject), said in sorted(by_key.items()):
        said.sort(key=lambda pair: (pair[1].issued_at, position_key(pair[0].position)))
        scores = [e.goldstein for _, e in said if e.goldstein is not None]
        total = 0.0
        for score in scores:
            total += score
        dates = [starts[i] for i in named[subject] if i in starts]
        first, latest = said[0][1], said[-1][1]
        latency = None
        if dates and first.issued_precision != "range":
            midnight = dt.datetime.combine(min(dates), dt.time(), tzinfo=dt.UTC)
            latency = (_span(first)[0] - midnight).total_seconds() / 3600
        basis = _naive_basis(country, said)
        stance, family, stances_said = _naive_stance(basis)
        speaker_of = {
            e.statement_id: next(s for s in e.speakers if s.country == country) for _, e in basis
        }
        rows.append(
            StanceRow(
                country=country,
                subject=subject,
                stance=stance,
                family=family,
                stances=stances_said,
                role=speaker_of[basis[-1][1].statement_id].role,
                basis=tuple(
                    Basis(
                        statement_id=e.statement_id,
                        stance=e.stance,
                        role=speaker_of[e.statement_id].role,
                        title=speaker_of[e.statement_id].title,
                        cameo_code=e.cameo_code,
                        goldstein=e.goldstein,
                        issued_at=e.issued_at,
                        issued_precision=e.issued_precision,
                        issued_end=e.issued_end,
                    )
                    for _, e in basis
                ),
                latest_statement_id=basis[-1][1].statement_id,
                statements=len(said),
                mean_goldstein=total / len(scores) if scores else None,
                first_at=first.issued_at,
                latest_at=latest.issued_at,
                latency_hours=latency,
            )
        )
    return rows


def naive_victims(events: Sequence[Event], status: str | None) -> VictimsAnswer:
    """The victims answer (every grading) recomputed from the live incidents' figures: with a
    status, that status's lines and their own total; unattributed by interval arithmetic."""
    current: dict[str, IncidentReported | CasualtiesRevised] = {}
    reported_ids: set[str] = set()
    gone: set[str] = set()
    for event in events:
        if isinstance(event, IncidentReported):
            reported_ids.add(event.incident_id)
            current[event.incident_id] = event
        elif isinstance(event, CasualtiesRevised):
            current[event.incident_id] = event
        elif isinstance(event, IncidentRetracted | IncidentMerged):
            gone.add(event.incident_id)
    total, incidents = Figures(), 0
    rows: dict[str, tuple[Figures, int]] = {}
    for ident, now in current.items():
        if ident in gone or ident not in reported_ids:
            continue
        f = now.fatalities
        mine: dict[str, Figures] = {}
        for v in now.victims:
            if status is None or v.status == status:
                figures = Figures(v.low, v.best, v.high, v.qualifier == "at_least")
                mine[v.community] = mine.get(v.community, Figures()).plus(figures)
        if status is None:
            total = total.plus(Figures(f.low, f.best, f.high, f.qualifier == "at_least"))
            incidents += 1
        elif mine:
            for figures in mine.values():
                total = total.plus(figures)
            incidents += 1
        for community, figures in mine.items():
            so_far, count = rows.get(community, (Figures(), 0))
            rows[community] = (so_far.plus(figures), count + 1)
    shown = Figures()
    for figures, _ in rows.values():
        shown = shown.plus(figures)
    communities = [
        CommunityRow(
            community=c, low=f.low, best=f.best, high=f.high, incidents=n, at_least=f.at_least
        )
        for c, (f, n) in rows.items()
    ]
    communities.sort(key=lambda row: (-row.best, row.community))
    unattributed = Figures(
        max(0, total.low - shown.high),
        max(0, total.best - shown.best),
        max(0, total.high - shown.low),
        total.at_least,
    )
    return VictimsAnswer(
        total=total,
        unattributed=Figures() if status is not None else unattributed,
        incidents=incidents,
        communities=communities,
        status=status,
    )


def naive_pairs(records: Sequence[Recorded], subject: str | None = None) -> list[PairRow]:
    """Every pair's alignment recomputed from scratch, by the module's definition."""
    said: dict[tuple[str, str], list[tuple[Recorded, StatementIssued]]] = {}
    cosigned: set[tuple[str, str, str]] = set()
    for one, event in live_statements(records):
        countries = [s.country for s in event.speakers]
        for country in countries:
            said.setdefault((country, event.subject), []).append((one, event))
        cosigned.update((a, b, event.subject) for a in countries for b in countries if a < b)
    stance: dict[tuple[str, str], str] = {}
    for (country, about), mine in said.items():
        mine.sort(key=lambda pair: (pair[1].issued_at, position_key(pair[0].position)))
        stance[country, about] = _naive_stance(_naive_basis(country, mine))[0]
    scores: dict[tuple[str, str], list[float]] = {}
    for (a, subject_a), stance_a in stance.items():
        for (b, subject_b), stance_b in stance.items():
            if a >= b or subject_a != subject_b or subject not in (None, subject_a):
                continue
            families = {FAMILY.get(stance_a, "mixed"), FAMILY.get(stance_b, "mixed")}
            if (a, b, subject_a) in cosigned or (len(families) == 1 and "mixed" not in families):
                value = 1.0
            elif "mixed" in families or "procedural" in families:
                value = 0.5
            else:
                value = 0.0
            scores.setdefault((a, b), []).append(value)
    return [
        PairRow(a=a, b=b, score=sum(v) / len(v), shared_subjects=len(v), thin=len(v) < 3)
        for (a, b), v in sorted(scores.items())
    ]


PROPERTY = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


class TestFoldProperties:
    @PROPERTY
    @given(events=HISTORIES, data=st.data())
    def test_batched_fold_through_json_equals_one_fold(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Random batches, stored as JSON between them, fold to the same state as one go."""
        records = Log().records(events)
        cuts = data.draw(st.lists(st.integers(0, len(records)), max_size=6))
        for projection in PROJECTIONS.values():
            assert runner_fold(projection, records, cuts) == fold(projection, records), (
                projection.name
            )

    @PROPERTY
    @given(events=HISTORIES)
    def test_retracting_everything_leaves_zero(self, events: list[Event]) -> None:
        """After every incident and statement is retracted no total, stance or pair is left."""
        records = Log().records([*events, *closing(events)])
        victims = fold(PROJECTIONS["community-victims"], records)
        answer = query(victims, min_grading="discounted")
        assert answer.total == Figures()
        assert answer.communities == []
        assert not any(victims.kind(kind) for kind in ("line", "community", "total"))
        assert stances(fold(PROJECTIONS["country-stance"], records)) == []
        assert pairs(fold(PROJECTIONS["alignment"], records)) == []

    @PROPERTY
    @given(events=HISTORIES)
    def test_victims_query_equals_a_direct_count(self, events: list[Event]) -> None:
        """The summed cells give what counting the live incidents' current figures gives."""
        total, communities = direct_count(events)
        answer = query(fold(PROJECTIONS["community-victims"], Log().records(events)))
        assert answer.total == total
        assert {r.community: (r.best, r.incidents) for r in answer.communities} == communities

    @PROPERTY
    @given(events=HISTORIES)
    def test_retracted_statements_are_as_if_never_issued(self, events: list[Event]) -> None:
        """Dropping each retracted statement and its retraction from the log changes nothing."""
        records = Log().records(events)
        retracted_ids = {
            r.event.statement_id  # type: ignore[attr-defined]
            for r in records
            if r.event.type == "statement.retracted"
        }
        kept = [r for r in records if getattr(r.event, "statement_id", None) not in retracted_ids]
        for name in ("country-stance", "alignment"):
            projection = PROJECTIONS[name]
            assert fold(projection, records) == fold(projection, kept), name

    @PROPERTY
    @given(events=HISTORIES, data=st.data())
    def test_running_aggregates_equal_a_naive_recomputation(
        self, events: list[Event], data: st.DataObject
    ) -> None:
        """Stance rows, pair scores and victims' cells equal a recomputation from scratch."""
        records = Log().records(events)
        stance_state = fold(PROJECTIONS["country-stance"], records)
        assert stances(stance_state) == naive_stances(records)
        alignment_state = fold(PROJECTIONS["alignment"], records)
        assert pairs(alignment_state) == naive_pairs(records)
        subject = data.draw(st.sampled_from(FOLDS.subjects))
        assert pairs(alignment_state, subject=subject) == naive_pairs(records, subject)
        victims = fold(PROJECTIONS["community-victims"], records)
        for status in (None, *STATUSES):
            answer = query(victims, min_grading="discounted", status=status)
            assert answer == naive_victims(events, status)
        for cell in victims.kind("total").values():
            assert isinstance(cell, Cell)
            assert cell.incidents > 0
            assert all(
                one.incidents > 0 for one in (*cell.communities.values(), *cell.lines.values())
            )
