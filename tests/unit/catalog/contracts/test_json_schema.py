"""The per-record JSON Schema: its fixed shape, each logical type, required, enums, annotations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from services.catalog.contracts.conventions import SchemaObjectNotFound
from services.catalog.contracts.json_schema import record_schema
from tests.support.contracts import (
    KEY_PROPERTY,
    contract_document,
    contract_property,
    contract_with,
    parsed,
    with_rule,
)


def validators(schema: dict[str, Any]) -> list[Callable[[dict[str, Any]], bool]]:
    """Both validators citybase may use, as predicates: jsonschema (asserting formats) and fastjsonschema."""
    jsonschema.Draft202012Validator.check_schema(schema)
    strict = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    compiled = fastjsonschema.compile(schema)

    def fast(record: dict[str, Any]) -> bool:
        try:
            compiled(record)
        except fastjsonschema.JsonSchemaValueException:
            return False
        return True

    return [strict.is_valid, fast]


def formats_in(schema: Any) -> set[str]:
    if isinstance(schema, dict):
        found = {schema["format"]} if isinstance(schema.get("format"), str) else set()
        return found.union(*(formats_in(value) for value in schema.values()))
    if isinstance(schema, list):
        return set().union(*(formats_in(value) for value in schema))
    return set()


def accepts(schema: dict[str, Any], record: dict[str, Any]) -> bool:
    """Whether the record is valid, asserting that both validators agree where both can judge.

    jsonschema checks date-time and time only with optional packages (rfc3339-validator) that the
    environment does not have; for those formats fastjsonschema, which ingest uses, decides alone.
    """
    strict, fast = validators(schema)
    verdict = fast(record)
    if formats_in(schema) <= set(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers):
        assert strict(record) == verdict, f"the validators disagree on {record}"
    return verdict


def property_schema(*properties: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return record_schema(contract_with(KEY_PROPERTY, *properties, **kwargs))


def test_the_record_schema_has_the_fixed_shape() -> None:
    contract = contract_with(KEY_PROPERTY, contract_property("note", description="Free text."))

    schema = record_schema(contract)

    assert list(schema) == [
        "$schema",
        "$id",
        "title",
        "type",
        "properties",
        "required",
        "additionalProperties",
    ]
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["$id"] == "urn:citybase:dataset:test.records:1.0.0"
    assert schema["title"] == "Test records"
    assert schema["type"] == "object"
    assert schema["required"] == ["id"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["note"] == {"type": ["string", "null"], "description": "Free text."}


def test_the_record_schema_is_valid_2020_12_and_compiles() -> None:
    schema = property_schema(contract_property("n", "integer", logicalTypeOptions={"minimum": 0}))

    jsonschema.Draft202012Validator.check_schema(schema)
    assert fastjsonschema.compile(schema)({"id": "a", "n": 1}) == {"id": "a", "n": 1}


def test_unknown_fields_are_rejected() -> None:
    schema = property_schema()

    assert accepts(schema, {"id": "a"})
    assert not accepts(schema, {"id": "a", "surprise": 1})


@pytest.mark.parametrize(
    ("logical_type", "options", "expected", "valid", "invalid"),
    [
        ("string", {}, {"type": "string"}, "abc", 3),
        ("string", {"minLength": 2, "maxLength": 3}, {"minLength": 2, "maxLength": 3}, "abc", "abcd"),
        ("string", {"minLength": 2}, {"minLength": 2}, "ab", "a"),
        ("string", {"pattern": "^S[0-9]{4}$"}, {"pattern": "^S[0-9]{4}$"}, "S0042", "S42"),
        ("string", {"format": "email"}, {"format": "email"}, "a@example.org", "not-an-email"),
        (
            "string",
            {"format": "uuid"},
            {"format": "uuid"},
            "0b2c3f6e-7c55-4bb8-a3a4-9d6f1e2a3b4c",
            "0b2c3f6e",
        ),
        ("string", {"format": "password"}, {"x-citybase-format": "password"}, "hunter2", 7),
        ("date", {}, {"type": "string", "format": "date"}, "2026-11-24", "24/11/2026"),
        ("date", {"format": "yyyy-MM-dd"}, {"format": "date"}, "2026-11-24", "2026-13-40"),
        ("timestamp", {}, {"format": "date-time"}, "2026-11-24T08:15:30+08:00", "2026-11-24 08:15"),
        ("time", {}, {"format": "time"}, "08:15:30+08:00", "8 am"),
        ("integer", {}, {"type": "integer"}, 3, 3.5),
        ("integer", {"minimum": 0, "maximum": 10}, {"minimum": 0, "maximum": 10}, 10, 11),
        ("integer", {"minimum": 0}, {"minimum": 0}, 0, -1),
        ("integer", {"exclusiveMinimum": 0}, {"exclusiveMinimum": 0}, 1, 0),
        ("integer", {"exclusiveMaximum": 10}, {"exclusiveMaximum": 10}, 9, 10),
        ("integer", {"multipleOf": 5}, {"multipleOf": 5}, 15, 16),
        ("number", {"minimum": 30.6, "maximum": 31.9}, {"minimum": 30.6}, 31.23, 39.9),
        ("number", {}, {"type": "number"}, 1.5, "1.5"),
        ("boolean", {}, {"type": "boolean"}, True, "true"),
        ("object", {}, {"type": "object"}, {"free": "form"}, [1]),
        ("object", {"maxProperties": 1}, {"maxProperties": 1}, {"a": 1}, {"a": 1, "b": 2}),
        ("array", {}, {"type": "array"}, [1, "a"], "a"),
        ("array", {"minItems": 1, "maxItems": 2}, {"minItems": 1, "maxItems": 2}, [1], []),
        ("array", {"uniqueItems": True}, {"uniqueItems": True}, [1, 2], [1, 1]),
    ],
)
def test_each_logical_type_and_option_maps_to_json_schema(
    logical_type: str, options: dict[str, Any], expected: dict[str, Any], valid: Any, invalid: Any
) -> None:
    prop = contract_property("value", logical_type, required=True)
    if options:
        prop["logicalTypeOptions"] = options

    schema = property_schema(prop)

    assert expected.items() <= schema["properties"]["value"].items()
    assert schema["properties"]["value"]["type"] == _JSON_TYPE[logical_type]
    assert accepts(schema, {"id": "a", "value": valid})
    if logical_type == "string" and options.get("format") == "password":
        return  # an unknown format is an annotation only; the type check fails instead
    assert not accepts(schema, {"id": "a", "value": invalid})


_JSON_TYPE = {
    "string": "string",
    "date": "string",
    "timestamp": "string",
    "time": "string",
    "integer": "integer",
    "number": "number",
    "boolean": "boolean",
    "object": "object",
    "array": "array",
}


def test_optional_properties_accept_null_and_absence_required_ones_neither() -> None:
    schema = property_schema(
        contract_property("must", "integer", required=True), contract_property("may", "integer")
    )

    assert schema["required"] == ["id", "must"]
    assert schema["properties"]["may"]["type"] == ["integer", "null"]
    assert accepts(schema, {"id": "a", "must": 1, "may": None})
    assert accepts(schema, {"id": "a", "must": 1})
    assert not accepts(schema, {"id": "a", "must": None})
    assert not accepts(schema, {"id": "a"})


def test_primary_key_properties_are_required_and_annotated() -> None:
    schema = record_schema(contract_with(contract_property("code", primaryKey=True, primaryKeyPosition=1)))

    assert schema["required"] == ["code"]
    assert schema["properties"]["code"]["type"] == "string"
    assert schema["properties"]["code"]["x-citybase-primary-key"] is True
    assert not accepts(schema, {"code": None})


def test_a_nulls_not_tolerated_rule_makes_the_property_required() -> None:
    strict = with_rule(contract_property("a"), metric="nullValues", mustBe=0)
    tolerant = with_rule(contract_property("b"), metric="nullValues", mustBeLessThan=5, unit="percent")

    schema = property_schema(strict, tolerant)

    assert schema["required"] == ["id", "a"]


ENUM_VALUES = ["open", "closed"]


@pytest.mark.parametrize(
    ("prop", "api_version"),
    [
        (
            contract_property("state", enum=[{"value": "open"}, {"value": "closed", "label": "Closed"}]),
            "v3.2.0",
        ),
        (
            contract_property(
                "state", customProperties=[{"property": "citybase.enum", "value": ENUM_VALUES}]
            ),
            "v3.1.0",
        ),
        (
            with_rule(
                contract_property("state"),
                metric="invalidValues",
                arguments={"validValues": ENUM_VALUES},
                mustBe=0,
            ),
            "v3.1.0",
        ),
        (
            with_rule(
                contract_property("state"),
                metric="invalidValues",
                arguments={"validValues": ENUM_VALUES},
                mustBeLessThan=1,
                unit="rows",
            ),
            "v3.0.2",
        ),
    ],
    ids=["odcs-3.2-enum", "citybase.enum", "invalidValues-mustBe-0", "invalidValues-less-than-1-row"],
)
def test_enumerations_come_from_every_supported_source(prop: dict[str, Any], api_version: str) -> None:
    schema = property_schema(prop, apiVersion=api_version)

    assert schema["properties"]["state"]["enum"] == [*ENUM_VALUES, None]
    assert accepts(schema, {"id": "a", "state": "open"})
    assert accepts(schema, {"id": "a", "state": None})
    assert not accepts(schema, {"id": "a", "state": "ajar"})


def test_a_required_enum_does_not_admit_null() -> None:
    prop = contract_property(
        "state", required=True, customProperties=[{"property": "citybase.enum", "value": ENUM_VALUES}]
    )

    schema = property_schema(prop)

    assert schema["properties"]["state"]["enum"] == ENUM_VALUES
    assert not accepts(schema, {"id": "a", "state": None})


def test_a_tolerant_invalid_values_rule_is_left_to_the_quality_suite() -> None:
    prop = with_rule(
        contract_property("state"),
        metric="invalidValues",
        arguments={"validValues": ENUM_VALUES, "pattern": "^[a-z]+$"},
        mustBeLessThan=5,
        unit="percent",
    )

    schema = property_schema(prop)

    assert "enum" not in schema["properties"]["state"]
    assert "pattern" not in schema["properties"]["state"]


def test_a_strict_invalid_values_pattern_becomes_the_pattern() -> None:
    prop = with_rule(
        contract_property("code"), metric="invalidValues", arguments={"pattern": "^[A-Z]{2}$"}, mustBe=0
    )

    schema = property_schema(prop)

    assert schema["properties"]["code"]["pattern"] == "^[A-Z]{2}$"
    assert not accepts(schema, {"id": "a", "code": "abc"})


def test_the_native_enum_wins_over_the_conventions() -> None:
    prop = contract_property(
        "state",
        required=True,
        enum=[{"value": "a"}],
        customProperties=[{"property": "citybase.enum", "value": ["b"]}],
    )

    schema = property_schema(prop, apiVersion="v3.2.0")

    assert schema["properties"]["state"]["enum"] == ["a"]


def test_integer_enums_keep_their_type() -> None:
    prop = contract_property(
        "direction", "integer", customProperties=[{"property": "citybase.enum", "value": [0, 1]}]
    )

    schema = property_schema(prop)

    assert accepts(schema, {"id": "a", "direction": 1})
    assert not accepts(schema, {"id": "a", "direction": 2})
    assert not accepts(schema, {"id": "a", "direction": "1"})


def test_nested_objects_are_closed_objects_with_their_own_required() -> None:
    address = contract_property(
        "address",
        "object",
        required=True,
        logicalTypeOptions={"required": ["postcode"]},
        properties=[
            contract_property("street", required=True, description="Street and number."),
            contract_property("postcode", logicalTypeOptions={"pattern": "^[0-9]{6}$"}),
            contract_property("floor", "integer"),
        ],
    )

    schema = property_schema(address)
    nested = schema["properties"]["address"]

    assert nested["type"] == "object"
    assert nested["required"] == ["street", "postcode"]
    assert nested["additionalProperties"] is False
    assert nested["properties"]["street"] == {"type": "string", "description": "Street and number."}
    assert accepts(schema, {"id": "a", "address": {"street": "Changshou Rd 1", "postcode": "200060"}})
    assert not accepts(schema, {"id": "a", "address": {"street": "Changshou Rd 1"}})
    assert not accepts(schema, {"id": "a", "address": {"street": "x", "postcode": "200060", "zip": "1"}})
    assert not accepts(schema, {"id": "a", "address": {"street": "x", "postcode": "2000"}})


def test_arrays_map_their_items_recursively() -> None:
    contacts = contract_property(
        "contacts",
        "array",
        items={
            "logicalType": "object",
            "required": True,
            "properties": [
                contract_property("phone", required=True, logicalTypeOptions={"pattern": "^1[3-9][0-9]{9}$"}),
                contract_property("tags", "array", items={"logicalType": "string", "required": True}),
            ],
        },
    )

    schema = property_schema(contacts)
    items = schema["properties"]["contacts"]["items"]

    assert items["type"] == "object"
    assert items["required"] == ["phone"]
    assert items["properties"]["tags"]["items"] == {"type": "string"}
    assert accepts(schema, {"id": "a", "contacts": [{"phone": "13812345678", "tags": ["home"]}]})
    assert accepts(schema, {"id": "a", "contacts": None})
    assert not accepts(schema, {"id": "a", "contacts": [{"phone": "12345"}]})
    assert not accepts(schema, {"id": "a", "contacts": [None]})


def test_items_that_are_not_required_may_be_null() -> None:
    schema = property_schema(
        contract_property("scores", "array", required=True, items={"logicalType": "integer"})
    )

    assert schema["properties"]["scores"]["items"] == {"type": ["integer", "null"]}
    assert accepts(schema, {"id": "a", "scores": [1, None]})


def test_maps_and_vectors() -> None:
    counts = contract_property(
        "counts",
        "map",
        required=True,
        map={"key": {"logicalType": "string"}, "value": {"logicalType": "integer", "required": True}},
    )
    embedding = contract_property("embedding", "vector", logicalTypeOptions={"dimensions": 3})

    schema = property_schema(counts, embedding, apiVersion="v3.2.0")

    assert schema["properties"]["counts"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert schema["properties"]["embedding"]["minItems"] == schema["properties"]["embedding"]["maxItems"] == 3
    assert accepts(schema, {"id": "a", "counts": {"x": 1}, "embedding": [0.1, 0.2, 0.3]})
    assert not accepts(schema, {"id": "a", "counts": {"x": "1"}})
    assert not accepts(schema, {"id": "a", "counts": {}, "embedding": [0.1]})


def test_annotations_carry_description_title_examples_and_citybase_metadata() -> None:
    phone = contract_property(
        "phone",
        businessName="Resident phone",
        description="For call-backs.",
        examples=["13812345678"],
        deprecated=True,
        classification="personal",
        customProperties=[{"property": "citybase.masking", "value": "partial"}],
    )

    schema = property_schema(phone, apiVersion="v3.1.0")

    assert schema["properties"]["phone"] == {
        "type": ["string", "null"],
        "description": "For call-backs.",
        "title": "Resident phone",
        "examples": ["13812345678"],
        "deprecated": True,
        "x-citybase-classification": "personal",
        "x-citybase-masking": "partial",
    }
    assert schema["properties"]["id"]["x-citybase-primary-key"] is True


def test_sensitive_without_a_rule_is_annotated_as_redacted() -> None:
    schema = property_schema(contract_property("diagnosis", classification="Confidential"))

    assert schema["properties"]["diagnosis"]["x-citybase-masking"] == "redact"


def test_date_bounds_are_not_expressed() -> None:
    prop = contract_property("on", "date", logicalTypeOptions={"minimum": "2020-01-01"})

    schema = property_schema(prop)

    assert schema["properties"]["on"] == {"type": ["string", "null"], "format": "date"}


def test_the_schema_object_can_be_chosen_by_name() -> None:
    document = contract_document(KEY_PROPERTY)
    document["schema"].append(
        {
            "name": "stops",
            "description": "Stop register.",
            "properties": [contract_property("stop_id", required=True)],
        }
    )
    contract = parsed(document)

    first, second = record_schema(contract), record_schema(contract, "stops")

    assert list(first["properties"]) == ["id"]
    assert list(second["properties"]) == ["stop_id"]
    assert second["$id"] == "urn:citybase:dataset:test.records:1.0.0:stops"
    assert second["description"] == "Stop register."
    with pytest.raises(SchemaObjectNotFound):
        record_schema(contract, "routes")


def test_event_time_fields_are_annotated_with_their_rank() -> None:
    updated = contract_property(
        "updated_at", "timestamp", customProperties=[{"property": "citybase.eventTime", "value": 1}]
    )
    created = contract_property(
        "created_at", "timestamp", customProperties=[{"property": "citybase.eventTime", "value": True}]
    )

    schema = property_schema(created, updated)

    assert schema["properties"]["updated_at"]["x-citybase-event-time"] == 1
    assert schema["properties"]["created_at"]["x-citybase-event-time"] == 1  # true is rank 1
    assert "x-citybase-event-time" not in schema["properties"]["id"]
