"""Contract versions of a dataset: register, check, list and read them.

A version is stored only if its ODCS document parses, its version is higher than the last and
its record schema keeps the dataset's compatibility mode; from it the platform's derivations
(record schema, primary key, masking, SLA, expectation suite) are stored beside the document and
announced on ``platform.catalog``. Every function works in the caller's session and flushes; the
caller's unit of work commits. :func:`register_version` and :func:`register_contract` are a
publisher's requests: they authorize, audit and write, and mask what the new version makes
sensitive on the grants that exist; :func:`add_version` and :func:`add_contract` are the writes
alone, for the loaders.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, is_dataclass
from typing import Any

import sqlalchemy as sa
from pydantic import ValidationError
from sqlalchemy import orm
from sqlalchemy.orm import Session

from services.catalog import exceptions
from services.catalog.access.context import Collaborators
from services.catalog.access.grants import apply_contract_masking
from services.catalog.contracts import compatibility
from services.catalog.contracts.expectations import expectation_suite
from services.catalog.contracts.identity import DatasetIdentity, dataset_identity, record_type_errors
from services.catalog.contracts.json_schema import record_schema
from services.catalog.contracts.odcs import (
    MAX_CONTRACT_BYTES,
    ContractTooLarge,
    ParsedContract,
    compare_versions,
    parse_contract,
)
from services.catalog.contracts.policy import dataset_policy, primary_key, sensitive_fields
from services.catalog.contracts.sla import sla_targets
from services.catalog.datasets.service import (
    add_dataset,
    current_version,
    dataset_read,
    get_dataset,
    may_publish_to,
    not_public,
    public_record,
)
from services.catalog.domains.service import get_department
from services.catalog.events import CatalogEvents
from services.catalog.models import ContractVersion, Dataset, Domain
from services.catalog.needs.service import fulfil_referenced_needs
from services.catalog.schemas import (
    BreakingChangeRead,
    CompatibilityModeName,
    CompatibilityReport,
    ContractVersionRead,
    DatasetCreate,
    DatasetStatus,
)
from services.catalog.search.index import index_dataset, search_text
from services.common import catalog_events
from services.common.auth import Principal
from services.common.clock import utcnow
from services.common.i18n import N_, Sentence
from services.common.problems import FieldError, Forbidden, json_pointer


def _refuse_oversized(document: bytes) -> None:
    """The route reads at most one byte past the limit; a document that long is refused here,
    after the request has named what it attempts, so that the refusal is audited as such."""
    if len(document) > MAX_CONTRACT_BYTES:
        raise ContractTooLarge(
            Sentence(
                N_("a contract document may have at most %(max_bytes)s bytes"), max_bytes=MAX_CONTRACT_BYTES
            )
        )


def register_version(
    ctx: Collaborators, *, actor: Principal, dataset_id: str, document: bytes
) -> ContractVersionRead:
    """A publisher's next version of its dataset's contract (the owning department or an admin).

    In the request's session (``ctx.session``), committed by the caller with the audit entry and
    the masking of the existing grants.
    """
    session, audit = ctx.session, ctx.audit
    audit.attempting("contract_version.register", "dataset", dataset_id, dataset_id=dataset_id)
    _refuse_oversized(document)
    owner = get_dataset(session, dataset_id).owner_department_id
    audit.attempting(
        "contract_version.register", "dataset", dataset_id, dataset_id=dataset_id, department_id=owner
    )
    may_publish_to(actor, owner)
    version = add_version(
        session, events=ctx.events, dataset_id=dataset_id, document=document, created_by=actor.id
    )
    return _registered(ctx, actor, version, owner)


def register_contract(ctx: Collaborators, *, actor: Principal, document: bytes) -> ContractVersionRead:
    """A publisher's ODCS document: the dataset it describes if new (in the actor's department),
    else its next version. In the request's session (``ctx.session``), committed by the caller."""
    session, audit = ctx.session, ctx.audit
    department = None if actor.is_admin() else actor.department_id
    audit.attempting("contract_version.register", "contract", "-", department_id=department)
    _refuse_oversized(document)
    version = add_contract(
        session, events=ctx.events, document=document, created_by=actor.id, department_id=department
    )
    owner = get_dataset(session, version.dataset_id).owner_department_id
    return _registered(ctx, actor, version, owner)


def _registered(
    ctx: Collaborators, actor: Principal, version: ContractVersion, owner: str | None
) -> ContractVersionRead:
    """What follows every registration, by either request: the audit entry, the contract's
    masking applied to the grants that exist (a field it newly marks sensitive), and the needs
    it names under ``citybase.needs`` fulfilled."""
    ctx.audit.record(
        ctx.session,
        "contract_version.register",
        "contract_version",
        f"{version.dataset_id}@{version.version}",
        dataset_id=version.dataset_id,
        department_id=owner,
        details={"version": version.version},
    )
    apply_contract_masking(ctx, dataset_id=version.dataset_id)
    fulfil_referenced_needs(ctx, actor=actor, version=version)
    return ContractVersionRead.model_validate(version)


def check_contract(session: Session, *, dataset_id: str, document: bytes) -> CompatibilityReport:
    """Dry run of :func:`register_version`: would the document be accepted, and if not, why not.
    Reads only, in the caller's session."""
    _refuse_oversized(document)
    dataset = get_dataset(session, dataset_id)
    contract, identity = parse_for_catalog(session, document, default_domain=dataset.domain_id)
    return check_version(session, dataset=dataset, contract=contract, identity=identity)


@dataclass(frozen=True)
class _Earlier:
    """What a compatibility check needs of an earlier version (not its document)."""

    version: str
    sequence: int
    record_schema: dict[str, Any]


class RecordSchemaCache:
    """Record schemas of stored contract versions, by dataset, version and document fingerprint.

    A stored version never changes, and the same document always derives the same record schema,
    so a schema read (or derived) once serves every later compatibility check in the process:
    a check under a transitive mode then reads only the earlier versions' keys, not 20 record
    schemas to decode. Keyed by fingerprint as well, so a version registered in a transaction
    that rolled back and then registered again with another document is never confused with it.
    Bounded (least recently used out); thread-safe.
    """

    def __init__(self, size: int = 1024) -> None:
        self._size = size
        self._schemas: OrderedDict[tuple[str, str, str], dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> dict[str, Any] | None:
        with self._lock:
            schema = self._schemas.get(key)
            if schema is not None:
                self._schemas.move_to_end(key)
            return schema

    def put(self, key: tuple[str, str, str], schema: dict[str, Any]) -> None:
        with self._lock:
            self._schemas[key] = schema
            self._schemas.move_to_end(key)
            while len(self._schemas) > self._size:
                self._schemas.popitem(last=False)


RECORD_SCHEMAS = RecordSchemaCache()


def _earlier_versions(
    session: Session, dataset_id: str, mode: compatibility.CompatibilityMode
) -> list[_Earlier]:
    """The earlier versions a check under ``mode`` reads, oldest first: all of them for transitive
    modes, else only the last (which also tells whether the new version is higher). Record
    schemas come from :data:`RECORD_SCHEMAS` when there, else from the database in one query."""
    query = sa.select(ContractVersion.version, ContractVersion.sequence, ContractVersion.fingerprint).where(
        ContractVersion.dataset_id == dataset_id
    )
    if mode.transitive:
        rows = session.execute(query.order_by(ContractVersion.sequence)).all()
    else:
        rows = session.execute(query.order_by(ContractVersion.sequence.desc()).limit(1)).all()
    schemas = {row.version: RECORD_SCHEMAS.get((dataset_id, row.version, row.fingerprint)) for row in rows}
    missing = [version for version, schema in schemas.items() if schema is None]
    if missing:
        loaded = session.execute(
            sa.select(
                ContractVersion.version, ContractVersion.fingerprint, ContractVersion.record_schema
            ).where(ContractVersion.dataset_id == dataset_id, ContractVersion.version.in_(missing))
        )
        for version, fingerprint, schema in loaded:
            RECORD_SCHEMAS.put((dataset_id, version, fingerprint), schema)
            schemas[version] = schema
    earlier = []
    for row in rows:
        schema = schemas[row.version]
        if schema is None:  # deleted since the first query: not something the catalog does
            raise RuntimeError(f"version {row.version} of {dataset_id} vanished during a check")
        earlier.append(_Earlier(row.version, row.sequence, schema))
    return earlier


def check_version(
    session: Session, *, dataset: Dataset, contract: ParsedContract, identity: DatasetIdentity | None = None
) -> CompatibilityReport:
    """Would ``contract`` be accepted as the dataset's next version, and if not, why not (reads only).

    ``identity`` is the dataset the contract describes, read off it when not given."""
    if identity is None:
        identity, errors = dataset_identity(contract.raw, default_domain=dataset.domain_id)
        if identity is None:
            raise exceptions.ContractMismatch(
                Sentence(N_("the contract does not describe %(dataset_id)r"), dataset_id=dataset.id),
                errors=errors,
            )
    report, _, _ = _check(session, dataset, contract, identity)
    return report


def parse_for_catalog(
    session: Session, document: str | bytes, *, default_domain: str | None
) -> tuple[ParsedContract, DatasetIdentity]:
    """Parse a contract and read which dataset it describes (:mod:`.identity`), reporting every
    problem of the document and of its dataset id in one answer (422); a domain the catalog does
    not have is a 404 of its own, naming it.

    ``default_domain`` is the domain of a contract that names none: the dataset's, for a version
    registered at a dataset's address; the publishing department's only domain otherwise.
    """
    found: list[DatasetIdentity] = []
    problems: list[FieldError] = []

    def identity_errors(raw: dict[str, Any]) -> list[FieldError]:
        found.clear()
        identity, errors = dataset_identity(raw, default_domain=default_domain)
        if identity is not None:
            found.append(identity)
        problems[:] = [*errors, *record_type_errors(raw)]
        return problems

    contract = parse_contract(document, more_errors=identity_errors)
    if problems:
        raise exceptions.ContractMismatch(
            Sentence(
                N_("the contract cannot describe a citybase dataset as it is: %(count)s error(s)"),
                count=len(problems),
            ),
            errors=problems,
        )
    identity = found[0]
    if session.get(Domain, identity.domain_id) is None:
        raise exceptions.DomainNotFound(
            Sentence(
                N_(
                    "the dataset %(dataset_id)r (from the contract's %(source)s) would be in domain "
                    "%(domain_id)r, which the catalog does not have; an admin adds domains"
                ),
                dataset_id=identity.dataset_id,
                source=identity.source,
                domain_id=identity.domain_id,
            ),
            domain_id=identity.domain_id,
            dataset_id=identity.dataset_id,
        )
    return contract, identity


def _default_domain(session: Session, department_id: str | None) -> str | None:
    """The one domain a department publishes to, when it has exactly one (else None)."""
    if department_id is None:
        return None
    department = get_department(session, department_id)
    domains = set(department.domains or ()) | set(
        session.scalars(sa.select(Domain.id).where(Domain.owner_department_id == department_id))
    )
    return domains.pop() if len(domains) == 1 else None


def _check(
    session: Session, dataset: Dataset, contract: ParsedContract, identity: DatasetIdentity
) -> tuple[CompatibilityReport, dict[str, Any], int]:
    """The report, the contract's derived record schema and the sequence it would be stored at.

    A contract without a schema has the empty record schema: its dataset is in the catalog, its
    stream closed. It is checked against nothing, and nothing is checked against it; but once a
    dataset has a schema, its next versions keep one.
    """
    if identity.dataset_id != dataset.id:
        raise exceptions.ContractMismatch(
            Sentence(
                N_("the contract describes dataset %(dataset_id)r (from its %(source)s), not %(expected)r"),
                dataset_id=identity.dataset_id,
                source=identity.source,
                expected=dataset.id,
            ),
        )
    mode = compatibility.CompatibilityMode(dataset.compatibility_mode)
    previous = _earlier_versions(session, dataset.id, mode)
    if previous and compare_versions(contract.version, previous[-1].version) <= 0:
        raise exceptions.VersionNotHigher(
            Sentence(
                N_("version %(version)s is not higher than the last, %(last)s"),
                version=contract.version,
                last=previous[-1].version,
            )
        )
    new_schema = record_schema(contract) if contract.model.schema_ else {}
    history = [(earlier.version, earlier.record_schema) for earlier in previous if earlier.record_schema]
    if history and not new_schema:
        raise exceptions.ContractMismatch(
            Sentence(
                N_(
                    "version %(version)s has no schema, but %(dataset_id)r streams records of version "
                    "%(last)s; a later version keeps a schema"
                ),
                version=contract.version,
                dataset_id=dataset.id,
                last=history[-1][0],
            ),
            errors=[
                FieldError(
                    path="/schema",
                    rule="required",
                    message=Sentence(N_("the dataset's records need a schema")),
                )
            ],
        )
    changes = compatibility.check(new_schema, history, mode)
    checked = [] if mode is compatibility.CompatibilityMode.NONE else [v for v, _ in history]
    report = CompatibilityReport(
        compatible=not changes,
        mode=CompatibilityModeName(mode.value),
        version=contract.version,
        checked_against=checked,
        breaking_changes=[
            BreakingChangeRead.model_validate(change, from_attributes=True) for change in changes
        ],
    )
    return report, new_schema, (previous[-1].sequence + 1) if previous else 1


def add_version(
    session: Session,
    *,
    events: CatalogEvents,
    dataset_id: str,
    document: str | bytes,
    created_by: str,
) -> ContractVersion:
    """Store a new contract version if it parses, is higher, and keeps the compatibility mode.

    In the caller's session; no authorization or audit of its own (see :func:`register_version`).
    """
    dataset = get_dataset(session, dataset_id)
    contract, identity = parse_for_catalog(session, document, default_domain=dataset.domain_id)
    return _register_parsed(session, events, dataset, contract, identity, document, created_by)


def _register_parsed(
    session: Session,
    events: CatalogEvents,
    dataset: Dataset,
    contract: ParsedContract,
    identity: DatasetIdentity,
    document: str | bytes,
    created_by: str,
) -> ContractVersion:
    # Reads the earlier versions' record schemas only, never their documents or the
    # ``dataset.versions`` collection: registering stays flat in the length of the history.
    report, new_schema, sequence = _check(session, dataset, contract, identity)
    has_schema = bool(new_schema)
    if not report.compatible:
        raise exceptions.IncompatibleContract(
            Sentence(
                N_("%(count)s breaking change(s) under %(mode)s"),
                count=len(report.breaking_changes),
                mode=report.mode,
            ),
            breaking_changes=[change.model_dump(mode="json") for change in report.breaking_changes],
        )
    text = document.decode() if isinstance(document, bytes) else document
    version = ContractVersion(
        dataset_id=dataset.id,
        version=contract.version,
        sequence=sequence,
        api_version=contract.api_version,
        document=text,
        document_format="json" if text.lstrip().startswith("{") else "yaml",
        fingerprint=contract.fingerprint,
        record_schema=new_schema,
        primary_key=list(primary_key(contract)) if has_schema else [],
        sensitive_fields={name: _plain(rule) for name, rule in sensitive_fields(contract).items()}
        if has_schema
        else {},
        sla=_plain(sla_targets(contract)),
        expectation_suite=list(expectation_suite(contract)) if has_schema else [],
        created_by=created_by,
    )
    session.add(version)
    RECORD_SCHEMAS.put((dataset.id, version.version, version.fingerprint), new_schema)
    dataset.current_version = version.version
    dataset.updated_at = utcnow()
    dataset.search_text = search_text(dataset, version)
    session.flush()
    index_dataset(session, dataset)
    events.publish(
        session, catalog_events.CONTRACT_VERSION, f"{dataset.id}:{version.version}", contract_state(version)
    )
    events.publish(session, catalog_events.DATASET, dataset.id, dataset_read(dataset))
    return version


def add_contract(
    session: Session,
    *,
    events: CatalogEvents,
    document: str | bytes,
    created_by: str,
    department_id: str | None = None,
) -> ContractVersion:
    """Store an ODCS document: a new dataset (described by the contract) or its next version.

    The dataset's owner, classification and compatibility mode come from the contract's citybase
    custom properties; ``department_id`` is the caller's department, which must own the dataset.
    In the caller's session; no audit entry of its own (see :func:`register_contract`).
    """
    contract, identity = parse_for_catalog(
        session, document, default_domain=_default_domain(session, department_id)
    )
    existing = session.get(Dataset, identity.dataset_id)
    if existing is None:
        policy = dataset_policy(contract)
        owner = policy.department or department_id
        if owner is None:
            raise exceptions.ContractMismatch(
                Sentence(
                    N_("a new dataset needs an owner: set the contract's citybase.department custom property")
                )
            )
        if department_id is not None and owner != department_id:
            raise Forbidden(Sentence(N_("the contract names department %(owner)r, not yours"), owner=owner))
        description = contract.model.description
        try:
            payload = DatasetCreate(
                id=identity.dataset_id,
                title=contract.model.name or contract.model.dataProduct or identity.dataset_id,
                description=(description.purpose or "") if description else "",
                owner_department_id=owner,
                tags=list(contract.model.tags or []),
                classification=policy.classification or "conditional",
                status=DatasetStatus.active if contract.model.status == "active" else DatasetStatus.draft,
                compatibility_mode=policy.compatibility or CompatibilityModeName.BACKWARD,
            )
        except ValidationError as error:
            raise exceptions.ContractMismatch(
                Sentence(N_("the contract cannot describe a citybase dataset")),
                errors=_contract_field_errors(error),
            ) from None
        add_dataset(session, events=events, payload=payload)
    elif department_id is not None and existing.owner_department_id != department_id:
        raise Forbidden(Sentence(N_("only the owning department may register versions of this dataset")))
    dataset = get_dataset(session, identity.dataset_id)
    return _register_parsed(session, events, dataset, contract, identity, document, created_by)


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


def _readable(session: Session, dataset_id: str, public_only: bool) -> Dataset:
    """The dataset whose contract is read; with ``public_only`` (a reader without a key) only a
    public record, refused as its record is (hidden, unpublished and unknown alike)."""
    if public_only:
        found = session.scalars(sa.select(Dataset).where(Dataset.id == dataset_id, public_record())).first()
        if found is None:
            raise not_public(dataset_id)
        return found
    return get_dataset(session, dataset_id)


def list_versions(
    session: Session, *, dataset_id: str, public_only: bool = False
) -> Sequence[ContractVersion]:
    """The dataset's versions, oldest first, without their documents and derivations."""
    _readable(session, dataset_id, public_only)
    return session.scalars(
        sa.select(ContractVersion)
        .where(ContractVersion.dataset_id == dataset_id)
        .order_by(ContractVersion.sequence)
        .options(
            orm.load_only(
                ContractVersion.version,
                ContractVersion.fingerprint,
                ContractVersion.created_by,
                ContractVersion.created_at,
            )
        )
    ).all()


def get_version(
    session: Session, *, dataset_id: str, version: str | None = None, public_only: bool = False
) -> ContractVersion:
    """One version of the dataset's contract, its current one when ``version`` is None. The
    contract of a public record is public too: a reader without a key (``public_only``) reads what
    the stream promises before asking for it."""
    dataset = _readable(session, dataset_id, public_only)
    if version is None:
        current = current_version(session, dataset)
        if current is None:
            raise exceptions.ContractVersionNotFound(
                Sentence(N_("dataset %(dataset_id)r has no contract yet"), dataset_id=dataset_id)
            )
        return current
    found = session.get(ContractVersion, (dataset_id, version))
    if found is None:
        raise exceptions.ContractVersionNotFound(
            Sentence(
                N_("dataset %(dataset_id)r has no version %(version)r"),
                dataset_id=dataset_id,
                version=version,
            )
        )
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
