"""Factories for contract test data: ODCS documents, parsed contracts and example records.

Documents are built as dicts and serialised by the test (YAML or JSON) so that each test states
only what it is about; records are realistic rows of the five example datasets.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from services.catalog.contracts.odcs import ParsedContract, parse_contract

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "contracts" / "datasets"


def contract_property(name: str, logical_type: str | None = "string", **fields: Any) -> dict[str, Any]:
    """One ODCS schema property; ``fields`` are ODCS keys as written (``logicalTypeOptions``...)."""
    prop: dict[str, Any] = {"name": name}
    if logical_type is not None:
        prop["logicalType"] = logical_type
    prop.update(fields)
    return prop


KEY_PROPERTY = contract_property("id", primaryKey=True, primaryKeyPosition=1, required=True)
"""A string primary key ``id``, the one property most test contracts start with."""


def schema_object(name: str = "records", *properties: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"name": name, "properties": list(properties), **fields}


def contract_document(
    *properties: dict[str, Any],
    object_quality: list[dict[str, Any]] | None = None,
    **top_level: Any,
) -> dict[str, Any]:
    """A minimal valid ODCS v3.1.0 contract with one schema object holding ``properties``.

    Without properties the object has a single primary key ``id``. Top-level keys override.
    """
    if not properties:
        properties = (KEY_PROPERTY,)
    obj = schema_object("records", *properties)
    if object_quality is not None:
        obj["quality"] = object_quality
    document: dict[str, Any] = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "test.records",
        "name": "Test records",
        "version": "1.0.0",
        "status": "active",
        "schema": [obj],
    }
    document.update(top_level)
    return document


def as_yaml(document: dict[str, Any]) -> str:
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def as_json(document: dict[str, Any]) -> str:
    return json.dumps(document, ensure_ascii=False, indent=2)


def parsed(document: dict[str, Any] | None = None, **kwargs: Any) -> ParsedContract:
    """Parse ``document`` (default: :func:`contract_document` of ``kwargs``) through the real door."""
    return parse_contract(as_yaml(document if document is not None else contract_document(**kwargs)))


def contract_with(*properties: dict[str, Any], **kwargs: Any) -> ParsedContract:
    return parsed(contract_document(*properties, **kwargs))


def with_rule(prop: dict[str, Any], **rule: Any) -> dict[str, Any]:
    """``prop`` with one more quality rule (a copy)."""
    prop = copy.deepcopy(prop)
    prop.setdefault("quality", []).append(rule)
    return prop


# --- example datasets -------------------------------------------------------------------------


def example_path(dataset_id: str, version: str) -> Path:
    return EXAMPLES_DIR / dataset_id / f"{version}.yaml"


def example_contract(dataset_id: str, version: str) -> ParsedContract:
    return parse_contract(example_path(dataset_id, version).read_bytes())


def bus_arrival_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "arrival_id": str(uuid.uuid4()),
        "stop_id": "S0042",
        "route_id": "71",
        "vehicle_id": "沪B-12345",
        "arrived_at": "2026-11-24T08:15:30+08:00",
        "delay_s": 42,
        "occupancy": "MANY_SEATS_AVAILABLE",
    }
    return {**record, **overrides}


def outpatient_visit_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "visit_id": "OV-20261124-000123",
        "hospital_id": "H31001",
        "clinic": "cardiology",
        "patient_id": "310104198001011234",
        "age_band": "40-59",
        "wait_minutes": 35,
        "registered_at": "2026-11-24T08:02:11+08:00",
    }
    return {**record, **overrides}


def inspection_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "inspection_id": "INSP-2026-004211",
        "licence_number": "91310107MA1G8XKQ3T",
        "district": "Jing'an",
        "result": "rectification-ordered",
        "inspected_at": "2026-11-24T10:40:00+08:00",
        "inspector_phone": "13812345678",
    }
    return {**record, **overrides}


def building_permit_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "permit_id": "BP-2026-00123",
        "district": "Pudong",
        "latitude": 31.2304,
        "longitude": 121.4737,
        "floor_area_m2": 12850.5,
        "issued_at": "2026-11-20T09:00:00+08:00",
    }
    return {**record, **overrides}


def service_request_record(**overrides: Any) -> dict[str, Any]:
    record = {
        "request_id": "SR-20261124-00042",
        "category": "elder-care",
        "street": "Changshou Road",
        "status": "assigned",
        "resident_phone": "13912345678",
        "created_at": "2026-11-24T07:55:00+08:00",
        "updated_at": "2026-11-24T08:30:00+08:00",
    }
    return {**record, **overrides}


EXAMPLE_RECORDS: dict[str, Callable[..., dict[str, Any]]] = {
    "transport.bus-arrivals": bus_arrival_record,
    "health.outpatient-visits": outpatient_visit_record,
    "market.inspections": inspection_record,
    "spatial.building-permits": building_permit_record,
    "community.service-requests": service_request_record,
}
"""A realistic record of each example dataset, valid under every version of its contract."""

BROKEN_RECORDS: dict[str, Callable[[], dict[str, Any]]] = {
    "transport.bus-arrivals": lambda: bus_arrival_record(occupancy="PACKED"),
    "health.outpatient-visits": lambda: outpatient_visit_record(age_band="teen"),
    "market.inspections": lambda: inspection_record(district="Nanhui"),
    "spatial.building-permits": lambda: building_permit_record(latitude=39.9),
    "community.service-requests": lambda: service_request_record(resident_phone="12345"),
}
"""A record of each example dataset that breaks one rule of every version of its contract."""
