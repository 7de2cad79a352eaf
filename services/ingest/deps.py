"""FastAPI dependencies of ingest, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalDep
from services.common.deps import RuntimeDep
from services.common.problems import CatalogNotReady
from services.common.readmodel import ReadModel
from services.ingest.service import Ingestor

__all__ = ["CatalogReadyDep", "IngestorDep", "PublisherDep"]


def get_ingestor(runtime: RuntimeDep) -> Ingestor:
    ingestor: Ingestor = runtime.state["ingestor"]
    return ingestor


def catalog_ready(runtime: RuntimeDep) -> None:
    """Until the read model has replayed platform.catalog, keys and datasets may look unknown:
    answer 503 rather than a misleading 401 or 404."""
    read_model: ReadModel = runtime.state["read_model"]
    if not read_model.caught_up:
        raise CatalogNotReady("ingest")


CatalogReadyDep = Annotated[None, Depends(catalog_ready)]


def get_publisher(_ready: CatalogReadyDep, principal: PrincipalDep) -> Principal:
    return principal


IngestorDep = Annotated[Ingestor, Depends(get_ingestor)]
PublisherDep = Annotated[Principal, Depends(get_publisher)]
