"""Domains and departments: the city's fields of data and who publishes in each.

A department is a publisher; the first one created for a domain owns it (its dataset ids start
with the domain's). Every function works in the caller's session and flushes; the caller's unit
of work commits, with the change's event (outbox) and its audit entry in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.audit.auditor import Auditor
from services.catalog.events import CatalogEvents
from services.catalog.models import Department, Domain
from services.catalog.schemas import DepartmentCreate, DepartmentRead, DomainCreate, DomainRead
from services.common import catalog_events
from services.common.i18n import N_, Sentence

CITY_DOMAINS: tuple[tuple[str, str, str], ...] = (
    ("spatial", "Spatial & urban construction", "Land, buildings, permits, infrastructure, coordinates."),
    ("health", "Health", "Hospitals, outpatient and inpatient services, public health."),
    ("education", "Education", "Schools, enrolment, teaching resources."),
    ("culture", "Culture & sport", "Venues, events, libraries, sport facilities."),
    ("market", "Market supervision", "Licences, inspections, enterprise registration, food safety."),
    ("transport", "Transport", "Public transport, roads, traffic, parking."),
    ("community", "Community services", "Street and neighbourhood services, resident requests."),
)


def ensure_city_domains(session: Session) -> None:
    """The city's fields of data exist in every catalog; more can be added."""
    existing = set(session.scalars(sa.select(Domain.id)))
    for domain_id, name, description in CITY_DOMAINS:
        if domain_id not in existing:
            session.add(Domain(id=domain_id, name=name, description=description))
    session.flush()


def create_domain(session: Session, *, audit: Auditor, payload: DomainCreate) -> DomainRead:
    """Add a field of data (an admin's request, audited), in the caller's session."""
    if session.get(Domain, payload.id) is not None:
        raise exceptions.AlreadyExists(Sentence(N_("domain %(id)r exists"), id=payload.id))
    if payload.owner_department_id is not None:
        get_department(session, payload.owner_department_id)
    domain = Domain(**payload.model_dump())
    session.add(domain)
    session.flush()
    read = DomainRead.model_validate(domain)
    audit.record(session, "domain.create", "domain", read.id)
    return read


def list_domains(session: Session) -> Sequence[Domain]:
    return session.scalars(sa.select(Domain).order_by(Domain.id)).all()


def create_department(
    session: Session, *, events: CatalogEvents, audit: Auditor, payload: DepartmentCreate
) -> DepartmentRead:
    """Add a department (an admin's request, audited), in the caller's session."""
    department = add_department(session, events=events, payload=payload)
    audit.record(session, "department.create", "department", department.id, department_id=department.id)
    return department


def add_department(session: Session, *, events: CatalogEvents, payload: DepartmentCreate) -> DepartmentRead:
    """Add a department and announce it, in the caller's session; no audit entry of its own (for
    :func:`create_department` and the examples loader)."""
    if session.get(Department, payload.id) is not None:
        raise exceptions.AlreadyExists(Sentence(N_("department %(id)r exists"), id=payload.id))
    domains = []
    for domain_id in payload.domains:
        domain = session.get(Domain, domain_id)
        if domain is None:
            raise exceptions.DomainNotFound(Sentence(N_("no domain %(domain_id)r"), domain_id=domain_id))
        domains.append(domain)
    department = Department(**payload.model_dump())
    session.add(department)
    session.flush()
    for domain in domains:
        # The first department an admin creates for a domain owns it; later ones listing it
        # publish in it too (see datasets.service._may_register_in).
        if domain.owner_department_id is None:
            domain.owner_department_id = department.id
    session.flush()
    read = DepartmentRead.model_validate(department)
    events.publish(session, catalog_events.DEPARTMENT, department.id, read)
    return read


def get_department(session: Session, department_id: str) -> Department:
    department = session.get(Department, department_id)
    if department is None:
        raise exceptions.DepartmentNotFound(
            Sentence(N_("no department %(department_id)r"), department_id=department_id)
        )
    return department


def list_departments(session: Session) -> Sequence[Department]:
    return session.scalars(sa.select(Department).order_by(Department.id)).all()
