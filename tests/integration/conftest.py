"""Fixtures for tests that run a service app for real (SQLite and PostgreSQL, embedded bus)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from services.catalog.app import create_app as create_catalog
from services.common.app import Runtime
from services.ingest.settings import IngestSettings
from tests.factories import embedded_settings
from tests.support.keys import bootstrap_admin
from tests.support.services import CatalogHarness, IngestPlatform, running_platform


@pytest.fixture
def catalog(database_url: str, tmp_path: Path) -> Iterator[CatalogHarness]:
    app = create_catalog(embedded_settings(tmp_path, database_url=database_url))
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        admin_key = bootstrap_admin(runtime)
        harness = CatalogHarness(client, runtime, admin_key)
        harness.wait_for_key(admin_key)
        yield harness


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
