"""Keys, event ids and envelopes: the Kafka key is the primary key, an accepted record is a
binary-mode CloudEvent any SDK reads, derived event ids are stable."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat

from services.common.bus import Message
from services.common.envelope import CloudEvent
from services.ingest.envelopes import (
    RecordEnvelopes,
    batch_event_ids,
    derived_event_id,
    random_event_id,
    raw_event_id,
    record_envelope,
    record_key,
)
from tests.factories import bus_arrival_record
from tests.support.ingest_units import (
    DATASET,
    as_message,
)


@pytest.mark.parametrize(
    ("record", "primary_key", "key"),
    [
        ({"id": "a-1", "x": 1}, ["id"], "a-1"),
        ({"id": 42}, ["id"], "42"),
        ({"stop": "S1", "route": "71"}, ["stop", "route"], "S1/71"),
        ({"stop": "a/b", "route": "50%"}, ["stop", "route"], "a%2Fb/50%25"),
        ({"stop": "S1"}, ["stop", "route"], None),
        ({"id": None}, ["id"], None),
        ({"id": {"nested": 1}}, ["id"], None),
        ({"id": "a"}, [], None),
        ([1, 2], ["id"], None),
    ],
)
def test_the_kafka_key_is_the_primary_key(record: Any, primary_key: list[str], key: str | None) -> None:
    assert record_key(record, primary_key) == key


def test_composite_keys_of_different_values_never_collide() -> None:
    assert record_key({"a": "x/y", "b": "z"}, ["a", "b"]) != record_key({"a": "x", "b": "y/z"}, ["a", "b"])


def test_an_accepted_record_is_a_binary_mode_cloudevent_any_sdk_reads() -> None:
    data = bus_arrival_record()
    value = json.dumps(data, ensure_ascii=False).encode()
    record = record_envelope(
        dataset_id=DATASET,
        contract_version="1.0.0",
        event_id="evt-1",
        key=data["arrival_id"],
        value=value,
        time=CloudEvent(type="t", source="s", data=None).time,
    )
    headers = dict(record.headers)
    assert record.topic == f"ds.{DATASET}"
    assert record.key == data["arrival_id"].encode()
    assert record.value == value
    assert headers["ce_id"] == b"evt-1"
    assert headers["ce_type"] == b"city.citybase.record.v1"
    assert headers["ce_source"] == f"/ingest/datasets/{DATASET}".encode()
    assert headers["ce_subject"] == data["arrival_id"].encode()
    assert headers["ce_dataschema"] == f"/catalog/v1/datasets/{DATASET}/contract-versions/1.0.0".encode()
    assert headers["ce_dataset"] == DATASET.encode()
    assert headers["ce_contractversion"] == b"1.0.0"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    sdk = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value or b""), JSONFormat()
    )
    assert sdk.get_id() == "evt-1"
    assert sdk.get_data() == data
    assert sdk.get_extension("contractversion") == "1.0.0"


def test_event_ids_are_the_uuids_the_standard_library_makes() -> None:
    name = "http\x1fp\x1ftransport.x\x1fkey\x1f7 — 中文"
    assert derived_event_id(name) == str(uuid.uuid5(uuid.UUID("8f1d3c52-7c0e-5b7a-9d1e-2f6a4b8c0e13"), name))
    for _ in range(100):
        text = random_event_id()
        assert str(uuid.UUID(text)) == text
        assert uuid.UUID(text).version == 4
        assert uuid.UUID(text).variant == uuid.RFC_4122


def test_a_record_without_a_key_has_no_subject() -> None:
    record = RecordEnvelopes(DATASET, "1.0.0", CloudEvent(type="t", source="s", data=None).time).record(
        "e", None, b"{}"
    )
    assert record.key is None
    assert "ce_subject" not in dict(record.headers)
    assert CloudEvent.from_message(as_message(record)).subject is None


def test_derived_event_ids_are_stable_per_key_and_index() -> None:
    first = batch_event_ids("p", DATASET, "key-1")
    again = batch_event_ids("p", DATASET, "key-1")
    assert [first(i) for i in range(3)] == [again(i) for i in range(3)]
    assert (
        len(
            {
                first(0),
                first(1),
                batch_event_ids("p", DATASET, "key-2")(0),
                batch_event_ids("q", DATASET, "key-1")(0),
            }
        )
        == 4
    )
    random_ids = batch_event_ids("p", DATASET, None)
    assert random_ids(0) != random_ids(0)
    message = Message("raw.x", 1, 7, None, b"{}", (), 0)
    assert (
        raw_event_id(message)
        == raw_event_id(message)
        != raw_event_id(Message("raw.x", 1, 8, None, b"{}", (), 0))
    )
