"""Drivers of single services, for suites that test one service on its own: a catalog with its admin
key; a catalog and an ingest on one database and bus (:func:`running_platform`); feeds served
next to them (:func:`running_feeds`, webhooks allowed by its settings); quality fed the events the
others would publish (:class:`QualityHarness`). Each runs on SQLite and the embedded bus, or on
PostgreSQL and Kafka, as its fixture says.

Feeds is served by uvicorn on 127.0.0.1 (a real socket: Server-Sent Events stream as they would in
production, which the in-process TestClient cannot do). Grants are published on platform.catalog
exactly as the catalog does (:func:`tests.factories.grant_record`), so feeds is tested on its own.
"""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.testclient import TestClient

from services.catalog.app import create_app as create_catalog
from services.catalog.domains import service as domains_service
from services.catalog.principals import service as principals_service
from services.catalog.runtime import CatalogRuntime
from services.catalog.schemas import DepartmentCreate, PrincipalCreate
from services.common import db
from services.common.app import Runtime
from services.common.bus import Bus, Message, OutgoingRecord, TopicSpec
from services.common.envelope import CloudEvent
from services.common.worker import wait_until
from services.feeds.app import create_app as create_feeds
from services.feeds.projection import FeedsCatalog
from services.feeds.runtime import FeedsRuntime
from services.feeds.settings import FeedsSettings
from services.ingest.app import create_app as create_ingest
from services.ingest.projection import CatalogProjection
from services.ingest.runtime import IngestRuntime
from services.ingest.settings import IngestSettings
from services.quality.runtime import QualityRuntime
from tests.factories import (
    bus_arrival_record,
    catalog_records,
    contract_state,
    dataset_event_state,
    embedded_settings,
    feeds_grant_state,
    grant_record,
    ingest_contract,
    next_grant_version,
)
from tests.support import transcript
from tests.support.http import serve
from tests.support.keys import bootstrap_admin, wait_for_key


@dataclass
class CatalogHarness:
    """A running catalog with an admin key, and shortcuts to make principals with keys."""

    client: TestClient
    runtime: Runtime
    admin_key: str

    def headers(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.admin_key}"}

    def call(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        response = self.client.request(
            method, path, headers={**self.headers(key), **kwargs.pop("headers", {})}, **kwargs
        )
        return transcript.record(response, "a key" if key else "the harness's key", **kwargs)

    def wait_for_key(self, key: str, timeout_s: float = 5.0) -> None:
        """Keys reach the key ring through platform.catalog: wait until this one works."""

        wait_for_key(
            [self.runtime.service_as(CatalogRuntime).keyring],
            key,
            timeout_s,
            "the key did not reach the key ring",
        )

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

        wait_for_key(
            [self.runtime.service_as(IngestRuntime).keyring],
            key,
            timeout_s,
            "the key did not reach ingest's key ring",
        )

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


@contextlib.contextmanager
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
        admin_key = bootstrap_admin(catalog_runtime)
        harness = CatalogHarness(catalog_client, catalog_runtime, admin_key)
        harness.wait_for_key(admin_key)
        with TestClient(ingest_app) as ingest_client:
            runtime: Runtime = ingest_app.state.runtime
            assert runtime.service_as(IngestRuntime).read_model.wait_caught_up(30), (
                "ingest did not catch up with the catalog"
            )
            platform = IngestPlatform(harness, ingest_client, runtime, bus_kind, [])
            platform.wait_for_key(admin_key)
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


@dataclass
class Scenario:
    id: str
    key: str


@dataclass
class FeedsPlatform:
    """Catalog + ingest (``platform``) and a feeds app served over HTTP, on one database and bus."""

    platform: IngestPlatform
    app: FastAPI
    url: str
    http: httpx.Client
    grants: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def runtime(self) -> Runtime:
        runtime: Runtime = self.app.state.runtime
        return runtime

    @property
    def catalog(self) -> FeedsCatalog:
        catalog: FeedsCatalog = self.runtime.service_as(FeedsRuntime).catalog
        return catalog

    def scenario(self, name: str = "scenario") -> Scenario:
        principal_id = f"{name}-{uuid.uuid4().hex[:8]}"
        key = self.platform.catalog.principal_key(principal_id, "scenario")
        self.wait_for_key(key)
        return Scenario(principal_id, key)

    def wait_for_key(self, key: str) -> None:
        """Keys reach feeds' key ring through platform.catalog: wait until this one works."""

        wait_for_key(
            [self.runtime.service_as(FeedsRuntime).keyring], key, 10, "the scenario's key did not reach feeds"
        )

    def dataset(self) -> PublishedDataset:
        dataset = self.platform.dataset()
        assert wait_until(lambda: self.catalog.dataset(dataset.id) is not None, 10)
        return dataset

    def publish_grant(self, payload: dict[str, Any]) -> dict[str, Any]:
        """Announce ``payload`` on platform.catalog and wait until feeds holds that version."""
        self.platform.bus.producer().publish([grant_record(payload)])
        self.grants[payload["id"]] = payload

        def arrived() -> bool:
            grant = self.catalog.grant(payload["id"])
            return grant is not None and grant.version >= payload["version"]

        assert wait_until(arrived, 10), "the grant did not reach feeds"
        return payload

    def grant(self, scenario: Scenario, dataset_id: str, **overrides: Any) -> dict[str, Any]:
        return self.publish_grant(feeds_grant_state(scenario.id, dataset_id, **overrides))

    def change_grant(self, state: dict[str, Any], **changes: Any) -> dict[str, Any]:
        return self.publish_grant(next_grant_version(state, **changes))

    def call(self, method: str, path: str, scenario: Scenario | None, **kwargs: Any) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}) or {})
        if scenario is not None:
            headers["Authorization"] = f"Bearer {scenario.key}"
        return self.http.request(method, path, headers=headers, **kwargs)

    def subscribe(self, scenario: Scenario, dataset_id: str, **body: Any) -> dict[str, Any]:
        response = self.call("POST", "/v1/subscriptions", scenario, json={"dataset": dataset_id, **body})
        assert response.status_code == 201, response.text
        created: dict[str, Any] = response.json()
        return created

    def publish(self, dataset: PublishedDataset, count: int, **overrides: Any) -> list[dict[str, Any]]:
        records = [bus_arrival_record(_event_id=f"ev-{uuid.uuid4().hex}", **overrides) for _ in range(count)]
        response = self.platform.post(dataset.id, dataset.key, records)
        assert response.status_code == 202, response.text
        assert response.json()["accepted"] == count, response.text
        return records

    def pull(
        self, scenario: Scenario, subscription_id: str, *, max: int = 100, wait: float = 2.0
    ) -> httpx.Response:
        return self.call(
            "GET", f"/v1/subscriptions/{subscription_id}/records", scenario, params={"max": max, "wait": wait}
        )

    def pull_all(
        self,
        scenario: Scenario,
        subscription_id: str,
        expected: int,
        *,
        timeout_s: float = 30.0,
        ack: bool = True,
    ) -> list[dict[str, Any]]:
        """Pull (and acknowledge) until ``expected`` records came, or fail."""
        found: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout_s
        while len(found) < expected and time.monotonic() < deadline:
            response = self.pull(scenario, subscription_id, wait=1.0)
            assert response.status_code == 200, response.text
            batch = response.json()
            found += batch["records"]
            if ack and batch["records"]:
                acked = self.call(
                    "POST",
                    f"/v1/subscriptions/{subscription_id}/ack",
                    scenario,
                    json={"cursor": batch["cursor"]},
                )
                assert acked.status_code == 200, acked.text
        assert len(found) >= expected, f"{len(found)} of {expected} records delivered"
        return found

    def usage_events(
        self, expected: int, subscription_id: str, *, timeout_s: float = 15.0
    ) -> list[dict[str, Any]]:
        """Feeds' events on platform.usage (through its outbox) about one subscription, as JSON
        data with their type; waits for ``expected`` of them."""
        mark = json.dumps(subscription_id).encode()
        messages = self.platform.read(
            "platform.usage", expected, timeout_s=timeout_s, match=lambda m: mark in (m.value or b"")
        )
        events = []
        for message in messages:
            headers = dict(message.headers)
            events.append({"type": headers["ce_type"].decode(), "data": json.loads(message.value or b"null")})
        return events


@contextlib.contextmanager
def running_feeds(
    platform: IngestPlatform, feeds_settings: FeedsSettings, **app_options: Any
) -> Iterator[FeedsPlatform]:
    """Feeds served next to ``platform``; ``app_options`` go to its ``create_app``."""
    app = create_feeds(platform.runtime.settings, feeds_settings=feeds_settings, **app_options)
    with serve(app) as url, httpx.Client(base_url=url, timeout=60) as http:
        runtime: Runtime = app.state.runtime
        assert runtime.service_as(FeedsRuntime).read_model.wait_caught_up(30), (
            "feeds did not catch up with the catalog"
        )
        yield FeedsPlatform(platform, app, url, http)


FEEDS_TEST_SECRET = "secret-of-the-feeds-integration-tests-0123456789"


def feeds_settings_for_tests(**overrides: Any) -> FeedsSettings:
    """Feeds' settings in tests: quick idle readers and short webhook backoff."""
    values: dict[str, Any] = {
        "reader_idle_s": 30.0,
        "webhook_backoff_s": 0.2,
        "webhook_max_backoff_s": 1.0,
        "webhook_max_failures": 3,
        "webhook_scan_interval_s": 0.1,
        "join_timeout_s": 30.0,
        # Feeds on Kafka and PostgreSQL refuse to start without a secret of their own.
        "secret": FEEDS_TEST_SECRET,
    }
    values.update(overrides)
    return FeedsSettings(**values)


@dataclass
class QualityHarness:
    client: TestClient
    runtime: Runtime
    key: str
    department: str
    datasets: list[str]

    @property
    def bus(self) -> Bus:
        return self.runtime.bus

    @property
    def prefix(self) -> str:
        """This harness's datasets: quality follows only them, not every dataset of a shared bus."""
        prefix: str = self.runtime.service_as(QualityRuntime).settings.dataset_prefix
        return prefix

    def wait_following(self, dataset_id: str, timeout_s: float = 30.0) -> None:
        """Until the stream worker has partitions of the dataset's ds. topic (a group join)."""
        stream = self.runtime.service_as(QualityRuntime).stream
        assert wait_until(lambda: f"ds.{dataset_id}" in stream.assigned, timeout_s, 0.1), stream.topics

    def publish(self, records: list[OutgoingRecord]) -> None:
        self.bus.producer().publish(records)

    def register(
        self,
        name: str,
        *,
        change: Callable[[dict[str, Any]], None] | None = None,
        version: str | None = "1.0.0",
        created_at: datetime | None = None,
    ) -> dict[str, Any]:
        """A dataset of the health example contract under a unique id, with its topics."""
        dataset_id = f"{self.prefix}{name}-{uuid.uuid4().hex[:8]}"
        contract = contract_state(dataset_id, change=change)
        admin = self.bus.admin()
        for topic in (f"ds.{dataset_id}", f"dlq.{dataset_id}"):
            admin.ensure_topic(TopicSpec(topic, partitions=3))
        dataset = dataset_event_state(
            dataset_id, department_id=self.department, current_version=version, created_at=created_at
        )
        self.publish(catalog_records(contracts=[contract] if version else [], datasets=[dataset]))
        self.datasets.append(dataset_id)
        assert wait_until(lambda: self.catalog.dataset(dataset_id) is not None, 15)
        return contract

    @property
    def catalog(self) -> Any:
        return self.runtime.service_as(QualityRuntime).catalog

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(path, params=params, headers={"Authorization": f"Bearer {self.key}"})

    def quality(self, dataset_id: str) -> dict[str, Any]:
        response = self.get(f"/v1/datasets/{dataset_id}/quality")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def wait_scored(self, dataset_id: str, records: int, timeout_s: float = 60.0) -> dict[str, Any]:
        """The latest quality once windows covering ``records`` records are stored."""

        def covered() -> bool:
            rolling = self.quality(dataset_id)["rolling"]
            return bool(rolling["records"] >= records)

        assert wait_until(covered, timeout_s, 0.2), f"{dataset_id}: {self.quality(dataset_id)['rolling']}"
        return self.quality(dataset_id)

    def read(
        self, topic: str, predicate: Callable[[CloudEvent], bool], timeout_s: float = 20.0
    ) -> list[CloudEvent]:
        consumer = self.bus.consumer(None, [topic], client_id="test-reader")
        found: list[CloudEvent] = []

        def seen() -> bool:
            messages: list[Message] = consumer.poll(0.2, 1000)
            found.extend(event for event in map(CloudEvent.from_message, messages) if predicate(event))
            return bool(found)

        try:
            wait_until(seen, timeout_s, 0.05)
        finally:
            consumer.close()
        return found
