"""FastAPI dependencies of the catalog, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from services.catalog.audit.refusals import RefusalRecorder
from services.catalog.audit.service import Auditor, audit_request
from services.catalog.events import CatalogEvents
from services.common.auth import Principal, PrincipalKind, require
from services.common.deps import RuntimeDep, SessionDep, SettingsDep

__all__ = [
    "AdminDep",
    "AuditDep",
    "EventsDep",
    "OperatorDep",
    "PublisherDep",
    "ReaderDep",
    "SessionDep",
    "SettingsDep",
]


async def get_events(runtime: RuntimeDep) -> CatalogEvents:
    events: CatalogEvents = runtime.state["events"]
    return events


EventsDep = Annotated[CatalogEvents, Depends(get_events)]
ReaderDep = Annotated[Principal, Depends(require(*PrincipalKind))]
PublisherDep = Annotated[Principal, Depends(require(PrincipalKind.department))]
AdminDep = Annotated[Principal, Depends(require(PrincipalKind.admin))]
OperatorDep = Annotated[Principal, Depends(require(PrincipalKind.operator))]


def get_auditor(request: Request, session: SessionDep, runtime: RuntimeDep) -> Iterator[Auditor]:
    recorder: RefusalRecorder | None = runtime.state.get("audit_refusals")
    yield from audit_request(request, session, recorder.windows if recorder else None)


# scope="function": a failure is audited before the response leaves, like the commit of a success.
AuditDep = Annotated[Auditor, Depends(get_auditor, scope="function")]
