"""The dead by party (civilians, side A, side B, unknown) beside the dead by community, and
revisions that change what selects an incident."""

from __future__ import annotations

import pytest

from events import PartyLine, Place
from projections import PROJECTIONS, InvalidQueryError, State
from projections.community_victims import VictimsFilter, query
from projections.incidents import get as get_incident
from projections.suppression import protected_query
from projections.victims_merge import merge
from tests.support.builders import COAST, folded, roundtrip, traced

NAME = "community-victims"


def party(name: str, best: int) -> PartyLine:
    return PartyLine(low=best, best=best, high=best, party=name)  # type: ignore[arg-type]


def parties(civilians: int, side_a: int, side_b: int, unknown: int) -> list[PartyLine]:
    return [
        party("civilians", civilians),
        party("side_a", side_a),
        party("side_b", side_b),
        party("unknown", unknown),
    ]


BY_PARTY = VictimsFilter(by="party")


def best_by_line(state: State, where: VictimsFilter = BY_PARTY) -> dict[str, int]:
    return {row.community: row.best for row in query(state, where).communities}


class TestByParty:
    """``by=party``: the same answer's shape, its lines the parties."""

    def test_party_lines_sum_over_incidents_and_leave_the_rest_unattributed(self) -> None:
        """Two GED-like incidents sum per party; an ACLED-like one without parties adds to
        the total and to what no line accounts for."""
        state = folded(
            NAME,
            COAST.reported("a", 60, parties=parties(58, 0, 0, 2)),
            COAST.reported("b", 33, parties=parties(0, 16, 16, 1)),
            COAST.reported("c", 10),
        )
        answer = query(state, BY_PARTY)
        assert best_by_line(state) == {"civilians": 58, "side_a": 16, "side_b": 16, "unknown": 3}
        assert answer.total.best == 103
        assert answer.unattributed.best == 10
        assert answer.incidents == 3
        assert best_by_line(state, VictimsFilter()) == {}  # no community lines at all

    def test_a_revision_replaces_the_parties(self) -> None:
        """The later release's parties replace the earlier ones, never add."""
        state = folded(
            NAME,
            COAST.reported("a", 60, parties=parties(58, 0, 0, 2)),
            COAST.revised("a", 72, parties=parties(70, 0, 0, 2)),
        )
        assert best_by_line(roundtrip(NAME, state))["civilians"] == 70

    def test_a_retraction_takes_its_parties_away(self) -> None:
        """A retracted incident's party lines are gone with it."""
        state = folded(
            NAME,
            COAST.reported("a", 60, parties=parties(58, 0, 0, 2)),
            COAST.retracted("a"),
        )
        assert best_by_line(state) == {}

    def test_small_party_lines_are_withheld_from_readers(self) -> None:
        """The same suppression rule: a party line below K is withheld."""
        state = folded(NAME, COAST.reported("a", 60, parties=parties(58, 0, 0, 2)))
        answer = protected_query(state, 5, BY_PARTY)
        shown = {row.community: row.suppressed for row in answer.communities}
        assert shown == {"civilians": False, "side_a": True, "side_b": True, "unknown": True}
        assert answer.unattributed_suppressed

    def test_partitions_merge_party_sums(self) -> None:
        """Two partitions' states merged answer as one."""
        one = folded(NAME, COAST.reported("a", 60, parties=parties(58, 0, 0, 2)))
        two = folded(NAME, COAST.reported("b", 33, parties=parties(0, 16, 16, 1)))
        assert best_by_line(merge([one, two]))["unknown"] == 3

    @pytest.mark.parametrize(
        ("where", "parameter"),
        [
            (VictimsFilter(by="side"), "by"),
            (VictimsFilter(by="party", status="civilian"), "status"),
        ],
    )
    def test_bad_splits_are_refused_naming_the_parameter(
        self, where: VictimsFilter, parameter: str
    ) -> None:
        """An unknown ``by``, or ``status`` with ``by=party``, names the parameter."""
        with pytest.raises(InvalidQueryError) as info:
            query(folded(NAME), where)
        assert info.value.parameter == parameter


class TestAmendments:
    """A revision carrying changed report fields moves the incident where filters see it."""

    def test_a_revised_place_moves_the_incident_between_adm1_filters(self) -> None:
        """Revised into another governorate: the old adm1 no longer finds it."""
        state = folded(
            NAME,
            COAST.reported("a", 10, adm1="Latakia"),
            COAST.revised("a", 12, place=Place(adm1="Tartus")),
        )
        assert query(state, VictimsFilter(adm1="latakia")).incidents == 0
        assert query(state, VictimsFilter(adm1="tartus")).total.best == 12

    def test_a_cleared_violence_type_takes_the_incident_out_of_that_filter(self) -> None:
        """Revised into a protest: no violence type any more, so no longer one-sided, in
        the victims view and in the incident view alike."""
        events = (
            COAST.reported("a", 10, violence_type="one_sided"),
            COAST.revised("a", 10, event_type="Protests", cleared=("violence_type",)),
        )
        state = folded(NAME, *events)
        assert query(state, VictimsFilter(violence_type="one_sided")).incidents == 0
        assert query(state, VictimsFilter()).total.best == 10
        view = get_incident(traced(*events), "a")
        assert view is not None
        assert (view.event_type, view.violence_type) == ("Protests", None)
        assert view.history[-1].changed == ("event_type", "violence_type")

    def test_the_incident_view_shows_the_revised_fields_and_names_them(self) -> None:
        """notes and event type revised: the view holds them, the history entry lists them."""
        state = traced(
            COAST.reported("a", 10),
            COAST.revised("a", 12, notes="later counts", event_type="Battles"),
        )
        view = get_incident(state, "a")
        assert view is not None
        assert view.notes == "later counts"
        assert view.event_type == "Battles"
        assert view.history[-1].changed == ("event_type", "notes")
        assert PROJECTIONS["incidents"].version >= 5  # the stored view changed shape (v5)
