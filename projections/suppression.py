"""Small-count suppression of community-victims answers (special-category data, GDPR Art. 9).

A reader who is not cleared to see exact community figures gets every community-victims
answer through :func:`protected_query`: a community line whose figures could single out a
small group is returned with its numbers withheld (``suppressed``), and so is whatever would
let a withheld number be recomputed. Pure: no clock, no I/O.

**The protected unit.** The finest set of incidents any combination of the query's filters can
select is a *cell*: one community and victim status in one (country, adm1, day, grading), an
entry of a ``total`` document's ``lines``. ``country``/``adm1`` pick one value,
``from``/``to`` pick any run of days, two ``min_grading`` floors differ by exactly one grading
and ``status`` picks one status, so differences of answers can isolate any single cell. A cell
is *small* when its ``best`` is below ``K`` (``LEDGER_SUPPRESSION_K``, default 5).

**The rule.** In an answer to a reader:

1. *primary*: a community line whose ``best`` is below ``K`` is withheld;
2. *consistent secondary*: a community line is withheld whenever the cells it sums include a
   small cell of that community (with a ``status`` filter: its cells of that status; without
   one: its cells of every status), however large the line is;
3. *unattributed*: when any line is withheld, ``unattributed`` is withheld too;
4. withheld lines come after the shown ones, by name, so their place in the ``best``-ordered
   list says nothing about their size.

``total`` and the answer's ``incidents`` are always shown: they are the fatalities and the
count of the incidents under the filters, which ``GET /v1/incidents`` lists one by one with
their place, date and grading, so withholding them would protect nothing; the proof below
treats them as public.

(1) follows from (2): a line below ``K`` has every one of its cells below ``K`` (cells are
non-negative), so it contains a small cell; (1) is kept as its own check all the same.

**Why nothing withheld can be recomputed.** Take as unknowns the figures ``x[c, a, s]`` of
every cell (community ``c``, place-day-grading ``a``, status ``s``) and as public the totals
``T[a]``. Every number an answer shows is an affine function of the unknowns:

- a shown line of ``c`` is ``Σ x[c, a, s]`` over the cells it selects; by (2) none of them is
  small;
- a shown ``unattributed`` is ``Σ T[a] - Σ x[c, a, s]`` over the selected cells of every
  community; by (3) it is shown only when no line is withheld, so by (2) no cell in it is
  small;
- ``total`` and ``incidents`` are public constants.

So every shown number, in every answer under any filters, has coefficient 0 on every small
cell. Every withheld number has a non-zero coefficient on at least one small cell: a line is
withheld only because it sums one (1 implies 2), and ``unattributed`` only when a line is
withheld, with coefficient -1 on that line's small cell. A linear combination of shown
numbers (with any coefficients, ``{-1, 0, 1}`` or not, over any number of answers) keeps
coefficient 0 on every small cell, hence never equals a withheld number as a function of the
data: no subtraction across lines, ``total``, ``unattributed`` and answers with and without
filters recomputes a withheld figure. The same argument holds component by component for
``low`` and ``high`` and for the lines' ``incidents`` counts (a status-free line's count is
shown only when none of the community's cells there is small, a status line's only when its
status cell is not), and for as-of answers, each computed on the state at that moment.

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

from .common import Readable, docs_of
from .community_victims import VICTIM_STATUSES, Cell, Figures, VictimsAnswer, query
from .docs import Doc

DEFAULT_K: Final = 5
"""The default threshold: a cell with ``best`` below it is small."""


class ShownRow(Doc, frozen=True, kw_only=True, omit_defaults=True):
    """One community line as a reader gets it: exact, or withheld (every number ``None``).

    ``suppressed`` is left out of the JSON of a shown line (it defaults to false).
    """

    community: str
    low: int | None
    best: int | None
    high: int | None
    incidents: int | None
    suppressed: bool = False


class ProtectedAnswer(Doc, frozen=True, kw_only=True):
    """A community-victims answer after suppression (``unattributed`` ``None`` if withheld)."""

    total: Figures
    unattributed: Figures | None
    unattributed_suppressed: bool
    incidents: int
    communities: list[ShownRow]


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"the suppression threshold must be at least 1, got {k}")


def small_communities(
    state: Readable,
    k: int,
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

    The selection is the query's own (:func:`~projections.community_victims.query` run over
    the same cells with only their small lines kept), so the filters mean exactly what they
    mean there.
    """
    _check_k(k)
    reduced: dict[str, Cell] = {}
    for ident, cell in docs_of(state, "total", Cell).items():
        small = {key: one for key, one in cell.lines.items() if one[1] < k}
        if small:
            reduced[ident] = msgspec.structs.replace(cell, communities={}, lines=small)
    if not reduced:
        return frozenset()
    only_small: dict[str, dict[str, msgspec.Struct]] = {"total": {}}
    only_small["total"].update(reduced)
    found: set[str] = set()
    for one in VICTIM_STATUSES if status is None else (status,):
        answer = query(
            only_small,
            country=country,
            adm1=adm1,
            week=week,
            date_from=date_from,
            date_to=date_to,
            status=one,
            min_grading=min_grading,
        )
        found.update(row.community for row in answer.communities)
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
            )
            for row in answer.communities
        ],
    )


def suppress(
    answer: VictimsAnswer, k: int, small: Collection[str] = frozenset()
) -> ProtectedAnswer:
    """``answer`` with the lines below ``k`` or in ``small`` withheld, and ``unattributed``
    withheld whenever a line is (rules 1, 3 and 4 of the module docstring; ``small`` is rule
    2, from :func:`small_communities`)."""
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
                )
            )
    withheld.sort(key=lambda row: row.community)
    return ProtectedAnswer(
        total=answer.total,
        unattributed=None if withheld else answer.unattributed,
        unattributed_suppressed=bool(withheld),
        incidents=answer.incidents,
        communities=shown + withheld,
    )


def protected_query(
    state: Readable,
    k: int,
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

    ``state`` is what :func:`query` reads (the ``total`` documents).
    """
    answer = query(
        state,
        country=country,
        adm1=adm1,
        week=week,
        date_from=date_from,
        date_to=date_to,
        status=status,
        min_grading=min_grading,
    )
    small = small_communities(
        state,
        k,
        country=country,
        adm1=adm1,
        week=week,
        date_from=date_from,
        date_to=date_to,
        status=status,
        min_grading=min_grading,
    )
    return suppress(answer, k, small)
