"""The envelope is CloudEvents 1.0 binary mode: the official SDK reads what citybase writes."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from cloudevents.v1 import kafka as ce_kafka_v1

from services.common.bus import Message
from services.common.envelope import CloudEvent, EnvelopeError
from tests.factories import bus_arrival_event


def _as_message(event: CloudEvent, key: bytes | None = b"k1") -> Message:
    record = event.to_record("ds.transport.bus-arrivals", key)
    return Message(record.topic, 0, 7, record.key, record.value, record.headers, record.timestamp_ms or 0)


def test_the_cloudevents_sdk_reads_a_citybase_record() -> None:
    event = bus_arrival_event()
    message = _as_message(event)
    sdk_event = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value or b""),
        JSONFormat(),
    )
    assert sdk_event.get_id() == event.id
    assert sdk_event.get_type() == event.type
    assert sdk_event.get_source() == event.source
    assert sdk_event.get_time() is not None
    assert abs((sdk_event.get_time() - event.time).total_seconds()) < 0.001
    assert sdk_event.get_data() == event.data
    assert sdk_event.get_subject() == event.subject
    assert sdk_event.get_dataschema() == event.dataschema
    assert sdk_event.get_extension("dataset") == "transport.bus-arrivals"
    assert sdk_event.get_extension("contractversion") == "1.0.0"


def test_the_v1_sdk_api_reads_it_too() -> None:
    event = bus_arrival_event()
    message = _as_message(event)
    sdk_event = ce_kafka_v1.from_binary(
        ce_kafka_v1.KafkaMessage(headers=dict(message.headers), key=message.key, value=message.value or b"")
    )
    assert sdk_event["id"] == event.id
    assert sdk_event["specversion"] == "1.0"
    assert sdk_event["datacontenttype"] == "application/json"
    assert sdk_event.data == event.data


def test_a_record_round_trips_through_the_envelope() -> None:
    event = bus_arrival_event()
    again = CloudEvent.from_message(_as_message(event))
    assert again.id == event.id
    assert again.data == event.data
    assert again.extensions == event.extensions
    assert abs((again.time - event.time).total_seconds()) < 0.001


def test_headers_are_the_binary_mode_names() -> None:
    names = {name for name, _ in bus_arrival_event().to_record("t").headers}
    assert {
        "ce_id",
        "ce_source",
        "ce_type",
        "ce_time",
        "ce_specversion",
        "ce_subject",
        "content-type",
        "ce_dataschema",
        "ce_dataset",
        "ce_contractversion",
    } <= names


def test_a_record_without_envelope_headers_is_refused() -> None:
    with pytest.raises(EnvelopeError, match="ce_id"):
        CloudEvent.from_message(Message("t", 0, 0, None, b"{}", (("ce_type", b"x"),), 0))


def test_non_json_data_is_refused() -> None:
    event = bus_arrival_event()
    record = event.to_record("t", value=b"{not json")
    with pytest.raises(EnvelopeError, match="not JSON"):
        CloudEvent.from_message(Message("t", 0, 0, None, record.value, record.headers, 0))
