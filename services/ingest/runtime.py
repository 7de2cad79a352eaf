"""What the ingest service builds in its lifespan, handed to its routes by ``IngestRuntimeDep``."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.app import ServiceRuntime
from services.common.readmodel import ReadModel
from services.ingest.projection import CatalogProjection
from services.ingest.raw import RawIngestSupervisor
from services.ingest.service import Ingestor


@dataclass(kw_only=True)
class IngestRuntime(ServiceRuntime):
    catalog: CatalogProjection
    """Datasets and compiled contracts, projected from ``platform.catalog``."""
    read_model: ReadModel
    """Keeps :attr:`catalog` (and the key ring) in step with ``platform.catalog``."""
    ingestor: Ingestor
    raw: RawIngestSupervisor | None = None
    """The worker on ``raw.<dataset>`` topics, when raw ingest is on."""
