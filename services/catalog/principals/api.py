"""HTTP routes of principals and API keys: each parses the request, calls one service function, answers."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request, status

from services.catalog.deps import AdminDep, AuditDep, EventsDep, ReaderDep, SessionDep
from services.catalog.principals import service
from services.catalog.schemas import (
    ApiKeyCreate,
    ApiKeyIssued,
    ApiKeyRead,
    CallerRead,
    PrincipalCreate,
    PrincipalRead,
)
from services.common.auth import key_prefix

router = APIRouter(prefix="/v1")


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
    return [PrincipalRead.model_validate(p) for p in service.list_principals(session, kind=kind)]


@router.get(
    "/principals/{principal_id}",
    response_model=PrincipalRead,
    tags=["principals"],
    summary="One principal (admin; any other role only itself)",
)
def read_principal(
    principal_id: str, session: SessionDep, auditor: AuditDep, caller: ReaderDep
) -> PrincipalRead:
    return service.read_principal(session, actor=caller, audit=auditor, principal_id=principal_id)


@router.post(
    "/principals", response_model=PrincipalRead, status_code=status.HTTP_201_CREATED, tags=["principals"]
)
def create_principal(
    payload: PrincipalCreate, session: SessionDep, events: EventsDep, auditor: AuditDep, _: AdminDep
) -> PrincipalRead:
    return service.create_principal(session, events=events, audit=auditor, payload=payload)


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
    return service.issue_api_key(
        session,
        events=events,
        audit=auditor,
        actor=caller,
        principal_id=principal_id,
        name=payload.name,
        calling_key=_calling_key(request),
    )


@router.get("/principals/{principal_id}/keys", response_model=list[ApiKeyRead], tags=["principals"])
def list_keys(principal_id: str, session: SessionDep, caller: ReaderDep) -> list[ApiKeyRead]:
    return service.list_api_keys(session, actor=caller, principal_id=principal_id)


@router.delete("/principals/{principal_id}/keys/{prefix}", response_model=ApiKeyRead, tags=["principals"])
def revoke_key(
    principal_id: str,
    prefix: str,
    session: SessionDep,
    events: EventsDep,
    auditor: AuditDep,
    caller: ReaderDep,
) -> ApiKeyRead:
    return service.revoke_api_key(
        session, events=events, audit=auditor, actor=caller, principal_id=principal_id, prefix=prefix
    )
