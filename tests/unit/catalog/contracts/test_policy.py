"""The primary key, the sensitive fields with their masking, and the dataset policy."""

from __future__ import annotations

from typing import Any

import pytest

from services.catalog.contracts.conventions import MaskingRule
from services.catalog.contracts.policy import DatasetPolicy, dataset_policy, primary_key, sensitive_fields
from tests.support.contracts import (
    KEY_PROPERTY,
    contract_property,
    contract_with,
)

# --- primary key -----------------------------------------------------------------------------


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


# --- sensitive fields ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "classification", ["sensitive", "confidential", "restricted", "personal", "pii", "PII"]
)
def test_sensitive_classifications_are_redacted_by_default(classification: str) -> None:
    contract = contract_with(KEY_PROPERTY, contract_property("x", classification=classification))

    assert sensitive_fields(contract) == {"x": MaskingRule("redact")}


@pytest.mark.parametrize("classification", ["public", "internal", "open", None])
def test_other_classifications_are_not_sensitive(classification: str | None) -> None:
    prop = (
        contract_property("x")
        if classification is None
        else contract_property("x", classification=classification)
    )

    assert sensitive_fields(contract_with(KEY_PROPERTY, prop)) == {}


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

    assert sensitive_fields(contract_with(KEY_PROPERTY, prop)) == {"x": rule}


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

    fields = sensitive_fields(contract_with(KEY_PROPERTY, resident))

    assert fields == {
        "resident.name": MaskingRule("redact"),
        "resident.contacts[].phone": MaskingRule("partial", keep_prefix=3, keep_suffix=4),
    }


# --- dataset policy --------------------------------------------------------------------------


def test_the_dataset_policy_comes_from_contract_custom_properties() -> None:
    contract = contract_with(
        KEY_PROPERTY,
        customProperties=[
            {"property": "citybase.classification", "value": "conditional"},
            {"property": "citybase.department", "value": "putuo-district"},
            {"property": "citybase.compatibility", "value": "FULL_TRANSITIVE"},
            {"property": "somethingElse", "value": 1},
        ],
    )

    assert dataset_policy(contract) == DatasetPolicy("conditional", "putuo-district", "FULL_TRANSITIVE")
    assert dataset_policy(contract_with(KEY_PROPERTY)) == DatasetPolicy()
