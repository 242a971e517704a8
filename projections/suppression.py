"""Small-count suppression of community-victims answers (special-category data, GDPR Art. 9).

A reader who is not cleared to see exact community figures gets every community-victims
answer through :func:`protected_query`: a community line whose figures could single out a
small group is returned with its numbers withheld (``suppressed``), and so is whatever would
let a withheld number be recomputed. Pure: no clock, no I/O.

**The protected unit.** The finest set of incidents any combination of the query's filters can
select is a *cell*: one community and victim status among the incidents alike in every
attribute a filter selects by — country, adm1, window of occurrence, grading, event type,
violence type, civilian targeting, reporting feed and set of perpetrators — an entry of a
``total`` document's ``lines``. Every filter keeps or drops such a group whole (place
filters compare the adm1 every incident of it shares; ``from``/``to``/``week`` the window
they share; ``perpetrator`` tests the set they share), and ``status`` picks one status, so
differences of answers can isolate any single cell but never split one. A cell is *small*
when its ``best`` is below ``K`` (``LEDGER_SUPPRESSION_K``, default 5).

**The rule.** In an answer to a reader:

1. *primary*: a community line whose ``best`` is below ``K`` is withheld;
2. *consistent secondary*: a community line is withheld whenever the cells it sums include a
   small cell of that community (with a ``status`` filter: its cells of that status; without
   one: its cells of every status), however large the line is;
3. *unattributed*: when any line is withheld, ``unattributed`` is withheld too;
4. *totals*: when any line is withheld, ``total`` and the answer's ``incidents`` are withheld
   too (``total_suppressed``), with a ``status`` filter (where they are the lines' own sum)
   and without one (where a total of 2 over 1 incident beside one withheld line bounds that
   line for whoever reads this answer alone);
5. withheld lines come after the shown ones, by name, so their place in the ``best``-ordered
   list says nothing about their size; a withheld line's ``at_least`` is withheld with its
   numbers;
6. *a lone withheld line*: when exactly one line is withheld its name is withheld too
   (:data:`WITHHELD_NAME`): the answer says that some community's figure is withheld, not
   which community has a small count here.

Without a ``status`` filter the total and incidents are also what ``GET /v1/incidents``
lists one by one, so rule 4 protects the answer read on its own; the proof below treats
them as public all the same.

(1) follows from (2): a line below ``K`` has every one of its cells below ``K`` (cells are
non-negative), so it contains a small cell; (1) is kept as its own check all the same.

**Why nothing withheld can be recomputed.** Take as unknowns the figures ``x[c, a, s]`` of
every cell (community ``c``, group of alike incidents ``a``, status ``s``) and as public the
totals ``T[a]``. Every number an answer shows is a function of the unknowns that, around
the data, is affine:

- a shown line of ``c`` is ``Σ x[c, a, s]`` over the cells it selects; by (2) none of them is
  small;
- a shown ``unattributed`` is ``max(0, Σ T[a] - Σ x[c, a, s])`` over the selected cells of
  every community (component by component, the bounds crossed); by (3) it is shown only when
  no line is withheld, so by (2) no cell in it is small;
- a shown status ``total`` is ``Σ x[c, a, s]`` over the selected cells of that status, and by
  (4) shown only when no line is withheld, so no cell in it is small;
- ``total`` and ``incidents`` without ``status`` are public constants.

So every shown number, in every answer under any filters, has coefficient 0 on every small
cell. Every withheld number has a non-zero coefficient on at least one small cell: a line is
withheld only because it sums one (1 implies 2), and ``unattributed`` or a status total only
when a line is withheld, with a non-zero coefficient on that line's small cell. A linear
combination of shown numbers (with any coefficients, ``{-1, 0, 1}`` or not, over any number
of answers) keeps coefficient 0 on every small cell, hence never equals a withheld number as
a function of the data: no subtraction across lines, totals, ``unattributed`` and answers
with and without filters recomputes a withheld figure. The same argument holds component by
component for ``low`` and ``high``, for the lines' ``incidents`` counts (a status-free line's
count is shown only when none of the community's cells there is small, a status line's only
when its status cell is not), for the ``at_least`` flags (a shown one is an "or" over the
same cells as its figure), and for as-of answers, each computed on the state at that moment.

What is shown is exact: no noise, no rounding. The price of a provable rule is that a large
line covering one small cell is withheld too (the dashboard says so); narrowing the filters
to leave the small cell out shows the rest exactly.

**What the rule does not cover.** Two moments are two states: the difference of one large
cell before and after a revision is the revision's change. Answers at two moments can also
be subtracted, as-of or simply by asking again later, so the rule protects the cells of each
moment, not the steps between moments; ``GET /v1/incidents/{id}`` withholds an incident's
own community lines from readers for the same reason (see :mod:`services.http.read`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Final

import msgspec

from .common import Readable, kinds_of
from .docs import Doc
from .errors import InconsistentStateError
from .filters import DEFAULT_MIN_GRADING, Selection, VictimsFilter, filter_of, select
from .victims_cells import Cell, cell_kept, small_lines
from .victims_query import Figures, VictimsAnswer, cells_of, tally

DEFAULT_K: Final = 5
"""The default threshold: a cell with ``best`` below it is small."""
WITHHELD_NAME: Final = "[withheld]"
"""The name a lone withheld line carries (rule 6): no community slug looks like it."""


class ShownRow(Doc, frozen=True, kw_only=True, omit_defaults=True):
    """One community line as a reader gets it: exact, or withheld (every number and
    ``at_least`` ``None``).

    ``suppressed`` is left out of the JSON of a shown line (it defaults to false).
    """

    community: str
    low: int | None
    best: int | None
    high: int | None
    incidents: int | None
    at_least: bool | None
    suppressed: bool = False


class ProtectedAnswer(Doc, frozen=True, kw_only=True):
    """A community-victims answer after suppression: ``unattributed`` ``None`` if withheld,
    ``total`` and ``incidents`` ``None`` if withheld (a status total, rule 4)."""

    total: Figures | None
    unattributed: Figures | None
    unattributed_suppressed: bool
    incidents: int | None
    communities: list[ShownRow]
    total_suppressed: bool = False


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"the suppression threshold must be at least 1, got {k}")


def small_in_cell(cell: Cell, selection: Selection, k: int) -> set[str]:
    """The communities with a small line (``best`` < ``k``) in ``cell`` that the selection
    keeps (of its status, when it has one)."""
    if not cell_kept(selection, cell):
        return set()
    return small_lines(selection, cell, k)


def small_communities(
    state: Readable,
    k: int,
    where: VictimsFilter | None = None,
    *,
    country: str | None = None,
    adm1: str | None = None,
    week: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    min_grading: str | None = None,
) -> frozenset[str]:
    """The communities with a small cell (``best`` < ``k``) among the cells a query selects.

    The selection is the query's own (the same :class:`~projections.filters.Selection` of
    the same filter), so the filters mean exactly what they mean there.
    """
    _check_k(k)
    selection = select(
        filter_of(
            where,
            country=country,
            adm1=adm1,
            week=week,
            date_from=date_from,
            date_to=date_to,
            status=status,
            min_grading=min_grading,
        ),
        DEFAULT_MIN_GRADING,
    )
    found: set[str] = set()
    for cell in cells_of(state).values():
        found |= small_in_cell(cell, selection, k)
    return frozenset(found)


def exact(answer: VictimsAnswer) -> ProtectedAnswer:
    """``answer`` unchanged, in the shape of a protected one (for cleared readers)."""
    return ProtectedAnswer(
        total=answer.total,
        unattributed=answer.unattributed,
        unattributed_suppressed=False,
        incidents=answer.incidents,
        communities=[
            ShownRow(
                community=row.community,
                low=row.low,
                best=row.best,
                high=row.high,
                incidents=row.incidents,
                at_least=row.at_least,
            )
            for row in answer.communities
        ],
    )


def suppress(
    answer: VictimsAnswer, k: int, small: Collection[str] = frozenset()
) -> ProtectedAnswer:
    """``answer`` with the lines below ``k`` or in ``small`` withheld, and ``unattributed``
    ``total`` and ``incidents`` withheld whenever a line is, and a lone withheld line's name
    (rules 1, 3, 4, 5 and 6 of the module docstring; ``small`` is rule 2, from
    :func:`small_communities`)."""
    _check_k(k)
    shown: list[ShownRow] = []
    withheld: list[ShownRow] = []
    for row in answer.communities:
        if row.best < k or row.community in small:
            withheld.append(
                ShownRow(
                    community=row.community,
                    low=None,
                    best=None,
                    high=None,
                    incidents=None,
                    at_least=None,
                    suppressed=True,
                )
            )
        else:
            shown.append(
                ShownRow(
                    community=row.community,
                    low=row.low,
                    best=row.best,
                    high=row.high,
                    incidents=row.incidents,
                    at_least=row.at_least,
                )
            )
    withheld.sort(key=lambda row: row.community)
    if len(withheld) == 1:
        withheld = [msgspec.structs.replace(withheld[0], community=WITHHELD_NAME)]
    hide_total = bool(withheld)
    return ProtectedAnswer(
        total=None if hide_total else answer.total,
        unattributed=None if withheld else answer.unattributed,
        unattributed_suppressed=bool(withheld),
        incidents=None if hide_total else answer.incidents,
        communities=shown + withheld,
        total_suppressed=hide_total,
    )


def protected_query(
    state: Readable,
    k: int,
    where: VictimsFilter | None = None,
    *,
    country: str | None = None,
    adm1: str | None = None,
    week: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    status: str | None = None,
    min_grading: str | None = None,
) -> ProtectedAnswer:
    """The community-victims answer a reader gets: :func:`query`, then the full rule.

    ``state`` is what :func:`query` reads (the ``total`` documents). One pass over the cells
    sums the answer and finds the small communities (:func:`small_communities`) together.
    """
    where = filter_of(
        where,
        country=country,
        adm1=adm1,
        week=week,
        date_from=date_from,
        date_to=date_to,
        status=status,
        min_grading=min_grading,
    )
    sums = tally(where)
    _check_k(k)
    selection = sums.selection
    by_party, status = selection.by_party, selection.status
    grading_only, gradings = selection.grading_only, selection.gradings
    small: set[str] = set()
    for ident, cell in kinds_of(state).get("total", {}).items():
        if not isinstance(cell, Cell):
            raise InconsistentStateError(f"total {ident!r} is a {type(cell).__name__}")
        if not (cell.grading in gradings if grading_only else cell_kept(selection, cell)):
            continue
        sums.add_kept(cell)
        if by_party:
            for party, one in cell.parties.items():
                if one.best < k:
                    small.add(party)
            continue
        for key, one in cell.lines.items():  # small_lines, inlined: the hot loop of a read
            if one.best < k:
                community, _, line_status = key.rpartition("|")
                if status is None or line_status == status:
                    small.add(community)
    return suppress(sums.answer(), k, small)
