"""FastAPI dependencies of feeds, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.common.auth import Principal, PrincipalKind, get_principal, require
from services.common.deps import service_runtime
from services.common.problems import CatalogNotReady
from services.feeds.access import Credential
from services.feeds.runtime import FeedsRuntime
from services.feeds.service import Feeds

__all__ = ["CredentialDep", "FeedsDep", "FeedsRuntimeDep", "OpenReaderDep", "ScenarioDep"]

FeedsRuntimeDep = Annotated[FeedsRuntime, Depends(service_runtime(FeedsRuntime))]


def get_feeds(service: FeedsRuntimeDep) -> Feeds:
    return service.feeds


def catalog_ready(service: FeedsRuntimeDep) -> None:
    """Until platform.catalog is replayed, keys and grants may look unknown: 503, not 401 or 403."""
    if not service.read_model.caught_up:
        raise CatalogNotReady("feeds")


CatalogReadyDep = Annotated[None, Depends(catalog_ready)]
_scenario = require(PrincipalKind.scenario)


def get_scenario(_ready: CatalogReadyDep, principal: Annotated[Principal, Depends(_scenario)]) -> Principal:
    return principal


def get_credential(request: Request, principal: Annotated[Principal, Depends(get_scenario)]) -> Credential:
    """The caller and the key it came with (what a stream or a waiting long-poll re-checks)."""
    return Credential(principal.id, getattr(request.state, "key_prefix", None))


FeedsDep = Annotated[Feeds, Depends(get_feeds)]
ScenarioDep = Annotated[Principal, Depends(get_scenario)]
CredentialDep = Annotated[Credential, Depends(get_credential)]


async def get_open_reader(request: Request, _ready: CatalogReadyDep) -> Principal | None:
    """The caller of an open-data download: the principal of the key it sent (a wrong key is still
    a 401, never read as no key), or None for a reader without one. Until platform.catalog is
    replayed, 503: an open dataset would look unknown."""
    if "authorization" in request.headers:
        return await get_principal(request)
    return None


OpenReaderDep = Annotated[Principal | None, Depends(get_open_reader)]
"""None is a reader without a key, counted by its address."""
