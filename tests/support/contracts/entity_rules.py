"""The event store contract, the entity rules: what every store refuses, and why, in suites
(see :mod:`tests.support.contracts.event_store`) asking for a ``store`` fixture."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from services.store.base import (
    AppendRejectedError,
    ConflictError,
    EntityState,
    EventStore,
)
from tests.support.builders import (
    merged,
    reported,
    retracted,
    revised,
    statement,
    statement_retracted,
)

__all__ = ["IncidentRules", "StatementRules"]


class IncidentRules:
    """Reports, revisions, retractions and merges must fit the incident's state."""

    async def test_second_report_of_an_incident_conflicts(self, store: EventStore) -> None:
        """Reporting an existing incident again is a conflict pointing at revisions."""
        await store.append([reported("i-1")])
        with pytest.raises(ConflictError) as caught:
            await store.append([reported("i-1", best=3)])
        assert caught.value.current == 1
        assert "casualties_revised" in caught.value.message
        assert await store.length() == 1

    async def test_report_after_retraction_still_conflicts(self, store: EventStore) -> None:
        """A retracted incident id cannot be reported afresh."""
        await store.append([reported("i-1"), retracted("i-1")])
        with pytest.raises(ConflictError):
            await store.append([reported("i-1")])

    @pytest.mark.parametrize(
        "event",
        [
            pytest.param(lambda: revised("i-9"), id="revised"),
            pytest.param(lambda: retracted("i-9"), id="retracted"),
            pytest.param(lambda: merged("i-9", "i-1"), id="merged"),
        ],
    )
    async def test_change_of_a_missing_incident_is_rejected(
        self, store: EventStore, event: Any
    ) -> None:
        """Revising, retracting or merging an unknown incident names incident_id."""
        await store.append([reported("i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([event()])
        assert (caught.value.index, caught.value.field) == (0, "incident_id")
        assert "i-9" in caught.value.message
        assert await store.length() == 1

    @pytest.mark.parametrize(
        "event",
        [
            pytest.param(lambda: revised("i-1"), id="revised"),
            pytest.param(lambda: retracted("i-1"), id="retracted"),
            pytest.param(lambda: merged("i-1", "i-2"), id="merged"),
        ],
    )
    async def test_change_of_a_retracted_incident_is_rejected(
        self, store: EventStore, event: Any
    ) -> None:
        """Nothing can follow a retraction: revise, retract again or merge."""
        await store.append([reported("i-1"), reported("i-2"), retracted("i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([event()])
        assert caught.value.field == "incident_id"
        assert "retracted" in caught.value.message
        assert await store.length() == 3

    async def test_change_of_a_merged_away_incident_is_rejected(self, store: EventStore) -> None:
        """A duplicate merged away takes no revisions; the message says where it went."""
        await store.append([reported("i-1"), reported("i-2"), merged("i-2", "i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([revised("i-2")])
        assert caught.value.field == "incident_id"
        assert "incident:i-1" in caught.value.message

    async def test_merge_into_a_missing_incident_is_rejected(self, store: EventStore) -> None:
        """The target of a merge must exist; the error names ``into``."""
        await store.append([reported("i-2")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([merged("i-2", "i-1")])
        assert (caught.value.index, caught.value.field) == (0, "into")
        assert await store.entity("incident:i-2") == EntityState(1, "live", owner="sohr")

    async def test_merge_into_a_retracted_incident_is_rejected(self, store: EventStore) -> None:
        """A retracted incident cannot absorb a duplicate."""
        await store.append([reported("i-1"), reported("i-2"), retracted("i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([merged("i-2", "i-1")])
        assert caught.value.field == "into"
        assert "retracted" in caught.value.message

    async def test_merge_into_a_merged_incident_is_rejected(self, store: EventStore) -> None:
        """Merging into a duplicate is refused; merge into its canonical incident instead."""
        await store.append(
            [reported("i-1"), reported("i-2"), reported("i-3"), merged("i-2", "i-1")]
        )
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([merged("i-3", "i-2")])
        assert caught.value.field == "into"
        assert "incident:i-1" in caught.value.message

    async def test_merge_into_itself_is_rejected_by_the_store_too(self, store: EventStore) -> None:
        """An unvalidated self-merge reaching the store is refused, naming ``into``."""
        await store.append([reported("i-1")])
        event = msgspec.structs.replace(merged("i-2", "i-1"), incident_id="i-1")
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([event])
        assert caught.value.field == "into"
        assert await store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")

    async def test_report_then_revise_in_one_batch_is_accepted(self, store: EventStore) -> None:
        """A batch may create an incident and change it right away."""
        answers = await store.append([reported("i-1"), revised("i-1"), revised("i-1", best=2)])
        assert [a.status for a in answers] == ["appended"] * 3
        assert await store.entity("incident:i-1") == EntityState(3, "live", owner="sohr")


class StatementRules:
    """Statements are issued once and retracted at most once."""

    async def test_issue_then_retract_is_accepted(self, store: EventStore) -> None:
        """A statement can be issued and then retracted."""
        await store.append([statement("s-1")])
        await store.append([statement_retracted("s-1")])
        assert await store.entity("statement:s-1") == EntityState(2, "retracted", owner="sohr")

    async def test_second_issue_conflicts(self, store: EventStore) -> None:
        """Issuing an existing statement id again is a conflict."""
        await store.append([statement("s-1")])
        with pytest.raises(ConflictError) as caught:
            await store.append([statement("s-1")])
        assert (caught.value.entity, caught.value.current) == ("statement:s-1", 1)

    async def test_retraction_of_a_missing_statement_is_rejected(self, store: EventStore) -> None:
        """Retracting an unknown statement names statement_id."""
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([statement_retracted("s-9")])
        assert caught.value.field == "statement_id"
        assert await store.length() == 0

    async def test_second_retraction_is_rejected(self, store: EventStore) -> None:
        """A statement is retracted once."""
        await store.append([statement("s-1"), statement_retracted("s-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([statement_retracted("s-1")])
        assert caught.value.field == "statement_id"
        assert "retracted" in caught.value.message

    async def test_incident_and_statement_ids_do_not_collide(self, store: EventStore) -> None:
        """incident:x and statement:x are different entities."""
        await store.append([reported("x-1"), statement("x-1")])
        assert await store.entity("incident:x-1") == EntityState(1, "live", owner="sohr")
        assert await store.entity("statement:x-1") == EntityState(1, "live", owner="sohr")
