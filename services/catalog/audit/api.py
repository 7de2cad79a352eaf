"""HTTP routes of the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from services.catalog.audit import service
from services.catalog.audit.schemas import AuditCheckpointRead, AuditEntryRead, AuditPage, AuditVerification
from services.catalog.deps import AuditDep, CatalogRuntimeDep, OperatorDep, ReaderDep, SessionDep
from services.common.deps import BusDep

router = APIRouter(prefix="/v1", tags=["audit"])


@router.get(
    "/audit",
    response_model=AuditPage,
    summary="The audit trail, newest first: operators and admins see all, a department its datasets', "
    "a scenario its own",
)
def list_audit(
    session: SessionDep,
    principal: ReaderDep,
    actor: Annotated[str | None, Query(max_length=100)] = None,
    action: Annotated[
        str | None, Query(max_length=100, description="An action or its prefix: grant, grant.revoke")
    ] = None,
    resource_type: Annotated[str | None, Query(max_length=50)] = None,
    resource_id: Annotated[str | None, Query(max_length=300)] = None,
    outcome: Literal["success", "denied", "failed"] | None = None,
    dataset: Annotated[str | None, Query(max_length=200)] = None,
    department: Annotated[str | None, Query(max_length=64)] = None,
    scenario: Annotated[str | None, Query(max_length=100)] = None,
    since: Annotated[datetime | None, Query(alias="from")] = None,
    until: Annotated[datetime | None, Query(alias="to")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    cursor: Annotated[str | None, Query(max_length=100)] = None,
) -> AuditPage:
    filters = service.AuditFilter(
        actor=actor,
        action=action,
        resource_type=resource_type,
        resource_id=resource_id,
        outcome=outcome,
        dataset=dataset,
        department=department,
        scenario=scenario,
        since=since,
        until=until,
    )
    entries, next_cursor = service.list_entries(
        session, filters, scope=service.visible_to(principal), limit=limit, cursor=cursor
    )
    return AuditPage(items=[AuditEntryRead.model_validate(e) for e in entries], next_cursor=next_cursor)


@router.get(
    "/audit/verification",
    response_model=AuditVerification,
    summary="Recompute the hash chain now, compare it with the checkpoints published on "
    "platform.catalog, and report the first entry that does not match",
)
def verify_audit(
    session: SessionDep,
    bus: BusDep,
    _: OperatorDep,
    mode: Annotated[
        Literal["full", "incremental"],
        Query(description="incremental: from the published checkpoint the last verification reached"),
    ] = "full",
) -> AuditVerification:
    """503 when platform.catalog cannot be read: the database alone cannot vouch for itself."""
    return service.verify_with_bus(session, bus, incremental=mode == "incremental")


@router.post(
    "/audit/checkpoints",
    response_model=AuditCheckpointRead,
    status_code=status.HTTP_201_CREATED,
    summary="Take a checkpoint of the chain now and publish it on platform.catalog (operators)",
)
def take_checkpoint(
    session: SessionDep, catalog: CatalogRuntimeDep, audit: AuditDep, _: OperatorDep
) -> AuditCheckpointRead:
    point = service.take_checkpoint(session, catalog.audit_checkpoints, audit=audit)
    return AuditCheckpointRead.model_validate(point)
