"""The reference scenario: valid events, deterministic ids, and its hand-computed figures."""

from __future__ import annotations

import datetime as dt

import events
from events import (
    AnyEvent,
    CasualtiesRevised,
    IncidentMerged,
    IncidentReported,
    IncidentRetracted,
    StatementIssued,
)
from projections import PROJECTIONS, State, fold
from projections.alignment import PairRow, pairs
from projections.community_victims import Figures, query
from projections.country_stance import stances
from services import reference
from services.reference import (
    DUPLICATE_INCIDENT,
    MAIN_INCIDENT,
    REFERENCE_FEEDS,
    SUBJECT,
    UNVERIFIED_INCIDENT,
    scenario,
)
from tests.support.builders import Log


def _counted_tolls(evs: list[AnyEvent]) -> dict[str, int]:
    """Best fatality figure of every incident that still counts, folded by hand."""
    best: dict[str, int] = {}
    gone: set[str] = set()
    for event in evs:
        if isinstance(event, IncidentReported | CasualtiesRevised):
            best[event.incident_id] = event.fatalities.best
        elif isinstance(event, IncidentRetracted | IncidentMerged):
            gone.add(event.incident_id)
    return {incident: toll for incident, toll in best.items() if incident not in gone}


class TestValidity:
    def test_every_event_survives_encode_then_parse_submission(self) -> None:
        """Each event round-trips through the submission parser unchanged but for normalising."""
        for event in scenario():
            parsed = events.parse_submission(events.encode(event))
            assert parsed == events.normalise(event)

    def test_every_event_breaks_no_domain_rule(self) -> None:
        """No event of the scenario breaks a rule of the vocabulary."""
        assert [events.problems(e) for e in scenario()] == [[] for _ in scenario()]

    def test_every_event_is_published_by_a_reference_feed(self) -> None:
        """Every event's source is one of REFERENCE_FEEDS, and every feed is used."""
        sources = {e.source for e in scenario()}
        assert sources == set(REFERENCE_FEEDS)

    async def test_the_whole_scenario_appends_to_the_memory_store_in_order(self) -> None:
        """The list appends event by event without a rejection or conflict."""
        from services.store.memory import InMemoryEventStore

        store = InMemoryEventStore()
        for event in scenario():
            [result] = await store.append([event])
            assert result.status == "appended"
        assert await store.length() == len(scenario())


class TestDeterminism:
    def test_event_ids_are_the_same_on_every_call(self) -> None:
        """Two calls produce the same event ids in the same order."""
        assert [e.event_id for e in scenario()] == [e.event_id for e in scenario()]

    def test_event_ids_are_unique(self) -> None:
        """No two scenario events share an id."""
        ids = [e.event_id for e in scenario()]
        assert len(set(ids)) == len(ids)

    def test_event_ids_are_uuid5_in_the_reference_namespace(self) -> None:
        """The ids are name-based (version 5) under the scenario's namespace."""
        assert all(e.event_id.version == 5 for e in scenario())
        assert reference.event_id("incident.reported/main") == scenario()[0].event_id

    async def test_seeding_twice_writes_nothing_new(self) -> None:
        """A second append of the whole scenario answers duplicates only."""
        from services.store.memory import InMemoryEventStore

        store = InMemoryEventStore()
        first = await store.append(scenario())
        second = await store.append(scenario())
        assert {r.status for r in second} == {"duplicate"}
        assert [r.position for r in second] == [r.position for r in first]
        assert await store.length() == len(scenario())


class TestFigures:
    def test_main_incident_final_best_toll_is_1476(self) -> None:
        """Folding the figures leaves the monitor's last revision as the main toll."""
        assert _counted_tolls(scenario())[MAIN_INCIDENT] == 1476

    def test_merged_duplicate_and_retracted_report_contribute_nothing(self) -> None:
        """Only the main incident still counts; the regional total is its toll alone."""
        tolls = _counted_tolls(scenario())
        assert set(tolls) == {MAIN_INCIDENT}
        assert sum(tolls.values()) == 1476

    def test_the_monitor_revises_upward_from_at_least_1311(self) -> None:
        """The main incident's figures run 1,311 → 1,383 → 1,476, each `at_least`."""
        figures = [
            e.fatalities
            for e in scenario()
            if isinstance(e, IncidentReported | CasualtiesRevised)
            and e.incident_id == MAIN_INCIDENT
        ]
        assert [f.best for f in figures] == [1311, 1383, 1476]
        assert {f.qualifier for f in figures} == {"at_least"}
        revisions = [e for e in scenario() if isinstance(e, CasualtiesRevised)]
        assert all(r.reason for r in revisions)

    def test_main_incident_is_one_sided_violence_against_civilians_in_syria(self) -> None:
        """The first report carries the facts of the reference report."""
        main = next(
            e
            for e in scenario()
            if isinstance(e, IncidentReported) and e.incident_id == MAIN_INCIDENT
        )
        assert main.country == "SYR"
        assert main.place.adm1 == "Latakia"
        assert main.violence_type == "one_sided"
        assert main.event_type == "Violence against civilians"
        assert main.civilian_targeting is True
        assert main.geo_precision == 4
        assert (main.occurred_start.isoformat(), str(main.occurred_end)) == (
            "2025-03-06",
            "2025-03-09",
        )
        assert main.victims == []  # no source splits the toll by community

    def test_duplicate_is_merged_into_main_and_unverified_is_retracted(self) -> None:
        """The merge points at the main incident; the retraction at the unverified report."""
        merges = [e for e in scenario() if isinstance(e, IncidentMerged)]
        retractions = [e for e in scenario() if isinstance(e, IncidentRetracted)]
        assert [(m.incident_id, m.into) for m in merges] == [(DUPLICATE_INCIDENT, MAIN_INCIDENT)]
        assert [r.incident_id for r in retractions] == [UNVERIFIED_INCIDENT]

    def test_illustrative_figures_are_marked_in_notes(self) -> None:
        """Reports whose figures no source gives say so in their notes."""
        for event in scenario():
            if isinstance(event, IncidentReported) and event.incident_id != MAIN_INCIDENT:
                assert event.notes is not None
                assert "Illustrative" in event.notes


class TestStatements:
    def _statements(self) -> dict[str, StatementIssued]:
        return {e.statement_id: e for e in scenario() if isinstance(e, StatementIssued)}

    def test_joint_request_for_a_closed_door_council_meeting(self) -> None:
        """USA and RUS speak jointly at the UN through their missions, CAMEO 026 (+4.0)."""
        request = self._statements()[reference.STATEMENT_UNSC_REQUEST]
        assert [(s.country, s.role) for s in request.speakers] == [
            ("USA", "un_representative"),
            ("RUS", "un_representative"),
        ]
        assert (request.venue, request.cameo_code, request.stance) == (
            "IGOUNO",
            "026",
            "call_for_meeting",
        )
        assert events.normalise(request).goldstein == 4.0  # type: ignore[attr-defined]

    def test_rubio_condemns_and_calls_for_accountability_as_foreign_minister(self) -> None:
        """Two statements of the Secretary of State on the coastal violence, CAMEO 111 (-2.0):
        a condemnation and a call for accountability, both dated to the report's day."""
        statements = self._statements()
        rubio = [
            statements[reference.STATEMENT_RUBIO],
            statements[reference.STATEMENT_RUBIO_ACCOUNTABILITY],
        ]
        assert [s.stance for s in rubio] == ["condemn", "demand_accountability"]
        for one in rubio:
            assert [(s.country, s.name, s.role, s.title) for s in one.speakers] == [
                ("USA", "Marco Rubio", "foreign_minister", "Secretary of State")
            ]
            assert (one.subject, one.target.country, one.cameo_code) == (SUBJECT, "SYR", "111")
            assert (one.issued_at, one.issued_precision) == (reference.REPORT_DAY, "day")
            assert events.normalise(one).goldstein == -2.0  # type: ignore[attr-defined]

    def test_gabbard_warns_on_her_own_subject_in_recent_days(self) -> None:
        """The intelligence director's warning is about the risks of Assad's removal and the
        rise of extremist groups, dated as the week before the report, not a moment."""
        gabbard = self._statements()[reference.STATEMENT_GABBARD]
        assert [(s.country, s.name, s.role, s.title) for s in gabbard.speakers] == [
            ("USA", "Tulsi Gabbard", "other_official", "Director of National Intelligence")
        ]
        assert (gabbard.stance, gabbard.cameo_code) == ("warn", "012")
        assert gabbard.subject == reference.SUBJECT_EXTREMISM
        assert gabbard.subject != SUBJECT
        assert gabbard.incident_ids == []
        assert gabbard.issued_precision == "range"
        assert gabbard.window == (
            reference.REPORT_DAY - dt.timedelta(days=7),
            reference.REPORT_DAY,
        )

    def test_the_coastal_statements_name_the_main_incident(self) -> None:
        """The request and Rubio's two statements stand on the coastal subject."""
        statements = self._statements().values()
        assert len(statements) == 4
        coastal = [s for s in statements if s.subject == SUBJECT]
        assert {s.statement_id for s in coastal} == {
            reference.STATEMENT_UNSC_REQUEST,
            reference.STATEMENT_RUBIO,
            reference.STATEMENT_RUBIO_ACCOUNTABILITY,
        }
        assert all(s.incident_ids == [MAIN_INCIDENT] for s in coastal)


class TestAnswers:
    """What the projections answer once the whole scenario is folded."""

    def _fold(self, name: str) -> State:
        return fold(PROJECTIONS[name], Log().records(scenario()))

    def test_usa_condemns_and_demands_accountability_on_the_coastal_violence(self) -> None:
        """The Secretary of State's two statements decide: critical, resting on both; the
        joint request (a lower rank) and the intelligence director (another subject) do not."""
        (row,) = stances(self._fold("country-stance"), country="USA", subject=SUBJECT)
        assert (row.family, row.stances, row.role) == (
            "critical",
            ("condemn", "demand_accountability"),
            "foreign_minister",
        )
        assert row.stance in ("condemn", "demand_accountability")
        assert [b.statement_id for b in row.basis] == [
            reference.STATEMENT_RUBIO,
            reference.STATEMENT_RUBIO_ACCOUNTABILITY,
        ]
        assert {(b.title, b.issued_precision) for b in row.basis} == {("Secretary of State", "day")}
        assert row.statements == 3

    def test_the_intelligence_directors_warning_stands_on_its_own_subject(self) -> None:
        """USA warns on the risks of Assad's removal, dated within a range: no latency."""
        (row,) = stances(
            self._fold("country-stance"), country="USA", subject=reference.SUBJECT_EXTREMISM
        )
        assert (row.stance, row.role, row.latency_hours) == ("warn", "other_official", None)

    def test_rus_and_usa_align_fully_on_a_thin_basis(self) -> None:
        """They co-signed the request: 1.0, on one shared subject, so thin."""
        assert pairs(self._fold("alignment")) == [
            PairRow(a="RUS", b="USA", score=1.0, shared_subjects=1, thin=True)
        ]

    def test_the_toll_is_at_least_1476_and_wholly_unattributed(self) -> None:
        """The total and what no community line accounts for both say "at least"."""
        answer = query(self._fold("community-victims"))
        assert answer.total == Figures(1476, 1476, 1476, at_least=True)
        assert answer.unattributed == Figures(1476, 1476, 1476, at_least=True)
        assert answer.communities == []
