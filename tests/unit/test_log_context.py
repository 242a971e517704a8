"""What a request binds to the log context about the events it handles."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import structlog

from services.logging import bind_event_ids, context


@pytest.fixture(autouse=True)
def clean_context() -> Iterator[None]:
    """Each test starts and ends with nothing bound."""
    structlog.contextvars.clear_contextvars()
    yield
    structlog.contextvars.clear_contextvars()


class TestEventIds:
    """bind_event_ids: the first ten ids as text and the count of the whole batch."""

    def test_a_large_batch_binds_its_first_ten_ids_and_its_size(self) -> None:
        """Of 25 ids, the first ten are bound, in order, as text; the count is 25."""
        ids = [uuid.uuid4() for _ in range(25)]
        bind_event_ids(ids)
        assert context()["event_ids"] == [str(i) for i in ids[:10]]
        assert context()["event_count"] == 25

    def test_a_small_batch_binds_every_id(self) -> None:
        """Fewer than ten ids are all bound."""
        ids = [uuid.uuid4() for _ in range(3)]
        bind_event_ids(ids)
        assert context()["event_ids"] == [str(i) for i in ids]
        assert context()["event_count"] == 3
