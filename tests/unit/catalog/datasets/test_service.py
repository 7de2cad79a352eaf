"""Datasets: a publisher's requests are authorized and audited in the service, the writes alone
claim domains and announce, and the detail read answers from one query."""

from __future__ import annotations

import pytest

from services.catalog import exceptions
from services.catalog.datasets import service as datasets
from services.catalog.models import Domain
from services.catalog.schemas import DatasetCreate, DatasetUpdate
from services.common import catalog_events
from services.common.problems import Forbidden
from tests.support.catalog_units import ADMIN, HEALTH, TRANSPORT, CatalogWorld

BUS = DatasetCreate(id="transport.bus-arrivals", title="Bus arrivals", owner_department_id="transport-bureau")


def test_a_department_registers_its_dataset_with_its_topics_its_event_and_its_audit_entry(
    catalog: CatalogWorld,
) -> None:
    read = datasets.create_dataset(
        catalog.session, events=catalog.events, audit=catalog.auditor(TRANSPORT), actor=TRANSPORT, payload=BUS
    )
    assert read.domain_id == "transport"
    assert (read.topics.records, read.topics.dead_letter, read.topics.raw) == (
        "ds.transport.bus-arrivals",
        "dlq.transport.bus-arrivals",
        "raw.transport.bus-arrivals",
    )
    [announced] = catalog.announced(catalog_events.DATASET)
    assert announced["id"] == BUS.id and announced["owner_department_id"] == "transport-bureau"
    [entry] = catalog.audit_entries()
    assert (entry.action, entry.outcome, entry.actor_id) == ("dataset.create", "success", TRANSPORT.id)
    assert (entry.dataset_id, entry.department_id) == (BUS.id, "transport-bureau")


def test_another_department_is_refused_and_the_refusal_is_audited_with_what_it_attempted(
    catalog: CatalogWorld,
) -> None:
    auditor = catalog.auditor(HEALTH)
    with pytest.raises(Forbidden) as refused:
        datasets.create_dataset(
            catalog.session, events=catalog.events, audit=auditor, actor=HEALTH, payload=BUS
        )
    auditor.failed(refused.value)  # what the request's auditor does when the route raises
    [entry] = catalog.audit_entries()
    assert (entry.action, entry.outcome, entry.resource_id) == ("dataset.create", "denied", BUS.id)
    assert entry.department_id == "transport-bureau" and entry.details["status"] == 403
    assert catalog.announced(catalog_events.DATASET) == []


def test_a_department_cannot_register_in_a_domain_another_owns_and_claims_an_unowned_one(
    catalog: CatalogWorld,
) -> None:
    foreign = DatasetCreate(id="transport.ferries", title="Ferries", owner_department_id="health-commission")
    with pytest.raises(exceptions.DomainOwnedByAnotherDepartment):
        datasets.add_dataset(catalog.session, events=catalog.events, payload=foreign)
    unowned = DatasetCreate(id="culture.venues", title="Venues", owner_department_id="health-commission")
    datasets.add_dataset(catalog.session, events=catalog.events, payload=unowned)
    domain = catalog.session.get(Domain, "culture")
    assert domain is not None and domain.owner_department_id == "health-commission"
    with pytest.raises(exceptions.DomainNotFound):
        datasets.add_dataset(
            catalog.session,
            events=catalog.events,
            payload=DatasetCreate(
                id="space.rockets", title="Rockets", owner_department_id="health-commission"
            ),
        )
    with pytest.raises(exceptions.AlreadyExists):
        datasets.add_dataset(catalog.session, events=catalog.events, payload=unowned)


def test_an_update_records_the_changed_fields_and_an_admin_may_change_any_dataset(
    catalog: CatalogWorld,
) -> None:
    datasets.add_dataset(catalog.session, events=catalog.events, payload=BUS)
    update = DatasetUpdate(title="Bus arrivals (live)", classification="open")
    read = datasets.update_dataset(
        catalog.session,
        events=catalog.events,
        audit=catalog.auditor(ADMIN),
        actor=ADMIN,
        dataset_id=BUS.id,
        payload=update,
    )
    assert (read.title, read.classification) == ("Bus arrivals (live)", "open")
    [entry] = catalog.audit_entries()
    assert entry.action == "dataset.update" and entry.details == {"changed": ["classification", "title"]}
    assert [payload["title"] for payload in catalog.announced(catalog_events.DATASET)] == [
        "Bus arrivals",
        "Bus arrivals (live)",
    ]
    with pytest.raises(Forbidden):
        datasets.update_dataset(
            catalog.session,
            events=catalog.events,
            audit=catalog.auditor(HEALTH),
            actor=HEALTH,
            dataset_id=BUS.id,
            payload=update,
        )


def test_the_detail_has_no_quality_until_one_is_announced_and_an_unknown_id_is_not_found(
    catalog: CatalogWorld,
) -> None:
    datasets.add_dataset(catalog.session, events=catalog.events, payload=BUS)
    catalog.session.commit()
    detail = datasets.dataset_detail(catalog.session, BUS.id)
    assert detail.id == BUS.id and detail.quality is None and detail.current_version is None
    assert not datasets.is_empty(catalog.session)
    with pytest.raises(exceptions.DatasetNotFound):
        datasets.dataset_detail(catalog.session, "transport.nothing")
