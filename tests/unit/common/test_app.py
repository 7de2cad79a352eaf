"""Every service answers /healthz, /readyz and /metrics, and migrates its own tables on start."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES, create_platform_app
from services.common.worker import wait_until
from tests.factories import embedded_settings

SERVICES = sorted(SERVICE_FACTORIES)


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_is_healthy_ready_and_measured(service: str, tmp_path: Path) -> None:
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path))
    with TestClient(app) as client:
        assert client.get("/healthz").json() == {"status": "ok", "service": service}
        # Not ready while the read models replay platform.catalog; ready once they caught up.
        assert wait_until(lambda: client.get("/readyz").status_code == 200, 10), client.get("/readyz").text
        ready = client.get("/readyz")
        assert ready.json()["checks"]["database"] == "ok"
        assert ready.json()["checks"]["bus"] == "ok"
        metrics = client.get("/metrics")
        assert metrics.headers["content-type"].startswith("text/plain")
        assert f'citybase_service_up{{service="{service}"}} 1.0' in metrics.text
        assert 'route="/healthz"' in metrics.text
        assert client.get("/openapi.json").json()["info"]["title"] == f"citybase {service}"


@pytest.mark.parametrize("service", SERVICES)
def test_readiness_is_a_503_problem_when_the_database_is_unreachable(service: str, tmp_path: Path) -> None:
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path))
    with TestClient(app) as client:
        app.state.runtime.engine.dispose()
        app.state.runtime.engine = sa.create_engine(
            "postgresql+psycopg://nobody:nothing@127.0.0.1:1/none", connect_args={"connect_timeout": 1}
        )
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.headers["content-type"] == "application/problem+json"
        assert response.headers["retry-after"]
        assert "database" in response.json()["detail"]


def test_each_service_keeps_its_own_tables_and_history(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path)
    with TestClient(create_platform_app(settings)):
        pass
    tables = set(sa.inspect(sa.create_engine(settings.database_url)).get_table_names())
    for service in SERVICES:
        assert f"alembic_version_{service}" in tables
    assert {"catalog_outbox", "feeds_outbox", "quality_outbox", "ingest_idempotency_keys"} <= tables


def test_the_platform_mounts_the_four_services_under_one_port(tmp_path: Path) -> None:
    with TestClient(create_platform_app(embedded_settings(tmp_path))) as client:
        index = client.get("/").json()
        assert sorted(index["services"]) == SERVICES
        for service in SERVICES:
            assert client.get(f"/{service}/healthz").status_code == 200
            assert wait_until(lambda s=service: client.get(f"/{s}/readyz").status_code == 200, 10)
            assert "citybase_http_requests_total" in client.get(f"/{service}/metrics").text
            assert client.get(f"/{service}/openapi.json").status_code == 200
        assert client.get("/nowhere").status_code == 404


def test_readiness_is_a_503_problem_when_kafka_is_unreachable(tmp_path: Path) -> None:
    settings = embedded_settings(tmp_path, bus_url="kafka://127.0.0.1:1", readiness_timeout_s=1.0)
    app = SERVICE_FACTORIES["ingest"](settings)
    with TestClient(app) as client:
        response = client.get("/readyz")
        assert response.status_code == 503
        assert response.json()["checks"]["bus"].startswith("unreachable")
        assert response.json()["checks"]["database"] == "ok"
        assert client.get("/healthz").status_code == 200


def test_citybase_migrate_brings_every_service_to_head(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from citybase.cli import app as cli

    monkeypatch.setenv("CITYBASE_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(cli, ["migrate"])
    assert result.exit_code == 0, result.output
    tables = set(sa.inspect(sa.create_engine(f"sqlite:///{tmp_path}/citybase.db")).get_table_names())
    assert {f"alembic_version_{service}" for service in SERVICES} <= tables
