"""What the tests share, written once.

- :mod:`~tests.support.waiting`: :func:`~tests.support.waiting.until`, the one way a test
  waits for a condition (never a sleep standing in for synchronisation);
- :mod:`~tests.support.builders`: valid events, a log that records them, folds;
- :mod:`~tests.support.strategies`: hypothesis strategies of valid histories (events from
  several feeds) and of store batches;
- :mod:`~tests.support.runner`: the log read back, views caught up and compared with the
  fold, the pools of a test, the counting projections that catch a double apply, crashes;
- :mod:`~tests.support.streams`: Redis streams read raw, typed;
- :mod:`~tests.support.seeds`: the seeds of random tests, named in their failures;
- :mod:`~tests.support.http`: the HTTP app as an in-process client or on a local port;
- :mod:`~tests.support.tokens`: the reader, operator and feed tokens of the HTTP tests;
- :mod:`~tests.support.processes`: ``ledger serve``, ``ledger project`` and ``ledger run`` as
  child processes, and what a process started (from ``/proc``);
- :mod:`~tests.support.faults`: feeds that retry with the same event ids, the views' lag read
  through the API, the log and the views checked against the acknowledged events, the
  groups' ``XINFO``;
- :mod:`~tests.support.scenarios`: whole scenarios run by more than one test module;
- :mod:`~tests.support.service`: the wired service served in the test's event loop, and
  ``ledger serve`` with nothing configured;
- :mod:`~tests.support.browser`: the dashboard in a real chromium;
- :mod:`~tests.support.cluster`: Redis Clusters of child processes;
- :mod:`~tests.support.contracts`: the contract suites every event store runs;
- :mod:`~tests.support.tools`: a tool the tests need, or a skip (a failure under CI).
"""
