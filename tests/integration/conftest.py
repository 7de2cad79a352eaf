"""Fixtures for tests that run a service app for real (SQLite and PostgreSQL, embedded bus)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.catalog.app import create_app as create_catalog
from services.catalog.domains import service as domains_service
from services.catalog.principals import service as principals_service
from services.catalog.schemas import DepartmentCreate, PrincipalCreate
from services.common import db
from services.common.app import Runtime
from services.common.problems import Unauthenticated
from services.common.worker import wait_until
from tests.factories import embedded_settings


@dataclass
class CatalogHarness:
    """A running catalog with an admin key, and shortcuts to make principals with keys."""

    client: TestClient
    runtime: Runtime
    admin_key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def call(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        return self.client.request(
            method, path, headers={**self.headers(key), **kwargs.pop("headers", {})}, **kwargs
        )

    def wait_for_key(self, key: str, timeout_s: float = 5.0) -> None:
        """Keys reach the key ring through platform.catalog: wait until this one works."""

        def known() -> bool:
            try:
                self.runtime.service_as(CatalogRuntime).keyring.authenticate(key)
                return True
            except Unauthenticated:
                return False

        assert wait_until(known, timeout_s), "the key did not reach the key ring"

    def department(self, department_id: str, domains: list[str]) -> None:
        with db.unit_of_work(self.runtime.sessions) as session:
            domains_service.add_department(
                session,
                events=self.runtime.service_as(CatalogRuntime).events,
                payload=DepartmentCreate(
                    id=department_id, name=department_id.title(), kind="bureau", domains=domains
                ),
            )

    def principal_key(self, principal_id: str, kind: str, department_id: str | None = None) -> str:
        with db.unit_of_work(self.runtime.sessions) as session:
            events = self.runtime.service_as(CatalogRuntime).events
            principals_service.add_principal(
                session,
                events=events,
                payload=PrincipalCreate(
                    id=principal_id, kind=kind, name=principal_id, department_id=department_id
                ),
            )
            issued = principals_service.add_api_key(session, events=events, principal_id=principal_id)
        self.wait_for_key(issued.key)
        return issued.key


@pytest.fixture
def catalog(database_url: str, tmp_path: Path) -> Iterator[CatalogHarness]:
    app = create_catalog(embedded_settings(tmp_path, database_url=database_url))
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        with db.unit_of_work(runtime.sessions) as session:
            issued = principals_service.bootstrap_admin(
                session, events=runtime.service_as(CatalogRuntime).events
            )
        assert issued is not None
        harness = CatalogHarness(client, runtime, issued.key)
        harness.wait_for_key(issued.key)
        yield harness


# --- ingest: a catalog and an ingest app on one database and one bus ---------------------------

import json  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Mapping, Sequence  # noqa: E402
from contextlib import contextmanager  # noqa: E402

from services.catalog.runtime import CatalogRuntime  # noqa: E402
from services.common.bus import Bus, Message  # noqa: E402
from services.ingest.app import create_app as create_ingest  # noqa: E402
from services.ingest.projection import CatalogProjection  # noqa: E402
from services.ingest.runtime import IngestRuntime  # noqa: E402
from services.ingest.settings import IngestSettings  # noqa: E402
from tests.factories import ingest_contract  # noqa: E402


@dataclass(frozen=True)
class PublishedDataset:
    """A dataset registered for one test, with a key of its owning department."""

    id: str
    department_id: str
    key: str


@dataclass
class IngestPlatform:
    """A running catalog and ingest sharing a database and a bus, as in a deployment."""

    catalog: CatalogHarness
    client: TestClient
    runtime: Runtime
    bus_kind: str
    datasets: list[str]

    @property
    def bus(self) -> Bus:
        return self.runtime.bus

    @property
    def projection(self) -> CatalogProjection:
        projection: CatalogProjection = self.runtime.service_as(IngestRuntime).catalog
        return projection

    def wait_for_key(self, key: str, timeout_s: float = 10.0) -> None:
        """Keys reach ingest through platform.catalog too."""

        def known() -> bool:
            try:
                self.runtime.service_as(IngestRuntime).keyring.authenticate(key)
                return True
            except Unauthenticated:
                return False

        assert wait_until(known, timeout_s), "the key did not reach ingest's key ring"

    def wait_for_dataset(
        self, dataset_id: str, version: str | None = None, status: str | None = None, timeout_s: float = 10.0
    ) -> None:
        def arrived() -> bool:
            dataset = self.projection.dataset(dataset_id)
            return (
                dataset is not None
                and (version is None or dataset.current_version == version)
                and (status is None or dataset.status == status)
                and (
                    dataset.current_version is None
                    or self.projection.contract(dataset_id, dataset.current_version) is not None
                )
            )

        assert wait_until(arrived, timeout_s), (
            f"{dataset_id} {version or ''} {status or ''} did not reach ingest"
        )

    def publisher_key(self, department_id: str, domains: Sequence[str] = ("transport",)) -> str:
        self.catalog.department(department_id, list(domains))
        key = self.catalog.principal_key(f"{department_id}-publisher", "department", department_id)
        self.wait_for_key(key)
        return key

    def dataset(self, name: str = "arrivals", *, status: str = "active") -> PublishedDataset:
        """A new dataset (the bus-arrivals contract 1.0.0 under a unique id) and its publisher's key."""
        suffix = uuid.uuid4().hex[:10]
        department_id = f"dept-{suffix}"
        dataset_id = f"transport.{name}-{suffix}"
        key = self.publisher_key(department_id)
        response = self.catalog.call(
            "POST",
            "/v1/contracts",
            content=ingest_contract(dataset_id, department_id),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text
        self.datasets.append(dataset_id)
        if status != "active":
            self.set_status(dataset_id, status)
        self.wait_for_dataset(dataset_id, "1.0.0", status)
        return PublishedDataset(dataset_id, department_id, key)

    def set_status(self, dataset_id: str, status: str) -> None:
        response = self.catalog.call("PATCH", f"/v1/datasets/{dataset_id}", json={"status": status})
        assert response.status_code == 200, response.text

    def register_version(self, dataset: PublishedDataset, version: str) -> None:
        response = self.catalog.call(
            "POST",
            f"/v1/datasets/{dataset.id}/contract-versions",
            key=dataset.key,
            content=ingest_contract(dataset.id, dataset.department_id, version),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text

    def post(
        self,
        dataset_id: str,
        key: str,
        body: bytes | str | list[Any],
        *,
        content_type: str = "application/json",
        headers: Mapping[str, str] | None = None,
    ) -> httpx.Response:
        if isinstance(body, list):
            body = json.dumps(body, ensure_ascii=False)
        return self.client.post(
            f"/v1/datasets/{dataset_id}/records",
            content=body.encode() if isinstance(body, str) else body,
            headers={"Authorization": f"Bearer {key}", "Content-Type": content_type, **(headers or {})},
        )

    def read(
        self,
        topic: str,
        expected: int,
        *,
        timeout_s: float = 15.0,
        settle_s: float = 0.5,
        match: Callable[[Message], bool] | None = None,
    ) -> list[Message]:
        """The records of ``topic`` (those ``match`` accepts, if given): waits for ``expected`` of
        them, then a little more for extras. On a topic every run shares (``platform.usage``),
        ``match`` picks a test's own records out of everything earlier runs left there."""
        consumer = self.bus.consumer(None, [topic], client_id="test-reader")
        found: list[Message] = []

        def poll(timeout: float) -> None:
            batch = consumer.poll(timeout, 1000)
            found.extend(batch if match is None else [m for m in batch if match(m)])

        try:
            deadline = time.monotonic() + timeout_s
            while len(found) < expected and time.monotonic() < deadline:
                poll(0.2)
            settle = time.monotonic() + settle_s
            while time.monotonic() < settle:
                poll(0.1)
        finally:
            consumer.close()
        return found


@contextmanager
def running_platform(
    data_dir: Path, *, database_url: str, bus_url: str | None, ingest_settings: IngestSettings, bus_kind: str
) -> Iterator[IngestPlatform]:
    """Start a catalog and an ingest app (each with its own lifespan) on one database and bus."""
    overrides: dict[str, Any] = {"database_url": database_url}
    if bus_url:
        overrides["bus_url"] = bus_url
    settings = embedded_settings(data_dir, **overrides)
    catalog_app = create_catalog(settings)
    ingest_app = create_ingest(settings, ingest_settings=ingest_settings)
    with TestClient(catalog_app) as catalog_client:
        catalog_runtime: Runtime = catalog_app.state.runtime
        with db.unit_of_work(catalog_runtime.sessions) as session:
            issued = principals_service.bootstrap_admin(
                session, events=catalog_runtime.service_as(CatalogRuntime).events
            )
        assert issued is not None
        harness = CatalogHarness(catalog_client, catalog_runtime, issued.key)
        harness.wait_for_key(issued.key)
        with TestClient(ingest_app) as ingest_client:
            runtime: Runtime = ingest_app.state.runtime
            assert runtime.service_as(IngestRuntime).read_model.wait_caught_up(30), (
                "ingest did not catch up with the catalog"
            )
            platform = IngestPlatform(harness, ingest_client, runtime, bus_kind, [])
            platform.wait_for_key(issued.key)
            try:
                yield platform
            finally:
                # platform.catalog outlives a test on a shared Kafka: retire what the test made, so
                # that later ingest processes do not subscribe to its raw topic.
                if bus_kind == "kafka":
                    for dataset_id in platform.datasets:
                        platform.set_status(dataset_id, "retired")
                    relay = catalog_runtime.service_as(CatalogRuntime).outbox
                    wait_until(lambda: relay.pending() == 0, 10)


@pytest.fixture
def ingest_settings(unique_name: str) -> IngestSettings:
    """Ingest's settings in tests; a module may override this fixture."""
    return IngestSettings(raw_group_id=f"citybase-ingest-raw-{unique_name}")


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def platform(
    request: pytest.FixtureRequest, tmp_path: Path, ingest_settings: IngestSettings
) -> Iterator[IngestPlatform]:
    """Catalog + ingest on the embedded bus and SQLite, and on real Kafka and PostgreSQL."""
    if request.param == "embedded":
        with running_platform(
            tmp_path,
            database_url=f"sqlite:///{tmp_path / 'citybase.db'}",
            bus_url=None,
            ingest_settings=ingest_settings,
            bus_kind="embedded",
        ) as running:
            yield running
        return
    bootstrap = request.getfixturevalue("kafka_bootstrap")
    with running_platform(
        tmp_path,
        database_url=request.getfixturevalue("schema_url"),
        bus_url=f"kafka://{bootstrap}",
        ingest_settings=ingest_settings,
        bus_kind="kafka",
    ) as running:
        yield running
