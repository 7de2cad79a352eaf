"""What a contract declares about its dataset besides the record shape: key, sensitive fields, policy."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from open_data_contract_standard.model import SchemaProperty

from services.catalog.contracts.conventions import (
    CLASSIFICATION_PROPERTY,
    COMPATIBILITY_PROPERTY,
    DEPARTMENT_PROPERTY,
    CompatibilityModeName,
    DatasetClassification,
    MaskingRule,
    masking_rule,
    schema_object,
)
from services.catalog.contracts.parsed import ParsedContract


@dataclass(frozen=True)
class DatasetPolicy:
    """The citybase policy a contract declares for its dataset (None for what it leaves out)."""

    classification: DatasetClassification | None = None
    department: str | None = None
    compatibility: CompatibilityModeName | None = None


def primary_key(contract: ParsedContract, schema_name: str | None = None) -> list[str]:
    """Primary-key fields in ``primaryKeyPosition`` order (unpositioned ones last, as declared)."""
    keyed = [prop for prop in schema_object(contract, schema_name).properties or () if prop.primaryKey]
    positioned = sorted(
        (prop for prop in keyed if (prop.primaryKeyPosition or -1) > 0),
        key=lambda prop: prop.primaryKeyPosition or 0,
    )
    return [
        prop.name or "" for prop in [*positioned, *(p for p in keyed if (p.primaryKeyPosition or -1) <= 0)]
    ]


def sensitive_fields(contract: ParsedContract, schema_name: str | None = None) -> dict[str, MaskingRule]:
    """Sensitive fields by path (``a``, ``a.b``, ``a[].b``) with the masking rule feeds apply."""
    found: dict[str, MaskingRule] = {}

    def walk(properties: Sequence[SchemaProperty], prefix: str) -> None:
        for prop in properties:
            path = prefix + (prop.name or "")
            rule = masking_rule(prop)
            if rule is not None:
                found[path] = rule
            if prop.properties:
                walk(prop.properties, path + ".")
            if prop.items is not None and prop.items.properties:
                walk(prop.items.properties, path + "[].")

    walk(schema_object(contract, schema_name).properties or [], "")
    return found


def dataset_policy(contract: ParsedContract) -> DatasetPolicy:
    """Classification, owning department and default compatibility mode the contract declares."""
    values = {custom.property: custom.value for custom in contract.model.customProperties or ()}
    return DatasetPolicy(
        classification=values.get(CLASSIFICATION_PROPERTY),
        department=values.get(DEPARTMENT_PROPERTY),
        compatibility=values.get(COMPATIBILITY_PROPERTY),
    )
