"""The catalog's business rules: departments, datasets, contract versions, principals and keys.

Every function takes its collaborators (session, outbox) as arguments and flushes; the caller's
unit of work commits. Each change adds its event to the outbox in the same transaction, so a
change and its announcement on ``platform.catalog`` are committed together or not at all.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, is_dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.contracts import compatibility, derive
from services.catalog.contracts.odcs import ParsedContract, compare_versions, parse_contract
from services.catalog.models import ApiKey, ContractVersion, Dataset, Department, Domain, Principal, utcnow
from services.catalog.schemas import (
    ApiKeyIssued,
    ApiKeyRead,
    BreakingChangeRead,
    CompatibilityModeName,
    CompatibilityReport,
    DatasetCreate,
    DatasetId,
    DatasetRead,
    DatasetStatus,
    DatasetUpdate,
    DepartmentCreate,
    DepartmentRead,
    DomainCreate,
    PrincipalCreate,
    PrincipalRead,
    Topics,
)
from services.catalog.standards.model import (
    CatalogDescription,
    DatasetDescription,
    PlatformLinks,
    PublisherDescription,
)
from services.common import catalog_events
from services.common.auth import issue_key
from services.common.outbox import Outbox
from services.common.problems import FieldError, Forbidden, json_pointer

DatasetIdAdapter: TypeAdapter[str] = TypeAdapter(DatasetId)

CITY_DOMAINS: tuple[tuple[str, str, str], ...] = (
    ("spatial", "Spatial & urban construction", "Land, buildings, permits, infrastructure, coordinates."),
    ("health", "Health", "Hospitals, outpatient and inpatient services, public health."),
    ("education", "Education", "Schools, enrolment, teaching resources."),
    ("culture", "Culture & sport", "Venues, events, libraries, sport facilities."),
    ("market", "Market supervision", "Licences, inspections, enterprise registration, food safety."),
    ("transport", "Transport", "Public transport, roads, traffic, parking."),
    ("community", "Community services", "Street and neighbourhood services, resident requests."),
)


def topics_of(dataset_id: str) -> Topics:
    return Topics(records=f"ds.{dataset_id}", dead_letter=f"dlq.{dataset_id}", raw=f"raw.{dataset_id}")


def dataset_read(dataset: Dataset) -> DatasetRead:
    return DatasetRead.model_validate(
        {
            **{c.key: getattr(dataset, c.key) for c in sa.inspect(Dataset).column_attrs},
            "topics": topics_of(dataset.id),
        }
    )


class CatalogEvents:
    """Announces catalog changes through the outbox, keyed by entity."""

    def __init__(self, outbox: Outbox) -> None:
        self._outbox = outbox

    def publish(
        self, session: Session, event_type: str, entity_id: str, state: BaseModel | dict[str, Any]
    ) -> None:
        payload = state if isinstance(state, dict) else state.model_dump(mode="json")
        self._outbox.add(session, catalog_events.catalog_record(event_type, entity_id, payload))


# --- domains and departments -------------------------------------------------------------


def ensure_city_domains(session: Session) -> None:
    """The city's fields of data exist in every catalog; more can be added."""
    existing = set(session.scalars(sa.select(Domain.id)))
    for domain_id, name, description in CITY_DOMAINS:
        if domain_id not in existing:
            session.add(Domain(id=domain_id, name=name, description=description))
    session.flush()


def create_domain(session: Session, payload: DomainCreate) -> Domain:
    if session.get(Domain, payload.id) is not None:
        raise exceptions.AlreadyExists(f"domain {payload.id!r} exists")
    domain = Domain(**payload.model_dump())
    session.add(domain)
    session.flush()
    return domain


def list_domains(session: Session) -> Sequence[Domain]:
    return session.scalars(sa.select(Domain).order_by(Domain.id)).all()


def create_department(session: Session, events: CatalogEvents, payload: DepartmentCreate) -> DepartmentRead:
    if session.get(Department, payload.id) is not None:
        raise exceptions.AlreadyExists(f"department {payload.id!r} exists")
    for domain_id in payload.domains:
        if session.get(Domain, domain_id) is None:
            raise exceptions.DomainNotFound(f"no domain {domain_id!r}")
    department = Department(**payload.model_dump())
    session.add(department)
    session.flush()
    read = DepartmentRead.model_validate(department)
    events.publish(session, catalog_events.DEPARTMENT, department.id, read)
    return read


def get_department(session: Session, department_id: str) -> Department:
    department = session.get(Department, department_id)
    if department is None:
        raise exceptions.DepartmentNotFound(f"no department {department_id!r}")
    return department


def list_departments(session: Session) -> Sequence[Department]:
    return session.scalars(sa.select(Department).order_by(Department.id)).all()


# --- datasets ------------------------------------------------------------------------------


def create_dataset(session: Session, events: CatalogEvents, payload: DatasetCreate) -> DatasetRead:
    if session.get(Dataset, payload.id) is not None:
        raise exceptions.AlreadyExists(f"dataset {payload.id!r} exists")
    domain_id = payload.id.split(".", 1)[0]
    if session.get(Domain, domain_id) is None:
        raise exceptions.DomainNotFound(f"no domain {domain_id!r}: the part of the id before the dot")
    get_department(session, payload.owner_department_id)
    dataset = Dataset(**payload.model_dump(), domain_id=domain_id)
    dataset.search_text = _search_text(dataset, None)
    session.add(dataset)
    session.flush()
    _index(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


def get_dataset(session: Session, dataset_id: str) -> Dataset:
    dataset = session.get(Dataset, dataset_id)
    if dataset is None:
        raise exceptions.DatasetNotFound(f"no dataset {dataset_id!r}")
    return dataset


def update_dataset(
    session: Session, events: CatalogEvents, dataset_id: str, payload: DatasetUpdate
) -> DatasetRead:
    dataset = get_dataset(session, dataset_id)
    for name, value in payload.model_dump(exclude_unset=True).items():
        if value is not None:
            setattr(dataset, name, value)
    dataset.updated_at = utcnow()
    dataset.search_text = _search_text(dataset, _current(dataset))
    session.flush()
    _index(session, dataset)
    read = dataset_read(dataset)
    events.publish(session, catalog_events.DATASET, dataset.id, read)
    return read


@dataclass(frozen=True)
class DatasetFilter:
    q: str | None = None
    domain: str | None = None
    department: str | None = None
    classification: str | None = None
    status: str | None = None
    tag: str | None = None


def search_datasets(
    session: Session, filters: DatasetFilter, *, limit: int = 50, cursor: str | None = None
) -> tuple[list[DatasetRead], str | None]:
    """Datasets matching the filters and the full-text query, in id order, one page at a time.

    Full text covers title, description, tags and field names: FTS5 on SQLite, a GIN-indexed
    ``to_tsvector`` on PostgreSQL. The cursor is the last id of the previous page.
    """
    query = sa.select(Dataset).order_by(Dataset.id).limit(limit + 1)
    if cursor:
        query = query.where(Dataset.id > _decode_cursor(cursor))
    if filters.domain:
        query = query.where(Dataset.domain_id == filters.domain)
    if filters.department:
        query = query.where(Dataset.owner_department_id == filters.department)
    if filters.classification:
        query = query.where(Dataset.classification == filters.classification)
    if filters.status:
        query = query.where(Dataset.status == filters.status)
    if filters.tag:
        # tags are a short JSON list: a LIKE on the serialised list, confirmed in Python below
        query = query.where(
            sa.cast(Dataset.tags, sa.Text).like(f'%"{_escape_like(filters.tag)}"%', escape="\\")
        )
    if filters.q and filters.q.strip():
        query = query.where(_full_text(session, filters.q))
    rows = list(session.scalars(query))
    if filters.tag:
        rows = [row for row in rows if filters.tag in row.tags]
    page, more = rows[:limit], len(rows) > limit
    next_cursor = _encode_cursor(page[-1].id) if more and page else None
    return [dataset_read(row) for row in page], next_cursor


def _full_text(session: Session, q: str) -> sa.ColumnElement[bool]:
    terms = [term for term in "".join(c if c.isalnum() else " " for c in q).split() if term]
    if not terms:
        return sa.true()
    if session.get_bind().dialect.name == "sqlite":
        match = " ".join(f'"{term}"*' for term in terms)
        return Dataset.id.in_(
            sa.select(sa.column("dataset_id"))
            .select_from(sa.table("catalog_datasets_fts"))
            .where(sa.text("catalog_datasets_fts MATCH :match").bindparams(match=match))
        )
    if session.get_bind().dialect.name == "postgresql":
        tsquery = " & ".join(f"{term}:*" for term in terms)
        return sa.func.to_tsvector("simple", Dataset.search_text).op("@@")(
            sa.func.to_tsquery("simple", tsquery)
        )
    return sa.and_(*(Dataset.search_text.ilike(f"%{term}%") for term in terms))


def _search_text(dataset: Dataset, version: ContractVersion | None) -> str:
    fields = list((version.record_schema.get("properties") or {}).keys()) if version else []
    words = [dataset.id, dataset.title, dataset.description, " ".join(dataset.tags), " ".join(fields)]
    # field names like wait_minutes are indexed whole and split, so "wait" finds them
    words.append(" ".join(part for name in fields for part in name.replace("-", "_").split("_")))
    return "\n".join(word for word in words if word)


def _index(session: Session, dataset: Dataset) -> None:
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(sa.text("DELETE FROM catalog_datasets_fts WHERE dataset_id = :id"), {"id": dataset.id})
    session.execute(
        sa.text("INSERT INTO catalog_datasets_fts (dataset_id, body) VALUES (:id, :body)"),
        {"id": dataset.id, "body": dataset.search_text},
    )


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^[A-Za-z0-9_-]{1,400}$")


def _decode_cursor(cursor: str) -> str:
    try:
        if not _CURSOR.match(cursor):
            raise ValueError(cursor)
        last_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        DatasetIdAdapter.validate_python(last_id)
        return last_id
    except (binascii.Error, UnicodeDecodeError, ValueError) as error:
        raise exceptions.InvalidCursor("the cursor was not issued by this API") from error


# --- contract versions ---------------------------------------------------------------------


def _current(dataset: Dataset) -> ContractVersion | None:
    return dataset.versions[-1] if dataset.versions else None


def check_version(dataset: Dataset, contract: ParsedContract) -> CompatibilityReport:
    """Would ``contract`` be accepted as the dataset's next version, and if not, why not."""
    if contract.id != dataset.id:
        raise exceptions.ContractMismatch(
            f"the contract's id is {contract.id!r}, not {dataset.id!r}",
        )
    previous = list(dataset.versions)
    if previous and compare_versions(contract.version, previous[-1].version) <= 0:
        raise exceptions.VersionNotHigher(
            f"version {contract.version} is not higher than the last, {previous[-1].version}"
        )
    mode = compatibility.CompatibilityMode(dataset.compatibility_mode)
    history = [(version.version, version.record_schema) for version in previous]
    changes = compatibility.check(derive.record_schema(contract), history, mode)
    transitive = mode.value.endswith("TRANSITIVE")
    checked = [v for v, _ in history] if transitive else [v for v, _ in history[-1:]]
    if mode is compatibility.CompatibilityMode.NONE:
        checked = []
    return CompatibilityReport(
        compatible=not changes,
        mode=CompatibilityModeName(mode.value),
        version=contract.version,
        checked_against=checked,
        breaking_changes=[
            BreakingChangeRead.model_validate(change, from_attributes=True) for change in changes
        ],
    )


def register_version(
    session: Session,
    events: CatalogEvents,
    dataset_id: str,
    document: str | bytes,
    *,
    created_by: str,
) -> ContractVersion:
    """Store a new contract version if it parses, is higher, and keeps the compatibility mode."""
    dataset = get_dataset(session, dataset_id)
    contract = parse_contract(document)
    report = check_version(dataset, contract)
    if not report.compatible:
        raise exceptions.IncompatibleContract(
            f"{len(report.breaking_changes)} breaking change(s) under {report.mode}",
            breaking_changes=[change.model_dump(mode="json") for change in report.breaking_changes],
        )
    text = document.decode() if isinstance(document, bytes) else document
    version = ContractVersion(
        dataset_id=dataset.id,
        version=contract.version,
        sequence=len(dataset.versions) + 1,
        api_version=contract.api_version,
        document=text,
        document_format="json" if text.lstrip().startswith("{") else "yaml",
        fingerprint=contract.fingerprint,
        record_schema=derive.record_schema(contract),
        primary_key=list(derive.primary_key(contract)),
        sensitive_fields={name: _plain(rule) for name, rule in derive.sensitive_fields(contract).items()},
        sla=_plain(derive.sla_targets(contract)),
        expectation_suite=list(derive.expectation_suite(contract)),
        created_by=created_by,
    )
    session.add(version)
    dataset.versions.append(version)
    dataset.current_version = version.version
    dataset.updated_at = utcnow()
    dataset.search_text = _search_text(dataset, version)
    session.flush()
    _index(session, dataset)
    events.publish(
        session, catalog_events.CONTRACT_VERSION, f"{dataset.id}:{version.version}", contract_state(version)
    )
    events.publish(session, catalog_events.DATASET, dataset.id, dataset_read(dataset))
    return version


def register_contract(
    session: Session,
    events: CatalogEvents,
    document: str | bytes,
    *,
    created_by: str,
    department_id: str | None = None,
) -> ContractVersion:
    """Register an ODCS document: a new dataset (described by the contract) or its next version.

    The dataset's owner, classification and compatibility mode come from the contract's citybase
    custom properties; ``department_id`` is the caller's department, which must own the dataset.
    """
    contract = parse_contract(document)
    existing = session.get(Dataset, contract.id)
    if existing is None:
        policy = derive.dataset_policy(contract)
        owner = policy.department or department_id
        if owner is None:
            raise exceptions.ContractMismatch(
                "a new dataset needs an owner: set the contract's citybase.department custom property"
            )
        if department_id is not None and owner != department_id:
            raise Forbidden(f"the contract names department {owner!r}, not yours")
        description = contract.model.description
        try:
            payload = DatasetCreate(
                id=contract.id,
                title=contract.model.name or contract.id,
                description=(description.purpose or "") if description else "",
                owner_department_id=owner,
                tags=list(contract.model.tags or []),
                classification=policy.classification or "conditional",
                status=DatasetStatus.active if contract.model.status == "active" else DatasetStatus.draft,
                compatibility_mode=policy.compatibility or CompatibilityModeName.BACKWARD,
            )
        except ValidationError as error:
            raise exceptions.ContractMismatch(
                "the contract cannot describe a citybase dataset", errors=_contract_field_errors(error)
            ) from None
        create_dataset(session, events, payload)
    elif department_id is not None and existing.owner_department_id != department_id:
        raise Forbidden("only the owning department may register versions of this dataset")
    return register_version(session, events, contract.id, document, created_by=created_by)


_CONTRACT_PATH_OF_FIELD = {
    "id": ["id"],
    "title": ["name"],
    "description": ["description", "purpose"],
    "tags": ["tags"],
    "owner_department_id": ["customProperties", "citybase.department"],
}


def _contract_field_errors(error: ValidationError) -> list[FieldError]:
    """Where in the ODCS document each invalid dataset attribute came from."""
    errors = []
    for detail in error.errors():
        field, *rest = detail["loc"] or ("id",)
        path = _CONTRACT_PATH_OF_FIELD.get(str(field), [str(field)]) + list(rest)
        errors.append(FieldError(path=json_pointer(path), rule=detail["type"], message=detail["msg"]))
    return errors


def contract_state(version: ContractVersion) -> dict[str, Any]:
    """What read models need of a contract version (no document: they validate, not display)."""
    return {
        "dataset_id": version.dataset_id,
        "version": version.version,
        "sequence": version.sequence,
        "fingerprint": version.fingerprint,
        "record_schema": version.record_schema,
        "primary_key": version.primary_key,
        "sensitive_fields": version.sensitive_fields,
        "sla": version.sla,
        "expectation_suite": version.expectation_suite,
        "created_at": version.created_at.isoformat(),
    }


def get_version(session: Session, dataset_id: str, version: str | None = None) -> ContractVersion:
    dataset = get_dataset(session, dataset_id)
    if version is None:
        current = _current(dataset)
        if current is None:
            raise exceptions.ContractVersionNotFound(f"dataset {dataset_id!r} has no contract yet")
        return current
    found = session.get(ContractVersion, (dataset_id, version))
    if found is None:
        raise exceptions.ContractVersionNotFound(f"dataset {dataset_id!r} has no version {version!r}")
    return found


def _plain(value: Any) -> Any:
    """A dataclass (masking rule, SLA targets) as JSON-ready data."""
    if is_dataclass(value) and not isinstance(value, type):
        return {key: _plain(item) for key, item in asdict(value).items()}
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if hasattr(value, "value") and not isinstance(value, (str, int, float, bool)):
        return value.value
    return value


# --- principals and API keys ---------------------------------------------------------------


def create_principal(session: Session, events: CatalogEvents, payload: PrincipalCreate) -> PrincipalRead:
    if session.get(Principal, payload.id) is not None:
        raise exceptions.AlreadyExists(f"principal {payload.id!r} exists")
    if payload.department_id is not None:
        get_department(session, payload.department_id)
    principal = Principal(**payload.model_dump())
    session.add(principal)
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def set_principal_status(
    session: Session, events: CatalogEvents, principal_id: str, status: str
) -> PrincipalRead:
    """Suspend (``suspended``) or reactivate (``active``) a principal: its keys stop or work again
    everywhere as soon as the event reaches each service's key ring."""
    principal = get_principal(session, principal_id)
    principal.status = status
    session.flush()
    read = PrincipalRead.model_validate(principal)
    events.publish(session, catalog_events.PRINCIPAL, principal.id, read)
    return read


def get_principal(session: Session, principal_id: str) -> Principal:
    principal = session.get(Principal, principal_id)
    if principal is None:
        raise exceptions.PrincipalNotFound(f"no principal {principal_id!r}")
    return principal


def list_principals(session: Session, kind: str | None = None) -> Sequence[Principal]:
    query = sa.select(Principal).order_by(Principal.id)
    if kind:
        query = query.where(Principal.kind == kind)
    return session.scalars(query).all()


def issue_api_key(session: Session, events: CatalogEvents, principal_id: str, name: str = "") -> ApiKeyIssued:
    """A new key for the principal; the returned ``key`` is the only time it is ever shown."""
    get_principal(session, principal_id)
    issued = issue_key()
    api_key = ApiKey(prefix=issued.prefix, principal_id=principal_id, key_hash=issued.key_hash, name=name)
    session.add(api_key)
    session.flush()
    events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))
    return ApiKeyIssued.model_validate({**ApiKeyRead.model_validate(api_key).model_dump(), "key": issued.key})


def list_api_keys(session: Session, principal_id: str) -> Sequence[ApiKey]:
    get_principal(session, principal_id)
    return session.scalars(
        sa.select(ApiKey).where(ApiKey.principal_id == principal_id).order_by(ApiKey.created_at)
    ).all()


def revoke_api_key(session: Session, events: CatalogEvents, principal_id: str, prefix: str) -> ApiKey:
    api_key = session.get(ApiKey, prefix)
    if api_key is None or api_key.principal_id != principal_id:
        raise exceptions.ApiKeyNotFound(f"no key {prefix!r} for principal {principal_id!r}")
    if api_key.revoked_at is None:
        api_key.revoked_at = utcnow()
        session.flush()
        events.publish(session, catalog_events.API_KEY, api_key.prefix, _key_state(api_key))
    return api_key


def _key_state(api_key: ApiKey) -> dict[str, Any]:
    return {
        "prefix": api_key.prefix,
        "principal_id": api_key.principal_id,
        "key_hash": api_key.key_hash,
        "revoked_at": api_key.revoked_at.isoformat() if api_key.revoked_at else None,
    }


def bootstrap_admin(session: Session, events: CatalogEvents) -> ApiKeyIssued | None:
    """On an empty catalog, create the admin principal and its first key (shown once)."""
    ensure_city_domains(session)
    if session.scalar(sa.select(sa.func.count()).select_from(Principal)):
        return None
    create_principal(
        session, events, PrincipalCreate(id="admin", kind="admin", name="Platform administrator")
    )
    return issue_api_key(session, events, "admin", "bootstrap")


def is_empty(session: Session) -> bool:
    return not session.scalar(sa.select(sa.func.count()).select_from(Dataset))


def load_examples(session: Session, events: CatalogEvents, directory: Path) -> list[str]:
    """Register the example departments and every example contract version, oldest first.

    ``directory`` holds ``departments.yaml`` and ``datasets/<dataset-id>/<version>.yaml``. Used
    by ``citybase up`` on an empty catalog, so that a newcomer sees real datasets at once.
    """
    ensure_city_domains(session)
    for entry in yaml.safe_load((directory / "departments.yaml").read_text(encoding="utf-8")):
        if session.get(Department, entry["id"]) is None:
            create_department(session, events, DepartmentCreate.model_validate(entry))
    registered: list[str] = []
    for dataset_dir in sorted(path for path in (directory / "datasets").iterdir() if path.is_dir()):
        files = sorted(dataset_dir.glob("*.yaml"), key=lambda path: _semver_sort_key(path.stem))
        for path in files:
            version = register_contract(
                session, events, path.read_text(encoding="utf-8"), created_by="examples"
            )
            registered.append(f"{version.dataset_id}@{version.version}")
    return registered


def _semver_sort_key(text: str) -> tuple[int, ...]:
    return tuple(int(part) if part.isdigit() else 0 for part in text.split("-", 1)[0].split("."))


# --- standard interfaces: descriptions for DCAT-AP and AsyncAPI ----------------------------


def describe(dataset: Dataset, department: Department) -> DatasetDescription:
    """The exporters' view of one dataset and its current contract."""
    current = _current(dataset)
    frequency = (current.sla or {}).get("frequency_s") if current else None
    return DatasetDescription(
        id=dataset.id,
        title=dataset.title,
        description=dataset.description,
        publisher=PublisherDescription(
            id=department.id, name=department.name, kind=department.kind, email=department.contact_email
        ),
        domain=dataset.domain_id,
        classification=dataset.classification,  # type: ignore[arg-type]
        status=dataset.status,
        created_at=_aware(dataset.created_at),
        updated_at=_aware(dataset.updated_at),
        tags=tuple(dataset.tags),
        update_frequency=f"PT{int(frequency)}S" if frequency else dataset.update_frequency,
        contract_version=current.version if current else None,
        record_schema=current.record_schema if current else None,
        primary_key=tuple(current.primary_key) if current else (),
    )


def describe_one(session: Session, dataset_id: str) -> DatasetDescription:
    dataset = get_dataset(session, dataset_id)
    return describe(dataset, get_department(session, dataset.owner_department_id))


def iter_descriptions(session: Session, batch: int = 500) -> Iterator[DatasetDescription]:
    """Every dataset, streamed from the database in batches (memory flat in the catalog's size).

    Keyset pagination rather than one long cursor, so no transaction stays open while a slow
    client reads the export.
    """
    departments = {department.id: department for department in list_departments(session)}
    last = ""
    while True:
        rows = session.scalars(
            sa.select(Dataset).where(Dataset.id > last).order_by(Dataset.id).limit(batch)
        ).all()
        if not rows:
            return
        for dataset in rows:
            yield describe(dataset, departments[dataset.owner_department_id])
        last = rows[-1].id
        session.expunge_all()


def catalog_description(session: Session, links: PlatformLinks) -> CatalogDescription:
    return CatalogDescription(
        title="citybase: the city's public data",
        description="Datasets published by the city's departments as live streams under ODCS data contracts.",
        publisher=PublisherDescription(id="city", name="City data administration", kind="city"),
        homepage=links.base_url + "/",
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
