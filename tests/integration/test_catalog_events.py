"""Every catalog change is announced on platform.catalog after commit, keyed by entity, in the
shapes of contracts/events/: replaying the topic rebuilds the catalog's current state."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from services.catalog import examples as catalog_examples
from services.catalog.datasets import service as datasets_service
from services.catalog.runtime import CatalogRuntime
from services.catalog.schemas import DatasetUpdate
from services.common import catalog_events, db
from services.common.worker import wait_until
from tests.factories import EXAMPLES
from tests.support.services import CatalogHarness

EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"
SCHEMA_BY_TYPE = {
    schema["x-citybase-event-type"]: Draft202012Validator(
        schema, format_checker=Draft202012Validator.FORMAT_CHECKER
    )
    for schema in (json.loads(path.read_text()) for path in EVENT_SCHEMAS.glob("catalog.*.json"))
}


def _replay(
    catalog: CatalogHarness,
) -> tuple[dict[str, dict[str, Any]], dict[str, dict[str, Any]], list[str]]:
    """Fold platform.catalog from the beginning into datasets and contract versions by key."""
    consumer = catalog.runtime.bus.consumer(None, [catalog_events.TOPIC])
    datasets: dict[str, dict[str, Any]] = {}
    contracts: dict[str, dict[str, Any]] = {}
    problems: list[str] = []
    try:
        while messages := consumer.poll(0.5, 1000):
            for message in messages:
                event = catalog_events.read_catalog_event(message)
                assert event is not None
                event_type, payload = event
                problems += [
                    f"{event_type}: {error.message}"
                    for error in SCHEMA_BY_TYPE[event_type].iter_errors(payload)
                ]
                if event_type == catalog_events.DATASET:
                    assert message.key == f"dataset:{payload['id']}".encode()
                    datasets[payload["id"]] = payload
                elif event_type == catalog_events.CONTRACT_VERSION:
                    contracts[f"{payload['dataset_id']}:{payload['version']}"] = payload
    finally:
        consumer.close()
    return datasets, contracts, problems


def test_replaying_platform_catalog_rebuilds_datasets_and_active_contracts(catalog: CatalogHarness) -> None:
    events = catalog.runtime.service_as(CatalogRuntime).events
    with db.unit_of_work(catalog.runtime.sessions) as session:
        catalog_examples.load_examples(session, events=events, directory=EXAMPLES)
    with db.unit_of_work(catalog.runtime.sessions) as session:
        datasets_service.change_dataset(
            session,
            events=events,
            dataset_id="market.inspections",
            payload=DatasetUpdate(compatibility_mode="FULL", title="Inspections"),
        )
    relay = catalog.runtime.service_as(CatalogRuntime).outbox
    assert wait_until(lambda: relay.pending() == 0, timeout_s=10)

    datasets, contracts, problems = _replay(catalog)
    assert problems == []
    rows = catalog.call("GET", "/v1/datasets", params={"limit": 200}).json()["items"]
    assert datasets == {row["id"]: row for row in rows}
    assert datasets["market.inspections"]["compatibility_mode"] == "FULL"
    for dataset_id, dataset in datasets.items():
        active = contracts[f"{dataset_id}:{dataset['current_version']}"]
        stored = catalog.call(
            "GET", f"/v1/datasets/{dataset_id}/contract-versions/{dataset['current_version']}"
        ).json()
        assert active["record_schema"] == stored["record_schema"]
        assert active["fingerprint"] == stored["fingerprint"]


def test_a_rolled_back_change_announces_nothing(catalog: CatalogHarness) -> None:
    relay = catalog.runtime.service_as(CatalogRuntime).outbox
    assert wait_until(lambda: relay.pending() == 0, timeout_s=10)
    before = _replay(catalog)[0]
    try:
        with db.unit_of_work(catalog.runtime.sessions) as session:
            catalog_examples.load_examples(
                session, events=catalog.runtime.service_as(CatalogRuntime).events, directory=EXAMPLES
            )
            raise RuntimeError("abandon the transaction")
    except RuntimeError:
        pass
    assert relay.pending() == 0
    assert _replay(catalog)[0] == before == {}
