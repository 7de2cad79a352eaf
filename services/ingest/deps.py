"""FastAPI dependencies of ingest, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalDep
from services.common.deps import service_runtime
from services.common.problems import CatalogNotReady
from services.ingest.runtime import IngestRuntime
from services.ingest.service import Ingestor

__all__ = ["CatalogReadyDep", "IngestRuntimeDep", "IngestorDep", "PublisherDep"]

IngestRuntimeDep = Annotated[IngestRuntime, Depends(service_runtime(IngestRuntime))]


def get_ingestor(ingest: IngestRuntimeDep) -> Ingestor:
    return ingest.ingestor


def catalog_ready(ingest: IngestRuntimeDep) -> None:
    """Until the read model has replayed platform.catalog, keys and datasets may look unknown:
    answer 503 rather than a misleading 401 or 404."""
    if not ingest.read_model.caught_up:
        raise CatalogNotReady("ingest")


CatalogReadyDep = Annotated[None, Depends(catalog_ready)]


def get_publisher(_ready: CatalogReadyDep, principal: PrincipalDep) -> Principal:
    return principal


IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
PublisherDep = Annotated[Principal, Depends(get_publisher)]
