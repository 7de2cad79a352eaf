"""When a batch counts as accepted: every record acknowledged; idempotent retries; a failing bus
answers 503/429 and claims nothing."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.auth import Principal
from services.ingest import idempotency
from services.ingest.exceptions import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    PublisherBusy,
    PublishFailed,
)
from services.ingest.models import IdempotencyKey
from services.ingest.service import BatchAnswer
from tests.factories import bus_arrival_record
from tests.support.ingest_units import ADMIN, DATASET, PUBLISHER, IngestorKit, sample_value


def _publish(
    kit: IngestorKit, records: list[Any], *, key: str | None = None, principal: Principal = PUBLISHER
) -> BatchAnswer:
    body = json.dumps(records).encode()
    batch = kit.ingestor.open_batch(
        dataset_id=DATASET,
        principal=principal,
        content_type="application/json",
        content_encoding=None,
        contract_version=None,
        idempotency_key=key,
    )
    return asyncio.run(
        kit.ingestor.publish(batch=batch, body=body, body_sha256=hashlib.sha256(body).hexdigest())
    )


def _ce_ids(kit: IngestorKit) -> list[str]:
    return [
        dict(record.headers)["ce_id"].decode()
        for record in kit.producer.sent
        if record.topic.startswith("ds.")
    ]


def _stored_keys(kit: IngestorKit) -> list[IdempotencyKey]:
    with kit.ingestor._sessions() as session:
        return list(session.query(IdempotencyKey))


def test_a_batch_is_answered_once_every_record_is_acknowledged(kit: IngestorKit) -> None:
    answer = _publish(kit, [bus_arrival_record(), bus_arrival_record(delay_s="x"), bus_arrival_record()])
    assert answer.status == 202
    assert (answer.body["accepted"], answer.body["rejected"]) == (2, 1)
    assert answer.body["event_ids"] == _ce_ids(kit)
    assert len(kit.producer.sent) == 3
    assert sample_value(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 2
    assert sample_value(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="rejected") == 1
    assert sample_value(kit, "citybase_ingest_rejections_total", dataset=DATASET, rule="type") == 1
    assert sample_value(kit, "citybase_ingest_batch_duration_seconds_count", source="http") == 1


def test_a_retry_with_the_same_key_replays_the_answer_and_publishes_nothing(kit: IngestorKit) -> None:
    records = [bus_arrival_record(), bus_arrival_record()]
    first = _publish(kit, records, key="batch-0001")
    again = _publish(kit, records, key="batch-0001")
    assert again.replayed and not first.replayed
    assert (again.status, again.body) == (first.status, first.body)
    assert len(kit.producer.sent) == 2
    with pytest.raises(IdempotencyKeyReused) as raised:
        _publish(kit, [*records, bus_arrival_record()], key="batch-0001")
    assert raised.value.status == 422
    other = _publish(kit, records, key="batch-0001", principal=ADMIN)
    assert not other.replayed, "keys are per principal"
    assert len(kit.producer.sent) == 4


def test_a_key_whose_first_request_still_runs_is_a_409_until_it_goes_stale(kit: IngestorKit) -> None:
    records = [bus_arrival_record()]
    body = json.dumps(records).encode()
    fingerprint = idempotency.fingerprint(DATASET, "json", None, hashlib.sha256(body).hexdigest())
    long_ago = datetime.now(UTC) - timedelta(hours=1)
    for moment, expected in ((datetime.now(UTC), IdempotencyKeyInProgress), (long_ago, None)):
        with kit.ingestor._sessions() as session:
            session.query(IdempotencyKey).delete()
            session.commit()
        idempotency.claim(
            kit.ingestor._sessions,
            principal_id=PUBLISHER.id,
            key="slow",
            dataset_id=DATASET,
            request_fingerprint=fingerprint,
            now=moment,
            stale_after_s=120,
        )
        if expected is None:
            assert _publish(kit, records, key="slow").status == 202, "a stale claim is taken over"
        else:
            with pytest.raises(expected) as raised:
                _publish(kit, records, key="slow")
            assert raised.value.status == 409
            assert raised.value.headers == {"Retry-After": "1"}


def test_when_the_bus_fails_midway_nothing_is_claimed_and_a_retry_reuses_the_event_ids(
    kit: IngestorKit,
) -> None:
    records = [bus_arrival_record() for _ in range(4)]
    kit.producer.ack_first = 2
    with pytest.raises(PublishFailed) as raised:
        _publish(kit, records, key="retry-me")
    assert raised.value.status == 503
    assert raised.value.headers == {"Retry-After": "5"}
    assert "nothing of this batch is accepted" in (raised.value.detail or "")
    assert _stored_keys(kit) == [], "a failed batch stores no answer and frees its key"
    assert sample_value(kit, "citybase_ingest_producer_errors_total", kind="unavailable") == 1
    assert sample_value(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 0
    failed_ids = _ce_ids(kit)

    kit.producer.ack_first = None
    kit.producer.sent.clear()
    answer = _publish(kit, records, key="retry-me")
    assert answer.status == 202
    assert answer.body["event_ids"] == failed_ids, "the retry republishes under the same ce_ids"


def test_a_full_buffer_is_a_429_that_claims_nothing(kit: IngestorKit) -> None:
    kit.producer.buffer_full_after = 1
    with pytest.raises(PublisherBusy) as raised:
        _publish(kit, [bus_arrival_record(), bus_arrival_record()], key="busy")
    assert (raised.value.status, raised.value.headers) == (429, {"Retry-After": "1"})
    assert _stored_keys(kit) == []
    kit.producer.buffer_full_after = None
    kit.producer.sent.clear()
    kit.producer.fill = 0.95
    with pytest.raises(PublisherBusy):
        _publish(kit, [bus_arrival_record()])
    assert kit.producer.sent == [], "above the high watermark nothing is sent at all"
    assert sample_value(kit, "citybase_ingest_producer_errors_total", kind="buffer_full") == 2
    kit.metrics.watch_buffer(kit.producer.buffer_fill)
    assert sample_value(kit, "citybase_ingest_buffer_fill_ratio") == 0.95


def test_records_never_acknowledged_time_out_as_a_503(kit: IngestorKit) -> None:
    kit.producer.hang = True
    with pytest.raises(PublishFailed):
        _publish(kit, [bus_arrival_record()], key="hang")
    assert _stored_keys(kit) == []


def test_idempotency_keys_are_kept_a_day_then_purged(kit: IngestorKit) -> None:
    _publish(kit, [bus_arrival_record()], key="old")
    assert kit.ingestor.purge_idempotency_keys() == 0
    assert kit.ingestor.purge_idempotency_keys(datetime.now(UTC) + timedelta(hours=23)) == 0
    assert kit.ingestor.purge_idempotency_keys(datetime.now(UTC) + timedelta(hours=25)) == 1
    assert _stored_keys(kit) == []
