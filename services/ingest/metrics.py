"""Prometheus metrics of ingest, in the service's own registry.

Labels stay bounded: a ``dataset`` label is only ever set from a dataset the catalog announced
(never from a URL a client made up), and ``rule`` is a JSON Schema keyword or one of ingest's own
rule names.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS, ServiceMetrics


class IngestMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.records = Counter(
            "citybase_ingest_records",
            "Records handled, by dataset and outcome (accepted, rejected, duplicate).",
            ["dataset", "outcome"],
            registry=registry,
        )
        self.rejections = Counter(
            "citybase_ingest_rejections",
            "Rejected records by dataset and the first rule they broke.",
            ["dataset", "rule"],
            registry=registry,
        )
        self.batch_duration = Histogram(
            "citybase_ingest_batch_duration_seconds",
            "Time from a batch's body being read to its records being acknowledged, by source.",
            ["source"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.producer_errors = Counter(
            "citybase_ingest_producer_errors",
            "Batches the bus refused or did not acknowledge, by kind (unavailable, buffer_full).",
            ["kind"],
            registry=registry,
        )
        self.buffer_fill = Gauge(
            "citybase_ingest_buffer_fill_ratio",
            "Share of the producer's send buffer in use (0 to 1).",
            registry=registry,
        )
        self._buffer_source: Callable[[], float] = lambda: 0.0
        self.buffer_fill.set_function(lambda: self._buffer_source())

    @classmethod
    def of(cls, metrics: ServiceMetrics) -> IngestMetrics:
        """The ingest metrics of this service registry (created once, even if the app restarts)."""
        return metrics.family(cls)

    def watch_buffer(self, source: Callable[[], float]) -> None:
        self._buffer_source = source

    def count(
        self,
        dataset: str,
        *,
        accepted: int,
        rejected: int,
        duplicates: int,
        rules: Mapping[str, int],
    ) -> None:
        for outcome, number in (("accepted", accepted), ("rejected", rejected), ("duplicate", duplicates)):
            if number:
                self.records.labels(dataset, outcome).inc(number)
        for rule, number in rules.items():
            self.rejections.labels(dataset, rule).inc(number)
