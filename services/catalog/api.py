"""HTTP routes of the catalog: each parses the request, calls one service function, answers."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import urlsplit

from fastapi import APIRouter, Body, Depends, Query, Request, Response, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from services.catalog import service
from services.catalog.access import service as access_service
from services.catalog.access.deps import AccessDep
from services.catalog.audit.service import Auditor
from services.catalog.contracts.odcs import ContractTooLarge, parse_contract
from services.catalog.deps import (
    AdminDep,
    AuditDep,
    EventsDep,
    PublisherDep,
    ReaderDep,
    SessionDep,
    SettingsDep,
)
from services.catalog.models import ContractVersion, Department
from services.catalog.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    CallerRead,
    Classification,
    CompatibilityReport,
    ContractVersionRead,
    ContractVersionSummary,
    DatasetCreate,
    DatasetDetail,
    DatasetPage,
    DatasetRead,
    DatasetStatus,
    DatasetUpdate,
    DepartmentCreate,
    DepartmentRead,
    DomainCreate,
    DomainRead,
    PrincipalCreate,
    PrincipalRead,
)
from services.catalog.standards import asyncapi, dcat
from services.catalog.standards.model import PlatformLinks
from services.common import db
from services.common.app import Runtime
from services.common.auth import Principal, PrincipalKind, key_prefix
from services.common.deps import RuntimeDep
from services.common.problems import Forbidden

router = APIRouter(prefix="/v1")
T = TypeVar("T")

MAX_CONTRACT_BYTES = 1024 * 1024
CONTRACT_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/yaml": {
                "schema": {"type": "string"},
                "example": "apiVersion: v3.1.0\nkind: DataContract\n...",
            },
            "application/json": {"schema": {"type": "object"}},
        },
    }
}


async def _contract_body(request: Request) -> bytes:
    body = bytearray()
    async for chunk in request.stream():
        body.extend(chunk)
        if len(body) > MAX_CONTRACT_BYTES:
            raise ContractTooLarge(f"a contract document may have at most {MAX_CONTRACT_BYTES} bytes")
    return bytes(body)


async def _read(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """Run a read in its own autocommit unit of work on one worker thread.

    The busiest reads (get a dataset, search) take this path rather than ``SessionDep`` and a
    sync route, which would cross to a worker thread three times (open the session, the route,
    commit) where one is enough.
    """

    def unit_of_work() -> T:
        with db.unit_of_work(runtime.sessions) as session:
            # Autocommit: a read needs no transaction of its own, and BEGIN and COMMIT would be
            # two more round trips to the database than the query itself.
            session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
            return work(session)

    return await run_in_threadpool(unit_of_work)


def _json(model: BaseModel) -> Response:
    """A response model serialised once; FastAPI would validate it again against ``response_model``."""
    return Response(model.model_dump_json(), media_type="application/json")


def _may_publish_to(principal: Principal, owner_department_id: str) -> None:
    if not principal.is_admin() and principal.department_id != owner_department_id:
        raise Forbidden("only the owning department may change this dataset")


@router.get("/domains", response_model=list[DomainRead], tags=["domains"])
def list_domains(session: SessionDep, _: ReaderDep) -> list[DomainRead]:
    return [DomainRead.model_validate(d) for d in service.list_domains(session)]


@router.post("/domains", response_model=DomainRead, status_code=status.HTTP_201_CREATED, tags=["domains"])
def create_domain(payload: DomainCreate, session: SessionDep, auditor: AuditDep, _: AdminDep) -> DomainRead:
    domain = DomainRead.model_validate(service.create_domain(session, payload))
    auditor.record(session, "domain.create", "domain", domain.id)
    return domain


@router.get("/departments", response_model=list[DepartmentRead], tags=["departments"])
def list_departments(session: SessionDep, _: ReaderDep) -> list[DepartmentRead]:
    return [DepartmentRead.model_validate(d) for d in service.list_departments(session)]


@router.post(
    "/departments", response_model=DepartmentRead, status_code=status.HTTP_201_CREATED, tags=["departments"]
)
def create_department(
    payload: DepartmentCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, _: AdminDep
) -> DepartmentRead:
    department = service.create_department(session, events, payload)
    auditor.record(session, "department.create", "department", department.id, department_id=department.id)
    return department


@router.get(
    "/departments/{department_id}",
    response_model=DepartmentRead,
    tags=["departments"],
    summary="A department; as a DCAT-AP foaf:Agent with Accept: text/turtle or application/ld+json",
    responses={200: {"content": {"text/turtle": {}, "application/ld+json": {}}}},
)
def get_department(
    department_id: str, request: Request, session: SessionDep, settings: SettingsDep, _: ReaderDep
) -> Any:
    department = service.get_department(session, department_id)
    # The DCAT export names departments by this URI: a harvester that asks for RDF gets the agent.
    if not _asks_for_rdf(request):
        return DepartmentRead.model_validate(department)
    return _department_agent(request, settings, department)


@router.get("/datasets", response_model=DatasetPage, tags=["datasets"])
async def search_datasets(
    runtime: RuntimeDep,
    _: ReaderDep,
    q: Annotated[
        str | None, Query(max_length=200, description="Full text over title, description, tags, fields")
    ] = None,
    domain: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    classification: Classification | None = None,
    status_: Annotated[DatasetStatus | None, Query(alias="status")] = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
) -> Response:
    filters = service.DatasetFilter(
        q=q,
        domain=domain,
        department=department,
        classification=classification.value if classification else None,
        status=status_.value if status_ else None,
        tag=tag,
    )
    items, next_cursor = await _read(
        runtime, lambda session: service.search_datasets(session, filters, limit=limit, cursor=cursor)
    )
    return _json(DatasetPage(items=items, next_cursor=next_cursor))


@router.post("/datasets", response_model=DatasetRead, status_code=status.HTTP_201_CREATED, tags=["datasets"])
def create_dataset(
    payload: DatasetCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, principal: PublisherDep
) -> DatasetRead:
    auditor.attempting(
        "dataset.create",
        "dataset",
        payload.id,
        dataset_id=payload.id,
        department_id=payload.owner_department_id,
    )
    _may_publish_to(principal, payload.owner_department_id)
    dataset = service.create_dataset(session, events, payload)
    auditor.record(
        session,
        "dataset.create",
        "dataset",
        dataset.id,
        dataset_id=dataset.id,
        department_id=dataset.owner_department_id,
    )
    return dataset


@router.get("/datasets/{dataset_id}", response_model=DatasetDetail, tags=["datasets"])
async def get_dataset(dataset_id: str, runtime: RuntimeDep, _: ReaderDep) -> Response:
    read = await _read(runtime, lambda session: service.dataset_detail(session, dataset_id))
    return _json(read)


@router.patch("/datasets/{dataset_id}", response_model=DatasetRead, tags=["datasets"])
def update_dataset(
    dataset_id: str,
    payload: DatasetUpdate,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    principal: PublisherDep,
) -> DatasetRead:
    owner = service.get_dataset(session, dataset_id).owner_department_id
    auditor.attempting("dataset.update", "dataset", dataset_id, dataset_id=dataset_id, department_id=owner)
    _may_publish_to(principal, owner)
    dataset = service.update_dataset(session, events, dataset_id, payload)
    auditor.record(
        session,
        "dataset.update",
        "dataset",
        dataset_id,
        dataset_id=dataset_id,
        department_id=owner,
        details={"changed": sorted(payload.model_dump(exclude_unset=True))},
    )
    return dataset


@router.post(
    "/datasets/{dataset_id}/contract-versions",
    response_model=ContractVersionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Register a new ODCS v3 contract version (YAML or JSON body)",
)
async def register_version(
    dataset_id: str,
    request: Request,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    principal: PublisherDep,
    access: AccessDep,
) -> ContractVersionRead:
    auditor.attempting("contract_version.register", "dataset", dataset_id, dataset_id=dataset_id)
    document = await _contract_body(request)
    owner = service.get_dataset(session, dataset_id).owner_department_id
    auditor.attempting(
        "contract_version.register", "dataset", dataset_id, dataset_id=dataset_id, department_id=owner
    )
    _may_publish_to(principal, owner)
    version = service.register_version(session, events, dataset_id, document, created_by=principal.id)
    return _registered(session, auditor, access, version, owner)


def _registered(
    session: Session,
    auditor: Auditor,
    access: access_service.Collaborators,
    version: ContractVersion,
    owner: str | None,
) -> ContractVersionRead:
    """What follows every registration, by either route: the audit entry, and the contract's
    masking applied to the grants that exist (a field it newly marks sensitive)."""
    auditor.record(
        session,
        "contract_version.register",
        "contract_version",
        f"{version.dataset_id}@{version.version}",
        dataset_id=version.dataset_id,
        department_id=owner,
        details={"version": version.version},
    )
    access_service.apply_contract_masking(access, version.dataset_id)
    return ContractVersionRead.model_validate(version)


@router.post(
    "/contracts",
    response_model=ContractVersionRead,
    status_code=status.HTTP_201_CREATED,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Register an ODCS contract: creates the dataset it describes if new, else adds the version",
)
async def register_contract(
    request: Request,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    principal: PublisherDep,
    access: AccessDep,
) -> ContractVersionRead:
    department = None if principal.is_admin() else principal.department_id
    auditor.attempting("contract_version.register", "contract", "-", department_id=department)
    document = await _contract_body(request)
    version = service.register_contract(
        session, events, document, created_by=principal.id, department_id=department
    )
    owner = service.get_dataset(session, version.dataset_id).owner_department_id
    return _registered(session, auditor, access, version, owner)


@router.post(
    "/datasets/{dataset_id}/contract-versions/check",
    response_model=CompatibilityReport,
    tags=["contracts"],
    openapi_extra=CONTRACT_BODY,
    summary="Dry run: would this version be accepted, and why not",
)
async def check_version(
    dataset_id: str, request: Request, session: SessionDep, _: ReaderDep
) -> CompatibilityReport:
    document = await _contract_body(request)
    return service.check_version(session, service.get_dataset(session, dataset_id), parse_contract(document))


@router.get(
    "/datasets/{dataset_id}/contract-versions",
    response_model=list[ContractVersionSummary],
    tags=["contracts"],
)
def list_versions(dataset_id: str, session: SessionDep, _: ReaderDep) -> list[ContractVersionSummary]:
    return [ContractVersionSummary.model_validate(v) for v in service.list_versions(session, dataset_id)]


@router.get(
    "/datasets/{dataset_id}/contract-versions/{version}",
    response_model=ContractVersionRead,
    tags=["contracts"],
)
def get_version(dataset_id: str, version: str, session: SessionDep, _: ReaderDep) -> ContractVersionRead:
    return ContractVersionRead.model_validate(service.get_version(session, dataset_id, version))


@router.get(
    "/datasets/{dataset_id}/contract",
    tags=["contracts"],
    summary="The current ODCS document, exactly as stored",
    responses={200: {"content": {"application/yaml": {}, "application/json": {}}}},
)
def get_contract_document(
    dataset_id: str, session: SessionDep, _: ReaderDep, version: str | None = None
) -> Response:
    stored = service.get_version(session, dataset_id, version)
    media_type = "application/json" if stored.document_format == "json" else "application/yaml"
    return Response(stored.document, media_type=media_type)


@router.get(
    "/me", response_model=CallerRead, tags=["principals"], summary="The principal the calling key belongs to"
)
def who_am_i(caller: ReaderDep) -> CallerRead:
    """What a client (the console) needs to decide what to offer: the caller's kind and department."""
    return CallerRead(
        id=caller.id, kind=caller.kind.value, name=caller.name, department_id=caller.department_id
    )


@router.get("/principals", response_model=list[PrincipalRead], tags=["principals"])
def list_principals(session: SessionDep, _: AdminDep, kind: str | None = None) -> list[PrincipalRead]:
    return [PrincipalRead.model_validate(p) for p in service.list_principals(session, kind)]


@router.post(
    "/principals", response_model=PrincipalRead, status_code=status.HTTP_201_CREATED, tags=["principals"]
)
def create_principal(
    payload: PrincipalCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, _: AdminDep
) -> PrincipalRead:
    principal = service.create_principal(session, events, payload)
    auditor.record(
        session,
        "principal.create",
        "principal",
        principal.id,
        department_id=principal.department_id,
        details={"kind": principal.kind},
    )
    return principal


def _may_manage_keys(principal: Principal, principal_id: str) -> None:
    """An admin manages every principal's keys, a department its own, no other role any
    (docs/authorization.md): the keys of a scenario, an approver or an operator come from an admin."""
    if principal.is_admin():
        return
    if principal.kind is not PrincipalKind.department:
        raise Forbidden(f"a {principal.kind}'s keys are issued, listed and revoked by an admin")
    if principal.id != principal_id:
        raise Forbidden("only the principal itself or an admin may manage its keys")


def _calling_key(request: Request) -> str | None:
    """The prefix of the key the request was authenticated with."""
    return key_prefix(request.headers.get("authorization", "").partition(" ")[2].strip())


@router.post(
    "/principals/{principal_id}/keys",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    tags=["principals"],
    summary="Issue an API key (shown once)",
)
def issue_key(
    principal_id: str,
    request: Request,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    caller: ReaderDep,
    # Every field is optional: no body, an empty body and {} all issue a key with the defaults.
    payload: Annotated[ApiKeyCreate, Body(default_factory=ApiKeyCreate)],
) -> ApiKeyIssued:
    auditor.attempting("api_key.issue", "principal", principal_id)
    _may_manage_keys(caller, principal_id)
    # A department's own key mints a child that dies with it; an admin's keys are the root of trust.
    parent = None if caller.is_admin() else _calling_key(request)
    issued = service.issue_api_key(session, events, principal_id, payload.name, issued_by=parent)
    auditor.record(
        session,
        "api_key.issue",
        "api_key",
        issued.prefix,
        details={"principal_id": principal_id, "issued_by": parent},
    )
    return issued


@router.get("/principals/{principal_id}/keys", response_model=list[ApiKeyRead], tags=["principals"])
def list_keys(principal_id: str, session: SessionDep, caller: ReaderDep) -> list[ApiKeyRead]:
    _may_manage_keys(caller, principal_id)
    return [ApiKeyRead.model_validate(k) for k in service.list_api_keys(session, principal_id)]


@router.delete("/principals/{principal_id}/keys/{prefix}", response_model=ApiKeyRead, tags=["principals"])
def revoke_key(
    principal_id: str,
    prefix: str,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    caller: ReaderDep,
) -> ApiKeyRead:
    auditor.attempting("api_key.revoke", "api_key", prefix, details={"principal_id": principal_id})
    _may_manage_keys(caller, principal_id)
    api_key, with_it = service.revoke_api_key(session, events, principal_id, prefix)
    revoked = ApiKeyRead.model_validate(api_key)
    auditor.record(
        session,
        "api_key.revoke",
        "api_key",
        prefix,
        details={"principal_id": principal_id, "revoked_with_it": with_it},
    )
    return revoked


# --- standard interfaces -------------------------------------------------------------------

EVENT_SCHEMAS = Path(__file__).resolve().parents[2] / "contracts" / "events"
TURTLE, JSONLD = "text/turtle", "application/ld+json"


class RdfFormat(StrEnum):
    turtle = "turtle"
    jsonld = "jsonld"


def _links(request: Request, settings: SettingsDep) -> PlatformLinks:
    return PlatformLinks(settings.public_url or f"{request.url.scheme}://{request.url.netloc}")


LinksDep = Annotated[PlatformLinks, Depends(_links)]


def _rdf_format(request: Request, format_: RdfFormat | None) -> RdfFormat:
    if format_ is not None:
        return format_
    return RdfFormat.turtle if TURTLE in request.headers.get("accept", "") else RdfFormat.jsonld


def _rdf_document(
    chosen: RdfFormat, turtle: Callable[[], str], jsonld: Callable[[], dict[str, Any]]
) -> Response:
    """One small RDF document in the chosen serialisation (only that one is built)."""
    if chosen is RdfFormat.turtle:
        return Response(turtle(), media_type=TURTLE)
    return Response(json.dumps(jsonld(), ensure_ascii=False), media_type=JSONLD)


def _asks_for_rdf(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return TURTLE in accept or JSONLD in accept


def _department_agent(request: Request, settings: SettingsDep, department: Department) -> Response:
    publisher, links = service.describe_department(department), _links(request, settings)
    return _rdf_document(
        _rdf_format(request, None),
        lambda: dcat.publisher_turtle(publisher, links),
        lambda: dcat.publisher_jsonld(publisher, links),
    )


def _kafka_bootstrap(settings: SettingsDep) -> str:
    if settings.kafka_public_bootstrap:
        return settings.kafka_public_bootstrap
    parts = urlsplit(settings.bus_url)
    return parts.netloc if parts.scheme == "kafka" else "127.0.0.1:9092"


RDF_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {JSONLD: {}, TURTLE: {}}}}


@router.get(
    "/catalog",
    tags=["standards"],
    summary="The whole catalog as DCAT-AP 3 (JSON-LD, or Turtle with ?format=turtle or Accept: text/turtle), streamed",
    response_class=StreamingResponse,
    responses=RDF_RESPONSES,
)
def export_catalog(
    request: Request,
    runtime: RuntimeDep,
    links: LinksDep,
    _: ReaderDep,
    format_: Annotated[RdfFormat | None, Query(alias="format")] = None,
) -> StreamingResponse:
    chosen = _rdf_format(request, format_)
    export = dcat.catalog_turtle if chosen is RdfFormat.turtle else dcat.catalog_jsonld

    def chunks() -> Iterator[str]:
        # Its own session: the export outlives the request's unit of work.
        with runtime.sessions() as session:
            catalog = service.catalog_description(session, links)
            yield from export(service.iter_descriptions(session), links, catalog)

    return StreamingResponse(chunks(), media_type=TURTLE if chosen is RdfFormat.turtle else JSONLD)


@router.get(
    "/datasets/{dataset_id}/dcat",
    tags=["standards"],
    summary="One dataset as DCAT-AP 3 (JSON-LD or Turtle)",
    responses=RDF_RESPONSES,
)
def export_dataset(
    dataset_id: str,
    request: Request,
    session: SessionDep,
    links: LinksDep,
    _: ReaderDep,
    format_: Annotated[RdfFormat | None, Query(alias="format")] = None,
) -> Response:
    description = service.describe_one(session, dataset_id)
    return _rdf_document(
        _rdf_format(request, format_),
        lambda: dcat.dataset_turtle(description, links),
        lambda: dcat.dataset_jsonld(description, links),
    )


@router.get(
    "/datasets/{dataset_id}/asyncapi", tags=["standards"], summary="AsyncAPI 3 document of one dataset"
)
def dataset_asyncapi(
    dataset_id: str, session: SessionDep, settings: SettingsDep, links: LinksDep, _: ReaderDep
) -> dict[str, Any]:
    description = service.describe_one(session, dataset_id)
    return asyncapi.dataset_asyncapi(description, links, kafka_bootstrap=_kafka_bootstrap(settings))


@router.get("/asyncapi", tags=["standards"], summary="AsyncAPI 3 document of the whole platform")
def platform_asyncapi(
    session: SessionDep, settings: SettingsDep, links: LinksDep, _: ReaderDep
) -> dict[str, Any]:
    schemas = asyncapi.read_event_schemas(EVENT_SCHEMAS) if EVENT_SCHEMAS.is_dir() else None
    return asyncapi.platform_asyncapi(
        service.iter_descriptions(session),
        links,
        kafka_bootstrap=_kafka_bootstrap(settings),
        event_schemas=schemas,
    )
