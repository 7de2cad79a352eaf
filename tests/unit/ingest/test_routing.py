"""Routing records: Kafka keys, envelopes, dead letters, event ids, who may publish, the read model."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from hypothesis import given
from hypothesis import strategies as st

from services.common import catalog_events
from services.common.auth import Principal, PrincipalKind
from services.common.bus import Message, OutgoingRecord
from services.common.envelope import CloudEvent
from services.common.problems import Problem
from services.ingest.envelopes import (
    RecordEnvelopes,
    batch_event_ids,
    derived_event_id,
    random_event_id,
    raw_event_id,
    record_envelope,
    record_key,
)
from services.ingest.exceptions import (
    ContractVersionMismatch,
    CsvHeaderMismatch,
    DatasetNotFound,
    DatasetNotWritable,
    NotDatasetPublisher,
)
from services.ingest.parsing import parse_json_array
from services.ingest.projection import CatalogProjection
from services.ingest.publishers import (
    authorize_publisher,
    check_claimed_version,
    current_contract,
    writable_dataset,
)
from services.ingest.routing import (
    RoutedBatch,
    RoutingContext,
    check_csv_header,
    encode_record,
    route_record,
)
from services.ingest.settings import IngestSettings
from tests.factories import bus_arrival_record
from tests.unit.ingest.conftest import (
    ADMIN,
    DATASET,
    OWNER,
    PUBLISHER,
    api_key_event,
    as_message,
    catalog_message,
    contract_event,
    dataset_event,
    load,
)

# --- keys and envelopes -------------------------------------------------------------------------


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


# --- routing a batch --------------------------------------------------------------------------


def _route(
    projection: CatalogProjection,
    records: list[Any] | str,
    *,
    settings: IngestSettings | None = None,
    idempotency_key: str | None = None,
) -> RoutedBatch:
    text = records if isinstance(records, str) else json.dumps(records, ensure_ascii=False)
    dataset = projection.dataset(DATASET)
    assert dataset is not None
    contract = current_contract(projection, dataset)
    ids = batch_event_ids("publisher", DATASET, idempotency_key)
    ctx = RoutingContext(
        dataset=dataset,
        contract=contract,
        publisher="publisher",
        content_type="application/json",
        event_id=lambda item: ids(item.index),
        location=lambda item: (("dlq_index", str(item.index).encode()),),
        settings=settings or IngestSettings(),
        catalog=projection,
    )
    out = RoutedBatch(DATASET, contract.version)
    for item in parse_json_array(text, 100):
        route_record(item, ctx, out)
    return out


def _headers(record: OutgoingRecord) -> dict[str, bytes]:
    return dict(record.headers)


def test_each_record_goes_to_ds_or_to_dlq_with_its_reasons(projection: CatalogProjection) -> None:
    good, bad = bus_arrival_record(), bus_arrival_record(delay_s="late", colour="red")
    text = json.dumps([good])[:-1] + ',\n  {"pretty":   true,\n "is": "kept"}, ' + json.dumps(bad) + "]"
    out = _route(projection, text)
    assert (out.accepted, out.rejected, out.duplicates) == (1, 2, 0)
    topics = [record.topic for record in out.records]
    assert topics == [f"ds.{DATASET}", f"dlq.{DATASET}", f"dlq.{DATASET}"]
    assert json.loads(out.records[0].value or b"") == good
    pretty = out.records[1]
    assert pretty.value == b'{"pretty":   true,\n "is": "kept"}', "a dead letter keeps the original bytes"
    headers = _headers(out.records[2])
    assert headers["dlq_reason"] == b"type"
    assert headers["dlq_path"] == b"/delay_s"
    assert headers["dlq_message"] == b"delay_s must be integer or null, not string"
    assert headers["dlq_contract_version"] == b"1.0.0"
    assert headers["ce_dataset"] == DATASET.encode()
    assert headers["dlq_publisher"] == b"publisher"
    assert headers["dlq_index"] == b"2"
    assert headers["dlq_time"].endswith(b"Z")
    assert out.records[2].key == bad["arrival_id"].encode()
    assert {e.rule for e in out.errors if e.index == 1} == {"required"}
    assert {(e.index, e.path, e.rule) for e in out.errors if e.index == 2} == {(2, "/delay_s", "type")}
    assert out.rules == {"required": 1, "type": 1}


def test_a_repeated_event_id_is_published_once(projection: CatalogProjection) -> None:
    first, second = bus_arrival_record(_event_id="avl-1"), bus_arrival_record(_event_id="avl-2")
    out = _route(projection, [first, second, {**first, "delay_s": 1}, bus_arrival_record()])
    assert (out.accepted, out.rejected, out.duplicates) == (3, 0, 1)
    assert out.event_ids[:2] == ["avl-1", "avl-2"]
    published = [json.loads(r.value or b"") for r in out.records]
    assert all("_event_id" not in record for record in published), "metadata fields are stripped"
    assert published[0]["delay_s"] == first["delay_s"]


def test_event_ids_come_from_the_idempotency_key_unless_the_record_has_one(
    projection: CatalogProjection,
) -> None:
    records = [bus_arrival_record(), bus_arrival_record(_event_id="own-id")]
    once = _route(projection, records, idempotency_key="k-1")
    twice = _route(projection, records, idempotency_key="k-1")
    assert once.event_ids == twice.event_ids
    assert once.event_ids[1] == "own-id"


@pytest.mark.parametrize(
    ("extra", "path", "rule"),
    [
        ({"_event_id": ""}, "/_event_id", "eventId"),
        ({"_event_id": 12}, "/_event_id", "eventId"),
        ({"_event_id": "has space"}, "/_event_id", "eventId"),
        ({"_contract_version": "1.1.0"}, "/_contract_version", "contractVersion"),
        ({"_contract_version": "9.9.9"}, "/_contract_version", "contractVersion"),
        ({"_contract_version": 1}, "/_contract_version", "contractVersion"),
    ],
)
def test_bad_metadata_fields_reject_the_record(
    projection: CatalogProjection, extra: dict[str, Any], path: str, rule: str
) -> None:
    out = _route(projection, [bus_arrival_record(**extra), bus_arrival_record(_contract_version="1.0.0")])
    assert (out.accepted, out.rejected) == (1, 1)
    assert [(e.path, e.rule) for e in out.errors] == [(path, rule)]


def test_a_record_written_for_an_older_version_is_told_which_version_is_current(
    projection: CatalogProjection,
) -> None:
    load(projection, dataset_event(current_version="1.1.0"))
    out = _route(
        projection,
        [bus_arrival_record(_contract_version="1.0.0"), bus_arrival_record(_contract_version="0.1")],
    )
    assert [e.message for e in out.errors] == [
        f"written for contract version 1.0.0, but {DATASET} is at 1.1.0; only records of the current version are accepted",
        f"'0.1' is not a contract version of {DATASET}; the current version is 1.1.0",
    ]


def test_a_record_over_the_size_limit_is_rejected_and_its_dead_letter_truncated(
    projection: CatalogProjection,
) -> None:
    settings = IngestSettings(max_record_bytes=2048, max_dead_letter_bytes=1024)
    huge = bus_arrival_record(vehicle_id="x" * 10_000)
    out = _route(projection, [huge, bus_arrival_record()], settings=settings)
    assert (out.accepted, out.rejected) == (1, 1)
    assert out.errors[0].rule == "maxRecordBytes"
    dead = out.records[0]
    assert len(dead.value or b"") == 1024
    assert int(_headers(dead)["dlq_truncated"]) > 10_000


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("[" + '{"a": ' * 40 + "1" + "}" * 40 + "]", "maxDepth"),
        ('[{"stop_id": "\\ud800"}]', "encoding"),
        ('[{"delay_s": 1e400}]', "numberRange"),
    ],
)
def test_records_json_cannot_carry_are_rejected_not_crashed_on(
    projection: CatalogProjection, text: str, rule: str
) -> None:
    out = _route(projection, text)
    assert out.rejected == 1
    assert out.errors[0].rule == rule
    assert out.records[0].topic == f"dlq.{DATASET}"


_JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(_JSON_VALUES)
def test_a_record_is_published_as_the_json_of_its_value(value: Any) -> None:
    encoded, problem = encode_record(value)
    assert problem is None
    assert encoded is not None
    assert json.loads(encoded) == value
    assert b"\n" not in encoded  # compact
    if not _has_float(value):  # floats may be spelled differently (1e-07 / 1e-7), never valued so
        assert encoded == json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _has_float(value: Any) -> bool:
    if isinstance(value, float):
        return True
    if isinstance(value, dict):
        return any(_has_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_float(item) for item in value)
    return False


@pytest.mark.parametrize(
    "value",
    [float("inf"), {"a": [1, {"b": float("-inf")}]}, [None, float("nan")], {"n": None, "x": float("inf")}],
)
def test_numbers_json_cannot_write_are_refused_wherever_they_are(value: Any) -> None:
    encoded, problem = encode_record(value)
    assert encoded is None
    assert problem is not None
    assert problem.rule == "numberRange"


def test_a_lone_surrogate_is_refused_and_a_huge_integer_kept_exactly() -> None:
    assert encode_record({"s": "\ud800"})[1].rule == "encoding"  # type: ignore[union-attr]
    assert encode_record({"n": 2**100}) == (b'{"n":1267650600228229401496703205376}', None)


def test_too_many_errors_are_counted_but_not_all_listed(projection: CatalogProjection) -> None:
    out = _route(projection, [{"x": 1}] * 5)
    result = out.result(max_errors=3)
    assert result.rejected == 5
    assert len(result.errors) == 3
    assert result.errors_truncated


# --- CSV header, access, versions -------------------------------------------------------------


def test_a_csv_header_must_match_the_contract(projection: CatalogProjection) -> None:
    contract = projection.contract(DATASET, "1.0.0")
    assert contract is not None
    check_csv_header(["arrival_id", "stop_id", "route_id", "vehicle_id", "arrived_at", "_event_id"], contract)
    with pytest.raises(CsvHeaderMismatch) as raised:
        check_csv_header(["arrival_id", "stop_id", "stop_id", "colour", "", "arrived_at"], contract)
    assert raised.value.status == 422
    assert [(e.path, e.rule) for e in raised.value.errors or []] == [
        ("/header/2", "uniqueItems"),
        ("/header/3", "additionalProperties"),
        ("/header/4", "minLength"),
        ("/header", "required"),
        ("/header", "required"),
    ]
    assert "required field 'route_id' has no column" in [e.message for e in raised.value.errors or []]


@pytest.mark.parametrize(
    ("principal", "allowed"),
    [
        (PUBLISHER, True),
        (ADMIN, True),
        (Principal("other", PrincipalKind.department, "o", department_id="health-commission"), False),
        (Principal("approver", PrincipalKind.approver, "a", department_id=OWNER), False),
        (Principal("scenario", PrincipalKind.scenario, "s"), False),
    ],
)
def test_only_the_owning_department_or_an_admin_publishes(
    projection: CatalogProjection, principal: Principal, allowed: bool
) -> None:
    dataset = projection.dataset(DATASET)
    assert dataset is not None
    if allowed:
        authorize_publisher(principal, dataset)
    else:
        with pytest.raises(NotDatasetPublisher) as raised:
            authorize_publisher(principal, dataset)
        assert raised.value.status == 403


@pytest.mark.parametrize(
    ("status", "error"),
    [("active", None), ("deprecated", None), ("draft", DatasetNotWritable), ("retired", DatasetNotWritable)],
)
def test_draft_and_retired_datasets_take_no_records(
    projection: CatalogProjection, status: str, error: type[Problem] | None
) -> None:
    load(projection, dataset_event(status=status))
    if error is None:
        assert writable_dataset(projection, DATASET).status == status
    else:
        with pytest.raises(error) as raised:
            writable_dataset(projection, DATASET)
        assert raised.value.status == 409
    with pytest.raises(DatasetNotFound):
        writable_dataset(projection, "transport.nothing")


def test_a_batch_claiming_another_version_is_a_409(projection: CatalogProjection) -> None:
    contract = projection.contract(DATASET, "1.0.0")
    assert contract is not None
    check_claimed_version(projection, contract, None)
    check_claimed_version(projection, contract, "1.0.0")
    with pytest.raises(ContractVersionMismatch) as raised:
        check_claimed_version(projection, contract, "1.1.0")
    assert raised.value.status == 409
    assert raised.value.body()["current_version"] == "1.0.0"


# --- the read model -----------------------------------------------------------------------------


def test_the_projection_follows_datasets_versions_and_keys() -> None:
    projection = CatalogProjection()
    changes: list[None] = []
    projection.on_datasets_changed(lambda: changes.append(None))
    principal_event, key_event, key = api_key_event(PUBLISHER)
    load(projection, contract_event(), dataset_event(), principal_event, key_event)
    assert projection.keyring.authenticate(key).id == PUBLISHER.id
    assert projection.writable_datasets() == [DATASET]
    assert len(changes) == 1
    load(projection, dataset_event(status="retired"))
    assert projection.writable_datasets() == []
    assert len(changes) == 2
    load(projection, dataset_event(status="retired", current_version="1.0.0"))
    assert len(changes) == 2, "a change that does not open or close the dataset is no change"


def test_tombstones_and_foreign_records_do_not_stop_the_read_model() -> None:
    projection = CatalogProjection()
    load(projection, contract_event(), dataset_event())
    foreign = [
        Message(catalog_events.TOPIC, 0, 10, b"x", b"not an event", (), 0),
        Message(
            catalog_events.TOPIC,
            0,
            11,
            f"dataset:{DATASET}".encode(),
            b"{}",
            (("ce_id", b"1"), ("ce_source", b"s"), ("ce_type", b"another.type"), ("ce_specversion", b"1.0")),
            0,
        ),
        catalog_message(catalog_events.DATASET, "broken", {"id": "broken"}, 12),
        as_message(OutgoingRecord(catalog_events.TOPIC, None, f"contract:{DATASET}:1.0.0".encode()), 13),
        as_message(OutgoingRecord(catalog_events.TOPIC, None, f"dataset:{DATASET}".encode()), 14),
    ]
    for message in foreign[:3]:
        projection.apply(message)
    assert projection.dataset(DATASET) is not None, "an event of another type is no tombstone"
    assert projection.skipped == 2
    for message in foreign[3:]:
        projection.apply(message)
    assert projection.dataset(DATASET) is None
    assert projection.contract(DATASET, "1.0.0") is None
