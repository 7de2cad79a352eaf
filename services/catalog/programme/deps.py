"""FastAPI dependencies of the scenario programme, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.common.auth import Principal, get_principal


async def get_optional_principal(request: Request) -> Principal | None:
    """The caller when it sends a key (a wrong or revoked key is still a 401), else nobody: the
    published opportunity lists and an applicant's registration need no key."""
    if not request.headers.get("authorization"):
        return None
    return await get_principal(request)


OptionalPrincipalDep = Annotated[Principal | None, Depends(get_optional_principal)]
