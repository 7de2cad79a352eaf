"""HTTP routes of authorized operation: scenarios, access requests and grants under ``/v1``.

Each route names what it attempts (so that a refused or failed attempt is audited), calls one
service function and answers. Who may call which route is in docs/authorization.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from services.catalog.access import service
from services.catalog.access.deps import AccessDep, ApproverDep, ScenarioDep
from services.catalog.access.schemas import (
    AccessRequestApproval,
    AccessRequestCreate,
    AccessRequestDecision,
    AccessRequestPage,
    AccessRequestRead,
    AccessRequestStatus,
    AccessRequestWithdrawal,
    GrantPage,
    GrantRead,
    GrantStatus,
    GrantStatusChange,
    GrantUpdate,
    ScenarioCreate,
    ScenarioRead,
    ScenarioStatus,
    ScenarioUpdate,
)
from services.catalog.deps import AdminDep, AuditDep, ReaderDep, SessionDep
from services.catalog.schemas import ApiKeyCreate, ApiKeyIssued

router = APIRouter(prefix="/v1")

Limit = Annotated[int, Query(ge=1, le=200)]
Cursor = Annotated[str | None, Query(max_length=64)]
IdFilter = Annotated[str | None, Query(max_length=200)]


# --- scenarios ------------------------------------------------------------------------------


@router.post(
    "/scenarios",
    response_model=ScenarioRead,
    status_code=status.HTTP_201_CREATED,
    tags=["scenarios"],
    summary="Register a scenario (admin); it becomes a principal of kind scenario",
)
def create_scenario(payload: ScenarioCreate, access: AccessDep, _: AdminDep) -> ScenarioRead:
    access.audit.attempting("scenario.create", "scenario", payload.id, scenario_id=payload.id)
    return service.create_scenario(access, payload)


@router.get("/scenarios", response_model=list[ScenarioRead], tags=["scenarios"])
def list_scenarios(
    session: SessionDep, _: ReaderDep, status_: Annotated[ScenarioStatus | None, Query(alias="status")] = None
) -> list[ScenarioRead]:
    return service.list_scenarios(session, status_)


@router.get("/scenarios/{scenario_id}", response_model=ScenarioRead, tags=["scenarios"])
def get_scenario(scenario_id: str, session: SessionDep, _: ReaderDep) -> ScenarioRead:
    return service.scenario_read(service.get_scenario(session, scenario_id))


@router.patch(
    "/scenarios/{scenario_id}",
    response_model=ScenarioRead,
    tags=["scenarios"],
    summary="Update a scenario (admin); suspended or retired stops its keys, retired revokes its grants",
)
def update_scenario(
    scenario_id: str, payload: ScenarioUpdate, access: AccessDep, caller: AdminDep
) -> ScenarioRead:
    access.audit.attempting("scenario.update", "scenario", scenario_id, scenario_id=scenario_id)
    return service.update_scenario(access, caller, scenario_id, payload)


@router.post(
    "/scenarios/{scenario_id}/keys",
    response_model=ApiKeyIssued,
    status_code=status.HTTP_201_CREATED,
    tags=["scenarios"],
    summary="Issue an API key of the scenario (shown once); an admin only",
)
def issue_scenario_key(
    scenario_id: str, payload: ApiKeyCreate, access: AccessDep, caller: AdminDep
) -> ApiKeyIssued:
    access.audit.attempting("api_key.issue", "principal", scenario_id, scenario_id=scenario_id)
    return service.issue_scenario_key(access, caller, scenario_id, payload.name)


# --- access requests ------------------------------------------------------------------------


@router.post(
    "/access-requests",
    response_model=AccessRequestRead,
    status_code=status.HTTP_201_CREATED,
    tags=["access-requests"],
    summary="Ask for fields of a dataset, for a purpose and a duration (an open dataset is granted at once)",
)
def create_access_request(
    payload: AccessRequestCreate, access: AccessDep, caller: ScenarioDep
) -> AccessRequestRead:
    return service.create_access_request(access, caller, payload)


@router.get("/access-requests", response_model=AccessRequestPage, tags=["access-requests"])
def list_access_requests(
    session: SessionDep,
    caller: ReaderDep,
    scenario_id: IdFilter = None,
    dataset_id: IdFilter = None,
    status_: Annotated[AccessRequestStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> AccessRequestPage:
    filters = service.AccessRequestFilter(scenario_id=scenario_id, dataset_id=dataset_id, status=status_)
    items, next_cursor = service.list_access_requests(session, caller, filters, limit=limit, cursor=cursor)
    return AccessRequestPage(items=items, next_cursor=next_cursor)


@router.get("/access-requests/{request_id}", response_model=AccessRequestRead, tags=["access-requests"])
def get_access_request(
    request_id: str, session: SessionDep, audit: AuditDep, caller: ReaderDep
) -> AccessRequestRead:
    audit.attempting("access_request.read", "access_request", request_id)
    return service.get_access_request(session, caller, request_id, audit)


@router.post(
    "/access-requests/{request_id}/approve",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Approve (approver of the owning department, or admin): creates the grant",
)
def approve_access_request(
    request_id: str, payload: AccessRequestApproval, access: AccessDep, caller: ApproverDep
) -> AccessRequestRead:
    access.audit.attempting("access_request.approve", "access_request", request_id)
    return service.approve_access_request(access, caller, request_id, payload)


@router.post(
    "/access-requests/{request_id}/reject",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Reject with a reason (approver of the owning department, or admin)",
)
def reject_access_request(
    request_id: str, payload: AccessRequestDecision, access: AccessDep, caller: ApproverDep
) -> AccessRequestRead:
    access.audit.attempting("access_request.reject", "access_request", request_id)
    return service.reject_access_request(access, caller, request_id, payload.reason)


@router.post(
    "/access-requests/{request_id}/withdraw",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Withdraw a pending request (the requesting scenario, or admin)",
)
def withdraw_access_request(
    request_id: str, payload: AccessRequestWithdrawal, access: AccessDep, caller: ScenarioDep
) -> AccessRequestRead:
    access.audit.attempting("access_request.withdraw", "access_request", request_id)
    return service.withdraw_access_request(access, caller, request_id, payload.reason)


# --- grants ---------------------------------------------------------------------------------


@router.get("/grants", response_model=GrantPage, tags=["grants"])
def list_grants(
    session: SessionDep,
    audit: AuditDep,
    caller: ReaderDep,
    scenario_id: IdFilter = None,
    dataset_id: IdFilter = None,
    status_: Annotated[GrantStatus | None, Query(alias="status")] = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> GrantPage:
    if scenario_id is not None:
        audit.attempting(
            "grant.list", "scenario", scenario_id, scenario_id=scenario_id, dataset_id=dataset_id
        )
    filters = service.GrantFilter(scenario_id=scenario_id, dataset_id=dataset_id, status=status_)
    items, next_cursor = service.list_grants(
        session, caller, filters, service.utcnow(), limit=limit, cursor=cursor
    )
    return GrantPage(items=items, next_cursor=next_cursor)


@router.get("/grants/{grant_id}", response_model=GrantRead, tags=["grants"])
def get_grant(grant_id: str, session: SessionDep, audit: AuditDep, caller: ReaderDep) -> GrantRead:
    audit.attempting("grant.read", "grant", grant_id)
    return service.get_grant(session, caller, grant_id, service.utcnow(), audit)


@router.patch(
    "/grants/{grant_id}",
    response_model=GrantRead,
    tags=["grants"],
    summary="Change a grant's terms (approver of the owning department, or admin); its version increments",
)
def update_grant(grant_id: str, payload: GrantUpdate, access: AccessDep, caller: ApproverDep) -> GrantRead:
    access.audit.attempting("grant.update", "grant", grant_id)
    return service.update_grant(access, caller, grant_id, payload)


@router.post("/grants/{grant_id}/suspend", response_model=GrantRead, tags=["grants"])
def suspend_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    access.audit.attempting("grant.suspend", "grant", grant_id)
    return service.suspend_grant(access, caller, grant_id, payload.reason)


@router.post("/grants/{grant_id}/resume", response_model=GrantRead, tags=["grants"])
def resume_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    access.audit.attempting("grant.resume", "grant", grant_id)
    return service.resume_grant(access, caller, grant_id, payload.reason)


@router.post(
    "/grants/{grant_id}/revoke",
    response_model=GrantRead,
    tags=["grants"],
    summary="Revoke for good, with a reason; feeds stop delivering when the event reaches them",
)
def revoke_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    access.audit.attempting("grant.revoke", "grant", grant_id)
    return service.revoke_grant(access, caller, grant_id, payload.reason)
