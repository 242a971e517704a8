"""The event store: its contract, an in-memory implementation, and one on Redis Streams."""

from services.store.base import (
    Appended,
    AppendRejectedError,
    ConflictError,
    EntityState,
    EventStore,
    StoreError,
    StoreUnavailableError,
)
from services.store.connection import connect
from services.store.keys import Keys
from services.store.memory import InMemoryEventStore
from services.store.redis import RedisEventStore

__all__ = [
    "AppendRejectedError",
    "Appended",
    "ConflictError",
    "EntityState",
    "EventStore",
    "InMemoryEventStore",
    "Keys",
    "RedisEventStore",
    "StoreError",
    "StoreUnavailableError",
    "connect",
]
