"""The contract suites every event store runs: :mod:`~tests.support.contracts.event_store`
(appends, reads, idempotency, versions, atomicity, entities),
:mod:`~tests.support.contracts.entity_rules` (what a store refuses) and
:mod:`~tests.support.contracts.partitioned_store` (several log partitions)."""
