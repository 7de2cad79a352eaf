"""FastAPI dependencies of quality, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalDep
from services.common.deps import RuntimeDep
from services.common.problems import CatalogNotReady
from services.common.readmodel import ReadModel
from services.quality.projection import QualityCatalog
from services.quality.settings import QualitySettings

__all__ = ["CatalogDep", "QualitySettingsDep", "ReaderDep"]


def get_catalog(runtime: RuntimeDep) -> QualityCatalog:
    """Until the read model has replayed platform.catalog, datasets may look unknown: 503, not 404."""
    read_model: ReadModel = runtime.state["read_model"]
    if not read_model.caught_up:
        raise CatalogNotReady("quality")
    catalog: QualityCatalog = runtime.state["catalog"]
    return catalog


def get_quality_settings(runtime: RuntimeDep) -> QualitySettings:
    settings: QualitySettings = runtime.state["quality_settings"]
    return settings


def get_reader(principal: PrincipalDep) -> Principal:
    """Scores are open to every principal of the platform; evidence values of sensitive fields
    are masked whoever reads them, and the record-level evidence of a conditional or restricted
    dataset is for its owner and operators (``queries.record_evidence_withheld``)."""
    return principal


CatalogDep = Annotated[QualityCatalog, Depends(get_catalog)]
QualitySettingsDep = Annotated[QualitySettings, Depends(get_quality_settings)]
ReaderDep = Annotated[Principal, Depends(get_reader)]
