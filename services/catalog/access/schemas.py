"""Request and response shapes of authorized operation (Create, Update, Read, Page)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from services.catalog.schemas import DatasetId, ReadModel, Slug, Timestamp
from services.common.vocabulary import (
    AccessRequestStatus,
    GrantStatus,
    PurposeCategory,
    ScenarioStage,
    ScenarioStatus,
)

FieldPath = Annotated[str, StringConstraints(min_length=1, max_length=300)]
"""A field of the dataset's contract: a top-level ``name`` in ``fields``; in ``masking`` and
``unmask`` also ``a.b`` / ``a[].b`` for nested properties."""

NeedRef = Annotated[str, StringConstraints(min_length=1, max_length=64)]
"""The id of a need (the needs area's own ids; kept as strings)."""

Reason = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
MaskValue = str | dict[str, Any]
"""A mask as the policy module reads it: ``"hash"``, ``"redact"``, or
``{"kind": "partial", "keepPrefix": 3, "keepSuffix": 4}`` / ``{"kind": "generalize", "precision": 2}``."""


# --- scenarios -----------------------------------------------------------------------------


class ScenarioCreate(BaseModel):
    id: Slug = Field(examples=["one-stop-visit"])
    name: str = Field(min_length=1, max_length=200, examples=["One-stop hospital visit"])
    organisation: str = Field(min_length=1, max_length=200, examples=["Shenkang Hospital Development Center"])
    description: str = Field(
        default="",
        max_length=20_000,
        examples=["Books outpatient visits at the least crowded clinic and plans the bus ride there."],
    )
    contact: str = Field(min_length=1, max_length=200, examples=["scenario-team@shdc.example.cn"])
    stage: ScenarioStage = Field(
        default=ScenarioStage.live,
        description="The stage it starts in: proposed, approved, building or live (the default, as "
        "for a scenario registered before the programme's stages).",
    )
    need_ids: list[NeedRef] = Field(default_factory=list, max_length=50, description="The needs it answers.")
    opening_id: str | None = Field(
        default=None, max_length=64, description="The opening of an opportunity list it answers."
    )
    domains: list[Slug] = Field(default_factory=list, max_length=20, examples=[["health", "transport"]])
    datasets: list[DatasetId] = Field(
        default_factory=list, max_length=50, examples=[["health.outpatient-visits"]]
    )
    objectives: str = Field(
        default="", max_length=20_000, examples=["Halve the wait at the three busiest clinics within a year."]
    )
    owning_body: str = Field(default="", max_length=200, examples=["Health Commission"])
    builder_id: str | None = Field(
        default=None, max_length=64, description="The applicant organisation that builds it, when selected."
    )
    serves_residents: bool = Field(default=False, description="Whether residents use it directly.")


class ScenarioUpdate(BaseModel):
    name: str | None = Field(default=None, min_length=1, max_length=200)
    organisation: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=20_000)
    contact: str | None = Field(default=None, min_length=1, max_length=200)
    status: ScenarioStatus | None = Field(
        default=None,
        description="suspended or retired stops the scenario's keys everywhere (and moves its stage "
        "to the same; active resumes the stage it was suspended in).",
    )
    need_ids: list[NeedRef] | None = Field(default=None, max_length=50)
    domains: list[Slug] | None = Field(default=None, max_length=20)
    datasets: list[DatasetId] | None = Field(default=None, max_length=50)
    objectives: str | None = Field(default=None, max_length=20_000)
    owning_body: str | None = Field(default=None, max_length=200)
    serves_residents: bool | None = None


class ScenarioRead(ReadModel):
    id: str
    name: str
    organisation: str = Field(description="The organisation that builds it.")
    description: str
    contact: str
    status: ScenarioStatus
    stage: ScenarioStage
    need_ids: list[str]
    opening_id: str | None
    domains: list[str]
    datasets: list[str]
    objectives: str
    owning_body: str
    builder_id: str | None
    serves_residents: bool
    created_at: Timestamp
    updated_at: Timestamp


class ScenarioStageChange(BaseModel):
    stage: ScenarioStage = Field(examples=["building"])
    reason: Reason = Field(examples=["Approved by the programme board on 3 March."])


class ScenarioStageRead(ReadModel):
    """One step of a scenario's stage history."""

    scenario_id: str
    stage: ScenarioStage
    previous_stage: ScenarioStage | None
    reason: str
    changed_by: str
    changed_at: Timestamp


# --- access requests -----------------------------------------------------------------------


class AccessRequestCreate(BaseModel):
    scenario_id: Slug | None = Field(
        default=None, description="The requesting scenario; a scenario's own key files for itself."
    )
    dataset_id: DatasetId = Field(examples=["health.outpatient-visits"])
    purpose: str = Field(
        min_length=1,
        max_length=2000,
        examples=["Show patients the current wait per clinic and book the least crowded one."],
    )
    purpose_category: PurposeCategory = Field(examples=["public_service"])
    fields: list[FieldPath] = Field(
        min_length=1,
        max_length=500,
        examples=[["visit_id", "hospital_id", "clinic", "patient_id", "wait_minutes", "registered_at"]],
    )
    duration_days: int = Field(ge=1, description="How long the grant should last; bounded by the platform.")
    quota_records_per_day: int | None = Field(default=None, ge=1, examples=[100_000])


class AccessRequestDecision(BaseModel):
    reason: Reason = Field(examples=["Not needed for the stated purpose."])


class AccessRequestSubmission(BaseModel):
    """A scenario's changes to a draft request before it submits it; what is left out stays as drafted."""

    purpose: str | None = Field(default=None, min_length=1, max_length=2000)
    purpose_category: PurposeCategory | None = None
    fields: list[FieldPath] | None = Field(default=None, min_length=1, max_length=500)
    duration_days: int | None = Field(default=None, ge=1)
    quota_records_per_day: int | None = Field(default=None, ge=1)


class AccessRequestWithdrawal(BaseModel):
    reason: str | None = Field(default=None, max_length=2000)


class GrantTerms(BaseModel):
    """Terms an approver sets on approval or on a later update: each may only narrow the request."""

    fields: list[FieldPath] | None = Field(
        default=None,
        max_length=500,
        description="A subset of the requested fields; default all of them.",
        examples=[["visit_id", "hospital_id", "clinic", "patient_id", "wait_minutes", "registered_at"]],
    )
    masking: dict[FieldPath, MaskValue] | None = Field(
        default=None,
        description="Masks to add or change, by field path. Sensitive fields are masked by default.",
        examples=[{"registered_at": {"kind": "generalize", "granularity": "hour"}}],
    )
    unmask: dict[FieldPath, Reason] | None = Field(
        default=None,
        description="Sensitive fields to deliver in clear, each with its reason (never on a restricted dataset).",
        examples=[{}],
    )
    row_filter: str | None = Field(
        default=None, max_length=4000, examples=['hospital_id in ["H00001", "H00002"]']
    )
    quota_records_per_day: int | None = Field(default=None, ge=1)


class AccessRequestApproval(GrantTerms):
    reason: Reason = Field(examples=["Purpose matches the hospital platform's published usage."])
    valid_from: Timestamp | None = Field(default=None, description="Default: now.")
    duration_days: int | None = Field(default=None, ge=1, description="At most the requested duration.")


class AccessRequestRead(ReadModel):
    id: str
    scenario_id: str
    dataset_id: str
    contract_version: str
    purpose: str
    purpose_category: PurposeCategory
    fields: list[str]
    duration_days: int
    quota_records_per_day: int | None
    status: AccessRequestStatus
    requested_by: str
    decided_by: str | None
    decided_at: Timestamp | None
    decision_reason: str | None
    grant_id: str | None
    origin: str | None = Field(
        default=None,
        description="What prepared a draft request: `need:<id>` (an offer answering a need) or "
        "`proposal:<id>` (a selected proposal); null for a request the scenario filed itself.",
    )
    created_at: Timestamp
    updated_at: Timestamp


class AccessRequestPage(BaseModel):
    items: list[AccessRequestRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


# --- grants --------------------------------------------------------------------------------


class GrantUpdate(GrantTerms):
    reason: Reason = Field(examples=["The scenario no longer needs wait times per visit."])
    expires_at: Timestamp | None = Field(
        default=None, description="Earlier, or later up to the requested duration from valid-from."
    )


class GrantStatusChange(BaseModel):
    reason: Reason = Field(examples=["Quota abuse under investigation."])


class Quota(BaseModel):
    records_per_day: int


class UnmaskedField(BaseModel):
    reason: str
    by: str
    at: Timestamp


class GrantRead(BaseModel):
    id: str
    version: int
    scenario_id: str
    dataset_id: str
    request_id: str
    contract_version: str
    status: GrantStatus = Field(
        description="active, suspended, revoked, or expired once expires_at has passed."
    )
    fields: list[str]
    masking: dict[str, dict[str, Any]]
    unmasked: dict[str, UnmaskedField]
    row_filter: str | None
    valid_from: Timestamp
    expires_at: Timestamp
    quota: Quota | None
    purpose: str
    purpose_category: PurposeCategory
    status_reason: str | None
    created_at: Timestamp
    updated_at: Timestamp


class GrantPage(BaseModel):
    items: list[GrantRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
