"""Request and response shapes of the scenario programme (Create, Read, Page)."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field

from services.catalog.access.schemas import (
    AccessRequestRead,
    FieldPath,
    NeedRef,
    PurposeCategory,
    Reason,
    ScenarioRead,
)
from services.catalog.schemas import ApiKeyIssued, DatasetId, ReadModel, Slug, Timestamp
from services.common.vocabulary import ApplicantStatus


class ListStatus(StrEnum):
    draft = "draft"
    published = "published"


class OpeningStatus(StrEnum):
    """``open`` until its owner selects proposals (``decided``); proposals close at the deadline."""

    open = "open"
    decided = "decided"


class ProposalStatus(StrEnum):
    submitted = "submitted"
    selected = "selected"
    not_selected = "not_selected"


# --- opportunity lists ----------------------------------------------------------------------


class OpportunityListCreate(BaseModel):
    id: Slug = Field(examples=["q1-2027-transport-health"])
    title: str = Field(min_length=1, max_length=200, examples=["2027 Q1, transport and health"])
    summary: str = Field(
        default="",
        max_length=20_000,
        examples=["Openings for scenarios that shorten hospital visits and bus journeys."],
    )


class OpeningCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200, examples=["Wait-aware outpatient booking"])
    description: str = Field(default="", max_length=20_000)
    owner_department_id: Slug = Field(
        examples=["health-commission"], description="The department that compares and selects proposals."
    )
    datasets: list[DatasetId] = Field(
        default_factory=list, max_length=50, examples=[["health.outpatient-visits"]]
    )
    data_offered: str = Field(
        default="", max_length=20_000, examples=["Waits per clinic, every five minutes, patient ids hashed."]
    )
    conditions: str = Field(
        default="", max_length=20_000, examples=["Free for residents; data stays in the city's cloud."]
    )
    deadline: Timestamp = Field(description="Proposals are accepted until then.")
    need_ids: list[NeedRef] = Field(default_factory=list, max_length=50)
    domains: list[Slug] = Field(default_factory=list, max_length=20, examples=[["health"]])
    serves_residents: bool = False


class OpeningRead(ReadModel):
    id: str
    list_id: str
    position: int
    title: str
    description: str
    owner_department_id: str
    datasets: list[str]
    data_offered: str
    conditions: str
    deadline: Timestamp
    need_ids: list[str]
    domains: list[str]
    serves_residents: bool
    status: OpeningStatus
    created_at: Timestamp
    updated_at: Timestamp


class OpportunityListRead(ReadModel):
    id: str
    number: int | None = Field(description="Given on publication: 1, 2, 3, ...; null while a draft.")
    title: str
    summary: str
    status: ListStatus
    published_at: Timestamp | None
    created_by: str
    created_at: Timestamp
    updated_at: Timestamp
    openings: list[OpeningRead]


class OpportunityListPage(BaseModel):
    items: list[OpportunityListRead]


# --- applicants ----------------------------------------------------------------------------


class ApplicantCreate(BaseModel):
    id: Slug = Field(examples=["shenkang-lab"], description="Becomes the id of its principal when vetted.")
    name: str = Field(min_length=1, max_length=200, examples=["Shenkang Digital Health Lab"])
    description: str = Field(default="", max_length=20_000)
    contact: str = Field(min_length=1, max_length=200, examples=["bids@shenkang-lab.example.cn"])


class ApplicantRead(ReadModel):
    id: str
    name: str
    description: str
    contact: str
    status: ApplicantStatus
    vetting_reason: str | None
    vetted_by: str | None
    vetted_at: Timestamp | None
    created_at: Timestamp
    updated_at: Timestamp


class ApplicantVetting(BaseModel):
    decision: ApplicantStatus = Field(examples=["vetted"], description="vetted or refused.")
    reason: Reason = Field(examples=["Registered enterprise, references checked."])


class ApplicantVetted(BaseModel):
    applicant: ApplicantRead
    key: ApiKeyIssued | None = Field(
        description="The organisation's first API key, shown this once, for the operator to hand over "
        "with the vetting decision; null when refused."
    )


# --- proposals -----------------------------------------------------------------------------


class ProposalDataset(BaseModel):
    dataset_id: DatasetId = Field(examples=["health.outpatient-visits"])
    fields: list[FieldPath] = Field(min_length=1, max_length=500, examples=[["clinic", "wait_minutes"]])


class ProposalCreate(BaseModel):
    title: str = Field(min_length=1, max_length=200, examples=["Least-crowded clinic booking"])
    team: str = Field(min_length=1, max_length=20_000, examples=["Six engineers, two clinicians."])
    approach: str = Field(min_length=1, max_length=2000, examples=["Book each visit at the shortest queue."])
    objectives: str = Field(default="", max_length=20_000)
    datasets: list[ProposalDataset] = Field(default_factory=list, max_length=50)
    timeline: str = Field(min_length=1, max_length=20_000, examples=["Pilot in 3 months, city-wide in 9."])
    purpose_category: PurposeCategory = PurposeCategory.public_service
    duration_days: int = Field(default=180, ge=1, description="How long its access requests will ask for.")


class ProposalRead(ReadModel):
    id: str
    opening_id: str
    applicant_id: str
    title: str
    team: str
    approach: str
    objectives: str
    datasets: list[ProposalDataset]
    timeline: str
    purpose_category: PurposeCategory
    duration_days: int
    status: ProposalStatus
    decided_by: str | None
    decided_at: Timestamp | None
    decision_reason: str | None
    scenario_id: str | None
    created_at: Timestamp
    updated_at: Timestamp


class ProposalComparison(BaseModel):
    """An opening's proposals side by side, and per dataset and field which proposals ask for it."""

    opening: OpeningRead
    proposals: list[ProposalRead]
    fields_asked: dict[str, dict[str, list[str]]] = Field(
        description="dataset id -> field -> ids of the proposals that ask for it."
    )


class Selection(BaseModel):
    proposal_ids: list[str] = Field(min_length=1, max_length=20)
    reason: Reason = Field(examples=["Strongest plan for residents, clearest data minimisation."])


class SelectionRead(BaseModel):
    opening: OpeningRead
    selected: list[ProposalRead]
    not_selected: list[ProposalRead]
    scenarios: list[ScenarioRead]
    access_requests: list[AccessRequestRead] = Field(
        description="The draft access requests prepared for the new scenarios, to submit or change."
    )
