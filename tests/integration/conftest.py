"""Fixtures for tests that run a service app for real (SQLite and PostgreSQL, embedded bus)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from services.catalog import service as catalog_service
from services.catalog.app import create_app as create_catalog
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
                self.runtime.state["keyring"].authenticate(key)
                return True
            except Unauthenticated:
                return False

        assert wait_until(known, timeout_s), "the key did not reach the key ring"

    def department(self, department_id: str, domains: list[str]) -> None:
        with db.unit_of_work(self.runtime.sessions) as session:
            catalog_service.create_department(
                session,
                self.runtime.state["events"],
                DepartmentCreate(
                    id=department_id, name=department_id.title(), kind="bureau", domains=domains
                ),
            )

    def principal_key(self, principal_id: str, kind: str, department_id: str | None = None) -> str:
        with db.unit_of_work(self.runtime.sessions) as session:
            events = self.runtime.state["events"]
            catalog_service.create_principal(
                session,
                events,
                PrincipalCreate(id=principal_id, kind=kind, name=principal_id, department_id=department_id),
            )
            issued = catalog_service.issue_api_key(session, events, principal_id)
        self.wait_for_key(issued.key)
        return issued.key


@pytest.fixture
def catalog(database_url: str, tmp_path: Path) -> Iterator[CatalogHarness]:
    app = create_catalog(embedded_settings(tmp_path, database_url=database_url))
    with TestClient(app) as client:
        runtime: Runtime = app.state.runtime
        with db.unit_of_work(runtime.sessions) as session:
            issued = catalog_service.bootstrap_admin(session, runtime.state["events"])
        assert issued is not None
        harness = CatalogHarness(client, runtime, issued.key)
        harness.wait_for_key(issued.key)
        yield harness
