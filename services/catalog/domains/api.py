"""HTTP routes of domains and departments: each parses the request, calls one service function, answers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, status

from services.catalog.deps import AdminDep, AuditDep, EventsDep, PublicReaderDep, SessionDep, SettingsDep
from services.catalog.domains import service
from services.catalog.schemas import DepartmentCreate, DepartmentRead, DomainCreate, DomainRead
from services.catalog.standards.api import asks_for_rdf, department_agent

router = APIRouter(prefix="/v1")


@router.get("/domains", response_model=list[DomainRead], tags=["domains"])
def list_domains(session: SessionDep, _: PublicReaderDep) -> list[DomainRead]:
    return [DomainRead.model_validate(d) for d in service.list_domains(session)]


@router.post("/domains", response_model=DomainRead, status_code=status.HTTP_201_CREATED, tags=["domains"])
def create_domain(payload: DomainCreate, session: SessionDep, auditor: AuditDep, _: AdminDep) -> DomainRead:
    return service.create_domain(session, audit=auditor, payload=payload)


@router.get("/departments", response_model=list[DepartmentRead], tags=["departments"])
def list_departments(session: SessionDep, _: PublicReaderDep) -> list[DepartmentRead]:
    return [DepartmentRead.model_validate(d) for d in service.list_departments(session)]


@router.post(
    "/departments", response_model=DepartmentRead, status_code=status.HTTP_201_CREATED, tags=["departments"]
)
def create_department(
    payload: DepartmentCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, _: AdminDep
) -> DepartmentRead:
    return service.create_department(session, events=events, audit=auditor, payload=payload)


@router.get(
    "/departments/{department_id}",
    response_model=DepartmentRead,
    tags=["departments"],
    summary="A department; as a DCAT-AP foaf:Agent with Accept: text/turtle or application/ld+json",
    responses={200: {"content": {"text/turtle": {}, "application/ld+json": {}}}},
)
def get_department(
    department_id: str, request: Request, session: SessionDep, settings: SettingsDep, _: PublicReaderDep
) -> Any:
    department = service.get_department(session, department_id)
    # The DCAT export names departments by this URI: a harvester that asks for RDF gets the agent.
    if not asks_for_rdf(request):
        return DepartmentRead.model_validate(department)
    return department_agent(request, settings, department)
