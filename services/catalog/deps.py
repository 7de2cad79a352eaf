"""FastAPI dependencies of the catalog, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.catalog.service import CatalogEvents
from services.common.auth import Principal, PrincipalKind, require
from services.common.deps import RuntimeDep, SessionDep, SettingsDep

__all__ = ["AdminDep", "EventsDep", "PublisherDep", "ReaderDep", "SessionDep", "SettingsDep"]


async def get_events(runtime: RuntimeDep) -> CatalogEvents:
    events: CatalogEvents = runtime.state["events"]
    return events


EventsDep = Annotated[CatalogEvents, Depends(get_events)]
ReaderDep = Annotated[Principal, Depends(require(*PrincipalKind))]
PublisherDep = Annotated[Principal, Depends(require(PrincipalKind.department))]
AdminDep = Annotated[Principal, Depends(require(PrincipalKind.admin))]
