"""Request and response shapes of the needs board (Create, Read, Page and the answers)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import BaseModel, Field, StringConstraints

from services.catalog.access.schemas import FieldPath, PurposeCategory, Reason
from services.catalog.schemas import DatasetId, ReadModel, Slug, Timestamp
from services.common.vocabulary import Frequency, NeedStatus, Urgency

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]
Text = Annotated[str, StringConstraints(strip_whitespace=True, max_length=20_000)]
Purpose = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=2000)]
NeedId = Annotated[str, StringConstraints(pattern=r"^nd-[0-9a-f]{22}$")]


class NeedCreate(BaseModel):
    title: Title = Field(examples=["Real-time bed availability for the one-stop visit"])
    description: Text = Field(default="", examples=["Patients are sent to full hospitals."])
    domains: list[Slug] = Field(min_length=1, max_length=5, examples=[["health"]])
    data_wanted: Purpose = Field(examples=["Free beds per hospital and ward, every 5 minutes."])
    dataset_ids: list[DatasetId] = Field(default_factory=list, max_length=20)
    fields: list[FieldPath] = Field(default_factory=list, max_length=100)
    purpose: Purpose = Field(
        description="The filer's own purpose; joiners state theirs.",
        examples=["Route patients to the hospital with a free bed."],
    )
    purpose_category: PurposeCategory = Field(examples=["public_service"])
    serves: Title = Field(description="Who it serves.", examples=["Outpatients of the city's hospitals"])
    frequency: Frequency
    urgency: Urgency


class ResidentNeedCreate(BaseModel):
    """A resident's need, posted without a key; held until an operator accepts it."""

    title: Title
    description: Text = ""
    domains: list[Slug] = Field(min_length=1, max_length=5)
    data_wanted: Purpose
    serves: Title
    frequency: Frequency = Frequency.medium
    urgency: Urgency = Urgency.normal
    contact: str | None = Field(
        default=None, max_length=200, description="How the city may reach the resident; never shown."
    )


class NeedJoin(BaseModel):
    purpose: Purpose = Field(examples=["Plan the bus ride to the hospital with a free bed."])


class NeedModeration(BaseModel):
    reason: Reason | None = None


class NeedRejection(BaseModel):
    reason: Reason = Field(examples=["A duplicate of an open need."])


class NeedRoute(BaseModel):
    department_id: Slug = Field(examples=["health-commission"])
    reason: Reason | None = None


class NeedOffer(BaseModel):
    dataset_id: DatasetId = Field(examples=["health.outpatient-visits"])
    fields: list[FieldPath] | None = Field(
        default=None, max_length=500, description="The fields offered; all of the contract's when absent."
    )
    duration_days: int = Field(default=365, ge=1)
    note: Reason | None = None


class NeedCommit(BaseModel):
    commit_by: date = Field(description="The date by which the contract will be registered.")
    dataset_id: DatasetId | None = Field(default=None, description="The dataset planned, when known.")
    note: Reason | None = None


class NeedDecline(BaseModel):
    reason: Reason = Field(examples=["The data is not collected by any department."])


class CommentCreate(BaseModel):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=5000)]


class CommentHide(BaseModel):
    reason: Reason


class RequesterRead(ReadModel):
    principal_id: str
    principal_kind: str
    purpose: str
    created_at: Timestamp


class NeedRead(ReadModel):
    id: str
    title: str
    description: str
    domains: list[str]
    data_wanted: str
    dataset_ids: list[str]
    fields: list[str]
    purpose_category: PurposeCategory
    serves: str
    frequency: Frequency
    urgency: Urgency
    status: NeedStatus
    department_id: str | None
    filed_by: str | None
    from_resident: bool
    answer: dict[str, Any] | None
    commit_by: date | None
    overdue: bool = Field(description="Committed, and the commitment's date has passed.")
    moderation_reason: str | None
    requesters: list[RequesterRead]
    followers: int
    created_at: Timestamp
    updated_at: Timestamp


class SimilarNeed(ReadModel):
    id: str
    title: str
    status: NeedStatus
    requesters: int
    score: int = Field(description="How many of the new need's words it shares.")


class NeedFiled(BaseModel):
    need: NeedRead
    similar: list[SimilarNeed] = Field(description="Open needs like this one: join one instead of a copy.")


class NeedPage(BaseModel):
    items: list[NeedRead]
    next_cursor: str | None = None


class CommentRead(ReadModel):
    id: str
    need_id: str
    author_id: str
    body: str | None = Field(description="Null when an operator hid the comment.")
    hidden_reason: str | None
    created_at: Timestamp


class HistoryRead(ReadModel):
    action: str
    actor_id: str | None
    status: NeedStatus
    details: dict[str, Any]
    at: Timestamp


class FollowRead(BaseModel):
    need_id: str
    principal_id: str
    following: bool


class MissedSearchRead(ReadModel):
    query: str
    count: int
    first_seen: Timestamp
    last_seen: Timestamp


class NeedNotice(BaseModel):
    """What a need's followers are told: a new answer, a fulfilment, a comment."""

    id: str
    need_id: str
    kind: str
    status: NeedStatus
    followers: list[str]
    summary: dict[str, Any]
    at: Timestamp
