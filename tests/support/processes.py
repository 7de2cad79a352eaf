"""citybase services as the operator runs them (``citybase serve <service>``), in processes a test
can kill with -9 and start again on the same port, database and bus; and the in-process catalog
they read from."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from services.catalog.app import create_app as create_catalog
from services.catalog.runtime import CatalogRuntime
from services.common.app import Runtime
from services.common.worker import wait_until
from tests.factories import embedded_settings, ingest_contract
from tests.support.http import free_port, serve
from tests.support.keys import bootstrap_admin
from tests.support.services import FEEDS_TEST_SECRET, CatalogHarness


class ServiceProcess:
    """One ``citybase serve <service>`` process; ``kill9`` and ``start`` keep port and settings."""

    def __init__(self, service: str, root: Path, env: Mapping[str, str]) -> None:
        self.service = service
        self.port = free_port()
        self.root = root
        self.log = root / f"{service}.log"
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CITYBASE_")},
            "CITYBASE_PORT": str(self.port),
            "CITYBASE_DATA_DIR": str(root / service),
            "CITYBASE_LOG_LEVEL": "WARNING",
            # Feeds on Kafka and PostgreSQL refuse to start without a secret; one across restarts.
            "CITYBASE_FEEDS_SECRET": FEEDS_TEST_SECRET,
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.starts: list[float] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 90.0) -> None:
        """Start the process and wait until ``/readyz`` says ready (read models caught up)."""
        assert self.process is None or self.process.poll() is not None, f"{self.service} is running"
        started = time.monotonic()
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "citybase.cli", "serve", self.service],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while True:
            assert self.process.poll() is None, f"{self.service} exited:\n{self.tail()}"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{self.url}/readyz", timeout=5).status_code == 200:
                    break
            assert time.monotonic() < deadline, f"{self.service} not ready in {timeout_s}s:\n{self.tail()}"
            time.sleep(0.3)
        self.starts.append(time.monotonic() - started)

    def kill9(self) -> None:
        assert self.process is not None and self.process.poll() is None, f"{self.service} is not running"
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def tail(self, lines: int = 40) -> str:
        if not self.log.exists():
            return ""
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Dataset:
    id: str
    department_id: str
    key: str


class Catalog:
    """The catalog served in this process over HTTP, on the database and bus a test chooses."""

    def __init__(self, harness: CatalogHarness, url: str) -> None:
        self.harness = harness
        self.url = url
        self.http = httpx.Client(base_url=url, timeout=30)
        self.datasets: list[str] = []

    @property
    def runtime(self) -> Runtime:
        return self.harness.runtime

    @property
    def admin_key(self) -> str:
        return self.harness.admin_key

    def call(
        self,
        method: str,
        path: str,
        key: str | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        **kwargs: Any,
    ) -> httpx.Response:
        sent = {"Authorization": f"Bearer {key or self.admin_key}", **(headers or {})}
        return self.http.request(method, path, headers=sent, **kwargs)

    def dataset(self, prefix: str = "faults") -> Dataset:
        """A department with a publisher key and an active dataset of the bus-arrivals contract."""
        suffix = uuid.uuid4().hex[:10]
        department_id = f"dept-{suffix}"
        self.harness.department(department_id, ["transport"])
        key = self.harness.principal_key(f"{department_id}-publisher", "department", department_id)
        dataset_id = f"transport.{prefix}-{suffix}"
        response = self.call(
            "POST",
            "/v1/contracts",
            content=ingest_contract(dataset_id, department_id),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text
        self.datasets.append(dataset_id)
        return Dataset(dataset_id, department_id, key)

    def register_version(self, dataset: Dataset, version: str, text: str | None = None) -> None:
        response = self.call(
            "POST",
            f"/v1/datasets/{dataset.id}/contract-versions",
            key=dataset.key,
            content=text or ingest_contract(dataset.id, dataset.department_id, version),
            headers={"Content-Type": "application/yaml"},
        )
        assert response.status_code == 201, response.text

    def relayed(self, timeout_s: float = 30.0) -> None:
        """Wait until every catalog event is on platform.catalog."""
        relay = self.runtime.service_as(CatalogRuntime).outbox
        assert wait_until(lambda: relay.pending() == 0, timeout_s), "the catalog outbox did not drain"


@contextlib.contextmanager
def running_catalog(root: Path, *, database_url: str, bus_url: str) -> Iterator[Catalog]:
    """A catalog with an admin key, served by uvicorn on a free port of this process."""
    settings = embedded_settings(root, database_url=database_url, bus_url=bus_url)
    app = create_catalog(settings)
    with serve(app) as url:
        runtime: Runtime = app.state.runtime
        admin_key = bootstrap_admin(runtime)
        # The harness's shortcuts (departments, principals, keys) work on the runtime; its
        # TestClient is never used: this catalog is served over a socket.
        harness = CatalogHarness(None, runtime, admin_key)  # type: ignore[arg-type]
        harness.wait_for_key(admin_key, timeout_s=30)
        catalog = Catalog(harness, url)
        try:
            yield catalog
            # platform.catalog outlives the test on the shared Kafka: retire what the test made, so
            # that later ingest processes do not subscribe to its raw topics.
            for dataset_id in catalog.datasets:
                retired = catalog.call("PATCH", f"/v1/datasets/{dataset_id}", json={"status": "retired"})
                assert retired.status_code == 200, retired.text
            catalog.relayed()
        finally:
            catalog.http.close()
