"""HTTP routes of authorized operation: scenarios, access requests and grants under ``/v1``.

Each route parses the request, calls one service function (which names what it attempts, so that
a refused or failed attempt is audited, then authorizes, audits and writes) and answers. Who may
call which route is in docs/authorization.md.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Query, status

from services.catalog.access import grants, requests, scenarios
from services.catalog.access.deps import AccessDep, ApproverDep, ScenarioDep
from services.catalog.access.schemas import (
    AccessRequestApproval,
    AccessRequestCreate,
    AccessRequestDecision,
    AccessRequestPage,
    AccessRequestRead,
    AccessRequestStatus,
    AccessRequestSubmission,
    AccessRequestWithdrawal,
    GrantPage,
    GrantRead,
    GrantStatus,
    GrantStatusChange,
    GrantUpdate,
    ScenarioCreate,
    ScenarioRead,
    ScenarioStage,
    ScenarioStageChange,
    ScenarioStageRead,
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
def create_scenario(payload: ScenarioCreate, access: AccessDep, caller: AdminDep) -> ScenarioRead:
    return scenarios.create_scenario(access, payload=payload, actor=caller)


@router.get("/scenarios", response_model=list[ScenarioRead], tags=["scenarios"])
def list_scenarios(
    session: SessionDep,
    _: ReaderDep,
    status_: Annotated[ScenarioStatus | None, Query(alias="status")] = None,
    stage: ScenarioStage | None = None,
) -> list[ScenarioRead]:
    return scenarios.list_scenarios(session, status=status_, stage=stage)


@router.get("/scenarios/{scenario_id}", response_model=ScenarioRead, tags=["scenarios"])
def get_scenario(scenario_id: str, session: SessionDep, _: ReaderDep) -> ScenarioRead:
    return scenarios.get_scenario(session, scenario_id=scenario_id)


@router.patch(
    "/scenarios/{scenario_id}",
    response_model=ScenarioRead,
    tags=["scenarios"],
    summary="Update a scenario (admin); suspended or retired stops its keys, retired revokes its grants",
)
def update_scenario(
    scenario_id: str, payload: ScenarioUpdate, access: AccessDep, caller: AdminDep
) -> ScenarioRead:
    return scenarios.update_scenario(access, actor=caller, scenario_id=scenario_id, payload=payload)


@router.post(
    "/scenarios/{scenario_id}/stage",
    response_model=ScenarioRead,
    tags=["scenarios"],
    summary="Move a scenario to its next stage, with a reason (an operator or admin; the scenario itself "
    "from approved to building)",
)
def change_scenario_stage(
    scenario_id: str, payload: ScenarioStageChange, access: AccessDep, caller: ReaderDep
) -> ScenarioRead:
    return scenarios.change_stage(
        access, actor=caller, scenario_id=scenario_id, stage=payload.stage, reason=payload.reason
    )


@router.get(
    "/scenarios/{scenario_id}/stages",
    response_model=list[ScenarioStageRead],
    tags=["scenarios"],
    summary="A scenario's stage history, oldest first",
)
def scenario_stage_history(scenario_id: str, session: SessionDep, _: ReaderDep) -> list[ScenarioStageRead]:
    return scenarios.stage_history(session, scenario_id=scenario_id)


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
    return scenarios.issue_scenario_key(access, actor=caller, scenario_id=scenario_id, name=payload.name)


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
    return requests.create_access_request(access, actor=caller, payload=payload)


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
    filters = requests.AccessRequestFilter(scenario_id=scenario_id, dataset_id=dataset_id, status=status_)
    items, next_cursor = requests.list_access_requests(
        session, actor=caller, filters=filters, limit=limit, cursor=cursor
    )
    return AccessRequestPage(items=items, next_cursor=next_cursor)


@router.get("/access-requests/{request_id}", response_model=AccessRequestRead, tags=["access-requests"])
def get_access_request(
    request_id: str, session: SessionDep, audit: AuditDep, caller: ReaderDep
) -> AccessRequestRead:
    return requests.get_access_request(session, actor=caller, request_id=request_id, audit=audit)


@router.post(
    "/access-requests/{request_id}/approve",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Approve (approver of the owning department, or admin): creates the grant",
)
def approve_access_request(
    request_id: str, payload: AccessRequestApproval, access: AccessDep, caller: ApproverDep
) -> AccessRequestRead:
    return requests.approve_access_request(access, actor=caller, request_id=request_id, approval=payload)


@router.post(
    "/access-requests/{request_id}/reject",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Reject with a reason (approver of the owning department, or admin)",
)
def reject_access_request(
    request_id: str, payload: AccessRequestDecision, access: AccessDep, caller: ApproverDep
) -> AccessRequestRead:
    return requests.reject_access_request(access, actor=caller, request_id=request_id, reason=payload.reason)


@router.post(
    "/access-requests/{request_id}/submit",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Submit a draft prepared for the scenario (an offer answering a need, a selected proposal), "
    "as it is or changed",
)
def submit_access_request(
    request_id: str,
    payload: Annotated[AccessRequestSubmission, Body(default_factory=AccessRequestSubmission)],
    access: AccessDep,
    caller: ScenarioDep,
) -> AccessRequestRead:
    return requests.submit_access_request(access, actor=caller, request_id=request_id, changes=payload)


@router.post(
    "/access-requests/{request_id}/withdraw",
    response_model=AccessRequestRead,
    tags=["access-requests"],
    summary="Withdraw a pending request, or decline a draft (the requesting scenario, or admin)",
)
def withdraw_access_request(
    request_id: str, payload: AccessRequestWithdrawal, access: AccessDep, caller: ScenarioDep
) -> AccessRequestRead:
    return requests.withdraw_access_request(
        access, actor=caller, request_id=request_id, reason=payload.reason
    )


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
    filters = grants.GrantFilter(scenario_id=scenario_id, dataset_id=dataset_id, status=status_)
    items, next_cursor = grants.list_grants(
        session, actor=caller, filters=filters, limit=limit, cursor=cursor, audit=audit
    )
    return GrantPage(items=items, next_cursor=next_cursor)


@router.get("/grants/{grant_id}", response_model=GrantRead, tags=["grants"])
def get_grant(grant_id: str, session: SessionDep, audit: AuditDep, caller: ReaderDep) -> GrantRead:
    return grants.get_grant(session, actor=caller, grant_id=grant_id, audit=audit)


@router.patch(
    "/grants/{grant_id}",
    response_model=GrantRead,
    tags=["grants"],
    summary="Change a grant's terms (approver of the owning department, or admin); its version increments",
)
def update_grant(grant_id: str, payload: GrantUpdate, access: AccessDep, caller: ApproverDep) -> GrantRead:
    return grants.update_grant(access, actor=caller, grant_id=grant_id, update=payload)


@router.post("/grants/{grant_id}/suspend", response_model=GrantRead, tags=["grants"])
def suspend_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    return grants.suspend_grant(access, actor=caller, grant_id=grant_id, reason=payload.reason)


@router.post("/grants/{grant_id}/resume", response_model=GrantRead, tags=["grants"])
def resume_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    return grants.resume_grant(access, actor=caller, grant_id=grant_id, reason=payload.reason)


@router.post(
    "/grants/{grant_id}/revoke",
    response_model=GrantRead,
    tags=["grants"],
    summary="Revoke for good, with a reason; feeds stop delivering when the event reaches them",
)
def revoke_grant(
    grant_id: str, payload: GrantStatusChange, access: AccessDep, caller: ApproverDep
) -> GrantRead:
    return grants.revoke_grant(access, actor=caller, grant_id=grant_id, reason=payload.reason)
