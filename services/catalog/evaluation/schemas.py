"""Request and response shapes of scenario evaluation: objectives, outcomes, verdicts, and the
verification of a saved evaluation report. The value sets are the API's own, shared with its
clients (:mod:`services.common.vocabulary`)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, Field, StringConstraints

from services.catalog.access.schemas import Reason
from services.catalog.audit.schemas import AuditVerification
from services.catalog.schemas import DatasetId, ReadModel, Timestamp
from services.common.vocabulary import (
    KpiDirection,
    ObjectiveKind,
    ObjectiveStatus,
    ReasonResult,
    VerdictResult,
)

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Note = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]
Word = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
EntityId = Annotated[str, StringConstraints(min_length=1, max_length=64)]


DELIVERY_KINDS = frozenset(
    {ObjectiveKind.dataset_use, ObjectiveKind.delivered_records, ObjectiveKind.active_days}
)


class Kpi(BaseModel):
    name: Word = Field(examples=["median wait"])
    unit: Annotated[str, StringConstraints(strip_whitespace=True, max_length=50)] = Field(
        examples=["minutes"]
    )
    direction: KpiDirection


class ObjectiveCreate(BaseModel):
    title: Title = Field(examples=["Every hospital's visits reach the booking service"])
    kind: ObjectiveKind
    datasets: list[DatasetId] = Field(default_factory=list, max_length=50)
    target: float | None = Field(default=None, description="Null for dataset-use; 0-100 for quality-floor.")
    kpi: Kpi | None = Field(default=None, description="Required for kind outcome.")
    period_start: AwareDatetime = Field(examples=["2027-01-01T00:00:00Z"], description="Inclusive.")
    period_end: AwareDatetime = Field(examples=["2027-04-01T00:00:00Z"], description="Exclusive.")


class ObjectiveWithdraw(BaseModel):
    reason: Reason = Field(examples=["Replaced by a sharper objective."])


class ObjectiveRead(ReadModel):
    id: str
    scenario_id: str
    title: str
    kind: ObjectiveKind
    datasets: list[str]
    target: float | None
    kpi: Kpi | None
    period_start: Timestamp
    period_end: Timestamp
    status: ObjectiveStatus
    version: int
    set_by: str
    set_at: Timestamp
    withdrawn_at: Timestamp | None
    withdrawn_reason: str | None


class ObjectivePage(BaseModel):
    items: list[ObjectiveRead]


class OutcomeCreate(BaseModel):
    objective_id: EntityId
    period_start: AwareDatetime = Field(examples=["2027-01-01T00:00:00Z"])
    period_end: AwareDatetime = Field(examples=["2027-02-01T00:00:00Z"])
    value: float = Field(allow_inf_nan=False, examples=[23.5])
    grant_ids: list[EntityId] = Field(default_factory=list, max_length=50)
    dataset_ids: list[DatasetId] = Field(default_factory=list, max_length=50)
    note: Note = ""
    corrects: EntityId | None = Field(default=None, description="The outcome this one corrects.")


class OutcomeRead(ReadModel):
    id: str
    scenario_id: str
    objective_id: str
    period_start: Timestamp
    period_end: Timestamp
    value: float
    grant_ids: list[str]
    dataset_ids: list[str]
    note: str
    corrects: str | None
    superseded_by: str | None
    reported_by: str
    reported_at: Timestamp


class OutcomePage(BaseModel):
    items: list[OutcomeRead]


class VerdictReason(BaseModel):
    objective_id: EntityId
    result: ReasonResult
    reason: Reason


class CheckpointRef(BaseModel):
    seq: int = Field(ge=1, le=2**63 - 1)
    hash: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class ReportRef(BaseModel):
    checkpoint: CheckpointRef | None
    digest: Annotated[str, StringConstraints(min_length=1, max_length=128)]


class VerdictCreate(BaseModel):
    period_start: AwareDatetime
    period_end: AwareDatetime
    result: VerdictResult
    reasons: list[VerdictReason] = Field(max_length=200)
    report: ReportRef


class VerdictRead(ReadModel):
    id: str
    scenario_id: str
    period_start: Timestamp
    period_end: Timestamp
    result: VerdictResult
    reasons: list[VerdictReason]
    report: ReportRef
    evaluator_id: str
    recorded_at: Timestamp


class VerdictPage(BaseModel):
    items: list[VerdictRead]


class Mismatch(BaseModel):
    path: str = Field(
        description="JSON Pointer into the report.", examples=["/objectives/0/per_dataset/1/actual"]
    )
    report: Any = Field(description="What the report says.")
    trail: Any = Field(description="What the audit trail says, recomputed.")


class Verification(BaseModel):
    ok: bool = Field(description="The chain holds, the checkpoint is on it and every figure checked matches.")
    checkpoint: CheckpointRef
    chain: AuditVerification
    mismatches: list[Mismatch]
    checked: list[str] = Field(description="JSON Pointers of the report's figures recomputed from the trail.")
    not_checked: list[str] = Field(
        description="Figures the trail does not hold (quality scores): neither confirmed nor refuted."
    )
