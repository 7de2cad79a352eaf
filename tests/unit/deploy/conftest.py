"""Fixtures of the deploy/ tests: the operator tools, and the metrics the services really expose.

``exposed_metrics`` runs the whole platform on the embedded defaults (each service keeps its own
registry, exactly as ``create_app(settings)`` builds it), sends it some traffic (an accepted and a
rejected record, an unknown route, a made-up method) and scrapes every service's ``/metrics``.
"""

from __future__ import annotations

import os
import random
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from citybase.demo import FaultRates, RecordGenerator, example_contract_files
from citybase.platform import SERVICE_FACTORIES, create_platform_app, prepare
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import parse_contract
from services.catalog.contracts.policy import primary_key
from tests.factories import EXAMPLES, embedded_settings
from tests.support.deploy import UNKNOWN_PATH, Scrape, parse_exposition

INFRA_DIR = Path(os.environ.get("CITYBASE_INFRA_DIR", Path.home() / ".cache" / "citybase" / "infra"))
TRAFFIC_DATASET = "transport.bus-arrivals"


def require_tool(name: str, found: str | None, install: str) -> str:
    """The tool's path; fails under CI=true (a missing tool is a broken build), skips elsewhere."""
    if found:
        return found
    message = f"{name} is not installed: run `{install}`"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def promtool() -> str:
    """Debian's promtool, as ``deploy/local/tools.sh`` installs it (or from PATH)."""
    cached = INFRA_DIR / "tools" / "bin" / "promtool"
    found = os.environ.get("CITYBASE_PROMTOOL") or (str(cached) if cached.is_file() else None)
    return require_tool("promtool", found or shutil.which("promtool"), "bash deploy/local/tools.sh up")


@pytest.fixture(scope="session")
def kustomize() -> list[str]:
    """The command that builds a kustomization: kustomize, or kubectl's built-in one."""
    cached = INFRA_DIR / "tools" / "bin" / "kustomize"
    if cached.is_file():
        return [str(cached), "build"]
    if found := shutil.which("kustomize"):
        return [found, "build"]
    kubectl = shutil.which("kubectl")
    require_tool("kustomize", kubectl, "bash deploy/local/tools.sh up")
    return [str(kubectl), "kustomize"]


def _latest_contract() -> tuple[str, dict[str, object], list[str]]:
    path = example_contract_files(EXAMPLES, [TRAFFIC_DATASET])[-1]
    contract = parse_contract(path.read_text(encoding="utf-8"))
    return contract.version, record_schema(contract), list(primary_key(contract))


def _publish_until_known(
    client: TestClient, key: str, version: str, records: list[dict[str, object]]
) -> None:
    """Ingest learns datasets and contract versions from the catalog's events, which the catalog's
    outbox relays after start: retry the batch until ingest knows the key and the dataset at
    ``version`` (401 before the key, 404 before the dataset, 409 before that version)."""
    deadline = time.monotonic() + 20
    while True:
        answer = client.post(
            f"/ingest/v1/datasets/{TRAFFIC_DATASET}/records",
            json=records,
            headers={"Authorization": f"Bearer {key}", "CityBase-Contract-Version": version},
        )
        if answer.status_code == 202:
            return
        assert answer.status_code in {401, 404, 409}, answer.text
        assert time.monotonic() < deadline, "ingest never learnt the example dataset"
        time.sleep(0.1)


@pytest.fixture(scope="session")
def exposed_metrics(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Scrape]]:
    settings = embedded_settings(tmp_path_factory.mktemp("platform"))
    prepared = prepare(settings, load_examples=True)
    assert prepared.admin_key
    version, schema, key = _latest_contract()
    generator = RecordGenerator(
        schema, TRAFFIC_DATASET, random.Random(8), faults=FaultRates(null=0.3), primary_key=key
    )
    app = create_platform_app(settings)
    with TestClient(app) as client:
        _publish_until_known(client, prepared.admin_key, version, generator.records(20))
        for service in SERVICE_FACTORIES:
            assert client.get(f"/{service}{UNKNOWN_PATH}").status_code == 404
            assert client.request("BREW", f"/{service}/healthz").status_code == 405
            assert client.get(f"/{service}/readyz").status_code == 200
        scrapes = {}
        for service, service_app in app.state.services.items():
            text = client.get(f"/{service}/metrics").text
            routes = frozenset(service_app.openapi()["paths"]) | {
                path for route in service_app.routes if isinstance(path := getattr(route, "path", None), str)
            }
            scrapes[service] = Scrape(text, parse_exposition(text), routes)
        yield scrapes
