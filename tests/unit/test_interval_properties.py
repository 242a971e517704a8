"""No answer of any projection ever has low > best or best > high.

Random logs (reports with every qualifier, revisions, merges, retractions, disputes,
statements, from several feeds) are folded into every projection; every answer a reader or
an analyst can get — the dead by community under random filters and every victim status,
exact and suppressed, the incident listing of every status, each incident with its history,
the incidents behind each line, stances and pairs — is walked, and every figure in it (any
object with ``low``, ``best`` and ``high``) must satisfy ``low ≤ best ≤ high``.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import hypothesis.strategies as st
import msgspec
from hypothesis import HealthCheck, given, settings

from events import Event
from projections import PROJECTIONS, fold
from projections.alignment import pairs
from projections.community_victims import query
from projections.country_stance import stances, timeline
from projections.filters import VictimsFilter
from projections.incidents import behind, get, listing
from projections.suppression import protected_query
from tests.support.builders import COAST, Log, fatalities, line

INCIDENTS = [f"i-{n}" for n in range(8)]
FEEDS = ["sohr", "acled", "ucdp-ged"]
COMMUNITIES = ["alawite", "christian", "druze"]
STATUSES = ["civilian", "combatant", "unknown"]
QUALIFIERS = ["exact", "at_least", "approximately", "range"]
CAMEO = {"condemn": "111", "support": "051", "neutral": "010", "call_for_meeting": "026"}


@st.composite
def figures(draw: st.DrawFn) -> dict[str, Any]:
    """Valid figures with wide, qualified bounds: lines within the fatalities."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(COMMUNITIES), st.sampled_from(STATUSES)),
            unique=True,
            max_size=3,
        )
    )
    lines = []
    for community, status in keys:
        best = draw(st.integers(0, 40))
        low, high = best - draw(st.integers(0, best)), best + draw(st.integers(0, 30))
        lines.append(
            line(
                community,
                best,
                status,
                low=low,
                high=high,
                qualifier=draw(st.sampled_from(QUALIFIERS)),
            )
        )
    low = sum(v.low for v in lines) + draw(st.integers(0, 10))
    best = max(low, sum(v.best for v in lines)) + draw(st.integers(0, 10))
    high = max(best, sum(v.high for v in lines)) + draw(st.integers(0, 40))
    qualifier = draw(st.sampled_from(QUALIFIERS))
    return {"victims": lines, "fatalities": fatalities(best, qualifier, low=low, high=high)}


@st.composite
def logs(draw: st.DrawFn) -> list[Event]:
    """A history a store would accept, from several feeds, disputes included."""
    status: dict[str, str] = {}
    owner: dict[str, str] = {}
    said: list[str] = []
    events: list[Event] = []
    actions = ["report", "report", "revise", "retract", "merge", "dispute", "state", "unstate"]
    for n in range(draw(st.integers(1, 30))):
        action = draw(st.sampled_from(actions))
        live = sorted(i for i, s in status.items() if s == "live")
        if action == "report":
            fresh = [i for i in INCIDENTS if i not in status]
            if not fresh:
                continue
            ident, feed = draw(st.sampled_from(fresh)), draw(st.sampled_from(FEEDS))
            start = dt.date(2025, 3, 1) + dt.timedelta(days=draw(st.integers(0, 20)))
            events.append(
                COAST.reported(
                    ident,
                    source=feed,
                    adm1=draw(st.sampled_from(["Latakia", "Tartus"])),
                    occurred_start=start,
                    occurred_end=draw(st.sampled_from([None, start + dt.timedelta(days=3)])),
                    date_precision=draw(st.integers(1, 5)),
                    grading=draw(st.sampled_from(["confirmed", "fair", "weak", "discounted"])),
                    **draw(figures()),
                )
            )
            status[ident], owner[ident] = "live", feed
        elif action in ("revise", "retract", "merge", "dispute") and live:
            ident = draw(st.sampled_from(live))
            if action == "revise":
                events.append(COAST.revised(ident, source=owner[ident], **draw(figures())))
            elif action == "retract":
                events.append(COAST.retracted(ident, source=owner[ident]))
                status[ident] = "retracted"
            elif action == "dispute":
                others = [f for f in FEEDS if f != owner[ident]]
                events.append(COAST.disputed(ident, source=draw(st.sampled_from(others))))
            elif len(live) > 1:
                into = draw(st.sampled_from([i for i in live if i != ident]))
                events.append(COAST.merged(ident, into, source=owner[ident]))
                status[ident] = "merged"
        elif action == "state":
            stance = draw(st.sampled_from(sorted(CAMEO)))
            events.append(
                COAST.statement(
                    f"s-{n}",
                    *draw(
                        st.lists(
                            st.sampled_from(["USA", "RUS", "FRA"]),
                            min_size=1,
                            max_size=2,
                            unique=True,
                        )
                    ),
                    stance=stance,
                    cameo_code=CAMEO[stance],
                    role=draw(st.sampled_from(["foreign_minister", "other_official"])),
                    incident_ids=draw(
                        st.lists(st.sampled_from(INCIDENTS), max_size=2, unique=True)
                    ),
                )
            )
            said.append(f"s-{n}")
        elif action == "unstate" and said:
            events.append(COAST.statement_retracted(said.pop(draw(st.integers(0, len(said) - 1)))))
    return events


def figures_in(answer: Any) -> list[dict[str, Any]]:
    """Every object with low, best and high (none of them null) anywhere in ``answer``."""
    found: list[dict[str, Any]] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if all(value.get(k) is not None for k in ("low", "best", "high")):
                found.append(value)
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(msgspec.to_builtins(answer))
    return found


def filters() -> st.SearchStrategy[VictimsFilter]:
    """A random filter over the attributes the logs vary."""
    return st.builds(
        VictimsFilter,
        adm1=st.sampled_from([None, "latakia", "Tartus"]),
        date_from=st.sampled_from([None, dt.date(2025, 3, 5), dt.date(2025, 3, 15)]),
        week=st.sampled_from([None, "2025-W11"]),
        min_grading=st.sampled_from([None, "confirmed", "discounted"]),
        feed=st.sampled_from([None, *FEEDS]),
        status=st.sampled_from([None, *STATUSES]),
    )


class TestNoAnswerInvertsItsBounds:
    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(events=logs(), wheres=st.lists(filters(), min_size=1, max_size=4))
    def test_every_figure_of_every_answer_has_low_best_high_in_order(
        self, events: list[Event], wheres: list[VictimsFilter]
    ) -> None:
        """Given a random log, when asking every projection, then no figure has low > best
        or best > high."""
        records = Log().records(events)
        state = {name: fold(projection, records) for name, projection in PROJECTIONS.items()}
        victims, incidents = state["community-victims"], state["incidents"]
        answers: list[Any] = []
        for where in [VictimsFilter(), *wheres]:
            answers += [query(victims, where), protected_query(victims, 3, where)]
            for row in query(victims, where).communities:
                ids, count = behind(incidents, where, row.community, limit=100)
                assert count == row.incidents == len(ids)
        for status in ("live", "retracted", "merged", "all"):
            answers.append(listing(incidents, status=status, limit=100))
        answers += [get(incidents, ident) for ident in INCIDENTS]
        answers += [stances(state["country-stance"]), pairs(state["alignment"])]
        answers += [timeline(state["country-stance"], country) for country in ("USA", "RUS")]
        checked = [one for answer in answers for one in figures_in(answer)]
        for one in checked:
            assert one["low"] <= one["best"] <= one["high"], one
        assert checked or not any(e.type == "incident.reported" for e in events)
