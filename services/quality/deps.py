"""FastAPI dependencies of quality, as ``Annotated`` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.auth import Principal, PrincipalDep
from services.common.deps import service_runtime
from services.common.problems import CatalogNotReady
from services.quality import evaluation
from services.quality.projection import QualityCatalog
from services.quality.runtime import QualityRuntime
from services.quality.settings import QualitySettings

__all__ = ["CatalogDep", "EvaluationReaderDep", "QualityRuntimeDep", "QualitySettingsDep", "ReaderDep"]

QualityRuntimeDep = Annotated[QualityRuntime, Depends(service_runtime(QualityRuntime))]


def get_catalog(service: QualityRuntimeDep) -> QualityCatalog:
    """Until the read model has replayed platform.catalog, datasets may look unknown: 503, not 404."""
    if not service.read_model.caught_up:
        raise CatalogNotReady("quality")
    return service.catalog


def get_quality_settings(service: QualityRuntimeDep) -> QualitySettings:
    return service.settings


def get_reader(principal: PrincipalDep) -> Principal:
    """Scores are open to every principal of the platform; evidence values of sensitive fields
    are masked whoever reads them, and the record-level evidence of a conditional or restricted
    dataset is for its owner and operators, never for an evaluator
    (``queries.record_evidence_withheld``)."""
    return principal


def get_evaluation_reader(scenario_id: str, principal: PrincipalDep) -> Principal:
    """The scenario itself, operators, admins and evaluators (403 for anyone else, before the
    query is read: a refusal says nothing of what was asked)."""
    evaluation.may_read(principal, scenario_id)
    return principal


CatalogDep = Annotated[QualityCatalog, Depends(get_catalog)]
QualitySettingsDep = Annotated[QualitySettings, Depends(get_quality_settings)]
ReaderDep = Annotated[Principal, Depends(get_reader)]
EvaluationReaderDep = Annotated[Principal, Depends(get_evaluation_reader)]
