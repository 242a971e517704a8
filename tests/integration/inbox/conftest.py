"""The inbox tests' fixtures: settings with two allowed feeds, their keys, an inbox."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest

from services.ingest.inbox import Inbox, build_inbox
from services.settings import Settings
from services.store.keys import Keys
from services.store.redis import RedisEventStore


@pytest.fixture
def settings(key_prefix: str) -> Settings:
    """Settings of one test: its own prefix, two allowed feeds, a quick reclaim."""
    return Settings(key_prefix=key_prefix, inbox_feeds=("sohr", "un-watch"), claim_idle_ms=200)


@pytest.fixture
def keys(settings: Settings) -> Keys:
    """The key names of this test."""
    return Keys(settings.key_prefix)


@pytest.fixture
async def inbox(
    settings: Settings, redis_store: RedisEventStore, redis_url: str
) -> AsyncIterator[Inbox]:
    """An inbox on this test's keys, not yet started; stopped after the test if it was."""
    box = build_inbox(
        settings, redis_store, redis_url, consumer=f"test-{uuid.uuid4().hex[:8]}", poll_ms=50
    )
    yield box
    if box.broker.running:
        await box.stop()
