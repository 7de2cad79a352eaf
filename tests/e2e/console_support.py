"""The platform the console's tests run against, its people, and its demo traffic.

``citybase up`` in this process (embedded defaults: SQLite and the embedded bus) on a real uvicorn
server bound to a free port of 127.0.0.1, with short quality windows so that a score moves within
seconds of new records; and the principals of the console's stories: an approver and a publisher
of market supervision, an operator, two scenarios, each with an API key.
"""

from __future__ import annotations

import html
import random
import re
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from citybase.demo import FaultRates, RecordGenerator
from citybase.platform import create_platform_app, prepare
from services.common.settings import Settings
from services.common.worker import wait_until as poll_until
from tests.factories import access_request_create, embedded_settings, scenario_create

QUALITY_WINDOW = '{"records": 100, "seconds": 1}'
"""Short windows: a batch of demo records closes one, and the score history gains a point."""

APPROVER = "market-approver"
PUBLISHER = "market-publisher"
OPERATOR = "city-ops"
SCENARIO = "one-stop-visit"
OTHER_SCENARIO = "ai-community"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(condition: Callable[[], bool], timeout_s: float, interval_s: float = 0.2) -> bool:
    """The kernel's poll, at a pace that suits requests over HTTP."""
    return poll_until(condition, timeout_s, interval_s)


@dataclass
class RunningPlatform:
    """The platform's API as its admin sees it, through ``client`` (a real socket or a TestClient)."""

    client: httpx.Client
    admin_key: str
    keys: dict[str, str] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return str(self.client.base_url).rstrip("/")

    def call(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.admin_key}"}
        # The console's cookie is scoped to /console/: these calls carry the header key only.
        return self.client.request(method, path, headers=headers, **kwargs)

    def ok(self, method: str, path: str, key: str | None = None, **kwargs: Any) -> Any:
        response = self.call(method, path, key, **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text}"
        return response.json()

    def wait_for_key(self, key: str) -> None:
        """A new key reaches each service through platform.catalog, within a second or so."""

        def known() -> bool:
            return all(
                self.call("GET", path, key).status_code == 200
                for path in ("/catalog/v1/me", "/quality/v1/quality/rankings")
            )

        assert wait_until(known, 15), "a new API key did not reach the services"

    def principal(self, principal_id: str, kind: str, department: str | None = None) -> str:
        self.ok(
            "POST",
            "/catalog/v1/principals",
            json={
                "id": principal_id,
                "kind": kind,
                "name": principal_id.replace("-", " ").title(),
                "department_id": department,
            },
        )
        key = str(
            self.ok("POST", f"/catalog/v1/principals/{principal_id}/keys", json={"name": "console"})["key"]
        )
        self.wait_for_key(key)
        self.keys[principal_id] = key
        return key

    def scenario(self, scenario_id: str) -> str:
        self.ok("POST", "/catalog/v1/scenarios", json=scenario_create(scenario_id))
        key = str(
            self.ok("POST", f"/catalog/v1/scenarios/{scenario_id}/keys", json={"name": "console"})["key"]
        )
        self.wait_for_key(key)
        self.keys[scenario_id] = key
        return key

    def request_access(self, scenario_id: str, **overrides: Any) -> dict[str, Any]:
        body = access_request_create(**overrides)
        request: dict[str, Any] = self.ok(
            "POST", "/catalog/v1/access-requests", self.keys[scenario_id], json=body
        )
        return request

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


def platform_app(tmp_path: Path) -> tuple[Any, Settings, str]:
    """``citybase up``'s app on embedded defaults under ``tmp_path``, prepared, and its admin key."""
    settings = embedded_settings(tmp_path / "data")
    prepared = prepare(settings)
    assert prepared.admin_key is not None
    with pytest.MonkeyPatch.context() as patch:
        # Read when the quality app is built, not later.
        patch.setenv("CITYBASE_QUALITY_WINDOW", QUALITY_WINDOW)
        app = create_platform_app(settings)
    return app, settings, prepared.admin_key


@contextmanager
def citybase_in_process(tmp_path: Path) -> Iterator[RunningPlatform]:
    """The whole platform, console included, served by uvicorn in a thread of this process."""
    app, _, admin_key = platform_app(tmp_path)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="citybase-up", daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        assert wait_until(lambda: server.started, 60), "uvicorn did not start in 60 s"
        with httpx.Client(base_url=base, timeout=15) as client:
            platform = RunningPlatform(client, admin_key)
            platform.wait_for_key(admin_key)
            yield platform
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def populate(platform: RunningPlatform) -> None:
    """The principals of the console's stories, each with a key."""
    platform.principal(APPROVER, "approver", "market-supervision")
    platform.principal(PUBLISHER, "department", "market-supervision")
    platform.principal(OPERATOR, "operator")
    platform.scenario(SCENARIO)
    platform.scenario(OTHER_SCENARIO)


ISSUED_KEY = re.compile(r'<code id="issued-key">([^<]+)</code>')
"""The key on the page that shows a new key once."""


def issued_key(page: str) -> str:
    found = ISSUED_KEY.search(page)
    assert found, "the page shows no new key"
    return html.unescape(found.group(1))
