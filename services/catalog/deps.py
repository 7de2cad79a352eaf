"""FastAPI dependencies of the catalog, as ``Annotated`` aliases."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request

from services.catalog.audit.auditor import Auditor, audit_request
from services.catalog.events import CatalogEvents
from services.catalog.runtime import CatalogRuntime
from services.common.auth import Principal, PrincipalKind, get_principal, require
from services.common.deps import SessionDep, SettingsDep, service_runtime
from services.common.public_reads import client_address

__all__ = [
    "AdminDep",
    "AuditDep",
    "CatalogRuntimeDep",
    "EventsDep",
    "OperatorDep",
    "PublicReaderDep",
    "PublisherDep",
    "ReaderDep",
    "SessionDep",
    "SettingsDep",
]


CatalogRuntimeDep = Annotated[CatalogRuntime, Depends(service_runtime(CatalogRuntime))]


async def get_events(catalog: CatalogRuntimeDep) -> CatalogEvents:
    return catalog.events


EventsDep = Annotated[CatalogEvents, Depends(get_events)]
ReaderDep = Annotated[Principal, Depends(require(*PrincipalKind))]
PublisherDep = Annotated[Principal, Depends(require(PrincipalKind.department))]
AdminDep = Annotated[Principal, Depends(require(PrincipalKind.admin))]
OperatorDep = Annotated[Principal, Depends(require(PrincipalKind.operator))]


async def get_public_reader(request: Request, catalog: CatalogRuntimeDep) -> Principal | None:
    """The caller of a route open to readers without a key: the principal of the key it sent
    (a wrong key is still a 401), or None for a reader without one, counted against its address."""
    if "authorization" in request.headers:
        return await get_principal(request)
    catalog.public_reads.take(client_address(request))
    return None


PublicReaderDep = Annotated[Principal | None, Depends(get_public_reader)]
"""None is a reader without a key: it sees the public records only."""


async def get_optional_principal(request: Request) -> Principal | None:
    """The caller of a route open to callers without a key that counts them its own way (the
    resident's need form, an applicant's registration): the principal of the key it sent, a wrong
    or revoked key still a 401, or None without one."""
    if "authorization" not in request.headers:
        return None
    return await get_principal(request)


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]


def get_auditor(request: Request, session: SessionDep, catalog: CatalogRuntimeDep) -> Iterator[Auditor]:
    yield from audit_request(request, session, catalog.audit_refusals.windows)


# scope="function": a failure is audited before the response leaves, like the commit of a success.
AuditDep = Annotated[Auditor, Depends(get_auditor, scope="function")]
