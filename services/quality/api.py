"""HTTP routes of quality: scores, history, rankings, utilization, showcase-only findings,
scorecards, evaluation reports and the city's indicators. Each route parses the request and calls
one function of the service modules."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from services.common import i18n
from services.common.clock import utcnow
from services.common.deps import RuntimeDep, SessionDep
from services.quality import evaluation, indicators, queries, scorecards, utilization
from services.quality.deps import CatalogDep, EvaluationReaderDep, QualitySettingsDep, ReaderDep
from services.quality.schemas import (
    DatasetQuality,
    DatasetUtilization,
    DepartmentScorecard,
    EvaluationReport,
    IdleFindings,
    IndicatorReport,
    QualityHistory,
    QualityRankings,
    ScenarioScorecard,
    ScenarioUtilization,
    UnscoredDatasetUtilization,
    UtilizationOverview,
)

router = APIRouter(prefix="/v1")


class RankBy(StrEnum):
    dataset = "dataset"
    domain = "domain"
    department = "department"


class IndicatorPeriodKind(StrEnum):
    month = "month"
    week = "week"


class IndicatorBy(StrEnum):
    department = "department"
    domain = "domain"
    scenario = "scenario"
    purpose = "purpose"


class CardFormat(StrEnum):
    json = "json"
    csv = "csv"
    html = "html"


@router.get(
    "/datasets/{dataset_id}/quality",
    tags=["quality"],
    summary="Latest quality of a dataset",
    response_model=DatasetQuality,
)
def dataset_quality(
    dataset_id: str,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    reader: ReaderDep,
) -> dict[str, Any]:
    """Latest scores per dimension and overall, the evidence per rule (unexpected counts and a
    few failing values, masked if sensitive), the rolling 24 h view, open SLA breaches and the
    problems met while scoring. The failing values and repeated keys of a conditional or
    restricted dataset are shown to its owning department and operators only (``record_evidence``
    says whether they were left out, and why). 404 for an unknown dataset."""
    return queries.latest_quality(
        session=session,
        catalog=catalog,
        settings=settings,
        dataset_id=dataset_id,
        now=utcnow(),
        reader=reader,
    )


@router.get(
    "/datasets/{dataset_id}/quality/history",
    tags=["quality"],
    summary="Quality of a dataset over time",
    response_model=QualityHistory,
)
def dataset_quality_history(
    dataset_id: str,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: ReaderDep,
    start: Annotated[
        datetime | None, Query(alias="from", description="RFC 3339; default 24 h before 'to'")
    ] = None,
    end: Annotated[datetime | None, Query(alias="to", description="RFC 3339; default now")] = None,
    points: Annotated[int | None, Query(ge=10, le=10_000, description="At most this many points")] = None,
) -> dict[str, Any]:
    """Every window in the range, or record-weighted buckets when there are more than ``points``
    (default ``history_max_points``). 422 when 'to' is not after 'from'."""
    end = end or utcnow()
    start = start or end - timedelta(days=1)
    return queries.quality_history(
        session=session,
        catalog=catalog,
        dataset_id=dataset_id,
        start=start,
        end=end,
        max_points=points or settings.history_max_points,
    )


@router.get(
    "/quality/rankings",
    tags=["quality"],
    summary="Datasets, domains or departments, worst first",
    response_model=QualityRankings,
)
def quality_rankings(
    session: SessionDep,
    catalog: CatalogDep,
    _reader: ReaderDep,
    by: RankBy = RankBy.dataset,
    domain: str | None = None,
    department: str | None = None,
) -> dict[str, Any]:
    return queries.rankings(
        session=session, catalog=catalog, by=by.value, domain=domain, department=department
    )


@router.get(
    "/utilization",
    tags=["utilization"],
    summary="City-wide utilization and penetration rate",
    response_model=UtilizationOverview,
)
def utilization_overview(
    session: SessionDep, catalog: CatalogDep, settings: QualitySettingsDep, _reader: ReaderDep
) -> dict[str, Any]:
    return utilization.overview(session, catalog, settings, utcnow())


@router.get(
    "/utilization/idle", tags=["utilization"], summary="Showcase-only findings", response_model=IdleFindings
)
def utilization_idle(
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: ReaderDep,
    days: Annotated[
        float | None, Query(gt=0, le=3650, description="Idle for at least; default idle_days")
    ] = None,
) -> dict[str, Any]:
    """Scenarios with grants but no consumption for N days, active datasets never delivered,
    grants unused for N days; each with its evidence."""
    return utilization.idle(session, catalog, utcnow(), days or settings.idle_days)


@router.get(
    "/utilization/datasets/{dataset_id}",
    tags=["utilization"],
    summary="Utilization of a dataset",
    response_model=DatasetUtilization | UnscoredDatasetUtilization,
)
def dataset_utilization(
    dataset_id: str,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    runtime: RuntimeDep,
    _reader: ReaderDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    return utilization.dataset_utilization(
        session=session,
        catalog=catalog,
        settings=settings,
        dataset_id=dataset_id,
        now=utcnow(),
        days=days,
        admin=runtime.bus.admin(),
    )


@router.get(
    "/utilization/scenarios/{scenario_id}",
    tags=["utilization"],
    summary="Utilization of a scenario",
    response_model=ScenarioUtilization,
)
def scenario_utilization(
    scenario_id: str,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: ReaderDep,
    days: Annotated[int, Query(ge=1, le=366)] = 30,
) -> dict[str, Any]:
    return utilization.scenario_utilization(
        session=session, catalog=catalog, settings=settings, scenario_id=scenario_id, now=utcnow(), days=days
    )


def _render(card: dict[str, Any], format: CardFormat, request: Request) -> Any:
    if format is CardFormat.csv:
        return Response(scorecards.to_csv(card), media_type="text/csv; charset=utf-8")
    if format is CardFormat.html:
        # Chinese or English as the browser asks (Accept-Language), as the problem answers are.
        locale = i18n.negotiate(accept_language=request.headers.get("accept-language"))
        return Response(
            scorecards.to_html(card, locale),
            media_type="text/html; charset=utf-8",
            headers={"Content-Language": locale.replace("_", "-"), "Vary": "Accept-Language"},
        )
    return card


PeriodQuery = Annotated[str, Query(description="e.g. 30d, 12h, 2w (at most a year)")]


def document_responses(description: str) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI answer of a route that gives one document as JSON, CSV or HTML (``format``)."""
    return {
        200: {
            "description": description,
            "content": {
                "application/json": {},
                "text/csv": {"schema": {"type": "string"}},
                "text/html": {"schema": {"type": "string"}},
            },
        }
    }


CARD_RESPONSES = document_responses(
    "The scorecard, as `format` asks: JSON, CSV (one row per dataset) or HTML"
)


@router.get(
    "/scorecards/departments/{department_id}",
    tags=["scorecards"],
    summary="Scorecard of a department",
    response_model=DepartmentScorecard,
    responses=CARD_RESPONSES,
)
def department_scorecard(
    department_id: str,
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: ReaderDep,
    period: PeriodQuery = "30d",
    format: CardFormat = CardFormat.json,
) -> Any:
    card = scorecards.department_scorecard(
        session, catalog, settings, department_id, scorecards.parse_period(period), utcnow()
    )
    return _render(card, format, request)


@router.get(
    "/scorecards/scenarios/{scenario_id}",
    tags=["scorecards"],
    summary="Scorecard of a scenario",
    response_model=ScenarioScorecard,
    responses=CARD_RESPONSES,
)
def scenario_scorecard(
    scenario_id: str,
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: ReaderDep,
    period: PeriodQuery = "30d",
    format: CardFormat = CardFormat.json,
) -> Any:
    card = scorecards.scenario_scorecard(
        session, catalog, settings, scenario_id, scorecards.parse_period(period), utcnow()
    )
    return _render(card, format, request)


def _locale(request: Request) -> str:
    return i18n.negotiate(
        request.query_params.get("lang"), accept_language=request.headers.get("accept-language")
    )


EVALUATION_RESPONSES = document_responses(
    "The evaluation report, as `format` asks: JSON, CSV (one row per objective and per dataset of an "
    "objective) or a self-contained HTML page"
)


@router.get(
    "/scenarios/{scenario_id}/evaluation",
    tags=["evaluation"],
    summary="Evaluation report of a scenario over a period",
    response_model=EvaluationReport,
    responses=EVALUATION_RESPONSES,
)
def scenario_evaluation(
    scenario_id: str,
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    settings: QualitySettingsDep,
    _reader: EvaluationReaderDep,
    period_start: Annotated[datetime, Query(description="ISO 8601 with a zone; inclusive")],
    period_end: Annotated[datetime, Query(description="ISO 8601 with a zone; exclusive")],
    format: CardFormat = CardFormat.json,
) -> Any:
    """Each active objective of the period, target against actual with its evidence (deliveries,
    quality windows, outcome values), the datasets consumed, the outcomes reported, the verdict,
    the latest audit checkpoint quality had seen and the digest a verdict names. For the scenario
    itself, operators, admins and evaluators (403 otherwise); 404 for an unknown scenario."""
    report = evaluation.evaluation_report(
        session=session,
        catalog=catalog,
        settings=settings,
        scenario_id=scenario_id,
        start=period_start,
        end=period_end,
        now=utcnow(),
    )
    if format is CardFormat.csv:
        return Response(evaluation.to_csv(report), media_type="text/csv; charset=utf-8")
    if format is CardFormat.html:
        locale = _locale(request)
        return Response(
            evaluation.to_html(report, locale),
            media_type="text/html; charset=utf-8",
            headers={"Content-Language": locale.replace("_", "-"), "Vary": "Accept-Language"},
        )
    return report


@router.get(
    "/indicators",
    tags=["indicators"],
    summary="The city's indicators: penetration, quality, value conversion",
    response_model=IndicatorReport,
)
def city_indicators(
    request: Request,
    session: SessionDep,
    catalog: CatalogDep,
    _reader: ReaderDep,
    periods: Annotated[int, Query(ge=1, le=indicators.MAX_PERIODS, description="Periods in the trend")] = 6,
    period: IndicatorPeriodKind = IndicatorPeriodKind.month,
    by: IndicatorBy = IndicatorBy.department,
) -> dict[str, Any]:
    """The six indicators city-wide over the current calendar month or week (UTC), each with its
    formula (in the language asked) and evidence, a breakdown by department, domain, scenario or
    purpose category, and the city-wide trend over the last ``periods`` periods. Aggregate figures
    only: any principal reads them."""
    with i18n.use(_locale(request)):
        return indicators.indicator_report(
            session, catalog, utcnow(), period=period.value, periods=periods, by=by.value
        )
