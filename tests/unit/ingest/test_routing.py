"""Routing records: each to ds or to the DLQ with its reasons, repeated event ids, metadata fields,
what JSON cannot carry, the CSV header against the contract."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.common.bus import OutgoingRecord
from services.common.envelope import event_time_fields, occurrence_time, parse_time
from services.ingest.envelopes import (
    batch_event_ids,
)
from services.ingest.exceptions import (
    CsvHeaderMismatch,
)
from services.ingest.parsing import parse_json_array
from services.ingest.projection import CatalogProjection
from services.ingest.publishers import (
    current_contract,
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
from tests.support.ingest_units import (
    DATASET,
    contract_event,
    dataset_event,
    load,
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


# --- CloudEvents time -------------------------------------------------------------------------


def _mark_event_time(projection: CatalogProjection) -> None:
    """Version 1.0.0 again, its ``arrived_at`` marked as the records' occurrence time."""
    event_type, entity_id, payload = contract_event()
    payload["record_schema"]["properties"]["arrived_at"]["x-citybase-event-time"] = 1
    payload["fingerprint"] = "1" * 64
    load(projection, (event_type, entity_id, payload))


def test_ce_time_is_the_ingest_time_when_the_contract_names_no_event_time(
    projection: CatalogProjection,
) -> None:
    before = datetime.now(UTC)
    out = _route(projection, [bus_arrival_record(arrived_at="2020-01-01T08:00:00+08:00")])
    stamped = parse_time(_headers(out.records[0])["ce_time"].decode())
    assert before - timedelta(seconds=1) <= stamped <= datetime.now(UTC) + timedelta(seconds=1)


def test_ce_time_is_the_occurrence_time_the_contract_names(projection: CatalogProjection) -> None:
    _mark_event_time(projection)
    out = _route(
        projection,
        [
            bus_arrival_record(arrived_at="2026-11-24T08:15:30+08:00"),
            bus_arrival_record(arrived_at="2026-11-24T09:00:00Z"),
        ],
    )
    times = [_headers(record)["ce_time"] for record in out.records]
    assert times == [b"2026-11-24T00:15:30.000Z", b"2026-11-24T09:00:00.000Z"]
    assert all(_headers(record)["ce_id"] for record in out.records)


def test_the_occurrence_time_reads_ranks_dates_and_missing_values() -> None:
    schema = {
        "properties": {
            "created_at": {"type": "string", "x-citybase-event-time": 2},
            "updated_at": {"type": "string", "x-citybase-event-time": 1},
            "note": {"type": "string"},
        }
    }
    fields = event_time_fields(schema)
    assert fields == ("updated_at", "created_at")
    assert occurrence_time({"created_at": "2026-01-02"}, fields) == datetime(2026, 1, 2, tzinfo=UTC)
    assert occurrence_time({"updated_at": None, "created_at": "x"}, fields) is None
    assert occurrence_time({"updated_at": "2026-01-03T00:00:00Z"}, ()) is None
    assert event_time_fields({}) == ()
