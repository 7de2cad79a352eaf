"""Who may publish what: a dataset that takes records, its owning department (or an admin) as
the publisher, and the contract version the records claim. Reads the read model only; no session.
"""

from __future__ import annotations

from services.common.auth import Principal, PrincipalKind
from services.common.i18n import N_, Sentence
from services.ingest.exceptions import (
    ContractNotLoaded,
    ContractVersionMismatch,
    DatasetNotFound,
    DatasetNotWritable,
    NotDatasetPublisher,
    StreamClosed,
)
from services.ingest.projection import CatalogProjection, ContractVersion, DatasetState


def writable_dataset(catalog: CatalogProjection, dataset_id: str) -> DatasetState:
    """The dataset if it takes records: 404 if unknown, 409 if draft or retired."""
    dataset = catalog.dataset(dataset_id)
    if dataset is None:
        raise DatasetNotFound(Sentence(N_("no dataset %(dataset_id)r"), dataset_id=dataset_id))
    if not dataset.writable:
        raise DatasetNotWritable(
            Sentence(
                N_(
                    "dataset %(dataset_id)r is %(status)s; records are accepted while it is active or deprecated"
                ),
                dataset_id=dataset_id,
                status=dataset.status,
            ),
            dataset_status=dataset.status,
        )
    return dataset


def authorize_publisher(principal: Principal, dataset: DatasetState) -> None:
    """Only a department principal of the owning department, or an admin, publishes records."""
    if principal.is_admin():
        return
    if principal.kind is PrincipalKind.department and principal.department_id == dataset.owner_department_id:
        return
    raise NotDatasetPublisher(
        Sentence(
            N_(
                "dataset %(id)r belongs to department %(owner_department_id)r; %(principal)r may not publish to it"
            ),
            id=dataset.id,
            owner_department_id=dataset.owner_department_id,
            principal=principal.id,
        )
    )


def current_contract(catalog: CatalogProjection, dataset: DatasetState) -> ContractVersion:
    if dataset.current_version is None:
        raise DatasetNotWritable(
            Sentence(N_("dataset %(id)r has no contract yet; register one first"), id=dataset.id)
        )
    contract = catalog.contract(dataset.id, dataset.current_version)
    if contract is None:
        raise ContractNotLoaded(
            Sentence(
                N_("contract %(current_version)s of %(id)r has not reached ingest yet"),
                current_version=dataset.current_version,
                id=dataset.id,
            ),
            retry_after_s=1,
        )
    if not contract.has_schema:
        raise StreamClosed(stream_closed(contract))
    return contract


def stream_closed(contract: ContractVersion) -> str:
    """Why a dataset in the catalog takes no records yet: its contract describes no records."""
    return (
        f"contract version {contract.version} of {contract.dataset_id!r} has no schema, so its stream is "
        "closed; register a version with a schema to open it"
    )


def check_claimed_version(catalog: CatalogProjection, contract: ContractVersion, claimed: str | None) -> None:
    """A batch's ``CityBase-Contract-Version`` must be the current version (409 otherwise)."""
    if claimed is None or claimed == contract.version:
        return
    raise ContractVersionMismatch(
        version_mismatch(catalog, contract, claimed),
        current_version=contract.version,
        claimed_version=claimed,
    )


def version_mismatch(catalog: CatalogProjection, contract: ContractVersion, claimed: str) -> Sentence:
    if claimed in catalog.versions(contract.dataset_id):
        return Sentence(
            N_(
                "written for contract version %(claimed)s, but %(dataset_id)s is at %(version)s; "
                "only records of the current version are accepted"
            ),
            claimed=claimed,
            dataset_id=contract.dataset_id,
            version=contract.version,
        )
    return Sentence(
        N_("%(claimed)r is not a contract version of %(dataset_id)s; the current version is %(version)s"),
        claimed=claimed,
        dataset_id=contract.dataset_id,
        version=contract.version,
    )
