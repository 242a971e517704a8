"""The event store: its contract, an in-memory implementation, and one on Redis Streams."""

from .base import (
    Appended,
    AppendRejectedError,
    ConflictError,
    EntityState,
    EventStore,
    StoreError,
    StoreUnavailableError,
)
from .keys import Keys
from .memory import InMemoryEventStore
from .redis import RedisEventStore, connect

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
