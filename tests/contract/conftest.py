"""The view stores every contract suite of views runs against."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from services.store.keys import Keys
from services.views.memory import InMemoryViewStore
from services.views.redis import RedisViewStore
from services.views.store import ViewStore


@pytest.fixture(params=["memory", "redis"])
def views(request: pytest.FixtureRequest) -> ViewStore:
    """Each view store implementation in turn, on one partition."""
    if request.param == "memory":
        return InMemoryViewStore()
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    prefix: str = request.getfixturevalue("key_prefix")
    return RedisViewStore(client, Keys(prefix))
