"""Datasets: register, change and read what a department publishes.

Every function works in the caller's session and flushes; the caller's unit of work commits, so
a change, its event on ``platform.catalog`` (outbox) and its audit entry are committed together
or not at all. :func:`create_dataset` and :func:`update_dataset` are a publisher's requests: they
authorize, audit and write; :func:`add_dataset` and :func:`change_dataset` are the writes alone,
for contract registration and the loaders.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.audit.auditor import Auditor
from services.catalog.domains.service import get_department
from services.catalog.events import CatalogEvents
from services.catalog.models import ContractVersion, Dataset, Department, Domain
from services.catalog.schemas import (
    DatasetCreate,
    DatasetDetail,
    DatasetRead,
    DatasetUpdate,
    QualitySummary,
    Topics,
    UtilizationSummary,
)
from services.catalog.scores.models import DatasetQuality, DatasetUtilization
from services.catalog.search.index import index_dataset, search_text
from services.common import catalog_events
from services.common.auth import Principal
from services.common.clock import utcnow
from services.common.i18n import N_, Sentence
from services.common.problems import Forbidden, Unauthenticated
from services.common.topics import dead_letter_topic, raw_topic, records_topic


def topics_of(dataset_id: str) -> Topics:
    return Topics(**topic_names(dataset_id))


def topic_names(dataset_id: str) -> dict[str, str]:
    """The dataset's topics as the fields of :class:`Topics`, for a caller that validates many
    records at once (a search page) rather than a model per record."""
    return {
        "records": records_topic(dataset_id),
        "dead_letter": dead_letter_topic(dataset_id),
        "raw": raw_topic(dataset_id),
    }


PUBLISHED_STATUSES = ("active", "deprecated")
"""A dataset in one of these states is published: its record is public unless it is hidden."""


def public_record() -> sa.ColumnElement[bool]:
    """The datasets whose catalog record a reader without a key may see."""
    return sa.and_(Dataset.status.in_(PUBLISHED_STATUSES), Dataset.publicly_listed.is_(True))


def not_public(dataset_id: str) -> Unauthenticated:
    """What a reader without a key is told of a dataset that is not a public record: hidden,
    unpublished or unknown alike, so that it learns nothing of what the city keeps to itself."""
    return Unauthenticated(
        Sentence(
            N_("no public dataset %(dataset_id)r: its record, if there is one, needs an API key"),
            dataset_id=dataset_id,
        )
    )


def dataset_read(dataset: Dataset) -> DatasetRead:
    return DatasetRead.model_validate(
        {
            **{c.key: getattr(dataset, c.key) for c in sa.inspect(Dataset).column_attrs},
            "topics": topics_of(dataset.id),
        }
    )


_DETAIL_DATASET = tuple(Dataset.__table__.c[name] for name in DatasetRead.model_fields if name != "topics")
_DETAIL_QUALITY = tuple(
    DatasetQuality.__table__.c[name].label(f"quality_{name}") for name in QualitySummary.model_fields
)
_DETAIL_UTILIZATION = tuple(
    DatasetUtilization.__table__.c[name].label(f"utilization_{name}")
    for name in UtilizationSummary.model_fields
)
_DETAIL_BY_ID = (
    sa.select(*_DETAIL_DATASET, *_DETAIL_QUALITY, *_DETAIL_UTILIZATION)
    .outerjoin(DatasetQuality.__table__, DatasetQuality.__table__.c.dataset_id == Dataset.__table__.c.id)
    .outerjoin(
        DatasetUtilization.__table__, DatasetUtilization.__table__.c.dataset_id == Dataset.__table__.c.id
    )
    .where(Dataset.__table__.c.id == sa.bindparam("dataset_id"))
)
# Built once with the id as a parameter: a statement built per request makes SQLAlchemy derive
# its cache key again (a walk of all its columns and joins), which cost as much as the query.
_PUBLIC_DETAIL_BY_ID = _DETAIL_BY_ID.where(public_record())


def dataset_detail(session: Session, dataset_id: str, *, public_only: bool = False) -> DatasetDetail:
    """The dataset with its latest quality score and utilization (as quality last announced them on
    platform.quality);
    with ``public_only`` (a reader without a key), only a published record its department lists.

    One query and no ORM objects: this is the catalog's most frequent read, and it needs neither
    the search text nor a unit of work that tracks what it loaded.
    """
    query = _PUBLIC_DETAIL_BY_ID if public_only else _DETAIL_BY_ID
    row = session.execute(query, {"dataset_id": dataset_id}).mappings().first()
    if row is None and public_only:
        raise not_public(dataset_id)
    if row is None:
        raise exceptions.DatasetNotFound(Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id))
    detail: dict[str, Any] = {column.key: row[column.key] for column in _DETAIL_DATASET}
    detail["topics"] = topics_of(dataset_id)
    if row["quality_updated_at"] is not None:
        detail["quality"] = {name: row[f"quality_{name}"] for name in QualitySummary.model_fields}
    if row["utilization_computed_at"] is not None:
        detail["utilization"] = {name: row[f"utilization_{name}"] for name in UtilizationSummary.model_fields}
    return DatasetDetail.model_validate(detail)


def may_publish_to(actor: Principal, owner_department_id: str | None) -> None:
    """Only the owning department (or an admin) changes a dataset or registers its contracts."""
    if not actor.is_admin() and actor.department_id != owner_department_id:
        raise Forbidden(Sentence(N_("only the owning department may change this dataset")))


def create_dataset(
    session: Session, *, events: CatalogEvents, audit: Auditor, actor: Principal, payload: DatasetCreate
) -> DatasetRead:
    """Register a dataset for its owning department (the actor's own, or any for an admin)."""
    audit.attempting(
        "dataset.create",
        "dataset",
        payload.id,
        dataset_id=payload.id,
        department_id=payload.owner_department_id,
    )
    may_publish_to(actor, payload.owner_department_id)
    dataset = add_dataset(session, events=events, payload=payload)
    audit.record(
        session,
        "dataset.create",
        "dataset",
        dataset.id,
        dataset_id=dataset.id,
        department_id=dataset.owner_department_id,
    )
    return dataset


def update_dataset(
    session: Session,
    *,
    events: CatalogEvents,
    audit: Auditor,
    actor: Principal,
    dataset_id: str,
    payload: DatasetUpdate,
) -> DatasetRead:
    """Change a dataset's description, status or classification (its owning department or an admin)."""
    owner = get_dataset(session, dataset_id).owner_department_id
    audit.attempting("dataset.update", "dataset", dataset_id, dataset_id=dataset_id, department_id=owner)
    may_publish_to(actor, owner)
    dataset = change_dataset(session, events=events, dataset_id=dataset_id, payload=payload)
    audit.record(
        session,
        "dataset.update",
        "dataset",
        dataset_id,
        dataset_id=dataset_id,
        department_id=owner,
        details={"changed": sorted(payload.model_dump(exclude_unset=True))},
    )
    return dataset


def add_dataset(session: Session, *, events: CatalogEvents, payload: DatasetCreate) -> DatasetRead:
    """Add a dataset and announce it, in the caller's session; no authorization or audit of its own."""
    if session.get(Dataset, payload.id) is not None:
        raise exceptions.AlreadyExists(Sentence(N_("dataset %(id)r exists"), id=payload.id))
    domain_id = payload.id.split(".", 1)[0]
    domain = session.get(Domain, domain_id)
    if domain is None:
        raise exceptions.DomainNotFound(
            Sentence(N_("no domain %(domain_id)r: the part of the id before the dot"), domain_id=domain_id)
        )
    _may_register_in(domain, get_department(session, payload.owner_department_id))
    dataset = Dataset(**payload.model_dump(), domain_id=domain_id)
    dataset.search_text = search_text(dataset, None)
    session.add(dataset)
    session.flush()
    index_dataset(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


def _may_register_in(domain: Domain, department: Department) -> None:
    """A department registers datasets in the domains it owns or was created for, and claims a
    domain no one owns yet; whoever calls (the department itself or an admin).

    Without this rule one department could take another's namespace (``health.*`` registered by
    market supervision) and keep its owner from registering the ids it needs.
    """
    if domain.owner_department_id is None:
        domain.owner_department_id = department.id
        return
    if domain.owner_department_id == department.id or domain.id in (department.domains or []):
        return
    raise exceptions.DomainOwnedByAnotherDepartment(
        Sentence(
            N_(
                "domain %(id)r is owned by department %(owner_department_id)r; %(department)r may not register datasets in it"
            ),
            id=domain.id,
            owner_department_id=domain.owner_department_id,
            department=department.id,
        ),
        domain_id=domain.id,
        owner_department_id=domain.owner_department_id,
    )


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise exceptions.DatasetNotFound(Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id))
    return dataset


def change_dataset(
    session: Session, *, events: CatalogEvents, dataset_id: str, payload: DatasetUpdate
) -> DatasetRead:
    """Apply the update and announce it, in the caller's session; no authorization or audit of its own."""
    dataset = get_dataset(session, dataset_id)
    for name, value in payload.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(dataset, name, value)
    dataset.updated_at = utcnow()
    dataset.search_text = search_text(dataset, current_version(session, dataset))
    session.flush()
    index_dataset(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


def current_version(session: Session, dataset: Dataset) -> ContractVersion | None:
    """The dataset's current contract version: the last registered, named by ``current_version``."""
    if dataset.current_version is None:
        return None
    return session.get(ContractVersion, (dataset.id, dataset.current_version))


def is_empty(session: Session) -> bool:
    return not session.scalar(sa.select(sa.func.count()).select_from(Dataset))
