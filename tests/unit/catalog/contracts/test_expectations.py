"""The Great Expectations suite from the schema and from ODCS quality rules."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest

from services.catalog.contracts.expectations import expectation_class_name, expectation_suite
from tests.support.contracts import (
    KEY_PROPERTY,
    contract_property,
    contract_with,
    with_rule,
)


def build_gx(gx: ModuleType, expectation: dict[str, Any]) -> Any:
    expectation_class = getattr(gx.expectations, expectation_class_name(expectation["type"]))
    return expectation_class(**expectation["kwargs"], meta=expectation["meta"])


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

    [item] = quality_only(suite_of(KEY_PROPERTY, prop))

    assert item["type"] == "expect_column_values_to_not_be_null"
    assert item["kwargs"] == {"column": "x", **kwargs}
    assert meta.items() <= item["meta"].items()
    assert ("max_unexpected_count" in item["meta"]) == bool(meta)
    assert item["meta"]["path"] == "/schema/0/properties/1/quality/0"
    assert item["meta"]["dimension"] == "completeness"
    build_gx(gx, item)


def test_missing_values(gx: ModuleType) -> None:
    prop = with_rule(
        contract_property("email"),
        metric="missingValues",
        arguments={"missingValues": [None, "", "N/A"]},
        mustBeLessThan=5,
        unit="percent",
        id="email_present",
    )

    items = quality_only(suite_of(KEY_PROPERTY, prop))

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

    items = quality_only(suite_of(KEY_PROPERTY, prop))

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


def test_duplicate_values_on_a_property(gx: ModuleType) -> None:
    prop = with_rule(contract_property("email"), metric="duplicateValues", mustBeLessThan=1, unit="percent")

    [item] = quality_only(suite_of(KEY_PROPERTY, prop))

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
    [item] = quality_only(suite_of(KEY_PROPERTY, object_quality=[{"metric": "rowCount", **threshold}]))

    assert (item["type"], item["kwargs"]) == expected
    assert item["meta"]["dimension"] == "volume"
    build_gx(gx, item)


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

    [item] = quality_only(suite_of(KEY_PROPERTY, prop))

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
        suite_of(
            KEY_PROPERTY,
            contract_property("created_at"),
            contract_property("updated_at"),
            object_quality=[rule],
        )
    )

    assert item["kwargs"] == {"column_A": "updated_at", "column_B": "created_at", "or_equal": True}
    assert item["meta"]["owner"] == "quality-team"
    assert item["meta"]["dimension"] == "consistency"
    build_gx(gx, item)


def test_rules_citybase_does_not_run_are_kept_but_ignored() -> None:
    prop = contract_property(
        "x",
        quality=[
            {"type": "text", "description": "Looks right."},
            {"type": "sql", "query": "SELECT COUNT(*) FROM t WHERE x IS NULL", "mustBe": 0},
            {"type": "custom", "engine": "soda", "implementation": "type: duplicate_percent"},
        ],
    )

    contract = contract_with(KEY_PROPERTY, prop)

    assert quality_only(expectation_suite(contract)) == []
    assert len(contract.raw["schema"][0]["properties"][1]["quality"]) == 3


def test_an_expectation_derived_twice_appears_once() -> None:
    prop = with_rule(contract_property("x", required=True), metric="nullValues", mustBe=0)

    suite = suite_of(KEY_PROPERTY, prop)

    not_null = [item for item in suite if item["kwargs"] == {"column": "x"} and "not_be_null" in item["type"]]
    assert len(not_null) == 1
    assert not_null[0]["meta"]["source"] == "quality"
    assert not_null[0]["meta"]["path"] == "/schema/0/properties/1/quality/0"


def test_nested_properties_are_left_to_the_record_schema() -> None:
    address = contract_property("address", "object", properties=[contract_property("street", required=True)])

    columns = {item["kwargs"].get("column") for item in suite_of(KEY_PROPERTY, address)}

    assert columns == {"id", "address"}
