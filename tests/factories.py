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


# --- feeds: grant events as the catalog publishes them -----------------------------------------


def grant_state(scenario_id: str, dataset_id: str, **overrides: Any) -> dict[str, Any]:
    """The payload of a ``city.citybase.catalog.grant.v1`` event: the whole current state of a grant.

    Valid from an hour ago for a day, every bus-arrivals field, no masking, no filter, no quota.
    """
    from datetime import UTC, datetime, timedelta

    now = datetime.now(UTC)
    state: dict[str, Any] = {
        "id": "gr-" + uuid.uuid4().hex[:22],
        "version": 1,
        "scenario_id": scenario_id,
        "dataset_id": dataset_id,
        "request_id": "ar-" + uuid.uuid4().hex[:22],
        "status": "active",
        "fields": ["arrival_id", "stop_id", "route_id", "vehicle_id", "arrived_at", "delay_s", "occupancy"],
        "masking": {},
        "row_filter": None,
        "valid_from": (now - timedelta(hours=1)).isoformat(),
        "expires_at": (now + timedelta(days=1)).isoformat(),
        "quota": None,
        "purpose": "one-stop hospital visit: arrival times near hospitals",
        "purpose_category": "public_service",
        "updated_at": now.isoformat(),
    }
    state.update(overrides)
    return state


def next_grant_version(state: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """The grant's next version with ``changes`` (the catalog bumps ``version`` on every change)."""
    from datetime import UTC, datetime

    return {**state, **changes, "version": state["version"] + 1, "updated_at": datetime.now(UTC).isoformat()}


def grant_record(state: dict[str, Any]) -> Any:
    """The record on ``platform.catalog`` announcing ``state``, keyed ``grant:<id>``."""
    from services.common import catalog_events

    return catalog_events.catalog_record(catalog_events.GRANT, state["id"], state)
