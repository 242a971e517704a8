"""The event store contract, who may change what: owners and operators, disputes, event ids
keyed by (feed, event id) with the body compared, and statements citing incidents, in
suites (see :mod:`tests.support.contracts.event_store`) asking for a ``store`` fixture.

Every builder publishes as the feed ``sohr`` unless told; ``acled`` plays another feed.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from services.store.base import (
    AppendRejectedError,
    EntityState,
    EventStore,
    IdReusedError,
    NotOwnerError,
)
from services.store.rules import OPERATOR_FEED
from tests.support.builders import (
    disputed,
    merged,
    reported,
    retracted,
    revised,
    statement,
    statement_retracted,
)
from tests.support.contracts.event_store import everything

__all__ = ["Citations", "Disputes", "IdsPerFeed", "Ownership"]

OTHER = "acled"


class Ownership:
    """An incident belongs to the feed that reported it: only it or an operator changes it."""

    @pytest.mark.parametrize(
        "change",
        [
            pytest.param(lambda: revised("i-1", best=0, source=OTHER), id="revised"),
            pytest.param(lambda: retracted("i-1", source=OTHER), id="retracted"),
            pytest.param(lambda: merged("i-1", "i-2", source=OTHER), id="merged"),
        ],
    )
    async def test_another_feed_may_not_change_an_incident(
        self, store: EventStore, change: Any
    ) -> None:
        """Given sohr's incident, when acled revises, retracts or merges it, then the batch
        is refused naming the owner, and nothing is written."""
        await store.append([reported("i-1"), reported("i-2")])
        with pytest.raises(NotOwnerError) as caught:
            await store.append([reported("i-3", source=OTHER), change()])
        assert (caught.value.index, caught.value.entity) == (1, "incident:i-1")
        assert (caught.value.owner, caught.value.feed) == ("sohr", OTHER)
        assert "'sohr'" in caught.value.message
        assert await store.length() == 2
        assert await store.entity("incident:i-1") == EntityState(1, "live", owner="sohr")
        assert await store.entity("incident:i-3") is None

    async def test_a_merge_needs_the_duplicate_s_owner(self, store: EventStore) -> None:
        """Given sohr's i-1 and acled's i-2, when acled merges sohr's i-1 into its own i-2,
        then it is refused; acled may merge its own i-2 into sohr's i-1."""
        await store.append([reported("i-1"), reported("i-2", source=OTHER)])
        with pytest.raises(NotOwnerError):
            await store.append([merged("i-1", "i-2", source=OTHER)])
        (answer,) = await store.append([merged("i-2", "i-1", source=OTHER)])
        assert answer.status == "appended"
        assert await store.entity("incident:i-2") == EntityState(2, "merged", "i-1", OTHER)

    async def test_an_operator_changes_any_feed_s_incident(self, store: EventStore) -> None:
        """Given sohr's incident, when the operators' feed revises and retracts it, then both
        are appended and the incident stays sohr's."""
        await store.append([reported("i-1")])
        answers = await store.append(
            [revised("i-1", best=3, source=OPERATOR_FEED), retracted("i-1", source=OPERATOR_FEED)]
        )
        assert [a.status for a in answers] == ["appended", "appended"]
        assert await store.entity("incident:i-1") == EntityState(3, "retracted", owner="sohr")

    async def test_the_owner_changes_its_own_incident(self, store: EventStore) -> None:
        """The reporting feed revises, then retracts its incident as before."""
        await store.append([reported("i-1", source=OTHER)])
        await store.append([revised("i-1", source=OTHER), retracted("i-1", source=OTHER)])
        assert await store.entity("incident:i-1") == EntityState(3, "retracted", owner=OTHER)

    async def test_a_statement_is_retracted_by_its_feed_or_an_operator(
        self, store: EventStore
    ) -> None:
        """Given sohr's statement, acled's retraction is refused; an operator's is appended."""
        await store.append([statement("s-1")])
        with pytest.raises(NotOwnerError) as caught:
            await store.append([statement_retracted("s-1", source=OTHER)])
        assert caught.value.owner == "sohr"
        await store.append([statement_retracted("s-1", source=OPERATOR_FEED)])
        assert await store.entity("statement:s-1") == EntityState(2, "retracted", owner="sohr")


class Disputes:
    """Another feed files incident.disputed: accepted, changing neither version nor status."""

    async def test_another_feed_s_dispute_is_appended_without_moving_the_version(
        self, store: EventStore
    ) -> None:
        """Given sohr's incident at version 2, when acled disputes it, then the dispute is
        appended, the version stays 2 and sohr's next revision expecting 2 is accepted."""
        await store.append([reported("i-1"), revised("i-1")])
        (answer,) = await store.append([disputed("i-1", feed=OTHER, expected_version=2)])
        assert answer.status == "appended"
        assert await store.entity("incident:i-1") == EntityState(2, "live", owner="sohr")
        await store.append([revised("i-1", best=4, expected_version=2)])
        kinds = [r.event.type for r in await store.read_entity("incident:i-1")]
        assert kinds[2] == "incident.disputed"

    async def test_a_retracted_incident_may_be_disputed(self, store: EventStore) -> None:
        """A dispute needs a reported incident, whatever its status."""
        await store.append([reported("i-1"), retracted("i-1")])
        (answer,) = await store.append([disputed("i-1", feed=OTHER)])
        assert answer.status == "appended"

    async def test_a_dispute_of_an_unknown_incident_is_rejected(self, store: EventStore) -> None:
        """Nobody reported i-9: the dispute names incident_id."""
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([disputed("i-9", feed=OTHER)])
        assert caught.value.field == "incident_id"
        assert "never reported" in caught.value.message

    async def test_the_owner_may_not_dispute_its_own_incident(self, store: EventStore) -> None:
        """The owner revises or retracts instead: its dispute is refused, naming source."""
        await store.append([reported("i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([disputed("i-1", feed="sohr")])
        assert caught.value.field == "source"
        assert await store.length() == 1


class IdsPerFeed:
    """Event ids are idempotency keys per (feed, event id), the body compared."""

    async def test_same_id_and_body_again_is_a_duplicate(self, store: EventStore) -> None:
        """The body resent as it was answers duplicate with the first position."""
        event = reported("i-1", best=5)
        (first,) = await store.append([event])
        (again,) = await store.append([msgspec.structs.replace(event, expected_version=0)])
        assert (again.status, again.position) == ("duplicate", first.position)

    async def test_same_id_with_another_body_is_refused_with_the_original_position(
        self, store: EventStore
    ) -> None:
        """Given sohr's report of 5 dead, when sohr sends its id again with 50 dead, then
        the batch is refused as id_reused with the first position, and nothing written."""
        event = reported("i-1", best=5)
        (first,) = await store.append([event])
        with pytest.raises(IdReusedError) as caught:
            await store.append([reported("i-2"), reported("i-1", best=50, event_id=event.event_id)])
        assert (caught.value.index, caught.value.reason) == (1, "id_reused")
        assert caught.value.position == first.position
        assert [r.event for r in await everything(store)] == [event]

    async def test_another_feed_s_event_under_a_taken_id_is_refused(
        self, store: EventStore
    ) -> None:
        """Given sohr's event, when acled sends an event with that id, then it is refused as
        id_taken (never a silent duplicate) without telling sohr's position."""
        event = reported("i-1")
        await store.append([event])
        squatter = reported("i-1", source=OTHER, event_id=event.event_id)
        with pytest.raises(IdReusedError) as caught:
            await store.append([squatter])
        assert (caught.value.reason, caught.value.position) == ("id_taken", None)
        assert await store.length() == 1

    async def test_an_id_used_twice_in_one_batch_with_two_bodies_is_refused(
        self, store: EventStore
    ) -> None:
        """The second use names the first one's index; nothing is written."""
        event = reported("i-1")
        with pytest.raises(IdReusedError) as caught:
            await store.append([event, reported("i-2", event_id=event.event_id)])
        assert (caught.value.index, caught.value.earlier, caught.value.position) == (1, 0, None)
        assert await store.length() == 0


class Citations:
    """A statement may name only incidents some event reported."""

    async def test_a_statement_naming_unreported_incidents_is_refused_listing_them(
        self, store: EventStore
    ) -> None:
        """Given i-1 reported, when a statement names i-1, x-2 and x-3, then it is refused
        naming incident_ids and listing x-2 and x-3, and nothing is written."""
        await store.append([reported("i-1")])
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([statement("s-1", incident_ids=["i-1", "x-2", "x-3"])])
        assert (caught.value.index, caught.value.field) == (0, "incident_ids")
        assert caught.value.message.endswith("x-2, x-3")
        assert await store.length() == 1

    async def test_incidents_reported_earlier_in_the_batch_or_retracted_may_be_named(
        self, store: EventStore
    ) -> None:
        """Any reported incident counts, retracted or reported just before in the batch."""
        await store.append([reported("i-1"), retracted("i-1")])
        answers = await store.append(
            [reported("i-2"), statement("s-1", incident_ids=["i-1", "i-2"])]
        )
        assert [a.status for a in answers] == ["appended", "appended"]

    async def test_an_incident_reported_later_in_the_batch_is_not_yet_reported(
        self, store: EventStore
    ) -> None:
        """The statement comes first in the batch: its incident is not reported yet."""
        with pytest.raises(AppendRejectedError) as caught:
            await store.append([statement("s-1", incident_ids=["i-2"]), reported("i-2")])
        assert caught.value.index == 0
