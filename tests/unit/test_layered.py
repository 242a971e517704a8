"""A layered mapping moved by changes equals a plain dict moved by them, and never changes
the mappings it was moved from."""

from __future__ import annotations

import hypothesis.strategies as st
from hypothesis import given

from services.views.layered import Layered, overlay_limit

IDS = st.sampled_from([f"id-{n}" for n in range(40)])
CHANGES = st.dictionaries(IDS, st.none() | st.integers(0, 9), max_size=12)


def moved_plainly(old: dict[str, int], changes: dict[str, int | None]) -> dict[str, int]:
    new = dict(old)
    for key, value in changes.items():
        if value is None:
            new.pop(key, None)
        else:
            new[key] = value
    return new


class TestLayered:
    """What a reader of the moved documents sees."""

    @given(
        start=st.dictionaries(IDS, st.integers(0, 9)),
        moves=st.lists(st.tuples(CHANGES, st.booleans()), max_size=30),
    )
    def test_moves_equal_a_plain_dict_and_leave_earlier_mappings_as_they_were(
        self, start: dict[str, int], moves: list[tuple[dict[str, int | None], bool]]
    ) -> None:
        """Every mapping in a chain of moves reads as the plain dict moved the same way (ids,
        values, length, membership, order), also after later moves, whether or not it was
        iterated whole in between."""
        layered = dict(start)
        plain = dict(start)
        history: list[tuple[object, dict[str, int]]] = []
        for changes, iterate in moves:
            layered = Layered.moved(layered, changes)  # type: ignore[assignment]
            plain = moved_plainly(plain, changes)
            if iterate:
                assert list(layered) == list(plain)
            history.append((layered, dict(plain)))
        for mapping, expected in history:
            assert dict(mapping.items()) == expected  # type: ignore[attr-defined]
            assert len(mapping) == len(expected)  # type: ignore[arg-type]
            assert list(mapping) == list(expected)  # type: ignore[call-overload]
            for key in [f"id-{n}" for n in range(40)]:
                assert (key in mapping) == (key in expected)  # type: ignore[operator]
                assert mapping.get(key) == expected.get(key)  # type: ignore[attr-defined]

    def test_changes_beyond_the_limit_are_folded_into_a_plain_dict(self) -> None:
        """Once the overlay outgrows its limit the moved mapping is a plain dict again."""
        base = {f"b-{n}": n for n in range(100)}
        changes: dict[str, int | None] = {f"c-{n}": n for n in range(overlay_limit(100) + 1)}
        assert isinstance(Layered.moved(base, {"c-0": 0}), Layered)
        folded = Layered.moved(base, changes)
        assert type(folded) is dict
        assert folded == {**base, **changes}
        assert len(base) == 100
