"""FastAPI dependencies of authorized operation, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.catalog.access.context import Collaborators
from services.catalog.access.settings import AccessSettings
from services.catalog.deps import AuditDep, CatalogRuntimeDep, EventsDep, SessionDep
from services.common.auth import Principal, PrincipalKind, require


def get_access_settings(catalog: CatalogRuntimeDep) -> AccessSettings:
    return catalog.access_settings


def get_collaborators(
    session: SessionDep,
    events: EventsDep,
    audit: AuditDep,
    settings: Annotated[AccessSettings, Depends(get_access_settings)],
) -> Collaborators:
    return Collaborators(session=session, events=events, audit=audit, settings=settings)


AccessDep = Annotated[Collaborators, Depends(get_collaborators)]
ScenarioDep = Annotated[Principal, Depends(require(PrincipalKind.scenario))]
ApproverDep = Annotated[Principal, Depends(require(PrincipalKind.approver))]
