"""Domains and departments: the city's domains exist once, the first department of a domain owns it."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from services.catalog import exceptions
from services.catalog.domains import service as domains
from services.catalog.models import Domain
from services.catalog.schemas import DepartmentCreate, DomainCreate
from services.common import catalog_events
from tests.support.catalog_units import ADMIN, CatalogWorld


def test_the_city_domains_are_created_once(catalog: CatalogWorld) -> None:
    domains.ensure_city_domains(catalog.session)
    ids = [domain.id for domain in domains.list_domains(catalog.session)]
    assert ids == sorted(domain_id for domain_id, _, _ in domains.CITY_DOMAINS)
    assert catalog.session.scalar(sa.select(sa.func.count()).select_from(Domain)) == len(domains.CITY_DOMAINS)


def test_the_first_department_of_a_domain_owns_it_and_later_ones_do_not_take_it(
    catalog: CatalogWorld,
) -> None:
    owner = catalog.session.get(Domain, "transport")
    assert owner is not None and owner.owner_department_id == "transport-bureau"
    district = domains.create_department(
        catalog.session,
        events=catalog.events,
        audit=catalog.auditor(ADMIN),
        payload=DepartmentCreate(
            id="putuo-district", name="Putuo", kind="district", domains=["transport", "community"]
        ),
    )
    assert district.domains == ["transport", "community"]
    assert owner.owner_department_id == "transport-bureau"
    community = catalog.session.get(Domain, "community")
    assert community is not None and community.owner_department_id == "putuo-district"
    assert catalog.announced(catalog_events.DEPARTMENT)[-1]["id"] == "putuo-district"
    [entry] = catalog.audit_entries()
    assert (entry.action, entry.resource_id, entry.department_id) == (
        "department.create",
        "putuo-district",
        "putuo-district",
    )
    with pytest.raises(exceptions.AlreadyExists):
        domains.add_department(
            catalog.session,
            events=catalog.events,
            payload=DepartmentCreate(id="putuo-district", name="Putuo", kind="district"),
        )
    with pytest.raises(exceptions.DomainNotFound):
        domains.add_department(
            catalog.session,
            events=catalog.events,
            payload=DepartmentCreate(id="nowhere-bureau", name="x", kind="bureau", domains=["space"]),
        )


def test_an_admin_adds_a_domain_with_an_owner_that_exists(catalog: CatalogWorld) -> None:
    read = domains.create_domain(
        catalog.session,
        audit=catalog.auditor(ADMIN),
        payload=DomainCreate(id="water", name="Water", owner_department_id="health-commission"),
    )
    assert (read.id, read.owner_department_id) == ("water", "health-commission")
    assert [entry.action for entry in catalog.audit_entries()] == ["domain.create"]
    with pytest.raises(exceptions.AlreadyExists):
        domains.create_domain(
            catalog.session, audit=catalog.auditor(ADMIN), payload=DomainCreate(id="water", name="W")
        )
    with pytest.raises(exceptions.DepartmentNotFound):
        domains.create_domain(
            catalog.session,
            audit=catalog.auditor(ADMIN),
            payload=DomainCreate(id="air", name="Air", owner_department_id="nobody"),
        )
