"""Prometheus metrics of feeds, in the service's own registry.

Labels stay bounded: ``dataset`` is only ever a dataset the catalog announced, ``mode`` is poll,
sse, webhook or snapshot (an open-data download), ``reason`` one of the refusal reasons (revoked, suspended, expired, pending,
no_grant, quota, paused, invalid_terms). No subscription id is a label: lag is summed per dataset.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from services.common.metrics import LATENCY_BUCKETS, ServiceMetrics


class FeedsMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.records = Counter(
            "citybase_feeds_records_delivered",
            "Records delivered (after the grant's row filter), by dataset and mode.",
            ["dataset", "mode"],
            registry=registry,
        )
        self.bytes = Counter(
            "citybase_feeds_bytes_delivered",
            "Bytes of delivered records (their JSON), by dataset and mode.",
            ["dataset", "mode"],
            registry=registry,
        )
        self.latency = Histogram(
            "citybase_feeds_delivery_latency_seconds",
            "Time from a record's event time to its delivery, by mode.",
            ["mode"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.denied = Counter(
            "citybase_feeds_batches_denied",
            "Batches refused, by reason.",
            ["reason"],
            registry=registry,
        )
        self.webhook_failures = Counter(
            "citybase_feeds_webhook_failures",
            "Webhook deliveries that failed (an error status, a timeout, a refused connection), by dataset.",
            ["dataset"],
            registry=registry,
        )
        self.lag = Gauge(
            "citybase_feeds_lag_records",
            "Records not yet acknowledged, summed over the subscriptions of a dataset (each as "
            "GET /v1/subscriptions/{id} counts its lag), refreshed every CITYBASE_FEEDS_LAG_INTERVAL_S.",
            ["dataset"],
            registry=registry,
        )
        self.lag_datasets: set[str] = set()
        """The datasets the lag gauge has shown: one whose subscriptions are all gone drops to 0."""
        self.readers = Gauge(
            "citybase_feeds_open_readers",
            "Consumers open for delivery in this process, by mode.",
            ["mode"],
            registry=registry,
        )

    @classmethod
    def of(cls, metrics: ServiceMetrics) -> FeedsMetrics:
        return metrics.family(cls)
