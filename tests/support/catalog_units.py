"""A catalog on SQLite for the service modules' unit tests: migrated, with the city's domains and
two departments, an outbox to read announcements from and auditors built as a request builds them."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session
from starlette.requests import Request

from services.catalog.audit.auditor import Auditor
from services.catalog.audit.models import AuditEntry
from services.catalog.domains.service import add_department, ensure_city_domains
from services.catalog.events import CatalogEvents
from services.catalog.models import outbox
from services.catalog.schemas import DepartmentCreate
from services.common import db
from services.common.auth import Principal, PrincipalKind
from services.common.outbox import Outbox

MIGRATIONS = Path(__file__).resolve().parents[2] / "services" / "catalog" / "migrations"

ADMIN = Principal("admin", PrincipalKind.admin, "Admin")
TRANSPORT = Principal("transport-publisher", PrincipalKind.department, "T", "transport-bureau")
HEALTH = Principal("health-publisher", PrincipalKind.department, "H", "health-commission")
APPROVER = Principal("transport-approver", PrincipalKind.approver, "TA", "transport-bureau")


@dataclass
class CatalogWorld:
    session: Session
    events: CatalogEvents

    def auditor(self, actor: Principal | None, method: str = "POST") -> Auditor:
        """The request-scoped auditor a route hands to the service, for a request by ``actor``."""
        request = Request(
            {"type": "http", "method": method, "path": "/v1/test", "headers": [], "query_string": b""}
        )
        request.state.principal = actor
        return Auditor(request, self.session)

    def audit_entries(self) -> list[AuditEntry]:
        return list(self.session.scalars(sa.select(AuditEntry).order_by(AuditEntry.seq)))

    def announced(self, event_type: str) -> list[dict[str, Any]]:
        """The states announced of ``event_type`` so far (in the outbox, in order)."""
        found = []
        for row in self.session.execute(sa.select(outbox).order_by(outbox.c.id)):
            headers = {name: base64.b64decode(value) for name, value in json.loads(row.headers)}
            if headers.get("ce_type") == event_type.encode():
                found.append(json.loads(row.value))
        return found


def new_catalog_world(directory: Path) -> CatalogWorld:
    """A migrated catalog on SQLite in ``directory``, with the city's domains and two departments."""
    url = f"sqlite:///{directory / 'catalog.db'}"
    engine = db.create_db_engine(url)
    db.migrate(url, MIGRATIONS, "alembic_version_catalog", engine)
    session = db.session_factory(engine)()
    events = CatalogEvents(Outbox(outbox))
    ensure_city_domains(session)
    for department_id, domain in (("transport-bureau", "transport"), ("health-commission", "health")):
        add_department(
            session,
            events=events,
            payload=DepartmentCreate(id=department_id, name=department_id, kind="bureau", domains=[domain]),
        )
    session.commit()
    return CatalogWorld(session, events)


@pytest.fixture
def catalog(tmp_path: Path) -> Iterator[CatalogWorld]:
    world = new_catalog_world(tmp_path)
    try:
        yield world
    finally:
        world.session.close()
