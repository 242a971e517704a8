"""Small-count suppression: the rule's shape, and the subtraction attack that must find nothing.

The attack (:func:`disclosures`) plays one attacker session: a query with up to four filters
among country, adm1, week, min_grading, grading, event_type, perpetrator, from and to, the
same query with every subset of those filters dropped, and each of these without a status
filter and for every status (up to 48 answers). Every number an answer shows (lines,
``total``, ``unattributed``) is, around the data, a linear function of the hidden cells (one
community and status in one total document's ``lines``); its coefficients are read off by
adding 1 to one cell at a time and asking again (the query is a sum, so this is exact; every
generated incident leaves at least one death outside its lines, so ``unattributed`` stays
clear of its floor at 0 and moves with each cell). A
withheld number is recomputable from what is shown exactly when its coefficient vector lies in
the span of the shown numbers' vectors; the span over the rationals contains every combination
with coefficients in ``{-1, 0, 1}``, so testing membership in the span checks every such
subtraction and more. The attack is shown to work on a rule that only hides small lines, then
to find nothing on random data under the real rule.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Collection, Mapping, Sequence
from fractions import Fraction
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from events import VictimLine
from projections import Readable
from projections.community_victims import (
    Cell,
    CommunityRow,
    Figures,
    VictimsAnswer,
    query,
)
from projections.filters import VictimsFilter
from projections.suppression import (
    DEFAULT_K,
    WITHHELD_NAME,
    ProtectedAnswer,
    ShownRow,
    exact,
    protected_query,
    small_communities,
    suppress,
)
from projections.victims_cells import Sums
from services.errors import SettingsError
from services.protection.auth import sees_exact
from services.settings import load_settings, parse_tokens
from tests.support.builders import COAST, folded, line

NAME = "community-victims"
Kinds = dict[str, dict[str, msgspec.Struct]]
Rule = Callable[[Readable, int, Mapping[str, Any]], ProtectedAnswer]
FILTERS = (
    "country",
    "adm1",
    "week",
    "status",
    "min_grading",
    "grading",
    "event_type",
    "perpetrator",
    "date_from",
    "date_to",
)


def answer_of(*rows: tuple[str, int], total: int = 100, incidents: int = 3) -> VictimsAnswer:
    """An answer with exact lines of the given ``best`` (low = best = high)."""
    lines = [CommunityRow(community=c, low=n, best=n, high=n, incidents=1) for c, n in rows]
    # (an exact, status-free answer: unattributed is the total less the lines)
    shown = sum(n for _, n in rows)
    return VictimsAnswer(
        total=Figures(total, total, total),
        unattributed=Figures(total - shown, total - shown, total - shown),
        incidents=incidents,
        communities=lines,
    )


def hidden(community: str) -> ShownRow:
    """The withheld form of a community's line."""
    return ShownRow(
        community=community,
        low=None,
        best=None,
        high=None,
        incidents=None,
        at_least=None,
        suppressed=True,
    )


def shown(community: str, best: int) -> ShownRow:
    """The shown form of an exact line of ``best`` in one incident."""
    return ShownRow(
        community=community, low=best, best=best, high=best, incidents=1, at_least=False
    )


# --- the attack -----------------------------------------------------------------------------


def kinds(state: Readable) -> Kinds:
    """A mutable copy of a state's documents by kind."""
    source = state.kinds() if hasattr(state, "kinds") else state
    return {kind: dict(docs) for kind, docs in source.items()}


def _best_plus_one(sums: Sums) -> Sums:
    return msgspec.structs.replace(sums, best=sums.best + 1)


def bumped(state: Kinds, cell_id: str, key: str) -> Kinds:
    """``state`` with one cell's ``best`` (line ``key`` of a total document) one higher, and
    so its community's and its status's sums in that document."""
    total = state["total"][cell_id]
    assert isinstance(total, Cell)
    community, _, status = key.rpartition("|")
    changed = {kind: dict(docs) for kind, docs in state.items()}
    changed["total"][cell_id] = msgspec.structs.replace(
        total,
        lines={**total.lines, key: _best_plus_one(total.lines[key])},
        communities={
            **total.communities,
            community: _best_plus_one(total.communities[community]),
        },
        statuses={**total.statuses, status: _best_plus_one(total.statuses[status])},
    )
    return changed


def numbers(answer: VictimsAnswer) -> dict[str, int]:
    """The ``best`` of every line, of ``unattributed`` and of ``total``, by name."""
    found = {f"line:{row.community}": row.best for row in answer.communities}
    found["unattributed"] = answer.unattributed.best
    found["total"] = answer.total.best
    return found


def shown_and_withheld(
    protected: ProtectedAnswer, every: Collection[str]
) -> tuple[set[str], set[str]]:
    """The names of the numbers a protected answer shows and withholds (of ``every`` name
    of the exact answer: a lone withheld line is shown without its name)."""
    shown = {f"line:{r.community}" for r in protected.communities if not r.suppressed}
    withheld = {name for name in every if name.startswith("line:") and name not in shown}
    (withheld if protected.unattributed_suppressed else shown).add("unattributed")
    (withheld if protected.total_suppressed else shown).add("total")
    return shown, withheld


def in_span(vectors: Sequence[Sequence[int]], target: Sequence[int]) -> bool:
    """Whether ``target`` is a rational linear combination of ``vectors`` (exact arithmetic)."""
    basis: dict[int, list[Fraction]] = {}  # pivot column -> row with 1 there, 0 at other pivots

    def reduce(vector: Sequence[int | Fraction]) -> list[Fraction]:
        row = [Fraction(x) for x in vector]
        for pivot, base in basis.items():
            if row[pivot]:
                factor = row[pivot]
                row = [a - factor * b for a, b in zip(row, base, strict=True)]
        return row

    for vector in vectors:
        row = reduce(vector)
        pivot = next((i for i, x in enumerate(row) if x), None)
        if pivot is None:
            continue
        row = [x / row[pivot] for x in row]
        for other, base in basis.items():
            if base[pivot]:
                factor = base[pivot]
                basis[other] = [a - factor * b for a, b in zip(base, row, strict=True)]
        basis[pivot] = row
    return not any(reduce(target))


def session(base: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The base query and the same query with every subset of its filters dropped, each
    asked without a status and for every status (statuses partition the lines)."""
    names = [name for name in FILTERS if name != "status" and base.get(name) is not None]
    return [
        {**{name: base[name] for name in kept}, **({"status": status} if status else {})}
        for size in range(len(names) + 1)
        for kept in itertools.combinations(names, size)
        for status in (None, *STATUSES)
    ]


def disclosures(
    state: Readable, k: int, base: Mapping[str, Any], rule: Rule
) -> list[tuple[dict[str, Any], str]]:
    """Every withheld number of the session that the shown numbers determine."""
    docs = kinds(state)
    cells = sorted(
        (ident, key)
        for ident, total in docs.get("total", {}).items()
        if isinstance(total, Cell)
        for key in total.lines
    )
    queries = session(base)
    wheres = [VictimsFilter(**q) for q in queries]
    raw = [numbers(query(docs, where)) for where in wheres]
    moved = [[numbers(query(bumped(docs, *cell), where)) for where in wheres] for cell in cells]

    def vector(i: int, name: str) -> list[int]:
        return [moved[j][i][name] - raw[i][name] for j in range(len(cells))]

    shown_vectors: list[list[int]] = []
    withheld: list[tuple[int, str]] = []
    for i, q in enumerate(queries):
        shown, hidden_names = shown_and_withheld(rule(docs, k, q), raw[i])
        shown_vectors += [vector(i, name) for name in sorted(shown)]
        withheld += [(i, name) for name in sorted(hidden_names)]
    return [
        (queries[i], name)
        for i, name in withheld
        if any(vector(i, name)) and in_span(shown_vectors, vector(i, name))
    ]


def real_rule(state: Readable, k: int, filters: Mapping[str, Any]) -> ProtectedAnswer:
    """The rule readers get."""
    return protected_query(state, k, VictimsFilter(**filters))


def lines_only_rule(state: Readable, k: int, filters: Mapping[str, Any]) -> ProtectedAnswer:
    """A weaker rule: hide lines below ``k`` (and then ``unattributed``), nothing else."""
    return suppress(query(state, VictimsFilter(**filters)), k)


# --- tests ----------------------------------------------------------------------------------


class TestPrimarySuppression:
    def test_line_below_k_is_withheld_with_every_number(self) -> None:
        """A line with best below K: its numbers become None, suppressed; alone withheld,
        it loses its name too; beside another withheld line it keeps it."""
        result = suppress(answer_of(("alawite", 40), ("druze", 2)), 5)
        assert result.communities == [
            shown("alawite", 40),
            hidden(WITHHELD_NAME),
        ]
        two = suppress(answer_of(("alawite", 40), ("druze", 2), ("yazidi", 1)), 5)
        assert two.communities == [shown("alawite", 40), hidden("druze"), hidden("yazidi")]

    def test_line_at_k_is_shown(self) -> None:
        """K itself is not below K."""
        result = suppress(answer_of(("druze", 5)), 5)
        assert result.communities[0].best == 5
        assert result.unattributed_suppressed is False

    def test_best_decides_even_with_a_wide_range(self) -> None:
        """A line of best 3 is withheld even though its high is far above K."""
        row = CommunityRow(community="druze", low=1, best=3, high=40, incidents=1)
        base = answer_of()
        answer = msgspec.structs.replace(base, communities=[row])
        assert suppress(answer, 5).communities == [hidden(WITHHELD_NAME)]

    def test_zero_best_line_is_withheld(self) -> None:
        """A line of best 0 (a possible death, none certain) is below every K."""
        assert suppress(answer_of(("druze", 0)), 1).communities == [hidden(WITHHELD_NAME)]

    def test_threshold_must_be_positive(self) -> None:
        """K below 1 is refused."""
        with pytest.raises(ValueError, match="at least 1"):
            suppress(answer_of(), 0)


class TestSecondarySuppression:
    def test_unattributed_is_withheld_with_any_line(self) -> None:
        """One withheld line withholds unattributed (else line = total - unattributed - rest),
        and the total and its incidents with it (a total of 2 over 1 incident beside one
        withheld line would bound the line)."""
        result = suppress(answer_of(("alawite", 40), ("druze", 2)), 5)
        assert result.unattributed is None
        assert result.unattributed_suppressed is True
        assert (result.total, result.incidents, result.total_suppressed) == (None, None, True)

    def test_the_issue_s_inference_case_is_withheld(self) -> None:
        """One incident of 2 dead with one small druze line: the reader sees neither the
        total, nor the incidents count, nor the line's name."""
        state = folded(NAME, COAST.reported("i-1", 2, victims=[line("druze", 2)]))
        result = protected_query(state, 5)
        assert (result.total, result.incidents, result.unattributed) == (None, None, None)
        assert result.communities == [hidden(WITHHELD_NAME)]

    def test_a_status_total_is_withheld_with_any_line(self) -> None:
        """With a status filter the total is the lines' own sum: withheld with any line,
        with the incidents behind it; a withheld line's at_least is withheld too."""
        state = folded(
            NAME,
            COAST.reported(
                "i-1",
                40,
                victims=[line("druze", 2, "combatant"), line("alawite", 30, "combatant")],
            ),
        )
        result = protected_query(state, 5, VictimsFilter(status="combatant"))
        assert (result.total, result.incidents, result.total_suppressed) == (None, None, True)
        assert result.communities == [shown("alawite", 30), hidden(WITHHELD_NAME)]
        whole = protected_query(state, 5)
        assert (whole.total, whole.incidents, whole.total_suppressed) == (None, None, True)

    def test_a_status_total_without_withheld_lines_is_shown(self) -> None:
        """Every combatant line shown: their total and incidents are shown too."""
        state = folded(NAME, COAST.reported("i-1", 40, victims=[line("alawite", 30, "combatant")]))
        result = protected_query(state, 5, VictimsFilter(status="combatant"))
        assert (result.total, result.incidents) == (Figures(30, 30, 30), 1)

    def test_nothing_withheld_keeps_unattributed(self) -> None:
        """With every line shown, unattributed is shown exactly."""
        result = suppress(answer_of(("alawite", 40), ("druze", 9)), 5)
        assert result.unattributed == Figures(51, 51, 51)
        assert result.unattributed_suppressed is False

    def test_withheld_lines_come_last_by_name(self) -> None:
        """Withheld lines do not keep their best-ordered place (it would bound them)."""
        answer = answer_of(("yazidi", 4), ("alawite", 40), ("druze", 3), ("christian", 6))
        result = suppress(answer, 5)
        assert [r.community for r in result.communities] == [
            "alawite",
            "christian",
            "druze",
            "yazidi",
        ]
        assert [r.suppressed for r in result.communities] == [False, False, True, True]

    def test_large_line_of_a_community_with_a_small_cell_is_withheld(self) -> None:
        """A line above K is withheld when the community has a small cell under the filters."""
        result = suppress(answer_of(("druze", 12), ("alawite", 40)), 5, small={"druze"})
        assert result.communities == [
            shown("alawite", 40),
            hidden(WITHHELD_NAME),
        ]

    def test_exact_keeps_every_figure(self) -> None:
        """The cleared form changes nothing but the shape."""
        result = exact(answer_of(("druze", 2)))
        assert result.communities[0] == shown("druze", 2)
        assert result.unattributed == Figures(98, 98, 98)


class TestSmallCommunities:
    def test_finds_small_cells_under_the_filters_only(self) -> None:
        """A small cell counts only when the query selects it (here: its week)."""
        state = folded(
            NAME,
            COAST.reported(
                "i-1", 20, victims=[line("druze", 10)], occurred_start=dt.date(2024, 3, 4)
            ),
            COAST.reported(
                "i-2", 20, victims=[line("druze", 2)], occurred_start=dt.date(2024, 3, 12)
            ),
        )
        assert small_communities(state, 5) == {"druze"}
        assert small_communities(state, 5, week="2024-W10") == frozenset()
        assert small_communities(state, 5, week="2024-W11") == {"druze"}

    def test_without_status_every_status_cell_counts(self) -> None:
        """Civilian 2 + combatant 10: small without a status filter and for civilians only."""
        victims = [line("druze", 2, "civilian"), line("druze", 10, "combatant")]
        state = folded(NAME, COAST.reported("i-1", 20, victims=victims))
        assert small_communities(state, 5) == {"druze"}
        assert small_communities(state, 5, status="civilian") == {"druze"}
        assert small_communities(state, 5, status="combatant") == frozenset()

    def test_grading_floor_selects_cells(self) -> None:
        """A small weak cell does not taint a query of confirmed incidents only."""
        state = folded(
            NAME,
            COAST.reported("i-1", 20, victims=[line("druze", 10)], grading="confirmed"),
            COAST.reported("i-2", 20, victims=[line("druze", 2)], grading="weak"),
        )
        assert small_communities(state, 5, min_grading="confirmed") == frozenset()
        assert small_communities(state, 5, min_grading="weak") == {"druze"}

    def test_protected_query_applies_the_whole_rule(self) -> None:
        """Druze 12 in all (a 2 among it) is withheld (unnamed, alone); alawite 40 shown;
        unattributed and the total withheld."""
        state = folded(
            NAME,
            COAST.reported("i-1", 60, victims=[line("druze", 10), line("alawite", 40)]),
            COAST.reported("i-2", 2, victims=[line("druze", 2)], adm1="Tartus"),
        )
        result = protected_query(state, 5)
        assert [(r.community, r.best) for r in result.communities] == [
            ("alawite", 40),
            (WITHHELD_NAME, None),
        ]
        assert result.unattributed is None
        assert (result.total, result.incidents) == (None, None)
        narrowed = protected_query(state, 5, adm1="Latakia")
        assert [(r.community, r.best) for r in narrowed.communities] == [
            ("alawite", 40),
            ("druze", 10),
        ]


class TestSubtractionAttack:
    def test_attack_breaks_a_rule_that_hides_only_small_lines(self) -> None:
        """Druze: civilian 2, combatant 10; all statuses 12 minus combatants 10 gives 2."""
        victims = [line("druze", 2, "civilian"), line("druze", 10, "combatant")]
        state = folded(NAME, COAST.reported("i-1", 30, victims=victims))
        found = disclosures(state, 5, {"status": "civilian"}, lines_only_rule)
        assert ({"status": "civilian"}, "line:druze") in found

    def test_attack_breaks_unattributed_left_shown(self) -> None:
        """Showing unattributed beside one withheld line gives the line by subtraction."""

        def keep_unattributed(
            state: Readable, k: int, filters: Mapping[str, Any]
        ) -> ProtectedAnswer:
            result = protected_query(state, k, VictimsFilter(**filters))
            return msgspec.structs.replace(result, unattributed_suppressed=False)

        state = folded(
            NAME, COAST.reported("i-1", 30, victims=[line("druze", 2), line("alawite", 20)])
        )
        assert ({}, "line:druze") in disclosures(state, 5, {}, keep_unattributed)

    def test_attack_breaks_a_status_total_left_shown(self) -> None:
        """A status total is the sum of that status's lines: shown beside one withheld line,
        it gives the line by subtraction."""

        def keep_total(state: Readable, k: int, filters: Mapping[str, Any]) -> ProtectedAnswer:
            result = protected_query(state, k, VictimsFilter(**filters))
            return msgspec.structs.replace(result, total_suppressed=False)

        victims = [line("druze", 2, "combatant"), line("alawite", 20, "combatant")]
        state = folded(NAME, COAST.reported("i-1", 30, victims=victims))
        base = {"status": "combatant"}
        assert (base, "line:druze") in disclosures(state, 5, base, keep_total)
        assert disclosures(state, 5, base, real_rule) == []

    def test_the_real_rule_withstands_the_same_cases(self) -> None:
        """Both examples above disclose nothing under the real rule."""
        victims = [line("druze", 2, "civilian"), line("druze", 10, "combatant")]
        state = folded(NAME, COAST.reported("i-1", 30, victims=victims))
        assert disclosures(state, 5, {"status": "civilian"}, real_rule) == []
        state = folded(
            NAME, COAST.reported("i-1", 30, victims=[line("druze", 2), line("alawite", 20)])
        )
        assert disclosures(state, 5, {}, real_rule) == []

    @settings(
        max_examples=200,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(data=st.data())
    def test_no_withheld_number_is_recomputable_on_random_data(self, data: st.DataObject) -> None:
        """Every withheld figure of a session stays outside the span of the shown ones."""
        state = folded(NAME, *data.draw(st.lists(incidents(), min_size=1, max_size=8)))
        k = data.draw(st.sampled_from([1, 3, DEFAULT_K, 8]))
        base = data.draw(base_filters())
        assert disclosures(state, k, base, real_rule) == []


# --- strategies -----------------------------------------------------------------------------

DAYS = (dt.date(2024, 3, 4), dt.date(2024, 3, 6), dt.date(2024, 3, 12))  # W10, W10, W11
COMMUNITIES = ("alawite", "druze", "yazidi")
STATUSES = ("civilian", "combatant")
PERPETRATORS = (("Group A",), ("Group A", "Group B"), ())
_numbered = itertools.count(1)


@st.composite
def incidents(draw: st.DrawFn) -> Any:
    """A reported incident in a small world, with up to three community lines, told apart
    by every attribute a filter selects by (a week-precision date spans its whole week)."""
    keys = draw(
        st.lists(
            st.tuples(st.sampled_from(COMMUNITIES), st.sampled_from(STATUSES)),
            max_size=3,
            unique=True,
        )
    )
    victims: list[VictimLine] = [
        line(community, draw(st.integers(0, 14)), status) for community, status in keys
    ]
    extra = draw(st.integers(1, 6))  # see the module docstring: unattributed clear of 0
    return COAST.reported(
        f"i-{next(_numbered)}",
        sum(v.best for v in victims) + extra,
        victims=victims,
        country=draw(st.sampled_from(["SYR", "IRQ"])),
        adm1=draw(st.sampled_from(["Aleppo", "Idlib"])),
        occurred_start=draw(st.sampled_from(DAYS)),
        date_precision=draw(st.sampled_from([1, 1, 3])),
        grading=draw(st.sampled_from(["confirmed", "weak", "contested"])),
        event_type=draw(st.sampled_from(["Battles", "Violence against civilians"])),
        perpetrators=list(draw(st.sampled_from(PERPETRATORS))),
    )


def _few_and_ordered(filters: dict[str, Any]) -> bool:
    """At most four filters besides the status, and no range that ends before it starts."""
    dates = "date_from" in filters and "date_to" in filters
    return len(set(filters) - {"status"}) <= 4 and not (
        dates and filters["date_from"] > filters["date_to"]
    )


def base_filters() -> st.SearchStrategy[dict[str, Any]]:
    """A query with a victim status or not, and up to four of the other filters set."""
    return st.fixed_dictionaries(
        {},
        optional={
            "country": st.sampled_from(["SYR", "IRQ"]),
            "adm1": st.sampled_from(["aleppo", "Idlib"]),
            "week": st.sampled_from(["2024-W10", "2024-W11"]),
            "status": st.sampled_from(STATUSES),
            "min_grading": st.sampled_from(["confirmed", "weak", "contested"]),
            "grading": st.sampled_from(["confirmed", "weak"]),
            "event_type": st.sampled_from(["Battles", "Violence against civilians"]),
            "perpetrator": st.sampled_from(["group a", "Group B"]),
            "date_from": st.sampled_from(DAYS),
            "date_to": st.sampled_from(DAYS),
        },
    ).filter(_few_and_ordered)


class TestSettings:
    def test_threshold_defaults_to_five(self) -> None:
        """Without LEDGER_SUPPRESSION_K the threshold is 5."""
        assert load_settings({}).suppression_k == DEFAULT_K == 5

    @pytest.mark.parametrize("raw", ["0", "1001", "five"])
    def test_threshold_outside_one_to_a_thousand_is_refused(self, raw: str) -> None:
        """The threshold is a whole number from 1 to 1000, named when wrong."""
        with pytest.raises(SettingsError, match="LEDGER_SUPPRESSION_K"):
            load_settings({"LEDGER_SUPPRESSION_K": raw})

    def test_analyst_is_a_role_of_its_own(self) -> None:
        """An analyst token parses, reads, and is cleared for exact figures; a reader is not."""
        (analyst, reader) = parse_tokens(
            "analyst=analyst-token-0123456789,reader=reader-token-01234567890"
        )
        assert analyst.role == "analyst"
        assert sees_exact(analyst) is True
        assert sees_exact(reader) is False
