"""The platform test driver: citybase's four services and its console as a client sees them, with
the admin key and the keys of the principals a test made.

One :class:`Platform`, however the platform runs:

- :func:`in_process`: ``citybase up``'s app in this process (SQLite or PostgreSQL, embedded bus),
  through a TestClient, or served on a real socket of 127.0.0.1 (``served=True``);
- :func:`citybase_up`: ``citybase up`` as its own process, stopped by SIGINT.

In this process the driver also reaches each service's app (``app``): its OpenAPI, its runtime, and
its key ring, so a new key is waited for where it is checked; as a process it waits through HTTP.
"""

from __future__ import annotations

import itertools
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from citybase.demo import FaultRates, RecordGenerator
from citybase.platform import create_platform_app, one_process_feeds_settings, prepare
from services.common import catalog_events
from services.common.app import ServiceRuntime
from services.common.settings import Settings
from services.common.worker import wait_until
from tests.factories import access_request_create, embedded_settings, scenario_create
from tests.support import transcript
from tests.support.http import free_port, serve
from tests.support.keys import wait_for_key

CLI = [sys.executable, "-m", "citybase.cli"]
RECORDS_METRIC = re.compile(
    r'^citybase_ingest_records_total\{dataset="([^"]+)",outcome="(\w+)"\} (\S+)$', re.M
)


SHORT_QUALITY_WINDOWS = {"CITYBASE_QUALITY_WINDOW": '{"records": 100, "seconds": 1}'}
"""Short quality windows (an ``environment`` of :func:`in_process`): a batch of demo records closes
one, and the score history gains a point."""


class _Admin:
    """The default of :meth:`Platform.call`: the admin's key (``None`` calls with no key)."""


AS_ADMIN = _Admin()


@dataclass
class Platform:
    """The platform's API through ``client`` (a TestClient or a client of a real socket)."""

    client: httpx.Client
    admin_key: str
    app: FastAPI | None = None
    """``citybase up``'s app when it runs in this process."""
    key_name: str = "tests"
    """The name of the keys this driver issues."""
    keys: dict[str, str] = field(default_factory=dict)  # principal id -> key
    context: dict[str, str] = field(default_factory=dict)  # path parameter -> value
    counter: Iterator[int] = field(default_factory=itertools.count)

    @property
    def base(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def call(
        self, method: str, path: str, key: str | _Admin | None = AS_ADMIN, **kwargs: Any
    ) -> httpx.Response:
        """``method path`` with ``key`` (the admin's unless given; ``None``: no key at all)."""
        key = self.admin_key if isinstance(key, _Admin) else key
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        # The console's cookie is scoped to /console/: these calls carry the header key only.
        response = self.client.request(
            method, path, headers={**headers, **kwargs.pop("headers", {})}, **kwargs
        )
        who = "admin" if key == self.admin_key else ("a key" if key else "no key")
        return transcript.record(response, who, **kwargs)

    def ok(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
        """The JSON body of a call that must succeed (as the admin unless ``key``)."""
        response = self.call(method, path, key or self.admin_key, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def keyrings(self) -> list[Any]:
        """The key rings of the services that authenticate callers (in this process only)."""
        assert self.app is not None, "the key rings are reachable only in this process"
        return [
            service.state.runtime.service_as(ServiceRuntime).keyring
            for service in self.app.state.services.values()
        ]

    def wait_for_key(self, key: str) -> None:
        """Keys reach every service through platform.catalog, within a second or so."""
        if self.app is None:

            def known() -> bool:
                return all(
                    self.call("GET", path, key).status_code == 200
                    for path in ("/catalog/v1/me", "/quality/v1/quality/rankings")
                )

            assert wait_until(known, 15, 0.2), "a new API key did not reach the services"
            return

        wait_for_key(self.keyrings(), key, 10.0, "a key did not reach every service")

    def principal(self, principal_id: str, kind: str, department: str | None = None) -> str:
        """A new principal and its key, known everywhere once this returns."""
        self.ok(
            "POST",
            "/catalog/v1/principals",
            json={"id": principal_id, "kind": kind, "name": principal_id, "department_id": department},
        )
        key = str(
            self.ok("POST", f"/catalog/v1/principals/{principal_id}/keys", json={"name": self.key_name})[
                "key"
            ]
        )
        self.wait_for_key(key)
        self.keys[principal_id] = key
        return key

    def scenario(self, scenario_id: str) -> str:
        """A new scenario and its key, known everywhere once this returns."""
        self.ok("POST", "/catalog/v1/scenarios", json=scenario_create(scenario_id))
        key = str(
            self.ok("POST", f"/catalog/v1/scenarios/{scenario_id}/keys", json={"name": self.key_name})["key"]
        )
        self.wait_for_key(key)
        self.keys[scenario_id] = key
        return key

    def organisation(self, applicant_id: str, *, vetted_by: str | None = None) -> str:
        """An organisation that registers itself without a key and is vetted (by the admin unless
        ``vetted_by`` names a principal of this driver): its first key, known everywhere."""
        registered = self.call(
            "POST",
            "/catalog/v1/applicants",
            None,
            json={
                "id": applicant_id,
                "name": applicant_id.title(),
                "contact": f"bids@{applicant_id}.example.cn",
            },
        )
        assert registered.status_code == 201, registered.text
        vetted = self.ok(
            "POST",
            f"/catalog/v1/applicants/{applicant_id}/vetting",
            self.keys[vetted_by] if vetted_by else None,
            json={"decision": "vetted", "reason": "Registered enterprise; references checked."},
        )
        key = str(vetted["key"]["key"])
        self.wait_for_key(key)
        self.keys[applicant_id] = key
        return key

    def request_access(self, scenario_id: str, **overrides: Any) -> dict[str, Any]:
        body = access_request_create(**overrides)
        request: dict[str, Any] = self.ok(
            "POST", "/catalog/v1/access-requests", self.keys[scenario_id], json=body
        )
        return request

    def pending_request(self) -> str:
        """A new access request of the one-stop-visit scenario, waiting for a decision."""
        return str(self.request_access("one-stop-visit")["id"])

    def demo_traffic(
        self, dataset_id: str, records: int, *, faults: FaultRates | None = None, seed: int = 7
    ) -> None:
        """Records of the demo generator (citybase.demo), published through ingest's HTTP API."""
        dataset = self.ok("GET", f"/catalog/v1/datasets/{dataset_id}")
        contract = self.ok(
            "GET", f"/catalog/v1/datasets/{dataset_id}/contract-versions/{dataset['current_version']}"
        )
        generator = RecordGenerator(
            contract["record_schema"],
            dataset_id,
            random.Random(seed),
            faults=faults,
            primary_key=contract.get("primary_key") or None,
        )
        self.ok("POST", f"/ingest/v1/datasets/{dataset_id}/records", json=generator.records(records))

    def catalog_events(self) -> list[tuple[str, bytes, dict[str, Any]]]:
        """Every event on platform.catalog so far, as (type, key, state), once the catalog's outbox
        has published what it holds: what a reader of the stream sees."""
        assert self.app is not None
        runtime = self.app.state.services["catalog"].state.runtime
        outbox = runtime.service.outbox
        assert wait_until(lambda: outbox.pending() == 0, timeout_s=10)
        consumer = runtime.bus.consumer(None, [catalog_events.TOPIC])
        found = []
        try:
            while messages := consumer.poll(0.5, 1000):
                for message in messages:
                    event = catalog_events.read_catalog_event(message)
                    if event is not None:
                        found.append((event[0], message.key or b"", event[1]))
        finally:
            consumer.close()
        return found

    def ingest_counts(self) -> dict[tuple[str, str], float]:
        """Records ingest handled so far, by dataset and outcome, from its Prometheus metrics."""
        text = httpx.get(f"{self.base}/ingest/metrics", timeout=5).text
        return {(dataset, outcome): float(value) for dataset, outcome, value in RECORDS_METRIC.findall(text)}


def platform_app(
    settings: Settings, *, environment: dict[str, str] | None = None, one_process_feeds: bool = False
) -> tuple[FastAPI, str]:
    """``citybase up``'s app, prepared (migrated, the examples loaded), and its admin key.
    ``environment`` is set while the services are built (they read their settings then);
    ``one_process_feeds`` gives feeds the data directory's secret, as ``citybase up`` does."""
    prepared = prepare(settings)
    assert prepared.admin_key is not None
    with pytest.MonkeyPatch.context() as patch:
        for name, value in (environment or {}).items():
            patch.setenv(name, value)
        feeds_settings = one_process_feeds_settings(settings) if one_process_feeds else None
        app = create_platform_app(settings, feeds_settings=feeds_settings)
    return app, prepared.admin_key


@contextmanager
def in_process(
    settings: Settings | Path,
    *,
    served: bool = False,
    key_name: str = "tests",
    environment: dict[str, str] | None = None,
    one_process_feeds: bool = False,
    prepare_platform: Callable[[Platform], None] | None = None,
) -> Iterator[Platform]:
    """The whole platform in this process, on ``settings`` (or embedded defaults under a directory),
    through a TestClient or, ``served``, uvicorn on a free port of 127.0.0.1."""
    if isinstance(settings, Path):
        settings = embedded_settings(settings / "data")
    app, admin_key = platform_app(settings, environment=environment, one_process_feeds=one_process_feeds)
    with _client(app, served) as client:
        platform = Platform(client, admin_key, app, key_name)
        platform.wait_for_key(admin_key)
        if prepare_platform is not None:
            prepare_platform(platform)
        yield platform


@contextmanager
def _client(app: FastAPI, served: bool) -> Iterator[httpx.Client]:
    """A TestClient of ``app``, or a client of ``app`` served on a real socket."""
    if not served:
        with TestClient(app) as client:
            yield client
        return
    with serve(app) as base, httpx.Client(base_url=base, timeout=15) as client:
        yield client


@contextmanager
def citybase_up(tmp_path: Path, *options: str, key_name: str = "tests") -> Iterator[Platform]:
    """``citybase up`` as a process on a free port of 127.0.0.1 with its own data directory
    (embedded defaults whatever the environment says), stopped by SIGINT."""
    port = free_port()
    env = {
        **os.environ,
        "CITYBASE_DATA_DIR": str(tmp_path / "data"),
        "CITYBASE_HOST": "127.0.0.1",
        "CITYBASE_PORT": str(port),
    }
    env.pop("CITYBASE_BUS_URL", None)
    env.pop("CITYBASE_DATABASE_URL", None)
    log_path = tmp_path / "up.log"
    log = log_path.open("w")
    process = subprocess.Popen([*CLI, "up", *options], env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, log_path.read_text()
            try:
                if all(
                    httpx.get(f"{base}/{service}/readyz", timeout=2).status_code == 200
                    for service in ("catalog", "ingest")
                ):
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "citybase up did not become ready in 60 s"
            time.sleep(0.3)
        found = re.search(r"cbk_[0-9a-f]{8}_[A-Za-z0-9_-]+", log_path.read_text())
        assert found, log_path.read_text()
        with httpx.Client(base_url=base, timeout=15) as client:
            yield Platform(client, found.group(0), key_name=key_name)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        finally:
            if process.poll() is None:
                process.kill()
            log.close()
