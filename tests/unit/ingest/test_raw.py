"""The raw handler: records of raw.<dataset> are routed like HTTP ones, what is not JSON is
dead-lettered, and a failed acknowledgement fails the poll (its offsets are not committed)."""

from __future__ import annotations

import json

import pytest

from services.common import catalog_events
from services.common.bus import Message
from services.common.worker import RetryableError
from services.ingest.raw import RawRecordHandler
from tests.factories import bus_arrival_record
from tests.support.ingest_units import DATASET, IngestorKit, contract_event, dataset_event, load, sample_value


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
    assert sample_value(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="rejected") == 3
    assert sample_value(kit, "citybase_ingest_rejections_total", dataset=DATASET, rule="parse") == 2


def test_the_raw_handler_fails_the_poll_when_an_ack_fails(kit: IngestorKit) -> None:
    handler = RawRecordHandler(kit.ingestor)
    kit.producer.ack_first = 0
    handler.handle(_raw(json.dumps(bus_arrival_record()).encode()))
    with pytest.raises(Exception, match="broker gone"):
        handler.flush()
    assert sample_value(kit, "citybase_ingest_records_total", dataset=DATASET, outcome="accepted") == 0
    kit.producer.ack_first = None
    handler.flush()  # the failed futures were dropped with the poll: nothing left to wait for
    with pytest.raises(RetryableError):
        handler.handle(Message("raw.transport.unknown", 0, 0, None, b"{}", (), 0))


def test_raw_records_of_a_dataset_whose_contract_has_no_schema_are_dead_lettered(kit: IngestorKit) -> None:
    _, entity_id, payload = contract_event(version="1.1.0", sequence=2)
    payload.update(record_schema={}, primary_key=[], fingerprint="0" * 64)
    load(kit.ingestor.catalog, (catalog_events.CONTRACT_VERSION, entity_id, payload))
    load(kit.ingestor.catalog, dataset_event(current_version="1.1.0"))
    handler = RawRecordHandler(kit.ingestor)
    handler.handle(_raw(json.dumps(bus_arrival_record()).encode(), 0))
    handler.flush()
    [sent] = kit.producer.sent
    assert sent.topic == f"dlq.{DATASET}"
    assert dict(sent.headers)["dlq_reason"] == b"streamClosed"
