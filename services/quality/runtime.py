"""What the quality service builds in its lifespan, handed to its routes by ``QualityRuntimeDep``."""

from __future__ import annotations

from dataclasses import dataclass

from services.common.app import ServiceRuntime
from services.common.outbox import OutboxRelay
from services.common.readmodel import ReadModel
from services.quality.consumer import StreamWorker
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings
from services.quality.store import QualityService


@dataclass(kw_only=True)
class QualityRuntime(ServiceRuntime):
    catalog: QualityCatalog
    """Datasets, contracts and grants, projected from ``platform.catalog``."""
    read_model: ReadModel
    """Keeps :attr:`catalog` (and the key ring) in step with ``platform.catalog``."""
    quality: QualityService
    stream: StreamWorker
    """Scores windows of ``ds.*`` and ``dlq.*``."""
    outbox: OutboxRelay
    """Publishes score changes and breaches to ``platform.quality``."""
    settings: QualitySettings
