"""Reference tables shipped with the vocabulary (CAMEO→Goldstein, ISO 3166-1 alpha-3).

Both are data files under ``events/data/``; each file's header says where it comes from.
"""

from __future__ import annotations

from functools import cache
from importlib import resources


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


def goldstein(cameo_code: str) -> float | None:
    """The Goldstein score of a CAMEO code, or ``None`` when the code is not in the table."""
    return goldstein_table().get(cameo_code)
