"""Request and response shapes of the catalog API (the fixed vocabulary: Create, Update, Read, Page)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from services.common.clock import aware
from services.common.vocabulary import DepartmentKind

Slug = Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,62}$")]
DatasetId = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z][a-z0-9-]{1,62}\.[a-z][a-z0-9-]{1,62}$", max_length=127),
]
"""``<domain>.<name>``, lower case, e.g. ``transport.bus-arrivals``."""


Timestamp = Annotated[datetime, AfterValidator(aware)]


class Classification(StrEnum):
    open = "open"
    conditional = "conditional"
    restricted = "restricted"


class DatasetStatus(StrEnum):
    draft = "draft"
    active = "active"
    deprecated = "deprecated"
    retired = "retired"


class CompatibilityModeName(StrEnum):
    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"


class ReadModel(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class DomainCreate(BaseModel):
    id: Slug
    name: str = Field(min_length=1, max_length=200)
    description: str = ""
    owner_department_id: Slug | None = Field(
        default=None,
        description="The department that registers datasets in the domain; "
        "unset, the first department created with the domain in its `domains`, or else the first "
        "registration, claims it.",
    )


class DomainRead(ReadModel):
    id: str
    name: str
    description: str
    owner_department_id: str | None


class DepartmentCreate(BaseModel):
    id: Slug = Field(examples=["transport-bureau"])
    name: str = Field(min_length=1, max_length=200, examples=["Municipal Transport Bureau"])
    kind: DepartmentKind
    domains: list[Slug] = Field(default_factory=list, examples=[["transport"]])
    contact_email: str | None = Field(default=None, max_length=200)


class DepartmentRead(ReadModel):
    id: str
    name: str
    kind: DepartmentKind
    domains: list[str]
    contact_email: str | None
    created_at: Timestamp
    updated_at: Timestamp


class DatasetCreate(BaseModel):
    id: DatasetId = Field(examples=["transport.bus-arrivals"])
    title: str = Field(min_length=1, max_length=300)
    description: str = Field(default="", max_length=20_000)
    owner_department_id: Slug
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] = Field(
        default_factory=list, max_length=50
    )
    classification: Classification = Classification.conditional
    status: DatasetStatus = DatasetStatus.draft
    update_frequency: str | None = Field(default=None, max_length=32, examples=["PT1M"])
    compatibility_mode: CompatibilityModeName = CompatibilityModeName.BACKWARD


class DatasetUpdate(BaseModel):
    title: str | None = Field(default=None, min_length=1, max_length=300)
    description: str | None = Field(default=None, max_length=20_000)
    tags: list[Annotated[str, StringConstraints(min_length=1, max_length=64)]] | None = Field(
        default=None, max_length=50
    )
    classification: Classification | None = None
    status: DatasetStatus | None = None
    update_frequency: str | None = Field(default=None, max_length=32)
    compatibility_mode: CompatibilityModeName | None = None
    publicly_listed: bool | None = Field(
        default=None,
        description="false hides the published dataset's catalog record from readers without a key.",
    )


class Topics(BaseModel):
    records: str
    dead_letter: str
    raw: str


class DatasetRead(ReadModel):
    id: str
    domain_id: str
    owner_department_id: str
    title: str
    description: str
    tags: list[str]
    classification: Classification
    status: DatasetStatus
    update_frequency: str | None
    compatibility_mode: CompatibilityModeName
    current_version: str | None
    publicly_listed: bool = True
    topics: Topics
    created_at: Timestamp
    updated_at: Timestamp


class QualitySummary(BaseModel):
    """The dataset's latest quality score, as the quality service last announced it."""

    model_config = ConfigDict(from_attributes=True)

    overall: float | None = Field(
        description="0-100, weighted over the dimensions; null when not measurable."
    )
    scores: dict[str, float | None] = Field(
        description="validity, completeness, uniqueness, conformity, timeliness: 0-100 or null"
    )
    problems: list[str] = Field(description="What could not be measured in the window, and why.")
    window_closed_at: Timestamp
    contract_version: str | None
    open_breaches: list[str] = Field(description="SLA breaches open now: freshness, latency.")
    updated_at: Timestamp


class DatasetDetail(DatasetRead):
    quality: QualitySummary | None = Field(
        default=None,
        description="The latest quality score; null until the quality service scored the dataset.",
    )


class QualityBand(StrEnum):
    """Where a dataset's latest overall quality score falls: high from 90, medium from 70, low
    below, unscored until the quality service has scored it."""

    high = "high"
    medium = "medium"
    low = "low"
    unscored = "unscored"


class FacetCount(BaseModel):
    value: str
    count: int = Field(ge=1, description="How many datasets of the current query have this value.")


class DatasetFacets(BaseModel):
    """How the datasets of the current query (every filter and word applied) spread over each
    facet, most frequent first; tags are the 20 most frequent."""

    domain: list[FacetCount]
    department: list[FacetCount]
    classification: list[FacetCount]
    status: list[FacetCount]
    quality_band: list[FacetCount]
    tag: list[FacetCount]


class DatasetPage(BaseModel):
    items: list[DatasetRead]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")
    facets: DatasetFacets | None = Field(
        default=None, description="Counts per facet of the whole query, when asked for with `facets=true`."
    )


class ContractVersionRead(ReadModel):
    dataset_id: str
    version: str
    api_version: str
    fingerprint: str
    record_schema: dict[str, Any]
    primary_key: list[str]
    sensitive_fields: dict[str, Any]
    sla: dict[str, Any]
    expectation_suite: list[Any]
    created_by: str
    created_at: Timestamp


class ContractVersionSummary(ReadModel):
    version: str
    fingerprint: str
    created_by: str
    created_at: Timestamp


class BreakingChangeRead(BaseModel):
    path: str
    rule: str
    direction: str
    against_version: str
    message: str
    old: Any = None
    new: Any = None


class CompatibilityReport(BaseModel):
    compatible: bool
    mode: CompatibilityModeName
    version: str
    checked_against: list[str]
    breaking_changes: list[BreakingChangeRead]


class PrincipalCreate(BaseModel):
    id: Slug
    kind: str = Field(pattern="^(department|scenario|approver|operator|admin|organisation|evaluator)$")
    name: str = Field(min_length=1, max_length=200)
    department_id: Slug | None = None


class PrincipalRead(ReadModel):
    id: str
    kind: str
    name: str
    department_id: str | None
    status: str
    created_at: Timestamp


class CallerRead(BaseModel):
    """Who an API key speaks for, as every service's key ring knows it."""

    id: str
    kind: str = Field(examples=["approver"])
    name: str
    department_id: str | None


class ApiKeyCreate(BaseModel):
    name: str = Field(default="", max_length=200)


class ApiKeyRead(ReadModel):
    prefix: str
    principal_id: str
    name: str
    issued_by: str | None = Field(
        default=None,
        description="The prefix of the principal's own key that minted this one: revoking that key "
        "revokes this one too. Null for a key an admin issued.",
    )
    created_at: Timestamp
    revoked_at: Timestamp | None


class ApiKeyIssued(ApiKeyRead):
    key: str = Field(description="The API key. Shown once: only its hash is kept.")
