"""Ingest end to end, on the embedded bus and SQLite and on real Kafka and PostgreSQL: records land
on ds. exactly once as CloudEvents, rejected ones on dlq. with reasons, retries are idempotent, a
new contract version applies within a second, and raw.<dataset> gives the same result as HTTP."""

from __future__ import annotations

import csv
import gzip
import io
import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import yaml

from services.common.bus import Message, OutgoingRecord
from services.common.envelope import CloudEvent
from services.common.worker import wait_until
from services.ingest.raw import RawIngestSupervisor
from services.ingest.runtime import IngestRuntime
from tests.factories import bus_arrival_record, ingest_contract
from tests.support.services import IngestPlatform, PublishedDataset

RECORD_FIELDS = ["arrival_id", "stop_id", "route_id", "vehicle_id", "arrived_at", "delay_s", "occupancy"]


def _events(messages: list[Message]) -> dict[str, CloudEvent]:
    return {event.id: event for event in map(CloudEvent.from_message, messages)}


def test_records_land_on_ds_exactly_once_as_cloudevents_and_rejects_on_dlq(platform: IngestPlatform) -> None:
    dataset = platform.dataset()
    good = [bus_arrival_record(), bus_arrival_record(delay_s=None), bus_arrival_record(occupancy="FULL")]
    late, unnamed = bus_arrival_record(delay_s="late"), bus_arrival_record()
    del unnamed["stop_id"]
    response = platform.post(dataset.id, dataset.key, [good[0], late, good[1], unnamed, good[2]])
    assert response.status_code == 202, response.text
    answer = response.json()
    assert (answer["accepted"], answer["rejected"], answer["duplicates"]) == (3, 2, 0)
    assert answer["contract_version"] == "1.0.0"
    assert answer["errors"] == [
        {
            "index": 1,
            "path": "/delay_s",
            "rule": "type",
            "message": "delay_s must be integer or null, not string",
        },
        {"index": 3, "path": "/stop_id", "rule": "required", "message": "stop_id is required"},
    ]

    records = platform.read(f"ds.{dataset.id}", 3)
    assert len(records) == 3, "each accepted record is on ds. exactly once"
    events = _events(records)
    assert list(events) == answer["event_ids"] or set(events) == set(answer["event_ids"])
    by_key = {message.key: message for message in records}
    for record in good:
        message = by_key[record["arrival_id"].encode()]
        event = CloudEvent.from_message(message)
        assert event.data == record
        assert event.type == "city.citybase.record.v1"
        assert event.source == f"/ingest/datasets/{dataset.id}"
        assert event.subject == record["arrival_id"]
        assert event.dataschema == f"/catalog/v1/datasets/{dataset.id}/contract-versions/1.0.0"
        assert event.extensions == {"dataset": dataset.id, "contractversion": "1.0.0"}

    dead = platform.read(f"dlq.{dataset.id}", 2)
    assert len(dead) == 2
    reasons = {message.header("dlq_index"): message for message in dead}
    assert reasons[b"1"].value == json.dumps(late, ensure_ascii=False).encode(), "the original bytes"
    assert reasons[b"1"].header("dlq_reason") == b"type"
    assert reasons[b"1"].header("dlq_path") == b"/delay_s"
    assert reasons[b"1"].header("dlq_contract_version") == b"1.0.0"
    assert reasons[b"1"].header("ce_dataset") == dataset.id.encode()
    assert reasons[b"1"].header("dlq_publisher") == f"{dataset.department_id}-publisher".encode()
    assert reasons[b"1"].key == late["arrival_id"].encode()
    assert reasons[b"3"].header("dlq_reason") == b"required"
    assert reasons[b"3"].header("dlq_message") == b"stop_id is required"

    metrics = platform.client.get("/metrics").text
    assert f'citybase_ingest_records_total{{dataset="{dataset.id}",outcome="accepted"}} 3.0' in metrics
    assert f'citybase_ingest_rejections_total{{dataset="{dataset.id}",rule="required"}} 1.0' in metrics
    assert "citybase_ingest_buffer_fill_ratio" in metrics
    assert wait_until(lambda: platform.client.get("/readyz").status_code == 200, 30, 0.1)


def test_a_retried_batch_is_published_once(platform: IngestPlatform) -> None:
    dataset = platform.dataset()
    batch = [bus_arrival_record() for _ in range(5)]
    headers = {"Idempotency-Key": "avl-batch-2026-11-24T08:15"}
    first = platform.post(dataset.id, dataset.key, batch, headers=headers)
    again = platform.post(dataset.id, dataset.key, batch, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert again.headers["idempotent-replayed"] == "true"
    assert "idempotent-replayed" not in first.headers

    reused = platform.post(dataset.id, dataset.key, batch[:4], headers=headers)
    assert reused.status_code == 422
    assert reused.headers["content-type"] == "application/problem+json"
    assert reused.json()["type"].endswith("/idempotency-key-reused")

    records = platform.read(f"ds.{dataset.id}", 5, settle_s=1.0)
    assert sorted(CloudEvent.from_message(m).id for m in records) == sorted(first.json()["event_ids"])


def test_a_new_contract_version_applies_within_a_second_without_restart(platform: IngestPlatform) -> None:
    dataset = platform.dataset()
    night_bus = bus_arrival_record(direction=1, delay_s=9000, occupancy="NOT_ACCEPTING_PASSENGERS")
    before = platform.post(dataset.id, dataset.key, [night_bus]).json()
    assert before["rejected"] == 1

    platform.register_version(dataset, "1.1.0")
    registered = time.monotonic()
    assert wait_until(lambda: _current(platform, dataset) == "1.1.0", timeout_s=5, interval_s=0.005)
    elapsed = time.monotonic() - registered
    assert elapsed < 1.0, f"1.1.0 took {elapsed:.2f}s to reach ingest"

    after = platform.post(dataset.id, dataset.key, [night_bus, bus_arrival_record(_contract_version="1.0.0")])
    assert after.status_code == 202
    answer = after.json()
    assert (answer["accepted"], answer["rejected"], answer["contract_version"]) == (1, 1, "1.1.0")
    assert answer["errors"][0]["rule"] == "contractVersion"
    assert "only records of the current version are accepted" in answer["errors"][0]["message"]

    stale = platform.post(
        dataset.id, dataset.key, [bus_arrival_record()], headers={"CityBase-Contract-Version": "1.0.0"}
    )
    assert stale.status_code == 409
    assert stale.json()["type"].endswith("/contract-version-mismatch")
    assert stale.json()["current_version"] == "1.1.0"

    (message,) = platform.read(f"ds.{dataset.id}", 1)
    assert CloudEvent.from_message(message).dataschema.endswith("/contract-versions/1.1.0")
    assert CloudEvent.from_message(message).extensions["contractversion"] == "1.1.0"


def _current(platform: IngestPlatform, dataset: PublishedDataset) -> str | None:
    state = platform.projection.dataset(dataset.id)
    return state.current_version if state else None


def test_the_raw_topic_gives_the_same_result_as_http(platform: IngestPlatform) -> None:
    over_http, over_kafka = platform.dataset("http"), platform.dataset("raw")
    records: list[Any] = [
        bus_arrival_record(),
        bus_arrival_record(delay_s=-7200),
        bus_arrival_record(),
        {"x": 1},
    ]
    answer = platform.post(over_http.id, over_http.key, records).json()
    assert (answer["accepted"], answer["rejected"]) == (2, 2)

    supervisor: RawIngestSupervisor = platform.runtime.service_as(IngestRuntime).raw
    raw_topic = f"raw.{over_kafka.id}"
    assert wait_until(lambda: raw_topic in supervisor.topics, timeout_s=10), (
        "the raw topic was not subscribed"
    )
    platform.bus.producer().publish(
        [
            OutgoingRecord(raw_topic, json.dumps(record, ensure_ascii=False).encode(), key=b"avl-7")
            for record in records
        ]
        + [OutgoingRecord(raw_topic, b"\x00 not json", key=b"avl-7")]
    )

    http_ds, raw_ds = (
        platform.read(f"ds.{over_http.id}", 2),
        platform.read(f"ds.{over_kafka.id}", 2, timeout_s=30),
    )
    # At-least-once: a rebalance of the raw worker may publish a record again, always under the
    # same event id (derived from its raw topic, partition and offset), so consumers drop it.
    raw_events = {event.id: event for event in map(CloudEvent.from_message, raw_ds)}
    assert len(raw_events) == 2
    assert sorted(json.dumps(event.data) for event in raw_events.values()) == sorted(
        json.dumps(CloudEvent.from_message(m).data) for m in http_ds
    )
    assert {m.key for m in raw_ds} == {records[0]["arrival_id"].encode(), records[2]["arrival_id"].encode()}

    http_dlq, raw_dlq = platform.read(f"dlq.{over_http.id}", 2), platform.read(f"dlq.{over_kafka.id}", 3)
    unparsable = [m for m in raw_dlq if m.header("dlq_reason") == b"parse"]
    # a redelivered dead letter repeats the same record, reason and event id: compare distinct ones
    assert sorted(set(_reasons([m for m in raw_dlq if m not in unparsable]))) == _reasons(http_dlq)
    assert {m.value for m in unparsable} == {b"\x00 not json"}
    assert (unparsable[0].header("dlq_source") or b"").startswith(raw_topic.encode() + b"/")
    group = platform.runtime.service_as(IngestRuntime).ingestor.settings.raw_group_id
    assert wait_until(lambda: sum(platform.bus.admin().lag(group, raw_topic).values()) == 0, timeout_s=10), (
        "the raw offsets are committed once the results are acknowledged"
    )


def _reasons(dead_letters: list[Message]) -> list[tuple[bytes | None, ...]]:
    return sorted((m.value, m.header("dlq_reason"), m.header("dlq_path"), m.key) for m in dead_letters)


@pytest.mark.parametrize("platform", ["embedded"], indirect=True)
def test_ndjson_and_gzipped_csv_publish_the_same_records_as_json(platform: IngestPlatform) -> None:
    dataset = platform.dataset()
    records = [bus_arrival_record(), bus_arrival_record(delay_s=None, occupancy=None)]
    ndjson = "\n".join(json.dumps(record, ensure_ascii=False) for record in records) + "\n"
    table = io.StringIO()
    writer = csv.DictWriter(table, RECORD_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: "" if value is None else value for name, value in r.items()} for r in records)
    for body, content_type, headers in (
        (ndjson, "application/x-ndjson", {}),
        (gzip.compress(table.getvalue().encode()), "text/csv; charset=utf-8", {"Content-Encoding": "gzip"}),
    ):
        response = platform.post(dataset.id, dataset.key, body, content_type=content_type, headers=headers)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == 2
    published = [CloudEvent.from_message(m).data for m in platform.read(f"ds.{dataset.id}", 4)]
    assert sorted(map(json.dumps, published)) == sorted(map(json.dumps, records + records))


def test_a_contract_without_a_schema_keeps_the_stream_closed_until_one_with_the_event_time_opens_it(
    platform: IngestPlatform,
) -> None:
    """Issue 18: a schema-less contract (roles, SLA only) registers, ingest answers 409; the next
    version has a schema and names arrived_at as the event time, which becomes ce_time."""
    suffix = uuid.uuid4().hex[:10]
    department_id, dataset_id = f"dept-{suffix}", f"transport.plans-{suffix}"
    key = platform.publisher_key(department_id)
    full = yaml.safe_load(ingest_contract(dataset_id, department_id))
    schemaless = {name: value for name, value in full.items() if name != "schema"}
    registered = platform.catalog.call(
        "POST",
        "/v1/contracts",
        key,
        content=yaml.safe_dump(schemaless),
        headers={"Content-Type": "application/yaml"},
    )
    assert registered.status_code == 201, registered.text
    platform.datasets.append(dataset_id)
    platform.wait_for_dataset(dataset_id, "1.0.0")
    closed = platform.post(dataset_id, key, [bus_arrival_record()])
    assert closed.status_code == 409, closed.text
    assert closed.json()["type"].endswith("/stream-closed")
    assert "has no schema" in closed.json()["detail"]

    full["version"] = "1.1.0"
    for prop in full["schema"][0]["properties"]:
        if prop["name"] == "arrived_at":
            prop.setdefault("customProperties", []).append({"property": "citybase.eventTime", "value": True})
    opened = platform.catalog.call(
        "POST",
        f"/v1/datasets/{dataset_id}/contract-versions",
        key,
        content=yaml.safe_dump(full),
        headers={"Content-Type": "application/yaml"},
    )
    assert opened.status_code == 201, opened.text
    platform.wait_for_dataset(dataset_id, "1.1.0")
    accepted = platform.post(dataset_id, key, [bus_arrival_record(arrived_at="2026-11-24T08:15:30+08:00")])
    assert accepted.status_code == 202 and accepted.json()["accepted"] == 1, accepted.text
    (message,) = platform.read(f"ds.{dataset_id}", 1)
    assert CloudEvent.from_message(message).time == datetime(2026, 11, 24, 0, 15, 30, tzinfo=UTC)
