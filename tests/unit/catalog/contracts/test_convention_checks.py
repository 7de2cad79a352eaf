"""What parse refuses because a derivation could not follow it: each error points at its culprit."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog.contracts.odcs import ContractInvalid
from tests.support.contracts import (
    KEY_PROPERTY,
    contract_document,
    contract_property,
    contract_with,
    parsed,
    with_rule,
)

# --- key -------------------------------------------------------------------------------------


def test_a_taken_primary_key_position_is_refused() -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(
            contract_property("a", primaryKey=True, primaryKeyPosition=1),
            contract_property("b", primaryKey=True, primaryKeyPosition=1),
        )

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/properties/1/primaryKeyPosition"]


# --- masking ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["blur", 3, {"kind": "partial", "keepPrefix": -1}, {"kind": "hash", "salt": "x"}, {"keepPrefix": 3}],
)
def test_malformed_masking_rules_are_refused_at_parse(value: Any) -> None:
    prop = contract_property("x", customProperties=[{"property": "citybase.masking", "value": value}])

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/customProperties/0/value", "masking")
    ]


# --- event time ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("logical_type", "value"), [("timestamp", 0), ("timestamp", "first"), ("timestamp", False), ("string", 1)]
)
def test_an_event_time_mark_off_a_time_or_without_a_rank_is_refused(logical_type: str, value: Any) -> None:
    prop = contract_property(
        "at", logical_type, customProperties=[{"property": "citybase.eventTime", "value": value}]
    )

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/customProperties/0/value", "event-time")
    ]


# --- SLA -------------------------------------------------------------------------------------


def test_an_sla_duration_that_does_not_parse_is_refused_at_parse() -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(
            KEY_PROPERTY,
            slaProperties=[{"property": "frequency", "value": "often"}, {"property": "x", "value": 1}],
        )

    assert [e.path for e in caught.value.errors or []] == ["/slaProperties/0/value"]


# --- dataset policy --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("citybase.classification", "secret"),
        ("citybase.compatibility", "backward"),
        ("citybase.department", "Putuo District"),
        ("citybase.department", 7),
        ("citybase.partitions", 0),
        ("citybase.partitions", 65),
        ("citybase.partitions", "six"),
        ("citybase.expectedRate", -5),
        ("citybase.expectedRate", "fast"),
    ],
)
def test_a_malformed_policy_is_refused(name: str, value: Any) -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, customProperties=[{"property": name, "value": value}])

    assert [e.path for e in caught.value.errors or []] == ["/customProperties/0/value"]


# --- quality rules ---------------------------------------------------------------------------


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
        contract_with(KEY_PROPERTY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/quality/0", "threshold")
    ]


def test_invalid_values_need_valid_values_or_a_pattern() -> None:
    prop = with_rule(contract_property("unit"), metric="invalidValues", mustBe=0)

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, prop)

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/properties/1/quality/0/arguments"]


def test_a_pattern_that_does_not_compile_is_refused() -> None:
    bad = contract_property("a", logicalTypeOptions={"pattern": "([a-z"})
    worse = with_rule(contract_property("b"), metric="invalidValues", arguments={"pattern": "*"}, mustBe=0)

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, bad, worse)

    assert [e.path for e in caught.value.errors or []] == [
        "/schema/0/properties/1/logicalTypeOptions/pattern",
        "/schema/0/properties/2/quality/0/arguments/pattern",
    ]


def test_schema_level_duplicates_must_name_existing_properties() -> None:
    rule = {"metric": "duplicateValues", "mustBe": 0, "arguments": {"properties": ["id", "ghost"]}}

    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, object_quality=[rule])

    assert [e.path for e in caught.value.errors or []] == ["/schema/0/quality/0/arguments/properties/1"]


@pytest.mark.parametrize("threshold", [{"mustNotBe": 0}, {"mustNotBeBetween": [0, 10]}])
def test_row_count_operators_gx_cannot_express_are_refused(threshold: dict[str, Any]) -> None:
    with pytest.raises(ContractInvalid) as caught:
        contract_with(KEY_PROPERTY, object_quality=[{"metric": "rowCount", **threshold}])

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
        document = contract_document(KEY_PROPERTY, with_rule(contract_property("x"), **rule))
        path = "/schema/0/properties/1/quality/0/metric"
    else:
        document = contract_document(KEY_PROPERTY, object_quality=[rule])
        path = "/schema/0/quality/0/metric"

    with pytest.raises(ContractInvalid) as caught:
        parsed(document)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [(path, "metric")]


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
        contract_with(KEY_PROPERTY, prop)

    assert [(e.path, e.rule) for e in caught.value.errors or []] == [
        ("/schema/0/properties/1/quality/0/implementation", "gx-implementation")
    ]
