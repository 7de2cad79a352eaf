"""What quality tells Prometheus about each dataset it scores: the threshold its score is held to,
its freshness target, and the department and domain dashboards group it by."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from services.common.bus import Message, OutgoingRecord
from services.common.metrics import ServiceMetrics
from services.quality.metrics import QualityMetrics
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings
from tests.factories import catalog_records, contract_state, dataset_event_state
from tests.support.deploy import parse_exposition

HOURLY = "health.hourly"
UNSET = "health.no-sla"


def apply(catalog: QualityCatalog, records: list[OutgoingRecord]) -> None:
    for offset, record in enumerate(records):
        catalog.apply(Message(record.topic, 0, offset, record.key, record.value, record.headers, 0))


def without_sla(document: dict[str, Any]) -> None:
    document.pop("slaProperties", None)


def samples(metrics: ServiceMetrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Label set -> value of every sample of ``name`` in the exposition."""
    text = metrics.exposition().body.decode()
    assert parse_exposition(text).types[name] == "gauge"
    found = {}
    for family in metrics.registry.collect():
        for sample in family.samples:
            if sample.name == name:
                found[tuple(sorted(sample.labels.items()))] = sample.value
    return found


@pytest.fixture
def catalog() -> QualityCatalog:
    catalog = QualityCatalog()
    apply(
        catalog,
        catalog_records(
            contracts=[contract_state(HOURLY), contract_state(UNSET, change=without_sla)],
            datasets=[
                dataset_event_state(HOURLY),
                dataset_event_state(UNSET, department_id="district-east"),
                dataset_event_state("health.draft", status="draft"),
            ],
        ),
    )
    return catalog


def test_each_scored_dataset_has_its_threshold_freshness_target_and_department(
    catalog: QualityCatalog,
) -> None:
    service = ServiceMetrics("quality")
    metrics = QualityMetrics.of(service)
    settings = QualitySettings(score_threshold=75, score_thresholds={HOURLY: 92.5}, default_frequency_s=1800)
    metrics.describe_datasets(catalog, settings)

    assert samples(service, "citybase_dataset_quality_threshold") == {
        (("dataset", HOURLY),): 92.5,
        (("dataset", UNSET),): 75.0,
    }
    # the example contract's SLA frequency is 15 minutes; without one, the default applies
    assert samples(service, "citybase_dataset_freshness_target_seconds") == {
        (("dataset", HOURLY),): 900.0,
        (("dataset", UNSET),): 1800.0,
    }
    assert samples(service, "citybase_dataset_info") == {
        (("dataset", HOURLY), ("department", "health-commission"), ("domain", "health")): 1.0,
        (("dataset", UNSET), ("department", "district-east"), ("domain", "health")): 1.0,
    }


def test_a_dataset_that_moves_or_stops_being_scored_leaves_no_stale_series(catalog: QualityCatalog) -> None:
    service = ServiceMetrics("quality")
    metrics = QualityMetrics.of(service)
    settings = QualitySettings()
    metrics.describe_datasets(catalog, settings)
    apply(
        catalog,
        catalog_records(
            datasets=[
                dataset_event_state(HOURLY, department_id="transport-bureau"),
                dataset_event_state(UNSET, status="retired"),
            ]
        ),
    )
    metrics.describe_datasets(catalog, settings)

    # one info series per dataset, or a department join would count the dataset twice
    assert samples(service, "citybase_dataset_info") == {
        (("dataset", HOURLY), ("department", "transport-bureau"), ("domain", "health")): 1.0,
    }
    assert samples(service, "citybase_dataset_quality_threshold") == {(("dataset", HOURLY),): 80.0}
    assert set(samples(service, "citybase_dataset_freshness_target_seconds")) == {(("dataset", HOURLY),)}


def test_a_shard_describes_only_the_datasets_it_scores(catalog: QualityCatalog) -> None:
    service = ServiceMetrics("quality")
    QualityMetrics.of(service).describe_datasets(catalog, QualitySettings(dataset_prefix="health.no-"))
    assert set(samples(service, "citybase_dataset_info")) == {
        (("dataset", UNSET), ("department", "district-east"), ("domain", "health"))
    }


@pytest.mark.parametrize("thresholds", [{"score_threshold": 101}, {"score_thresholds": {HOURLY: -1}}])
def test_a_threshold_is_a_score(thresholds: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        QualitySettings(**thresholds)
