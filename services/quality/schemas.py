"""Response models of quality's API, so its OpenAPI says what every route answers.

The query modules build plain dicts; these models describe them and FastAPI checks each answer
against its model. ``extra="forbid"``: a key a query adds without a field here is an error in the
tests, never a key silently dropped from the JSON. Two choices keep the JSON as it was before the
models existed: a number stays the type it was computed as (``Number``: an integer count stays
``5``, not ``5.0``), and a time is written by ``datetime.isoformat`` (``Moment``: ``+00:00``, not
pydantic's ``Z``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, WithJsonSchema

Number = Annotated[float | int, WithJsonSchema({"type": "number"})]
"""A number kept as it was computed: an integer stays an integer in the JSON."""
Moment = Annotated[
    datetime,
    PlainSerializer(lambda moment: moment.isoformat(), return_type=str, when_used="json"),
    WithJsonSchema({"type": "string", "format": "date-time"}),
]
Scores = dict[str, Number | None]
"""A score per dimension (validity, completeness, uniqueness, conformity, timeliness) and
``overall``, each 0-100; null where it could not be measured."""


class QualityRead(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --- the quality of a dataset -------------------------------------------------------------------


class RecordEvidence(QualityRead):
    shown: bool
    withheld_because: str | None


class RuleEvidence(QualityRead):
    """One rule of the contract's suite, as it ran on the evidence window."""

    rule: str
    expectation_type: str
    column: str | None
    dimension: str
    success: bool | None
    element_count: int | None
    unexpected_count: int | None
    missing_count: int | None
    observed_value: Any
    examples: list[Any] = Field(description="A few failing values, masked; empty when withheld")
    error: str | None


class WindowRead(QualityRead):
    """A scored window (``kind`` window) or a stall the freshness check stored (``freshness``)."""

    id: int
    kind: str
    contract_version: str | None
    opened_at: Moment | None
    closed_at: Moment | None
    records: int
    accepted: int
    rejected: int
    duplicates: int
    late: int
    freshness_s: Number | None
    lateness_p95_s: Number | None
    scores: Scores
    problems: list[str]
    details: dict[str, Any]


class RollingView(QualityRead):
    """Record-weighted scores of the windows of the last 24 h; timeliness is the latest."""

    since: Moment
    windows: int
    records: int
    duplicates: int
    scores: Scores


class SlaBreachRead(QualityRead):
    dataset_id: str
    breach_id: int
    kind: str
    state: str
    opened_at: str | None
    resolved_at: str | None
    target_s: Number
    observed_s: Number | None
    details: dict[str, Any]


class DatasetQuality(QualityRead):
    dataset_id: str
    domain_id: str | None
    owner_department_id: str | None
    scores: Scores
    weights: dict[str, Number]
    window: WindowRead | None
    record_evidence: RecordEvidence
    evidence_window_id: int | None
    rules: list[RuleEvidence]
    rolling: RollingView
    last_event_at: Moment | None
    freshness_s: Number | None
    sla_breaches: list[SlaBreachRead]
    problems: list[str]


class HistoryPoint(QualityRead):
    at: Moment
    windows: int
    records: int
    scores: Scores
    min_overall: Number | None


class QualityHistory(QualityRead):
    dataset_id: str
    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")
    downsampled: bool
    bucket_s: Number | None
    records_per_s: Number = Field(
        description="Records per second that reached the dataset (accepted or dead-lettered): the "
        "records of the windows closed in the period over the time those windows covered, from the "
        "first one's opening to the last one's close; 0 when none closed."
    )
    points: list[HistoryPoint]


class DatasetRank(QualityRead):
    key: str
    dataset_id: str
    domain_id: str | None
    owner_department_id: str | None
    overall: Number | None
    scores: Scores | None
    closed_at: Moment | None
    open_breaches: int
    rank: int


class GroupRank(QualityRead):
    """A domain or a department: the mean overall score of its scored datasets."""

    key: str
    datasets: int
    scored_datasets: int
    overall: Number | None
    worst_dataset: str | None
    open_breaches: int
    rank: int


class QualityRankings(QualityRead):
    by: str
    items: list[DatasetRank | GroupRank]


# --- utilization --------------------------------------------------------------------------------


class DatasetUtilizationScore(QualityRead):
    dataset_id: str
    domain_id: str | None
    owner_department_id: str | None
    active_grants: int
    grants_used: int
    active_subscribers: int
    records_last_day: int
    last_use: Moment | None
    days_since_last_use: Number | None
    score: Number


class UtilizationOverview(QualityRead):
    at: Moment
    active_datasets: int
    used_datasets: int
    penetration_rate: Number | None
    period_days: Number
    datasets: list[DatasetUtilizationScore]


class DailyUse(QualityRead):
    day: str
    records: int
    bytes: int
    deliveries: int


class GrantUse(QualityRead):
    grant_id: str
    scenario_id: str
    status: str
    active: bool
    expires_at: Moment | None
    last_use: Moment | None


class SubscriptionUse(QualityRead):
    subscription_id: str | None
    scenario_id: str
    grant_id: str | None
    delivering: bool = Field(description="Whether its scenario still holds an active grant for the dataset.")
    last_delivery: Moment | None
    records_recent: int
    lag_records: int | None = Field(
        description="Records not acknowledged yet, as feeds counts them for the subscription "
        "(None: the bus did not answer, or the subscription is gone)."
    )


class DatasetUtilization(DatasetUtilizationScore):
    daily: list[DailyUse]
    grants: list[GrantUse]
    subscriptions: list[SubscriptionUse]


class UnscoredDatasetUtilization(QualityRead):
    """A dataset that is not scored for utilization (not active): its use, without a score."""

    dataset_id: str
    note: str
    daily: list[DailyUse]
    grants: list[GrantUse]
    subscriptions: list[SubscriptionUse]


class ScenarioGrant(QualityRead):
    grant_id: str
    dataset_id: str
    status: str
    active: bool


class ScenarioDatasetUse(QualityRead):
    dataset_id: str
    records: int
    bytes: int
    last_use: Moment | None


class ScenarioUtilization(QualityRead):
    scenario_id: str
    period_days: int
    grants: list[ScenarioGrant]
    active_grants: int
    datasets_used: int
    records_consumed: int
    bytes_consumed: int
    last_activity: Moment | None
    days_since_last_activity: Number | None
    datasets: list[ScenarioDatasetUse]
    daily: list[DailyUse]


class IdleScenario(QualityRead):
    scenario_id: str
    active_grants: list[str]
    datasets: list[str]
    granted_since: Moment | None
    last_activity: Moment | None
    idle_days: Number | None
    evidence: str


class NeverDeliveredDataset(QualityRead):
    dataset_id: str
    owner_department_id: str | None
    published_since: Moment | None
    active_grants: list[str]
    evidence: str


class UnusedGrant(QualityRead):
    grant_id: str
    scenario_id: str
    dataset_id: str
    valid_from: Moment | None
    expires_at: Moment | None
    last_use: Moment | None
    idle_days: Number | None
    evidence: str


class IdleFindings(QualityRead):
    """Showcase-only findings: what was granted or published and is not used."""

    at: Moment
    days: Number
    idle_scenarios: list[IdleScenario]
    never_delivered_datasets: list[NeverDeliveredDataset]
    unused_grants: list[UnusedGrant]


# --- indicators --------------------------------------------------------------------------------


class Indicator(QualityRead):
    """One of the city's indicators over a period, in a scope."""

    name: str = Field(examples=["value.conversion"])
    value: Number | None = Field(description="numerator / denominator; null when the denominator is 0")
    numerator: Number
    denominator: Number
    formula: str = Field(description="How it is computed, in the language asked (Accept-Language)")
    evidence: dict[str, Any] = Field(description="The counts and ids behind the figure")


class IndicatorValue(QualityRead):
    name: str
    value: Number | None


class IndicatorPeriod(QualityRead):
    start: Moment
    end: Moment


class IndicatorRow(QualityRead):
    key: str
    indicators: list[Indicator]


class IndicatorBreakdown(QualityRead):
    by: str
    rows: list[IndicatorRow]


class IndicatorTrendPoint(QualityRead):
    period_start: Moment
    period_end: Moment
    indicators: list[IndicatorValue]


class IndicatorReport(QualityRead):
    """The city's indicators over the current period, a breakdown and the trend."""

    computed_at: Moment
    period: IndicatorPeriod
    indicators: list[Indicator]
    breakdown: IndicatorBreakdown
    trend: list[IndicatorTrendPoint]


# --- evaluation ----------------------------------------------------------------------------------


class EvaluatedScenario(QualityRead):
    id: str
    name: str
    stage: str


class EvaluationCheckpoint(QualityRead):
    seq: int
    hash: str
    at: str | None


class DatasetActual(QualityRead):
    dataset_id: str
    actual: Number | None
    status: Literal["met", "not-met", "no-data"]


class DeliveryEvidence(QualityRead):
    dataset_id: str
    day: str
    records: int
    batches: int


class WindowEvidence(QualityRead):
    dataset_id: str
    closed_at: Moment | None
    overall: Number | None


class OutcomeEvidence(QualityRead):
    id: str
    period_start: Moment
    period_end: Moment
    value: Number


class ObjectiveEvidence(QualityRead):
    deliveries: list[DeliveryEvidence]
    windows: list[WindowEvidence]
    outcomes: list[OutcomeEvidence]


class EvaluatedObjective(QualityRead):
    id: str
    title: str
    kind: str
    datasets: list[str]
    target: Number | None
    kpi: dict[str, Any] | None
    actual: Number | None
    status: Literal["met", "not-met", "no-data"]
    per_dataset: list[DatasetActual]
    evidence: ObjectiveEvidence


class EvaluationInput(QualityRead):
    dataset_id: str
    title: str
    department_id: str | None
    records: int
    quality: Number | None
    showcase_only: bool


class ReportingPeriod(QualityRead):
    period_start: Moment
    period_end: Moment


class EvaluationOutcomes(QualityRead):
    reported: int
    periods: list[ReportingPeriod]
    none_reported: bool


class EvaluationReport(QualityRead):
    """A scenario's objectives over a period, target against actual with the evidence; the
    ``digest`` is SHA-256 of the canonical JSON of each objective's id, target, actual and status."""

    scenario: EvaluatedScenario
    period: IndicatorPeriod
    computed_at: Moment
    checkpoint: EvaluationCheckpoint | None
    objectives: list[EvaluatedObjective]
    inputs: list[EvaluationInput]
    outcomes: EvaluationOutcomes
    verdict: dict[str, Any] | None = Field(description="The catalog's VerdictRead of this period, if any")
    digest: str


# --- scorecards ---------------------------------------------------------------------------------


class DailyOverall(QualityRead):
    day: str
    overall: Number | None


class CardUtilization(QualityRead):
    score: Number | None
    active_grants: int
    active_subscribers: int
    records_last_day: int
    days_since_last_use: Number | None


class CardDataset(QualityRead):
    dataset_id: str
    title: str
    status: str | None
    domain_id: str | None
    windows: int
    records: int
    quality: Scores
    daily: list[DailyOverall]
    sla_breaches: dict[str, int]
    utilization: CardUtilization


class ScenarioCardDataset(CardDataset):
    consumed_records: int


class CardSummary(QualityRead):
    datasets: int
    quality: Scores
    sla_breaches: int
    utilization: Number | None
    records: int


class ScenarioCardSummary(CardSummary):
    active_grants: int
    datasets_used: int
    records_consumed: int
    last_activity: Moment | None


class DepartmentShowcase(QualityRead):
    never_delivered_datasets: list[NeverDeliveredDataset]
    unused_grants: list[UnusedGrant]


class ScenarioShowcase(QualityRead):
    idle: list[IdleScenario]
    unused_grants: list[UnusedGrant]


class Scorecard(QualityRead):
    """A department's or a scenario's datasets over a period, for performance evaluation."""

    kind: str
    id: str
    start: Moment = Field(alias="from")
    end: Moment = Field(alias="to")


class DepartmentScorecard(Scorecard):
    kind: Literal["department"]
    summary: CardSummary
    indicators: list[Indicator] = Field(description="The city's indicators restricted to its datasets")
    datasets: list[CardDataset]
    showcase_only: DepartmentShowcase


class ScenarioScorecard(Scorecard):
    kind: Literal["scenario"]
    summary: ScenarioCardSummary
    indicators: list[Indicator] = Field(description="The city's indicators restricted to the scenario")
    datasets: list[ScenarioCardDataset]
    daily_consumption: list[DailyUse]
    showcase_only: ScenarioShowcase
