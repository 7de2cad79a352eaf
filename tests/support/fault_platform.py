"""The platform of the fault tests that kill service processes: a catalog and an ingest in the
test's process on the shared Kafka, the services under test as ``citybase serve`` processes, and
what a scenario does with them (get a grant, subscribe, poll, acknowledge)."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.common.worker import wait_until
from services.ingest.app import create_app as create_ingest
from services.ingest.runtime import IngestRuntime
from services.ingest.settings import IngestSettings
from tests.factories import access_request_create, embedded_settings, scenario_create
from tests.support.http import serve
from tests.support.processes import Catalog, Dataset, ServiceProcess, running_catalog

FIELDS = ["arrival_id", "stop_id", "route_id", "arrived_at", "delay_s"]


@dataclass
class Platform:
    catalog: Catalog
    ingest_url: str
    kafka: str
    root: Path

    def publish(self, dataset: Dataset, records: list[dict[str, Any]], **headers: str) -> httpx.Response:
        return httpx.post(
            f"{self.ingest_url}/v1/datasets/{dataset.id}/records",
            json=records,
            headers={"Authorization": f"Bearer {dataset.key}", **headers},
            timeout=60,
        )

    def process(self, service: str, **env: str) -> ServiceProcess:
        return ServiceProcess(
            service,
            self.root,
            {
                "CITYBASE_BUS_URL": f"kafka://{self.kafka}",
                "CITYBASE_DATABASE_URL": f"sqlite:///{self.root / f'{service}-{uuid.uuid4().hex[:6]}.db'}",
                **env,
            },
        )


@contextlib.contextmanager
def running_platform(kafka_bootstrap: str, root: Path) -> Iterator[Platform]:
    """A catalog and an ingest in this process, on the shared Kafka and their own SQLite files."""
    bus_url = f"kafka://{kafka_bootstrap}"
    with running_catalog(root, database_url=f"sqlite:///{root / 'catalog.db'}", bus_url=bus_url) as catalog:
        ingest = create_ingest(
            embedded_settings(
                root / "ingest", database_url=f"sqlite:///{root / 'ingest.db'}", bus_url=bus_url
            ),
            ingest_settings=IngestSettings(raw_enabled=False),
        )
        with serve(ingest) as ingest_url:
            assert ingest.state.runtime.service_as(IngestRuntime).read_model.wait_caught_up(60)
            yield Platform(catalog, ingest_url, kafka_bootstrap, root)


@dataclass
class Grant:
    scenario_id: str
    scenario_key: str
    approver_key: str
    grant_id: str


def grant_for(platform: Platform, dataset: Dataset) -> Grant:
    catalog = platform.catalog
    approver = catalog.harness.principal_key(
        f"{dataset.department_id}-approver", "approver", dataset.department_id
    )
    scenario_id = f"scenario-{uuid.uuid4().hex[:8]}"
    assert catalog.call("POST", "/v1/scenarios", json=scenario_create(scenario_id)).status_code == 201
    issued = catalog.call("POST", f"/v1/scenarios/{scenario_id}/keys", json={"name": "faults"})
    assert issued.status_code == 201, issued.text
    scenario_key = issued.json()["key"]
    catalog.harness.wait_for_key(scenario_key, timeout_s=15)
    asked = catalog.call(
        "POST", "/v1/access-requests", scenario_key, json=access_request_create(dataset.id, FIELDS)
    )
    assert asked.status_code == 201, asked.text
    # bus-arrivals is an open dataset: its access requests are approved by policy at once
    assert asked.json()["status"] == "approved", asked.text
    catalog.relayed()
    return Grant(scenario_id, scenario_key, approver, asked.json()["grant_id"])


def poll(feeds: ServiceProcess, grant: Grant, subscription_id: str, max_records: int) -> httpx.Response:
    return httpx.get(
        f"{feeds.url}/v1/subscriptions/{subscription_id}/records",
        params={"max": max_records, "wait": 2},
        headers={"Authorization": f"Bearer {grant.scenario_key}"},
        timeout=30,
    )


def ack(feeds: ServiceProcess, grant: Grant, subscription_id: str, cursor: str) -> None:
    acked = httpx.post(
        f"{feeds.url}/v1/subscriptions/{subscription_id}/ack",
        json={"cursor": cursor},
        headers={"Authorization": f"Bearer {grant.scenario_key}"},
        timeout=30,
    )
    assert acked.status_code == 200, acked.text


def subscribe(feeds: ServiceProcess, grant: Grant, dataset: Dataset) -> str:
    created: dict[str, Any] = {}

    def subscribed() -> bool:
        response = httpx.post(
            f"{feeds.url}/v1/subscriptions",
            json={"dataset": dataset.id, "start": "earliest"},
            headers={"Authorization": f"Bearer {grant.scenario_key}"},
            timeout=30,
        )
        if response.status_code == 201:
            created.update(response.json())
        return response.status_code == 201

    assert wait_until(subscribed, 15), "the grant did not reach feeds"
    return str(created["id"])


def record_ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["id"] for record in records}
