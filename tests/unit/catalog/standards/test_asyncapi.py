"""The AsyncAPI documents are valid AsyncAPI 3.0.0 by the official JSON Schema, and say what the
topics really carry: the ``ds.<id>`` address, the record schema, the CloudEvents headers."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft7Validator, Draft202012Validator

from services.catalog.standards import DatasetDescription, PlatformLinks, PublisherDescription
from services.catalog.standards.asyncapi import (
    CLOUDEVENTS_HEADERS,
    JSON_SCHEMA_2020_12,
    JSON_SCHEMA_DRAFT_07,
    dataset_asyncapi,
    platform_asyncapi,
    read_event_schemas,
)
from services.common.envelope import CloudEvent

JS_PROJECT = Path(__file__).resolve().parents[3] / "js"

LINKS = PlatformLinks("https://data.city.example")
KAFKA = "kafka-1.city.example:9092,kafka-2.city.example:9092"

RECORD_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "visit_id": {"type": "string", "format": "uuid"},
        "hospital_id": {"type": "string"},
        "patient_id": {"type": "string", "description": "sensitive: hashed before delivery"},
        "age_band": {"enum": ["0-17", "18-39", "40-64", "65+"]},
        "wait_minutes": {"type": "integer", "minimum": 0, "maximum": 1440},
        "registered_at": {"type": "string", "format": "date-time"},
    },
    "required": ["visit_id", "hospital_id", "registered_at"],
    "additionalProperties": False,
}


def outpatient_visits(**overrides: Any) -> DatasetDescription:
    fields: dict[str, Any] = {
        "id": "health.outpatient-visits",
        "title": "Outpatient visits",
        "description": "Every registration at a hospital clinic, with the wait until seen.",
        "publisher": PublisherDescription("health-commission", "Municipal Health Commission", "department"),
        "domain": "health",
        "classification": "conditional",
        "status": "active",
        "created_at": datetime(2026, 2, 1, tzinfo=UTC),
        "updated_at": datetime(2026, 11, 20, tzinfo=UTC),
        "tags": ("hospital", "one-stop visit"),
        "update_frequency": "PT1M",
        "contract_version": "2.1.0",
        "record_schema": RECORD_SCHEMA,
        "primary_key": ("visit_id",),
    }
    fields.update(overrides)
    return DatasetDescription(**fields)


def assert_valid(validator: Draft7Validator, document: dict[str, Any]) -> None:
    errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
    assert not errors, "\n".join(
        f"{list(error.absolute_path)}: {error.message[:300]}" for error in errors[:10]
    )


def references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def resolve(document: dict[str, Any], pointer: str) -> Any:
    assert pointer.startswith("#/"), pointer
    node: Any = document
    for part in pointer[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


# --- valid AsyncAPI 3.0.0 -------------------------------------------------------------------


def test_the_pinned_specs_package_is_an_exact_version() -> None:
    package = json.loads((JS_PROJECT / "package.json").read_text(encoding="utf-8"))
    version = package["devDependencies"]["@asyncapi/specs"]

    assert version[0].isdigit(), f"pin @asyncapi/specs exactly, not {version!r}"
    lock = json.loads((JS_PROJECT / "package-lock.json").read_text(encoding="utf-8"))
    assert lock["packages"]["node_modules/@asyncapi/specs"]["version"] == version


@pytest.mark.parametrize(
    "described",
    [
        pytest.param(outpatient_visits(), id="with-contract"),
        pytest.param(
            outpatient_visits(contract_version=None, record_schema=None, primary_key=()), id="no-contract"
        ),
        pytest.param(
            outpatient_visits(
                record_schema={
                    "type": "object",
                    "prefixItems": [{"type": "string"}],
                    "unevaluatedProperties": False,
                }
            ),
            id="2020-12-only-schema",
        ),
    ],
)
def test_a_dataset_document_is_valid_asyncapi_3(
    asyncapi_3: Draft7Validator, described: DatasetDescription
) -> None:
    document = dataset_asyncapi(described, LINKS, kafka_bootstrap=KAFKA)

    assert_valid(asyncapi_3, document)
    json.dumps(document)  # plain JSON, ready to serve


def test_the_platform_document_is_valid_asyncapi_3(asyncapi_3: Draft7Validator) -> None:
    datasets = [
        outpatient_visits(),
        outpatient_visits(id="transport.bus-arrivals", domain="transport", record_schema=None),
        outpatient_visits(id="market.inspections", domain="market", contract_version="1.0.0"),
    ]
    quality_event = {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "dataset": {"type": "string"},
            "overall": {"type": "number", "minimum": 0, "maximum": 100},
        },
        "required": ["dataset", "overall"],
    }

    document = platform_asyncapi(
        iter(datasets),
        LINKS,
        kafka_bootstrap=KAFKA,
        event_schemas={"platform.quality": {"qualityEvent": quality_event}},
    )

    assert_valid(asyncapi_3, document)
    for described in datasets:
        assert {described.topic, described.raw_topic, described.dlq_topic} <= document["channels"].keys()
    for topic in ("platform.catalog", "platform.usage", "platform.quality"):
        assert document["channels"][topic]["address"] == topic
    quality = document["channels"]["platform.quality"]["messages"]["qualityEvent"]["payload"]
    assert quality == {
        "schemaFormat": JSON_SCHEMA_DRAFT_07,
        "schema": {key: value for key, value in quality_event.items() if key != "$schema"},
    }
    usage = document["channels"]["platform.usage"]["messages"]["usageEvent"]["payload"]
    assert usage["type"] == "object"
    assert "description" in usage


def test_the_event_schemas_under_contracts_events_become_platform_catalog_messages(
    asyncapi_3: Draft7Validator,
) -> None:
    directory = Path(__file__).resolve().parents[4] / "contracts" / "events"
    event_schemas = read_event_schemas(directory)
    catalog_files = sorted(path.stem for path in directory.glob("catalog.*.json"))
    assert catalog_files, f"no catalog event schemas under {directory}"
    assert sorted(event_schemas.get("platform.catalog", {})) == catalog_files

    document = platform_asyncapi(
        [outpatient_visits()], LINKS, kafka_bootstrap=KAFKA, event_schemas=event_schemas
    )

    assert_valid(asyncapi_3, document)
    channel = document["channels"]["platform.catalog"]
    assert channel["messages"].keys() == event_schemas["platform.catalog"].keys()
    for name, schema in event_schemas["platform.catalog"].items():
        message = channel["messages"][name]
        assert message["headers"]["properties"]["ce_type"]["const"] == schema["x-citybase-event-type"]
        assert message["payload"]["schema"]["properties"] == schema["properties"]
    operation = document["operations"]["receive.platform.catalog"]
    assert len(operation["messages"]) == len(channel["messages"])
    for reference in references(document):
        resolve(document, reference)


def test_the_validator_rejects_a_broken_document(asyncapi_3: Draft7Validator) -> None:
    document = dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)
    broken = copy.deepcopy(document)
    del broken["info"]["version"]
    mistyped = copy.deepcopy(document)
    mistyped["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["payload"]["schema"]["type"] = 5

    assert list(asyncapi_3.iter_errors(broken))
    assert list(asyncapi_3.iter_errors(mistyped))


@pytest.mark.parametrize("which", ["dataset", "platform"])
def test_every_reference_resolves(which: str) -> None:
    document = (
        dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)
        if which == "dataset"
        else platform_asyncapi([outpatient_visits()], LINKS, kafka_bootstrap=KAFKA)
    )

    pointers = list(references(document))
    assert pointers
    for pointer in pointers:
        assert isinstance(resolve(document, pointer), dict)


# --- what the dataset document says ---------------------------------------------------------


def test_the_records_channel_is_the_ds_topic_with_the_record_schema() -> None:
    document = dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)

    channel = document["channels"]["ds.health.outpatient-visits"]
    assert channel["address"] == "ds.health.outpatient-visits"
    assert channel["servers"] == [{"$ref": "#/servers/kafka"}]
    payload = channel["messages"]["record"]["payload"]
    assert payload["schemaFormat"] == JSON_SCHEMA_DRAFT_07
    # the record schema, without the 2020-12 $schema that the draft-07 schemaFormat replaces
    assert payload["schema"] == {key: value for key, value in RECORD_SCHEMA.items() if key != "$schema"}
    assert document["info"]["version"] == "2.1.0"
    assert (document["servers"]["kafka"]["host"], document["servers"]["kafka"]["protocol"]) == (
        KAFKA,
        "kafka",
    )
    assert (document["servers"]["feeds"]["host"], document["servers"]["feeds"]["pathname"]) == (
        "data.city.example",
        "/feeds/v1",
    )
    assert document["servers"]["feeds"]["protocol"] == "https"


def test_the_headers_are_the_cloudevents_kafka_binding() -> None:
    document = dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)

    headers = document["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["headers"]
    assert set(CLOUDEVENTS_HEADERS) <= headers["properties"].keys()
    assert {"ce_id", "ce_source", "ce_type", "ce_specversion"} <= set(headers["required"])
    assert headers["properties"]["ce_dataset"]["const"] == "health.outpatient-visits"
    assert headers["properties"]["ce_specversion"]["const"] == "1.0"


def test_a_record_as_ingest_writes_it_matches_the_document() -> None:
    """The headers and value of a real envelope validate against what the document declares."""
    described = outpatient_visits()
    document = dataset_asyncapi(described, LINKS, kafka_bootstrap=KAFKA)
    message = document["channels"][described.topic]["messages"]["record"]
    data = {
        "visit_id": "5f0c3c1e-8a4b-4d8e-9a51-0b7c2f7d9e11",
        "hospital_id": "H-0012",
        "age_band": "40-64",
        "wait_minutes": 35,
        "registered_at": "2026-11-24T08:15:30Z",
    }
    event = CloudEvent(
        type="city.citybase.record.v1",
        source=f"/ingest/datasets/{described.id}",
        data=data,
        subject=data["visit_id"],
        dataschema=LINKS.contract_version(described.id, "2.1.0"),
        extensions={"dataset": described.id, "contractversion": "2.1.0"},
    )
    record = event.to_record(described.topic, data["visit_id"].encode())
    headers = {name: value.decode() for name, value in record.headers}

    header_schema = Draft7Validator(message["headers"])
    header_schema.validate(headers)
    assert list(header_schema.iter_errors({**headers, "ce_dataset": "other.dataset"}))
    value = json.loads(record.value or b"")
    Draft202012Validator(RECORD_SCHEMA).validate(value)
    Draft7Validator(message["payload"]["schema"]).validate(value)


def test_the_kafka_key_is_the_primary_key() -> None:
    document = dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)

    binding = document["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["bindings"]["kafka"]
    assert binding["key"]["type"] == "string"
    assert "visit_id" in binding["key"]["description"]
    assert binding["bindingVersion"] == "0.5.0"


def test_operations_receive_records_send_raw_and_follow_the_dlq() -> None:
    document = dataset_asyncapi(outpatient_visits(), LINKS, kafka_bootstrap=KAFKA)

    actions = {
        resolve(document, operation["channel"]["$ref"])["address"]: operation["action"]
        for operation in document["operations"].values()
    }
    assert actions == {
        "ds.health.outpatient-visits": "receive",
        "raw.health.outpatient-visits": "send",
        "dlq.health.outpatient-visits": "receive",
        None: "receive",  # the feed: its address is the subscription's, known once created
    }
    raw = document["channels"]["raw.health.outpatient-visits"]["messages"]["rawRecord"]["payload"]
    assert raw["schema"]["required"] == ["visit_id", "hospital_id", "registered_at"]


# --- JSON Schema 2020-12 inside AsyncAPI 3.0 ------------------------------------------------


@pytest.mark.parametrize(
    "record_schema",
    [
        {"type": "object", "properties": {"tags": {"type": "array", "prefixItems": [{"type": "string"}]}}},
        {"type": "object", "unevaluatedProperties": False},
        {
            "type": "object",
            "$defs": {"stop": {"type": "string"}},
            "properties": {"stop": {"$ref": "#/$defs/stop"}},
        },
        {"type": "object", "properties": {"a": {"$ref": "#/$defs/x", "minLength": 2}}},
        {"type": "object", "dependentRequired": {"a": ["b"]}},
        {
            "type": "object",
            "anyOf": [{"properties": {"x": {"type": "array", "items": [{"type": "string"}]}}}],
        },
    ],
)
def test_a_schema_that_needs_2020_12_keeps_its_dialect(record_schema: dict[str, Any]) -> None:
    document = dataset_asyncapi(outpatient_visits(record_schema=record_schema), LINKS, kafka_bootstrap=KAFKA)

    payload = document["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["payload"]
    assert payload["schemaFormat"] == JSON_SCHEMA_2020_12
    # unchanged but for local references, rebased onto where the schema sits in the document
    embedded_at = "#/channels/ds.health.outpatient-visits/messages/record/payload/schema/"
    assert json.dumps(payload["schema"]).replace(embedded_at, "#/") == json.dumps(record_schema)


def test_annotations_beside_a_ref_do_not_force_2020_12() -> None:
    record_schema = {
        "type": "object",
        "definitions": {"stop": {"type": "string"}},
        "properties": {"stop": {"$ref": "#/definitions/stop", "description": "the stop"}},
    }
    document = dataset_asyncapi(outpatient_visits(record_schema=record_schema), LINKS, kafka_bootstrap=KAFKA)

    payload = document["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["payload"]
    assert payload["schemaFormat"] == JSON_SCHEMA_DRAFT_07


@pytest.mark.parametrize("ref", ["#/definitions/stop", "#/$defs/stop"])
def test_local_references_of_a_record_schema_resolve_inside_the_document(ref: str) -> None:
    """AsyncAPI tools resolve $ref against the whole document, so embedded ones are rebased."""
    container = ref.split("/")[1]
    record_schema = {
        "type": "object",
        container: {"stop": {"type": "string", "pattern": "^S[0-9]{4}$"}},
        "properties": {"stop": {"$ref": ref}},
    }
    document = platform_asyncapi(
        [outpatient_visits(record_schema=record_schema)], LINKS, kafka_bootstrap=KAFKA
    )

    payload = document["channels"]["ds.health.outpatient-visits"]["messages"]["record"]["payload"]
    pointers = list(references(payload))
    assert pointers == [
        f"#/channels/ds.health.outpatient-visits/messages/record/payload/schema/{container}/stop"
    ]
    assert resolve(document, pointers[0]) == {"type": "string", "pattern": "^S[0-9]{4}$"}
    raw = document["channels"]["raw.health.outpatient-visits"]["messages"]["rawRecord"]["payload"]
    assert resolve(document, raw["schema"]["properties"]["stop"]["$ref"]) == {
        "type": "string",
        "pattern": "^S[0-9]{4}$",
    }


def test_the_events_feeds_writes_become_platform_usage_messages() -> None:
    """Without the AsyncAPI validator (tests/js), so that it runs everywhere; the whole document is
    validated whole, these messages in it, by the test of the schemas under contracts/events above."""
    directory = Path(__file__).resolve().parents[4] / "contracts" / "events"
    event_schemas = read_event_schemas(directory)
    feeds_files = sorted(path.stem for path in directory.glob("feeds.*.json"))
    assert {"feeds.usage", "feeds.replay", "feeds.open-snapshot"} <= set(feeds_files)
    assert sorted(event_schemas.get("platform.usage", {})) == feeds_files

    document = platform_asyncapi(
        [outpatient_visits()], LINKS, kafka_bootstrap=KAFKA, event_schemas=event_schemas
    )

    messages = document["channels"]["platform.usage"]["messages"]
    assert messages.keys() == event_schemas["platform.usage"].keys()
    snapshot = messages["feeds.open-snapshot"]
    assert snapshot["headers"]["properties"]["ce_type"]["const"] == "city.citybase.feeds.open-snapshot.v1"
    assert "client" in snapshot["payload"]["schema"]["required"]
    assert "address" not in snapshot["payload"]["schema"]["properties"]  # a hash of it, never the address
    for reference in references(document):
        resolve(document, reference)
