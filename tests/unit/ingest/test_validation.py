"""Record validation: JSON Pointer, rule and a readable message for every broken rule; one
compiled validator per contract version; the same format checks whichever engine runs."""

from __future__ import annotations

from typing import Any

import pytest

from services.ingest.projection import CatalogProjection
from services.ingest.validation import (
    RecordValidator,
    Violation,
    exceeds_depth,
    is_date,
    is_date_time,
    is_time,
    is_uuid,
    needs_full_validator,
)
from tests.factories import bus_arrival_record, example_contract
from tests.support.ingest_units import DATASET, contract_event, contract_state, load


@pytest.fixture(scope="module")
def arrivals() -> RecordValidator:
    return RecordValidator(contract_state(example_contract("transport.bus-arrivals"))["record_schema"])


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"delay_s": "late"}, Violation("/delay_s", "type", "delay_s must be integer or null, not string")),
        ({"delay_s": True}, Violation("/delay_s", "type", "delay_s must be integer or null, not boolean")),
        ({"delay_s": 9000}, Violation("/delay_s", "maximum", "delay_s must be at most 7200, not 9000")),
        ({"delay_s": -4000}, Violation("/delay_s", "minimum", "delay_s must be at least -3600, not -4000")),
        ({"stop_id": "X1"}, Violation("/stop_id", "pattern", "stop_id must match the pattern ^S[0-9]{4}$")),
        (
            {"route_id": ""},
            Violation("/route_id", "minLength", "route_id must have at least 1 characters, not 0"),
        ),
        (
            {"occupancy": "PACKED"},
            Violation("/occupancy", "enum", "occupancy must be one of "),
        ),
        (
            {"arrived_at": "2026-11-24T08:15:30"},
            Violation(
                "/arrived_at", "format", "arrived_at must be a valid date-time (RFC 3339, with a time offset)"
            ),
        ),
        (
            {"arrival_id": "not-a-uuid"},
            Violation("/arrival_id", "pattern", "arrival_id must match the pattern"),
        ),
        (
            {"colour": "red"},
            Violation("/colour", "additionalProperties", "colour is not a field of the contract"),
        ),
        ({"stop_id": None}, Violation("/stop_id", "type", "stop_id must be string, not null")),
    ],
)
def test_a_broken_rule_names_its_path_rule_and_reason(
    arrivals: RecordValidator, change: dict[str, Any], expected: Violation
) -> None:
    violations = arrivals.violations(bus_arrival_record(**change))
    assert len(violations) == 1
    (found,) = violations
    assert (found.path, found.rule) == (expected.path, expected.rule)
    assert found.message.startswith(expected.message)


def test_each_missing_required_field_points_at_itself(arrivals: RecordValidator) -> None:
    record = bus_arrival_record()
    del record["stop_id"], record["vehicle_id"]
    violations = arrivals.violations(record)
    assert [(v.path, v.rule, v.message) for v in violations] == [
        ("/stop_id", "required", "stop_id is required"),
        ("/vehicle_id", "required", "vehicle_id is required"),
    ]


def test_a_record_that_is_not_an_object_is_a_type_error_of_the_record(arrivals: RecordValidator) -> None:
    assert arrivals.violations([1, 2]) == [Violation("", "type", "the record must be object, not array")]


def test_a_valid_record_has_no_violation(arrivals: RecordValidator) -> None:
    assert arrivals.violations(bus_arrival_record()) == []
    assert arrivals.violations(bus_arrival_record(delay_s=None, occupancy=None)) == []
    assert arrivals.engine == "fastjsonschema"


NESTED = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "site": {
            "type": "object",
            "properties": {
                "street/no": {"type": "string"},
                "floors": {"type": "array", "items": {"type": "integer"}},
            },
            "required": ["street/no"],
            "additionalProperties": False,
        }
    },
    "required": ["site"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("schema_extra", [{}, {"prefixItems": [{"type": "object"}]}])
def test_nested_paths_are_json_pointers_on_both_engines(schema_extra: dict[str, Any]) -> None:
    validator = RecordValidator({**NESTED, **schema_extra})
    assert validator.engine == ("jsonschema" if schema_extra else "fastjsonschema")
    assert [(v.path, v.rule) for v in validator.violations({"site": {"floors": [1]}})] == [
        ("/site/street~1no", "required")
    ]
    assert [
        (v.path, v.rule) for v in validator.violations({"site": {"street/no": "1", "floors": [1, "2"]}})
    ] == [("/site/floors/1", "type")]
    assert validator.violations({"site": {"street/no": "1", "floors": [1, "2"]}})[0].message == (
        "site.floors[1] must be integer, not string"
    )


def test_the_fallback_engine_checks_formats_like_fastjsonschema() -> None:
    """jsonschema alone would skip date-time without an optional package: ingest brings its own."""
    schema = {
        "type": "object",
        "properties": {
            "at": {"type": "string", "format": "date-time"},
            "day": {"type": "string", "format": "date"},
        },
        "dependentRequired": {"at": ["day"]},
    }
    assert needs_full_validator(schema)
    validator = RecordValidator(schema)
    assert validator.engine == "jsonschema"
    assert validator.fallback_reason
    assert validator.violations({"at": "2026-11-24T08:00:00Z", "day": "2026-11-24"}) == []
    assert [
        (v.path, v.rule) for v in validator.violations({"at": "2026-11-24 08:00", "day": "2026-02-30"})
    ] == [
        ("/at", "format"),
        ("/day", "format"),
    ]
    assert [v.rule for v in validator.violations({"at": "2026-11-24T08:00:00Z"})] == ["dependentRequired"]


def test_keywords_under_properties_are_names_not_keywords() -> None:
    assert not needs_full_validator({"properties": {"prefixItems": {"type": "string"}}})
    assert needs_full_validator({"properties": {"a": {"items": [{"type": "string"}]}}})


@pytest.mark.parametrize(
    ("check", "value", "valid"),
    [
        (is_date, "2026-11-24", True),
        (is_date, "2026-02-30", False),
        (is_date, "2026-1-24", False),
        (is_time, "08:15:30Z", True),
        (is_time, "08:15:30.25+08:00", True),
        (is_time, "08:15:30", False),
        (is_time, "24:00:00Z", False),
        (is_date_time, "2026-11-24T08:15:30Z", True),
        (is_date_time, "2026-11-24t08:15:30-05:30", True),
        (is_date_time, "2026-11-24 08:15:30Z", False),
        (is_date_time, "2026-11-24T08:15:30", False),
        (is_uuid, "123e4567-e89b-12d3-a456-426614174000", True),
        (is_uuid, "123e4567e89b12d3a456426614174000", False),
    ],
)
def test_format_checks_follow_rfc_3339(check: Any, value: str, valid: bool) -> None:
    assert check(value) is valid


def test_nesting_depth_is_measured_without_recursion() -> None:
    deep: Any = 1
    for _ in range(100_000):
        deep = [deep]
    assert exceeds_depth(deep, 32)
    assert not exceeds_depth({"a": [{"b": 1}]}, 3)
    assert exceeds_depth({"a": [{"b": []}]}, 3)
    assert not exceeds_depth("text", 1)


def test_a_contract_version_is_compiled_once_even_when_replayed() -> None:
    projection = CatalogProjection()
    load(projection, contract_event())
    contract = projection.contract(DATASET, "1.0.0")
    assert contract is not None and not contract.compiled
    first = contract.validator
    assert contract.validator is first
    load(projection, contract_event())  # the compacted topic replays the same version
    again = projection.contract(DATASET, "1.0.0")
    assert again is contract and again.validator is first
