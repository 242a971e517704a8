"""Prometheus metrics of the ingest path, in a registry of their own per app.

A registry per :class:`IngestMetrics` (not the process-global default) lets tests and
several apps in one process count independently. ``GET /metrics`` renders it.

- ``ledger_events_ingested_total{type, result}``: events by type and what became of them
  (``appended``, ``duplicate``, ``invalid``, ``forbidden``, ``rejected``, ``conflict``,
  ``unavailable``); events that did not decode count under type ``unknown``.
- ``ledger_submissions_total{status}``: ``POST /v1/events`` answers by HTTP status.
- ``ledger_append_seconds``: latency of the store's append, per batch.
- ``ledger_inbox_entries_total{feed, result}``: Redis inbox entries by feed (the stream they
  came on; empty for the retired shared stream) and what became of them: ``accepted`` (its
  events appended, or in the log already), ``invalid`` (refused by validation) or
  ``rejected`` (refused by the store, or failing the inbox), counted where the inbox runs.

The read side (:class:`ReadMetrics`, same registry, refreshed on each scrape):

- ``ledger_projection_lag{projection}``: log entries not yet applied to the view;
- ``ledger_projection_lag_seconds{projection}``: how long ago the oldest of them was
  recorded (0 when there is none);
- ``ledger_projection_position_seconds{projection}``: when the view's checkpoint was
  recorded (Unix seconds; absent until the view has one);
- ``ledger_dead_letters``: entries in the projectors' dead-letter stream;
- ``ledger_sse_clients``: connected ``/v1/live`` clients.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.exposition import generate_latest

MEDIA_TYPE: Final = "text/plain; version=0.0.4"
"""The Prometheus text format :func:`generate_latest` writes; the HTTP app adds the charset
once: ``text/plain; version=0.0.4; charset=utf-8``."""
_LATENCY_BUCKETS: Final = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class IngestMetrics:
    """The counters and histogram of the ingest path."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self.events = Counter(
            "ledger_events_ingested",
            "Submitted events by type and result",
            ("type", "result"),
            registry=self.registry,
        )
        self.submissions = Counter(
            "ledger_submissions",
            "Answers of POST /v1/events by HTTP status",
            ("status",),
            registry=self.registry,
        )
        self.inbox = Counter(
            "ledger_inbox_entries",
            "Redis inbox entries by feed and result (accepted, invalid, rejected)",
            ("feed", "result"),
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "ledger_append_seconds",
            "Latency of one batch append to the event store",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )

    def count(self, types: Iterable[str], result: str) -> None:
        """Count events of these ``types`` (one entry per event) under ``result``."""
        for event_type, n in Tally(types).items():
            self.events.labels(event_type, result).inc(n)

    def count_results(self, types: Sequence[str], statuses: Sequence[str]) -> int:
        """Count an accepted batch: event ``i`` of type ``types[i]`` became ``statuses[i]``.

        One counter increment per (type, status) pair of the batch; returns how many events
        were ``appended``.
        """
        tally = Tally(zip(types, statuses, strict=True))
        appended = 0
        for (event_type, status), n in tally.items():
            self.events.labels(event_type, status).inc(n)
            if status == "appended":
                appended += n
        return appended

    def render(self) -> bytes:
        """The registry in the Prometheus text format."""
        return bytes(generate_latest(self.registry))


class ReadMetrics:
    """The gauges of the read side, in the registry of the ingest metrics."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "ledger_projection_lag",
            "Log entries not yet applied to the projection's view",
            ("projection",),
            registry=registry,
        )
        self.lag_seconds = Gauge(
            "ledger_projection_lag_seconds",
            "Age of the oldest log entry not yet applied to the projection's view (seconds)",
            ("projection",),
            registry=registry,
        )
        self.position = Gauge(
            "ledger_projection_position_seconds",
            "When the view's checkpoint was recorded (Unix seconds)",
            ("projection",),
            registry=registry,
        )
        self.dead_letters = Gauge(
            "ledger_dead_letters",
            "Entries in the projectors' dead-letter stream",
            registry=registry,
        )
        self.sse_clients = Gauge(
            "ledger_sse_clients",
            "Connected Server-Sent Events clients of /v1/live",
            registry=registry,
        )
