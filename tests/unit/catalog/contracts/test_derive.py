"""The derivations: record schema, key, masking, SLA, policy and the Great Expectations suite."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

import fastjsonschema
import jsonschema
import pytest

from services.catalog.contracts.derive import (
    DatasetPolicy,
    MaskingRule,
    SchemaObjectNotFound,
    SlaTargets,
    dataset_policy,
    duration_s,
    expectation_class_name,
    expectation_suite,
    primary_key,
    record_schema,
    sensitive_fields,
    sla_targets,
)
from services.catalog.contracts.odcs import ContractInvalid
from tests.support.contracts import (
    contract_document,
    contract_property,
    contract_with,
    parsed,
    with_rule,
)

KEY = contract_property("id", primaryKey=True, primaryKeyPosition=1, required=True)


@pytest.fixture(scope="module")
def gx() -> ModuleType:
    """Great Expectations, imported once; its own imports use modules Python deprecates."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import great_expectations

    return great_expectations


def build_gx(gx: ModuleType, expectation: dict[str, Any]) -> Any:
    expectation_class = getattr(gx.expectations, expectation_class_name(expectation["type"]))
    return expectation_class(**expectation["kwargs"], meta=expectation["meta"])


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
    return record_schema(contract_with(KEY, *properties, **kwargs))


# --- record schema -----------------------------------------------------------------------------


def test_the_record_schema_has_the_fixed_shape() -> None:
    contract = contract_with(KEY, contract_property("note", description="Free text."))

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
    document = contract_document(KEY)
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


# --- primary key --------------------------------------------------------------------------------


def test_the_primary_key_follows_primary_key_position() -> None:
    contract = contract_with(
        contract_property("order_id", primaryKey=True, primaryKeyPosition=2),
        contract_property("note"),
        contract_property("tenant_id", primaryKey=True, primaryKeyPosition=1),
        contract_property("line", "integer", primaryKey=True),
    )

    assert primary_key(contract) == ["tenant_id", "order_id", "line"]


def test_no_primary_key_is_an_empty_list() -> None:
    assert primary_key(contract_with(contract_property("note"))) == []


def test_a_taken_primary_key_position_is_refused() -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(
            contract_property("a", primaryKey=True, primaryKeyPosition=1),
            contract_property("b", primaryKey=True, primaryKeyPosition=1),
        )

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/properties/1/primaryKeyPosition"]


# --- sensitive fields --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "classification", ["sensitive", "confidential", "restricted", "personal", "pii", "PII"]
)
def test_sensitive_classifications_are_redacted_by_default(classification: str) -> None:
    contract = contract_with(KEY, contract_property("x", classification=classification))

    assert sensitive_fields(contract) == {"x": MaskingRule("redact")}


@pytest.mark.parametrize("classification", ["public", "internal", "open", None])
def test_other_classifications_are_not_sensitive(classification: str | None) -> None:
    prop = (
        contract_property("x")
        if classification is None
        else contract_property("x", classification=classification)
    )

    assert sensitive_fields(contract_with(KEY, prop)) == {}


@pytest.mark.parametrize(
    ("value", "rule"),
    [
        ("hash", MaskingRule("hash")),
        ("redact", MaskingRule("redact")),
        ("partial", MaskingRule("partial", keep_prefix=3, keep_suffix=4)),
        (
            {"kind": "partial", "keepPrefix": 0, "keepSuffix": 2},
            MaskingRule("partial", keep_prefix=0, keep_suffix=2),
        ),
        ("generalize", MaskingRule("generalize")),
        ({"kind": "generalize", "precision": 2}, MaskingRule("generalize", precision=2)),
    ],
)
def test_a_masking_rule_makes_a_field_sensitive(value: Any, rule: MaskingRule) -> None:
    prop = contract_property("x", customProperties=[{"property": "citybase.masking", "value": value}])

    assert sensitive_fields(contract_with(KEY, prop)) == {"x": rule}


@pytest.mark.parametrize(
    "value",
    ["blur", 3, {"kind": "partial", "keepPrefix": -1}, {"kind": "hash", "salt": "x"}, {"keepPrefix": 3}],
)
def test_malformed_masking_rules_are_refused_at_parse(value: Any) -> None:
    prop = contract_property("x", customProperties=[{"property": "citybase.masking", "value": value}])

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/customProperties/0/value", "masking")
    ]


def test_nested_sensitive_fields_are_named_by_path() -> None:
    resident = contract_property(
        "resident",
        "object",
        properties=[
            contract_property("name", classification="personal"),
            contract_property(
                "contacts",
                "array",
                items={
                    "logicalType": "object",
                    "properties": [
                        contract_property(
                            "phone", customProperties=[{"property": "citybase.masking", "value": "partial"}]
                        )
                    ],
                },
            ),
        ],
    )

    fields = sensitive_fields(contract_with(KEY, resident))

    assert fields == {
        "resident.name": MaskingRule("redact"),
        "resident.contacts[].phone": MaskingRule("partial", keep_prefix=3, keep_suffix=4),
    }


# --- SLA --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "unit", "seconds"),
    [
        (250, "ms", 0.25),
        (30, "s", 30),
        (2, "seconds", 2),
        (15, "m", 900),
        (1, "minute", 60),
        (10, "min", 600),
        (4, "h", 14400),
        (1, "hour", 3600),
        (2, "hours", 7200),
        (1, "d", 86400),
        (1, "day", 86400),
        (3, "days", 259200),
        (1, "w", 604800),
        (1, "month", 2592000),
        (3, "y", 94608000),
        (1, "yr", 31536000),
        ("1.5", "h", 5400),
        (2, "Days", 172800),
        ("PT15M", None, 900),
        ("PT1H30M", None, 5400),
        ("P1D", None, 86400),
        ("P1W", None, 604800),
        ("P1Y2M", None, 365 * 86400 + 60 * 86400),
        ("PT0.5S", None, 0.5),
        ("pt10s", None, 10),
    ],
)
def test_durations_in_every_unit(value: Any, unit: str | None, seconds: float) -> None:
    assert duration_s(value, unit) == pytest.approx(seconds)


@pytest.mark.parametrize(
    ("value", "unit"),
    [
        (5, None),
        (5, "fortnight"),
        ("soon", "d"),
        (True, "d"),
        (None, "d"),
        ("P", None),
        ("PT", None),
        ("P1D", "d"),
        (0, "s"),
        (-1, "h"),
        ("P1H", None),
    ],
)
def test_what_is_not_a_duration(value: Any, unit: str | None) -> None:
    with pytest.raises(ValueError):
        duration_s(value, unit)


def test_sla_targets_from_sla_properties() -> None:
    contract = contract_with(
        KEY,
        slaProperties=[
            {"property": "frequency", "value": 1, "unit": "m"},
            {"property": "latency", "value": 30, "unit": "s"},
            {"property": "retention", "value": 90, "unit": "d"},
            {"property": "generalAvailability", "value": "2026-01-01T00:00:00+08:00"},
        ],
    )

    assert sla_targets(contract) == SlaTargets(frequency_s=60, latency_s=30, retention_s=90 * 86400)


def test_sla_names_are_case_insensitive_and_synonyms_count() -> None:
    contract = contract_with(
        KEY,
        slaProperties=[
            {"property": "FY", "value": "PT5M"},
            {"property": "freshness", "value": 2, "unit": "h"},
            {"property": "re", "value": 1, "unit": "y"},
            {"property": "latency", "value": 9, "unit": "h"},
        ],
    )

    assert sla_targets(contract) == SlaTargets(frequency_s=300, latency_s=7200, retention_s=365 * 86400)


def test_absent_sla_targets_are_none() -> None:
    assert sla_targets(contract_with(KEY)) == SlaTargets(None, None, None)


def test_an_sla_duration_that_does_not_parse_is_refused_at_parse() -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(
            KEY, slaProperties=[{"property": "frequency", "value": "often"}, {"property": "x", "value": 1}]
        )

    assert [e.path for e in caught.value.errors or []] == ["/slaProperties/0/value"]


# --- dataset policy ---------------------------------------------------------------------------------


def test_the_dataset_policy_comes_from_contract_custom_properties() -> None:
    contract = contract_with(
        KEY,
        customProperties=[
            {"property": "citybase.classification", "value": "conditional"},
            {"property": "citybase.department", "value": "putuo-district"},
            {"property": "citybase.compatibility", "value": "FULL_TRANSITIVE"},
            {"property": "somethingElse", "value": 1},
        ],
    )

    assert dataset_policy(contract) == DatasetPolicy("conditional", "putuo-district", "FULL_TRANSITIVE")
    assert dataset_policy(contract_with(KEY)) == DatasetPolicy()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("citybase.classification", "secret"),
        ("citybase.compatibility", "backward"),
        ("citybase.department", "Putuo District"),
        ("citybase.department", 7),
    ],
)
def test_a_malformed_policy_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, customProperties=[{"property": name, "value": value}])

    assert [e.path for e in caught.value.errors or []] == ["/customProperties/0/value"]


# --- expectation suite ---------------------------------------------------------------------------


def suite_of(*properties: dict[str, Any], **kwargs: Any) -> list[dict[str, Any]]:
    return expectation_suite(contract_with(*properties, **kwargs))


def quality_only(suite: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for item in suite if item["meta"]["source"] == "quality"]


def test_expectation_class_names() -> None:
    assert expectation_class_name("expect_column_values_to_not_be_null") == "ExpectColumnValuesToNotBeNull"
    assert expectation_class_name("expect_table_row_count_to_be_between") == "ExpectTableRowCountToBeBetween"


def test_schema_derived_expectations(gx: ModuleType) -> None:
    suite = suite_of(
        contract_property("id", primaryKey=True, primaryKeyPosition=1),
        contract_property("code", required=True, logicalTypeOptions={"pattern": "^[A-Z]+$", "maxLength": 8}),
        contract_property("delay", "integer", logicalTypeOptions={"minimum": -60, "exclusiveMaximum": 600}),
        contract_property("state", customProperties=[{"property": "citybase.enum", "value": ["a", "b"]}]),
        contract_property("email", unique=True),
    )

    assert [
        (item["type"], item["kwargs"], item["meta"]["rule"], item["meta"]["dimension"]) for item in suite
    ] == [
        ("expect_column_to_exist", {"column": "id"}, "exists", "conformity"),
        ("expect_column_values_to_not_be_null", {"column": "id"}, "required", "completeness"),
        ("expect_column_values_to_be_unique", {"column": "id"}, "primaryKey", "uniqueness"),
        ("expect_column_to_exist", {"column": "code"}, "exists", "conformity"),
        ("expect_column_values_to_not_be_null", {"column": "code"}, "required", "completeness"),
        (
            "expect_column_values_to_match_regex",
            {"column": "code", "regex": "^[A-Z]+$"},
            "pattern",
            "validity",
        ),
        (
            "expect_column_value_lengths_to_be_between",
            {"column": "code", "max_value": 8},
            "length",
            "validity",
        ),
        ("expect_column_to_exist", {"column": "delay"}, "exists", "conformity"),
        (
            "expect_column_values_to_be_between",
            {"column": "delay", "min_value": -60, "max_value": 600, "strict_max": True},
            "range",
            "validity",
        ),
        ("expect_column_to_exist", {"column": "state"}, "exists", "conformity"),
        (
            "expect_column_values_to_be_in_set",
            {"column": "state", "value_set": ["a", "b"]},
            "enum",
            "validity",
        ),
        ("expect_column_to_exist", {"column": "email"}, "exists", "conformity"),
        ("expect_column_values_to_be_unique", {"column": "email"}, "unique", "uniqueness"),
    ]
    assert all(item["meta"]["source"] == "schema" for item in suite)
    assert suite[3]["meta"]["path"] == "/schema/0/properties/1"
    for item in suite:
        build_gx(gx, item)


def test_a_compound_primary_key_is_unique_as_a_whole(gx: ModuleType) -> None:
    suite = suite_of(
        contract_property("tenant", primaryKey=True, primaryKeyPosition=1),
        contract_property("order", primaryKey=True, primaryKeyPosition=2),
    )

    compound = [item for item in suite if item["meta"]["rule"] == "primaryKey"]
    assert [(item["type"], item["kwargs"]) for item in compound] == [
        ("expect_compound_columns_to_be_unique", {"column_list": ["tenant", "order"]})
    ]
    build_gx(gx, compound[0])


@pytest.mark.parametrize(
    ("threshold", "kwargs", "meta"),
    [
        ({"mustBe": 0}, {}, {}),
        ({"mustBe": 0, "unit": "percent"}, {}, {}),
        ({"mustBeLessThan": 1}, {}, {}),
        ({"mustBeLessThan": 2, "unit": "percent"}, {"mostly": 0.98}, {}),
        ({"mustBeLessOrEqualTo": 10, "unit": "percent"}, {"mostly": 0.9}, {}),
        ({"mustBeLessThan": 10, "unit": "rows"}, {}, {"max_unexpected_count": 9}),
        ({"mustBeLessOrEqualTo": 10}, {}, {"max_unexpected_count": 10}),
        ({"mustBeBetween": [0, 5]}, {}, {"max_unexpected_count": 5}),
    ],
)
def test_null_values_thresholds(
    gx: ModuleType, threshold: dict[str, Any], kwargs: dict[str, Any], meta: dict[str, Any]
) -> None:
    prop = with_rule(contract_property("x"), metric="nullValues", **threshold)

    [item] = quality_only(suite_of(KEY, prop))

    assert item["type"] == "expect_column_values_to_not_be_null"
    assert item["kwargs"] == {"column": "x", **kwargs}
    assert meta.items() <= item["meta"].items()
    assert ("max_unexpected_count" in item["meta"]) == bool(meta)
    assert item["meta"]["path"] == "/schema/0/properties/1/quality/0"
    assert item["meta"]["dimension"] == "completeness"
    build_gx(gx, item)


@pytest.mark.parametrize(
    "threshold",
    [
        {"mustBe": 3},
        {"mustBeGreaterThan": 0},
        {"mustNotBe": 0},
        {"mustBeBetween": [1, 5]},
        {"mustBeLessThan": 150, "unit": "percent"},
        {"mustBeLessThan": 5, "unit": "bananas"},
    ],
)
def test_thresholds_that_do_not_bound_bad_values_are_refused(threshold: dict[str, Any]) -> None:
    prop = with_rule(contract_property("x"), metric="nullValues", **threshold)

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/quality/0", "threshold")
    ]


def test_missing_values(gx: ModuleType) -> None:
    prop = with_rule(
        contract_property("email"),
        metric="missingValues",
        arguments={"missingValues": [None, "", "N/A"]},
        mustBeLessThan=5,
        unit="percent",
        id="email_present",
    )

    items = quality_only(suite_of(KEY, prop))

    assert [(item["type"], item["kwargs"]) for item in items] == [
        (
            "expect_column_values_to_not_be_in_set",
            {"column": "email", "value_set": ["", "N/A"], "mostly": 0.95},
        ),
        ("expect_column_values_to_not_be_null", {"column": "email", "mostly": 0.95}),
    ]
    assert {item["meta"]["rule"] for item in items} == {"email_present"}
    for item in items:
        build_gx(gx, item)


def test_invalid_values_with_valid_values_and_a_pattern(gx: ModuleType) -> None:
    prop = with_rule(
        contract_property("unit"),
        metric="invalidValues",
        arguments={"validValues": ["kg", "t"], "pattern": "^[a-z]+$"},
        mustBeLessThan=5,
        unit="rows",
        name="known units",
        description="Weights in kg or t.",
    )

    items = quality_only(suite_of(KEY, prop))

    assert [(item["type"], item["kwargs"]) for item in items] == [
        ("expect_column_values_to_be_in_set", {"column": "unit", "value_set": ["kg", "t"]}),
        ("expect_column_values_to_match_regex", {"column": "unit", "regex": "^[a-z]+$"}),
    ]
    assert items[0]["meta"] == {
        "rule": "known units",
        "dimension": "validity",
        "source": "quality",
        "path": "/schema/0/properties/1/quality/0",
        "description": "Weights in kg or t.",
        "max_unexpected_count": 4,
    }
    for item in items:
        build_gx(gx, item)


def test_invalid_values_need_valid_values_or_a_pattern() -> None:
    prop = with_rule(contract_property("unit"), metric="invalidValues", mustBe=0)

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, prop)

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/properties/1/quality/0/arguments"]


def test_a_pattern_that_does_not_compile_is_refused() -> None:
    bad = contract_property("a", logicalTypeOptions={"pattern": "([a-z"})
    worse = with_rule(contract_property("b"), metric="invalidValues", arguments={"pattern": "*"}, mustBe=0)

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, bad, worse)

    assert [e.path for e in caught.value.errors or []] == [
        "/schema/0/properties/1/logicalTypeOptions/pattern",
        "/schema/0/properties/2/quality/0/arguments/pattern",
    ]


def test_duplicate_values_on_a_property(gx: ModuleType) -> None:
    prop = with_rule(contract_property("email"), metric="duplicateValues", mustBeLessThan=1, unit="percent")

    [item] = quality_only(suite_of(KEY, prop))

    assert (item["type"], item["kwargs"]) == (
        "expect_column_values_to_be_unique",
        {"column": "email", "mostly": 0.99},
    )
    assert item["meta"]["dimension"] == "uniqueness"
    build_gx(gx, item)


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        (
            {"properties": ["tenant", "order"]},
            ("expect_compound_columns_to_be_unique", {"column_list": ["tenant", "order"]}),
        ),
        ({"properties": ["order"]}, ("expect_column_values_to_be_unique", {"column": "order"})),
        (None, ("expect_compound_columns_to_be_unique", {"column_list": ["tenant", "order", "note"]})),
    ],
)
def test_duplicate_values_on_the_schema_object(
    gx: ModuleType, arguments: dict[str, Any] | None, expected: tuple[str, dict[str, Any]]
) -> None:
    rule: dict[str, Any] = {"metric": "duplicateValues", "mustBe": 0}
    if arguments is not None:
        rule["arguments"] = arguments

    items = quality_only(
        suite_of(
            contract_property("tenant"),
            contract_property("order"),
            contract_property("note"),
            object_quality=[rule],
        )
    )

    assert [(item["type"], item["kwargs"]) for item in items] == [expected]
    assert items[0]["meta"]["path"] == "/schema/0/quality/0"
    build_gx(gx, items[0])


def test_schema_level_duplicates_must_name_existing_properties() -> None:
    rule = {"metric": "duplicateValues", "mustBe": 0, "arguments": {"properties": ["id", "ghost"]}}

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, object_quality=[rule])

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/quality/0/arguments/properties/1"]


@pytest.mark.parametrize(
    ("threshold", "expected"),
    [
        ({"mustBeGreaterThan": 0}, ("expect_table_row_count_to_be_between", {"min_value": 1})),
        ({"mustBeGreaterOrEqualTo": 10}, ("expect_table_row_count_to_be_between", {"min_value": 10})),
        ({"mustBeLessThan": 100}, ("expect_table_row_count_to_be_between", {"max_value": 99})),
        ({"mustBeLessOrEqualTo": 100}, ("expect_table_row_count_to_be_between", {"max_value": 100})),
        (
            {"mustBeBetween": [100, 120]},
            ("expect_table_row_count_to_be_between", {"min_value": 100, "max_value": 120}),
        ),
        ({"mustBe": 42}, ("expect_table_row_count_to_equal", {"value": 42})),
    ],
)
def test_row_count(gx: ModuleType, threshold: dict[str, Any], expected: tuple[str, dict[str, Any]]) -> None:
    [item] = quality_only(suite_of(KEY, object_quality=[{"metric": "rowCount", **threshold}]))

    assert (item["type"], item["kwargs"]) == expected
    assert item["meta"]["dimension"] == "volume"
    build_gx(gx, item)


@pytest.mark.parametrize("threshold", [{"mustNotBe": 0}, {"mustNotBeBetween": [0, 10]}])
def test_row_count_operators_gx_cannot_express_are_refused(threshold: dict[str, Any]) -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, object_quality=[{"metric": "rowCount", **threshold}])

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [("/schema/0/quality/0", "threshold")]


@pytest.mark.parametrize(
    ("where", "metric"),
    [
        ("property", "rowCount"),
        ("object", "nullValues"),
        ("object", "invalidValues"),
        ("object", "missingValues"),
    ],
)
def test_metrics_at_the_wrong_level_are_refused(where: str, metric: str) -> None:
    rule = {"metric": metric, "mustBe": 0}
    if where == "property":
        document = contract_document(KEY, with_rule(contract_property("x"), **rule))
        path = "/schema/0/properties/1/quality/0/metric"
    else:
        document = contract_document(KEY, object_quality=[rule])
        path = "/schema/0/quality/0/metric"

    with pytest.raises(ContractInvalid) as caught:
        parsed(document)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [(path, "metric")]


GX_IMPLEMENTATIONS = [
    "type: expect_column_mean_to_be_between\nkwargs:\n  minValue: -120\n  maxValue: 600\n",
    {"type": "expect_column_mean_to_be_between", "kwargs": {"min_value": -120, "max_value": 600}},
    {"type": "ExpectColumnMeanToBeBetween", "kwargs": {"minValue": -120, "maxValue": 600}},
    '{"expectation_type": "expect_column_mean_to_be_between", "kwargs": {"min_value": -120, "max_value": 600}}',
]


@pytest.mark.parametrize("implementation", GX_IMPLEMENTATIONS)
@pytest.mark.parametrize("engine", ["greatExpectations", "great-expectations", "gx"])
def test_great_expectations_rules_are_passed_through(
    gx: ModuleType, implementation: Any, engine: str
) -> None:
    prop = with_rule(
        contract_property("delay", "integer"),
        type="custom",
        engine=engine,
        implementation=implementation,
        dimension="accuracy",
        id="mean_delay",
    )

    [item] = quality_only(suite_of(KEY, prop))

    assert item == {
        "type": "expect_column_mean_to_be_between",
        "kwargs": {"column": "delay", "min_value": -120, "max_value": 600},
        "meta": {
            "rule": "mean_delay",
            "dimension": "validity",
            "source": "quality",
            "path": "/schema/0/properties/1/quality/0",
        },
    }
    build_gx(gx, item)


def test_a_schema_level_great_expectations_rule_keeps_its_meta(gx: ModuleType) -> None:
    rule = {
        "type": "custom",
        "engine": "greatExpectations",
        "implementation": {
            "type": "expect_column_pair_values_a_to_be_greater_than_b",
            "kwargs": {"columnA": "updated_at", "columnB": "created_at", "orEqual": True},
            "meta": {"owner": "quality-team"},
        },
    }

    [item] = quality_only(
        suite_of(KEY, contract_property("created_at"), contract_property("updated_at"), object_quality=[rule])
    )

    assert item["kwargs"] == {"column_A": "updated_at", "column_B": "created_at", "or_equal": True}
    assert item["meta"]["owner"] == "quality-team"
    assert item["meta"]["dimension"] == "consistency"
    build_gx(gx, item)


@pytest.mark.parametrize(
    "implementation",
    [
        "type: [unclosed",
        "just text",
        {"type": "check_everything"},
        {"type": "expect_x", "kwargs": [1]},
        "a: &a 1\nb: *a\n",
    ],
)
def test_great_expectations_rules_that_cannot_run_are_refused(implementation: Any) -> None:
    prop = with_rule(
        contract_property("x"), type="custom", engine="greatExpectations", implementation=implementation
    )

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/quality/0/implementation", "gx-implementation")
    ]


def test_rules_citybase_does_not_run_are_kept_but_ignored() -> None:
    prop = contract_property(
        "x",
        quality=[
            {"type": "text", "description": "Looks right."},
            {"type": "sql", "query": "SELECT COUNT(*) FROM t WHERE x IS NULL", "mustBe": 0},
            {"type": "custom", "engine": "soda", "implementation": "type: duplicate_percent"},
        ],
    )

    contract = contract_with(KEY, prop)

    assert quality_only(expectation_suite(contract)) == []
    assert len(contract.raw["schema"][0]["properties"][1]["quality"]) == 3


def test_an_expectation_derived_twice_appears_once() -> None:
    prop = with_rule(contract_property("x", required=True), metric="nullValues", mustBe=0)

    suite = suite_of(KEY, prop)

    not_null = [item for item in suite if item["kwargs"] == {"column": "x"} and "not_be_null" in item["type"]]
    assert len(not_null) == 1
    assert not_null[0]["meta"]["source"] == "quality"
    assert not_null[0]["meta"]["path"] == "/schema/0/properties/1/quality/0"


def test_nested_properties_are_left_to_the_record_schema() -> None:
    address = contract_property("address", "object", properties=[contract_property("street", required=True)])

    columns = {item["kwargs"].get("column") for item in suite_of(KEY, address)}

    assert columns == {"id", "address"}


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


@pytest.mark.parametrize(
    ("logical_type", "value"), [("timestamp", 0), ("timestamp", "first"), ("timestamp", False), ("string", 1)]
)
def test_an_event_time_mark_off_a_time_or_without_a_rank_is_refused(logical_type: str, value: Any) -> None:
    prop = contract_property(
        "at", logical_type, customProperties=[{"property": "citybase.eventTime", "value": value}]
    )

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/customProperties/0/value", "event-time")
    ]
