"""Prometheus metrics of quality, in the service's own registry.

Labels stay bounded: ``dataset`` is only ever a dataset the catalog announced or quality scored,
``dimension`` one of the five dimensions or ``overall``, ``kind`` a breach kind; ``department`` and
``domain`` (on ``citybase_dataset_info`` only) are the catalog's, one value per dataset.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from prometheus_client import Counter, Gauge, Histogram, Info

from services.common.metrics import ServiceMetrics
from services.quality.projection import QualityCatalog
from services.quality.settings import DIMENSIONS, QualitySettings
from services.quality.windows import WindowScore

WINDOW_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class QualityMetrics:
    def __init__(self, metrics: ServiceMetrics) -> None:
        registry = metrics.registry
        self.score = Gauge(
            "citybase_dataset_quality_score",
            "Current quality score of a dataset (0-100) by dimension, and overall: its latest closed "
            "window's, as the quality endpoint, the rankings and the catalog show it.",
            ["dataset", "dimension"],
            registry=registry,
        )
        self.freshness = Gauge(
            "citybase_dataset_freshness_seconds",
            "Time since the newest event of the dataset quality has seen.",
            ["dataset"],
            registry=registry,
        )
        self.threshold = Gauge(
            "citybase_dataset_quality_threshold",
            "Overall score (0-100) under which the dataset's quality alerts (SCORE_THRESHOLD(S)).",
            ["dataset"],
            registry=registry,
        )
        self.freshness_target = Gauge(
            "citybase_dataset_freshness_target_seconds",
            "Freshness the dataset is held to: its contract's SLA frequency, else the default.",
            ["dataset"],
            registry=registry,
        )
        self.dataset_info = Info(
            "citybase_dataset",
            "Always 1: the dataset's owning department and domain, to join per-dataset series on.",
            ["dataset"],
            registry=registry,
        )
        self._described: set[str] = set()
        self._describing = threading.Lock()
        self.window_duration = Histogram(
            "citybase_quality_window_processing_seconds",
            "Time to score and store one window.",
            buckets=WINDOW_BUCKETS,
            registry=registry,
        )
        self.window_records = Counter(
            "citybase_quality_records",
            "Records scored, by dataset and outcome at ingest (accepted, rejected).",
            ["dataset", "outcome"],
            registry=registry,
        )
        self.windows = Counter(
            "citybase_quality_windows",
            "Windows scored and stored, by dataset.",
            ["dataset"],
            registry=registry,
        )
        self.problems = Counter(
            "citybase_quality_window_problems",
            "Windows scored with at least one problem (a dimension not measurable, a rule that failed).",
            ["dataset"],
            registry=registry,
        )
        self.breaches = Counter(
            "citybase_quality_sla_breaches",
            "SLA breaches opened, by dataset and kind (freshness, latency).",
            ["dataset", "kind"],
            registry=registry,
        )
        self.consumer_lag = Gauge(
            "citybase_quality_consumer_lag_records",
            "Records of ds./dlq. not yet committed by quality's consumer group, by dataset.",
            ["dataset"],
            registry=registry,
        )
        self.assigned_partitions = Gauge(
            "citybase_quality_assigned_partitions",
            "ds./dlq. partitions the group has given this replica, by dataset (a dataset is held "
            "whole by one replica).",
            ["dataset"],
            registry=registry,
        )
        self.utilization = Gauge(
            "citybase_dataset_utilization_score",
            "Utilization score of a dataset (0-100).",
            ["dataset"],
            registry=registry,
        )
        self.active_grants = Gauge(
            "citybase_dataset_active_grants", "Active grants on a dataset.", ["dataset"], registry=registry
        )
        self.active_subscribers = Gauge(
            "citybase_dataset_active_subscribers",
            "Subscriptions that received records of the dataset in the active period and may still "
            "deliver (their scenario holds an active grant for the dataset).",
            ["dataset"],
            registry=registry,
        )
        self.delivered_records = Gauge(
            "citybase_dataset_delivered_records_per_day",
            "Records of the dataset delivered to scenarios over the last day.",
            ["dataset"],
            registry=registry,
        )
        self.penetration = Gauge(
            "citybase_utilization_penetration_ratio",
            "Active datasets used by at least one scenario in the active period, over active datasets.",
            registry=registry,
        )
        self.indicator = Gauge(
            "citybase_indicator",
            "The city's indicators over the current calendar month, city-wide (penetration, quality "
            "of the data used, value conversion), as GET /quality/v1/indicators computes them; no "
            "sample while an indicator has nothing to divide by.",
            ["indicator"],
            registry=registry,
        )
        self.idle = Gauge(
            "citybase_utilization_idle",
            "Showcase-only findings by kind (idle scenarios, never-delivered datasets, unused grants).",
            ["kind"],
            registry=registry,
        )

    @classmethod
    def of(cls, metrics: ServiceMetrics) -> QualityMetrics:
        return metrics.family(cls)

    def observe_window(self, score: WindowScore, seconds: float) -> None:
        dataset = score.dataset_id
        self.window_duration.observe(seconds)
        self.windows.labels(dataset).inc()
        if score.accepted:
            self.window_records.labels(dataset, "accepted").inc(score.accepted)
        if score.rejected:
            self.window_records.labels(dataset, "rejected").inc(score.rejected)
        if score.problems:
            self.problems.labels(dataset).inc()
        if score.freshness_s is not None:
            self.freshness.labels(dataset).set(score.freshness_s)

    def show_current(self, current: Mapping[str, Mapping[str, float | None]]) -> None:
        """Set the score gauges to each dataset's current score
        (:func:`services.quality.store.current_windows`); a dimension not measurable now has no
        sample rather than an older value."""
        for dataset, scores in current.items():
            for dimension in (*DIMENSIONS, "overall"):
                value = scores.get(dimension)
                if value is not None:
                    self.score.labels(dataset, dimension).set(value)
                else:
                    with contextlib.suppress(KeyError):
                        self.score.remove(dataset, dimension)

    def show_indicators(self, figures: Sequence[Mapping[str, Any]]) -> None:
        """Set ``citybase_indicator`` to each figure of
        :func:`services.quality.indicators.current_city_indicators`."""
        for figure in figures:
            value = figure.get("value")
            if value is not None:
                self.indicator.labels(figure["name"]).set(value)
            else:
                with contextlib.suppress(KeyError):
                    self.indicator.remove(figure["name"])

    def describe_datasets(self, catalog: QualityCatalog, settings: QualitySettings) -> None:
        """Set what alerts and dashboards hold each scored dataset against: its threshold, its
        freshness target (as :func:`services.quality.store.check_freshness` judges it) and its
        department and domain; a dataset no longer scored here loses these series."""
        with self._describing:
            self._describe(catalog, settings)

    def _describe(self, catalog: QualityCatalog, settings: QualitySettings) -> None:
        described: set[str] = set()
        for dataset in catalog.datasets():
            if not dataset.scored or not settings.follows(dataset.id):
                continue
            described.add(dataset.id)
            contract = catalog.current_contract(dataset.id)
            frequency = contract.frequency_s if contract is not None else None
            self.threshold.labels(dataset.id).set(settings.threshold_of(dataset.id))
            self.freshness_target.labels(dataset.id).set(frequency or settings.default_frequency_s)
            self.dataset_info.labels(dataset.id).info(
                {"department": dataset.owner_department_id, "domain": dataset.domain_id}
            )
        for gone in self._described - described:
            for family in (self.threshold, self.freshness_target, self.dataset_info):
                family.remove(gone)
        self._described = described
