"""The registry of projections, the fold helper, and the stored form of documents."""

from __future__ import annotations

import msgspec
import pytest

from projections import (
    PROJECTIONS,
    Docs,
    alignment,
    community_victims,
    country_stance,
    fold,
    incidents,
)
from tests.support.builders import COAST, Log, line, roundtrip

EVERY_EVENT_TYPE = [
    COAST.reported("a", 10, victims=[line("alawite", 6)]),
    COAST.reported("b", 4),
    COAST.revised("a", 12, victims=[line("alawite", 7)]),
    COAST.merged("b", "a"),
    COAST.statement("s-1", "USA", "RUS", incident_ids=["a"]),
    COAST.statement("s-2", "FRA"),
    COAST.statement_retracted("s-2"),
    COAST.retracted("a"),
]


class TestRegistry:
    def test_registry_holds_the_four_projections_by_name(self) -> None:
        """Each module's NAME, VERSION and DOC_TYPES are registered under its name."""
        modules = (community_victims, country_stance, alignment, incidents)
        assert set(PROJECTIONS) == {m.NAME for m in modules}
        for module in modules:
            projection = PROJECTIONS[module.NAME]
            assert projection.version == module.VERSION >= 1
            assert projection.doc_types is module.DOC_TYPES
            assert projection.view == f"{module.NAME}:v{module.VERSION}"

    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_every_document_type_is_a_frozen_struct(self, name: str) -> None:
        """Documents are values: frozen Structs."""
        for doc_type in PROJECTIONS[name].doc_types.values():
            assert issubclass(doc_type, msgspec.Struct)
            assert doc_type.__struct_config__.frozen

    def test_projection_is_frozen(self) -> None:
        """A registered projection cannot be altered."""
        with pytest.raises(AttributeError):
            PROJECTIONS["incidents"].version = 2  # type: ignore[misc]


class TestFold:
    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_fold_equals_applying_one_by_one(self, name: str) -> None:
        """fold starts from initial() and applies each event in order."""
        projection = PROJECTIONS[name]
        records = Log().records(EVERY_EVENT_TYPE)
        state = projection.initial()
        for one in records:
            state = projection.apply(state, one)
        assert fold(projection, records) == state

    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_documents_survive_a_json_round_trip(self, name: str) -> None:
        """Every document of every kind encodes to JSON and decodes back equal, typed."""
        state = fold(PROJECTIONS[name], Log().records(EVERY_EVENT_TYPE[:-1]))
        assert len(state) > 0
        loaded = roundtrip(name, state)
        assert loaded == state
        assert loaded.take_changes() == {}

    @pytest.mark.parametrize("name", sorted(PROJECTIONS))
    def test_apply_reports_each_changed_document(self, name: str) -> None:
        """take_changes after a fold names exactly the documents the state now holds."""
        state = fold(PROJECTIONS[name], Log().records(EVERY_EVENT_TYPE[:5]))
        changes = state.take_changes()
        held = {(kind, ident) for kind, docs in state.kinds().items() for ident in docs}
        assert {key for key, doc in changes.items() if doc is not None} == held

    def test_an_empty_state_is_an_empty_docs(self) -> None:
        """initial() gives an empty Docs for every projection."""
        for projection in PROJECTIONS.values():
            assert projection.initial() == Docs()
