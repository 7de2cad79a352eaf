"""When the bus does not acknowledge, ingest answers 503 with Retry-After and claims nothing; it
starts while Kafka is down and says it is not ready. The broken bus is a real Kafka client pointed
at a closed port, with short timeouts (the shared broker is never stopped)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.common import db
from services.common.app import Infrastructure
from services.common.bus.kafka import KafkaBus, KafkaTuning
from services.common.envelope import CloudEvent
from services.ingest.app import create_app as create_ingest
from services.ingest.runtime import IngestRuntime
from services.ingest.service import Ingestor
from services.ingest.settings import IngestSettings
from tests.factories import bus_arrival_record, embedded_settings
from tests.support.services import IngestPlatform

UNREACHABLE = ["127.0.0.1:1"]
SHORT = KafkaTuning(
    connect_timeout_ms=500, request_timeout_ms=500, max_block_ms=300, delivery_timeout_ms=1000, linger_ms=5
)


@pytest.fixture
def dead_kafka() -> Iterator[KafkaBus]:
    bus = KafkaBus(UNREACHABLE, "citybase-test-dead", tuning=SHORT)
    yield bus
    bus.close()


@pytest.mark.parametrize("platform", ["embedded"], indirect=True)
def test_a_batch_the_bus_does_not_acknowledge_is_a_503_that_claims_nothing(
    platform: IngestPlatform, dead_kafka: KafkaBus
) -> None:
    dataset = platform.dataset()
    ingestor: Ingestor = platform.runtime.service_as(IngestRuntime).ingestor
    batch = [bus_arrival_record() for _ in range(3)]
    headers = {"Idempotency-Key": "during-the-outage"}
    working = ingestor.producer
    ingestor.producer = dead_kafka.producer()
    try:
        started = time.monotonic()
        response = platform.post(dataset.id, dataset.key, batch, headers=headers)
        assert time.monotonic() - started < 5
    finally:
        ingestor.producer = working
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) > 0
    problem = response.json()
    assert problem["type"].endswith("/publish-failed")
    assert "nothing of this batch is accepted" in problem["detail"]
    assert "accepted" not in problem and "event_ids" not in problem
    assert (
        'citybase_ingest_producer_errors_total{kind="unavailable"} 1.0'
        in platform.client.get("/metrics").text
    )

    retried = platform.post(dataset.id, dataset.key, batch, headers=headers)
    assert retried.status_code == 202, "the failed attempt stored no answer under its key"
    assert "idempotent-replayed" not in retried.headers
    published = platform.read(f"ds.{dataset.id}", 3)
    assert sorted(CloudEvent.from_message(m).id for m in published) == sorted(retried.json()["event_ids"])


def test_ingest_starts_while_kafka_is_down_and_is_not_ready(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, readiness_timeout_s=0.5)
    infrastructure = Infrastructure(
        db.create_db_engine(settings.database_url), KafkaBus(UNREACHABLE, "citybase-test", tuning=SHORT)
    )
    app = create_ingest(settings, infrastructure=lambda: infrastructure, ingest_settings=IngestSettings())
    started = time.monotonic()
    try:
        with TestClient(app) as client:
            assert time.monotonic() - started < 5, "the app must not wait for Kafka to start"
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert ready.json()["checks"]["catalog"] != "ok"
            response = client.post(
                "/v1/datasets/transport.bus-arrivals/records",
                json=[bus_arrival_record()],
                headers={"Authorization": "Bearer cbk_00000000_x"},
            )
            assert response.status_code == 503
            assert response.headers["content-type"] == "application/problem+json"
            assert response.headers["retry-after"] == "1"
            assert response.json()["type"].endswith("/catalog-not-ready")
    finally:
        infrastructure.close()
