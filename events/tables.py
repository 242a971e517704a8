"""Reference tables shipped with the vocabulary, each a data file under ``events/data/``
whose header says what it is and where it comes from:

- ``cameo_goldstein.tsv``: CAMEO event code → Goldstein score (GDELT's published table);
- ``cameo_stance.tsv``: CAMEO root → the stances a code under it may not carry;
- ``speaker_titles.tsv``: a speaker's title → speaker role (for upcasting old statements);
- ``iso3166_alpha3.tsv``: ISO 3166-1 alpha-3 code → country name.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Final

import msgspec


class CameoRoot(msgspec.Struct, frozen=True):
    """One CAMEO root (the first two digits of a code) and the stances it refuses."""

    root: str
    name: str
    quad_class: int
    refused: frozenset[str]


def _rows(name: str) -> list[list[str]]:
    text = resources.files(__package__).joinpath("data", name).read_text(encoding="utf-8")
    return [line.split("\t") for line in text.splitlines() if line and not line.startswith("#")]


@cache
def goldstein_table() -> dict[str, float]:
    """CAMEO event code (a string such as ``"026"``) → Goldstein score in [-10, 10]."""
    rows = _rows("cameo_goldstein.tsv")
    return {code: float(score) for code, score in rows[1:]}  # first row: column names


@cache
def iso3_countries() -> dict[str, str]:
    """ISO 3166-1 alpha-3 code → English short name."""
    return dict(_rows("iso3166_alpha3.tsv"))


USER_ASSIGNED: Final[dict[str, str]] = {"XKX": "Kosovo"}
"""Codes from ISO 3166-1's user-assigned range (``XAA``-``XZZ``) that sources use for
places ISO gives no code: ``XKX`` for Kosovo, as ACLED, the EU and the World Bank write it.
Accepted wherever a country code is."""


def country_codes() -> dict[str, str]:
    """Every country code an event may carry: ISO 3166-1 alpha-3 and :data:`USER_ASSIGNED`."""
    return {**iso3_countries(), **USER_ASSIGNED}


def goldstein(cameo_code: str) -> float | None:
    """The Goldstein score of a CAMEO code, or ``None`` when the code is not in the table."""
    return goldstein_table().get(cameo_code)


@cache
def cameo_roots() -> dict[str, CameoRoot]:
    """CAMEO root (``"01"`` … ``"20"``) → its name, QuadClass and refused stances."""
    roots: dict[str, CameoRoot] = {}
    for root, name, quad, refused in _rows("cameo_stance.tsv")[1:]:  # first row: names
        stances = frozenset() if refused == "-" else frozenset(refused.split(","))
        roots[root] = CameoRoot(root, name, int(quad), stances)
    return roots


def cameo_root(cameo_code: str) -> CameoRoot | None:
    """The root of a CAMEO code (its first two digits), or ``None`` for an unknown root."""
    return cameo_roots().get(cameo_code[:2])


@cache
def speaker_titles() -> dict[str, str]:
    """A speaker's title, normalised (:func:`title_key`) → its speaker role."""
    return dict(_rows("speaker_titles.tsv")[1:])


_SPACES: Final = re.compile(r"\s+")


def title_key(title: str) -> str:
    """A title as :func:`speaker_titles` keys it: lower case, no full stops, no leading
    "the", single spaces."""
    key = _SPACES.sub(" ", title.replace(".", " ")).strip().casefold()
    return key.removeprefix("the ")


def role_of_title(title: str | None) -> str:
    """The speaker role a title clearly is (see ``speaker_titles.tsv``), else
    ``other_official``."""
    if title is None:
        return "other_official"
    return speaker_titles().get(title_key(title), "other_official")
