"""Factories for test data of the shared kernel: settings, infrastructure and events."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from services.common.envelope import CloudEvent
from services.common.settings import Settings


def embedded_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings for an app on SQLite and the embedded bus, all under ``tmp_path``."""
    return Settings(data_dir=tmp_path, environment="test", **overrides)


def bus_arrival_event(**overrides: Any) -> CloudEvent:
    data = {
        "arrival_id": str(uuid.uuid4()),
        "stop_id": "S0042",
        "route_id": "71",
        "vehicle_id": "沪B-12345",
        "arrived_at": "2026-11-24T08:15:30Z",
        "delay_s": 42,
        "occupancy": "MANY_SEATS_AVAILABLE",
    }
    fields: dict[str, Any] = {
        "type": "city.citybase.record.v1",
        "source": "/ingest/datasets/transport.bus-arrivals",
        "data": data,
        "subject": data["arrival_id"],
        "dataschema": "/catalog/v1/datasets/transport.bus-arrivals/contract/versions/1.0.0",
        "extensions": {"dataset": "transport.bus-arrivals", "contractversion": "1.0.0"},
    }
    fields.update(overrides)
    return CloudEvent(**fields)


EXAMPLES = Path(__file__).resolve().parent.parent / "contracts"


def example_contract(dataset_id: str, version: str = "1.0.0") -> str:
    """The text of one of the example ODCS contracts shipped in ``contracts/datasets``."""
    return (EXAMPLES / "datasets" / dataset_id / f"{version}.yaml").read_text(encoding="utf-8")


def evolve_contract(text: str, version: str, change: Callable[[dict[str, Any]], None] | None = None) -> str:
    """A new version of a contract: ``change`` edits the parsed document in place."""
    document = yaml.safe_load(text)
    document["version"] = version
    if change is not None:
        change(document)
    return yaml.safe_dump(document, sort_keys=False, allow_unicode=True)


def contract_property(document: dict[str, Any], name: str) -> dict[str, Any]:
    """The property ``name`` of the contract's first schema object, for ``evolve_contract`` edits."""
    return next(prop for prop in document["schema"][0]["properties"] if prop["name"] == name)


# --- ingest -------------------------------------------------------------------------------------


def ingest_contract(dataset_id: str, department_id: str, version: str = "1.0.0") -> str:
    """The bus-arrivals example contract (``version`` of it) for another dataset and owner.

    Tests that share a Kafka broker each register a dataset of their own, so that their ds., dlq.
    and raw. topics never meet.
    """

    def rename(document: dict[str, Any]) -> None:
        document["id"] = dataset_id
        for custom in document.get("customProperties") or []:
            if custom["property"] == "citybase.department":
                custom["value"] = department_id
        for schema_object in document.get("schema") or []:
            schema_object["physicalName"] = f"ds.{dataset_id}"

    return evolve_contract(example_contract("transport.bus-arrivals", version), version, rename)


def bus_arrival_record(**overrides: Any) -> dict[str, Any]:
    """One valid record of the bus-arrivals contract (1.0.0 and later)."""
    record: dict[str, Any] = {
        "arrival_id": str(uuid.uuid4()),
        "stop_id": "S0042",
        "route_id": "71",
        "vehicle_id": "沪B-12345",
        "arrived_at": "2026-11-24T08:15:30+08:00",
        "delay_s": 42,
        "occupancy": "MANY_SEATS_AVAILABLE",
    }
    record.update(overrides)
    return record


# --- authorized operation -----------------------------------------------------------------------


def scenario_create(scenario_id: str = "one-stop-visit", **overrides: Any) -> dict[str, Any]:
    """The body of POST /v1/scenarios."""
    body: dict[str, Any] = {
        "id": scenario_id,
        "name": scenario_id.replace("-", " ").title(),
        "organisation": "Shenkang Hospital Development Center",
        "description": "Books outpatient visits at the least crowded clinic.",
        "contact": "scenario-team@shdc.example.cn",
    }
    body.update(overrides)
    return body


OUTPATIENT_FIELDS = ["visit_id", "hospital_id", "clinic", "patient_id", "wait_minutes", "registered_at"]
INSPECTION_FIELDS = ["inspection_id", "district", "result", "inspected_at", "inspector_phone"]


def access_request_create(
    dataset_id: str = "market.inspections", fields: list[str] | None = None, **overrides: Any
) -> dict[str, Any]:
    """The body of POST /v1/access-requests (a request of a market-inspections' fields by default)."""
    body: dict[str, Any] = {
        "dataset_id": dataset_id,
        "purpose": "Show residents the inspection results of the shops on their street.",
        "purpose_category": "public_service",
        "fields": list(fields or INSPECTION_FIELDS),
        "duration_days": 90,
    }
    body.update(overrides)
    return body
