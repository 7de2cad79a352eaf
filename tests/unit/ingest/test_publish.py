"""When a batch counts as accepted: every record acknowledged; idempotent retries; a failing bus
answers 503/429 and claims nothing; the raw handler waits for its acks before a commit."""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.common.auth import Principal
from services.common.bus import Message
from services.common.worker import RetryableError
from services.ingest import idempotency
from services.ingest.exceptions import (
    IdempotencyKeyInProgress,
    IdempotencyKeyReused,
    PublisherBusy,
    PublishFailed,
)
from services.ingest.models import IdempotencyKey
from services.ingest.raw import RawRecordHandler
from services.ingest.service import BatchAnswer
from tests.factories import bus_arrival_record
from tests.unit.ingest.conftest import ADMIN, DATASET, PUBLISHER, IngestorKit


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


def _sample(kit: IngestorKit, name: str, **labels: str) -> float:
    return kit.registry.get_sample_value(name, labels) or 0.0


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
    assert _sample(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 2
    assert _sample(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="rejected") == 1
    assert _sample(kit, "citybase_ingest_rejections_total", dataset=DATASET, rule="type") == 1
    assert _sample(kit, "citybase_ingest_batch_duration_seconds_count", source="http") == 1


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
    assert _sample(kit, "citybase_ingest_producer_errors_total", kind="unavailable") == 1
    assert _sample(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 0
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
    assert _sample(kit, "citybase_ingest_producer_errors_total", kind="buffer_full") == 2
    kit.metrics.watch_buffer(kit.producer.buffer_fill)
    assert _sample(kit, "citybase_ingest_buffer_fill_ratio") == 0.95


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


# --- the raw handler ----------------------------------------------------------------------------


def _raw(value: bytes | None, offset: int = 0, headers: tuple[tuple[str, bytes], ...] = ()) -> Message:
    return Message(f"raw.{DATASET}", 1, offset, b"k", value, headers, 0)


def test_the_raw_handler_routes_like_http_and_dead_letters_what_is_not_json(kit: IngestorKit) -> None:
    handler = RawRecordHandler(kit.ingestor)
    record = bus_arrival_record()
    handler.handle(_raw(json.dumps(record).encode(), 0))
    handler.handle(_raw(b"{not json", 1))
    handler.handle(_raw(b"\xff\xfe", 2))
    handler.handle(
        _raw(json.dumps(bus_arrival_record()).encode(), 3, (("citybase-contract-version", b"1.1.0"),))
    )
    handler.flush()
    topics = [r.topic for r in kit.producer.sent]
    assert topics == [f"ds.{DATASET}", f"dlq.{DATASET}", f"dlq.{DATASET}", f"dlq.{DATASET}"]
    assert json.loads(kit.producer.sent[0].value or b"") == record
    parse = dict(kit.producer.sent[1].headers)
    assert parse["dlq_reason"] == b"parse"
    assert parse["dlq_source"] == f"raw.{DATASET}/1/1".encode()
    assert parse["dlq_publisher"] == b"kafka"
    assert kit.producer.sent[1].value == b"{not json"
    assert dict(kit.producer.sent[3].headers)["dlq_reason"] == b"contractVersion"
    assert _sample(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="rejected") == 3
    assert _sample(kit, "citybase_ingest_rejections_total", dataset=DATASET, rule="parse") == 2


def test_the_raw_handler_fails_the_poll_when_an_ack_fails(kit: IngestorKit) -> None:
    handler = RawRecordHandler(kit.ingestor)
    kit.producer.ack_first = 0
    handler.handle(_raw(json.dumps(bus_arrival_record()).encode()))
    with pytest.raises(Exception, match="broker gone"):
        handler.flush()
    assert _sample(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 0
    kit.producer.ack_first = None
    handler.flush()  # the failed futures were dropped with the poll: nothing left to wait for
    with pytest.raises(RetryableError):
        handler.handle(Message("raw.transport.unknown", 0, 0, None, b"{}", (), 0))
