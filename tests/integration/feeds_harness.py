"""A running feeds service next to the catalog and ingest of ``tests/integration/conftest.py``.

Feeds is served by uvicorn on 127.0.0.1 (a real socket: Server-Sent Events stream as they would in
production, which the in-process TestClient cannot do). Grants are published on platform.catalog
exactly as the catalog does (:func:`tests.factories.grant_record`), so feeds is tested on its own.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from services.common.app import Runtime
from services.common.problems import Unauthenticated
from services.common.worker import wait_until
from services.feeds.app import create_app as create_feeds
from services.feeds.projection import FeedsCatalog
from services.feeds.runtime import FeedsRuntime
from services.feeds.settings import FeedsSettings
from tests.factories import bus_arrival_record, feeds_grant_state, grant_record, next_grant_version
from tests.integration.conftest import IngestPlatform, PublishedDataset


@contextlib.contextmanager
def serve(app: FastAPI) -> Iterator[str]:
    """Serve ``app`` (lifespan included) on a free port of 127.0.0.1; yields its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="feeds-uvicorn", daemon=True)
    thread.start()
    try:
        assert wait_until(lambda: server.started, 60), "feeds did not start"
        port = server.servers[0].sockets[0].getsockname()[1]
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


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

        def known() -> bool:
            try:
                self.runtime.service_as(FeedsRuntime).keyring.authenticate(key)
                return True
            except Unauthenticated:
                return False

        assert wait_until(known, 10), "the scenario's key did not reach feeds"

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
