"""The catalog read as standard descriptions: what the DCAT-AP and AsyncAPI exporters are given.

Reads only, in the caller's session, except :func:`catalog_export`, which opens its own: a
streamed export outlives the request's unit of work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import orm
from sqlalchemy.orm import Session

from services.catalog.access.grants import get_grant
from services.catalog.audit.auditor import Auditor
from services.catalog.datasets.service import current_version, get_dataset, not_public, public_record
from services.catalog.domains.service import get_department, list_departments
from services.catalog.models import ContractVersion, Dataset, Department
from services.catalog.search.service import decode_cursor, encode_cursor
from services.catalog.standards import asyncapi, dcat, dcat_serialization, odrl
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)
from services.common.auth import Principal
from services.common.clock import aware


def describe_department(department: Department) -> PublisherDescription:
    """A department as the exporters see it: a publisher."""
    return PublisherDescription(
        id=department.id, name=department.name, kind=department.kind, email=department.contact_email
    )


def describe(dataset: Dataset, department: Department, current: ContractVersion | None) -> DatasetDescription:
    """The exporters' view of one dataset and its current contract."""
    frequency = (current.sla or {}).get("frequency_s") if current else None
    return DatasetDescription(
        id=dataset.id,
        title=dataset.title,
        description=dataset.description,
        publisher=describe_department(department),
        domain=dataset.domain_id,
        classification=dataset.classification,  # type: ignore[arg-type]
        status=dataset.status,
        created_at=aware(dataset.created_at),
        updated_at=aware(dataset.updated_at),
        tags=tuple(dataset.tags),
        update_frequency=f"PT{int(frequency)}S" if frequency else dataset.update_frequency,
        contract_version=current.version if current else None,
        record_schema=current.record_schema if current else None,
        primary_key=tuple(current.primary_key) if current else (),
    )


def describe_one(session: Session, *, dataset_id: str, public_only: bool = False) -> DatasetDescription:
    """One dataset; with ``public_only``, only a published dataset whose record is listed."""
    dataset = get_dataset(session, dataset_id) if not public_only else public_dataset(session, dataset_id)
    return describe(
        dataset, get_department(session, dataset.owner_department_id), current_version(session, dataset)
    )


def public_dataset(session: Session, dataset_id: str) -> Dataset:
    """A dataset whose record is public (published, not hidden by its department); any other id
    is the same 401 (:func:`~services.catalog.datasets.service.not_public`)."""
    dataset = session.scalars(sa.select(Dataset).where(Dataset.id == dataset_id, public_record())).first()
    if dataset is None:
        raise not_public(dataset_id)
    return dataset


def iter_descriptions(
    session: Session,
    *,
    batch: int = 500,
    public_only: bool = False,
    after: str = "",
    until: str | None = None,
) -> Iterator[DatasetDescription]:
    """Every dataset (with ``public_only``, every public record) after ``after`` and up to
    ``until``, streamed from the database in batches (memory flat in the catalog's size).

    Keyset pagination rather than one long cursor, so no transaction stays open while a slow
    client reads the export.
    """
    departments = {department.id: department for department in list_departments(session)}
    last = after
    while True:
        query = sa.select(Dataset).where(Dataset.id > last).order_by(Dataset.id).limit(batch)
        if public_only:
            query = query.where(public_record())
        if until is not None:
            query = query.where(Dataset.id <= until)
        rows = session.scalars(query).all()
        if not rows:
            return
        current = _current_versions(session, [dataset.id for dataset in rows])
        for dataset in rows:
            yield describe(dataset, departments[dataset.owner_department_id], current.get(dataset.id))
        last = rows[-1].id
        session.expunge_all()


def _current_versions(session: Session, dataset_ids: Sequence[str]) -> dict[str, ContractVersion]:
    """The current contract version of each dataset, in one query and without the documents."""
    query = (
        sa.select(ContractVersion)
        .join(
            Dataset,
            sa.and_(
                Dataset.id == ContractVersion.dataset_id, Dataset.current_version == ContractVersion.version
            ),
        )
        .where(Dataset.id.in_(dataset_ids))
        .options(orm.load_only(*_DESCRIBED_VERSION_COLUMNS))
    )
    return {version.dataset_id: version for version in session.scalars(query)}


_DESCRIBED_VERSION_COLUMNS = (
    ContractVersion.dataset_id,
    ContractVersion.version,
    ContractVersion.record_schema,
    ContractVersion.primary_key,
    ContractVersion.sla,
)


def catalog_description() -> CatalogDescription:
    # No homepage of its own: the export links the catalog's API documentation, which the
    # catalog service itself answers wherever it is deployed.
    return CatalogDescription(
        title="citybase: the city's public data",
        description="Datasets published by the city's departments as live streams under ODCS data contracts.",
        publisher=PublisherDescription(id="city", name="City data administration", kind="city"),
    )


@dataclass(frozen=True)
class CatalogPage:
    """One page of the catalog a harvester asked for: at most ``limit`` datasets after the
    ``cursor`` of the previous page; ``query`` is what else the page's links repeat (the format)."""

    limit: int
    cursor: str | None = None
    query: str = ""

    def link(self, links: PlatformLinks, cursor: str | None) -> str:
        after = f"&cursor={cursor}" if cursor else ""
        return f"{links.catalog}?limit={self.limit}{after}{self.query}"


def catalog_export(
    sessions: Callable[[], Session],
    *,
    links: PlatformLinks,
    turtle: bool,
    public_only: bool = False,
    page: CatalogPage | None = None,
) -> Iterator[str]:
    """The catalog as DCAT-AP 3, Turtle or JSON-LD, chunk by chunk, in a session of its own
    (from ``sessions``) that lives as long as the client reads: whole, or one page of it with
    the Hydra links a harvester walks (``hydra:next`` until the last page).

    The cursor is checked now, before the first chunk: once a stream has begun, a refusal
    could no longer be an answer of its own.
    """
    after = decode_cursor(page.cursor) if page is not None and page.cursor else ""
    return _catalog_chunks(
        sessions, links=links, turtle=turtle, public_only=public_only, page=page, after=after
    )


def _catalog_chunks(
    sessions: Callable[[], Session],
    *,
    links: PlatformLinks,
    turtle: bool,
    public_only: bool,
    page: CatalogPage | None,
    after: str,
) -> Iterator[str]:
    export = dcat_serialization.catalog_turtle if turtle else dcat_serialization.catalog_jsonld
    with sessions() as session:
        if page is None:
            yield from export(
                iter_descriptions(session, public_only=public_only), links, catalog_description()
            )
            return
        listed = sa.select(Dataset.id).where(public_record()) if public_only else sa.select(Dataset.id)
        ids = list(
            session.scalars(listed.where(Dataset.id > after).order_by(Dataset.id).limit(page.limit + 1))
        )
        total = session.scalar(sa.select(sa.func.count()).select_from(listed.subquery())) or 0
        shown = ids[: page.limit]
        following = page.link(links, encode_cursor(shown[-1])) if len(ids) > page.limit else None
        paging = dcat.page_triples(
            links, page.link(links, page.cursor), page.link(links, None), following, total
        )
        datasets = (
            iter_descriptions(session, public_only=public_only, after=after, until=shown[-1])
            if shown
            else iter(())
        )
        yield from export(datasets, links, catalog_description(), paging)


def dataset_asyncapi(
    session: Session,
    *,
    dataset_id: str,
    links: PlatformLinks,
    kafka_bootstrap: str,
    public_only: bool = False,
) -> dict[str, Any]:
    """The AsyncAPI 3 document of one dataset's topics."""
    description = describe_one(session, dataset_id=dataset_id, public_only=public_only)
    return asyncapi.dataset_asyncapi(description, links, kafka_bootstrap=kafka_bootstrap)


def platform_asyncapi(
    session: Session,
    *,
    links: PlatformLinks,
    kafka_bootstrap: str,
    event_schemas: Path,
    public_only: bool = False,
) -> dict[str, Any]:
    """The AsyncAPI 3 document of the whole platform (with ``public_only``, of its public
    records), with the platform events' JSON Schemas from ``event_schemas`` where that
    directory exists."""
    schemas = asyncapi.read_event_schemas(event_schemas) if event_schemas.is_dir() else None
    return asyncapi.platform_asyncapi(
        iter_descriptions(session, public_only=public_only),
        links,
        kafka_bootstrap=kafka_bootstrap,
        event_schemas=schemas,
    )


def dataset_odrl_offer(session: Session, *, dataset_id: str, links: PlatformLinks) -> dict[str, Any]:
    """The dataset's usage terms as an ODRL 2.2 offer: its classification and the masking its
    current contract sets on sensitive fields. Reads only."""
    dataset = get_dataset(session, dataset_id)
    current = current_version(session, dataset)
    return odrl.dataset_offer(
        dataset_id=dataset.id,
        owner_department_id=dataset.owner_department_id,
        classification=dataset.classification,
        sensitive_fields=current.sensitive_fields if current is not None else {},
        links=links,
    )


def grant_odrl_agreement(
    session: Session, *, actor: Principal, grant_id: str, links: PlatformLinks, audit: Auditor
) -> dict[str, Any]:
    """One grant as an ODRL 2.2 agreement, to whoever may read the grant (read and refusal
    audited as a read of the grant, as :func:`~services.catalog.access.grants.get_grant` does)."""
    grant = get_grant(session, actor=actor, grant_id=grant_id, audit=audit)
    owner = get_dataset(session, grant.dataset_id).owner_department_id
    return odrl.grant_agreement(
        grant_id=grant.id,
        scenario_id=grant.scenario_id,
        dataset_id=grant.dataset_id,
        owner_department_id=owner,
        status=grant.status.value,
        fields=list(grant.fields),
        masking=grant.masking,
        purpose=grant.purpose,
        purpose_category=grant.purpose_category.value,
        valid_from=grant.valid_from,
        expires_at=grant.expires_at,
        links=links,
    )
