"""The contract suites every event store runs (:mod:`~tests.support.contracts.event_store`,
:mod:`~tests.support.contracts.partitioned_store`)."""
