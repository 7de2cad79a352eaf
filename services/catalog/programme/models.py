"""Tables of the scenario programme (prefix ``catalog_``): opportunity lists and their openings,
applicants, proposals.

An applicant shares its id with the principal of kind ``organisation`` made when an operator vets
it; a selected proposal names the scenario it became.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base
from services.common.clock import utcnow


class OpportunityList(Base):
    """A dated, numbered release of openings (机会清单), e.g. "2027 Q1, transport and health"."""

    __tablename__ = "catalog_opportunity_lists"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    number: Mapped[int | None] = mapped_column(Integer, unique=True)
    """Given on publication: 1 for the city's first published list, then 2, 3, ..."""
    title: Mapped[str] = mapped_column(String(200))
    summary: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[str] = mapped_column(String(16), index=True, default="draft")
    published_at: Mapped[datetime | None]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Opening(Base):
    """One opening of a list: what a scenario should do, the data offered, the conditions, until when."""

    __tablename__ = "catalog_openings"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    list_id: Mapped[str] = mapped_column(ForeignKey("catalog_opportunity_lists.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_department_id: Mapped[str] = mapped_column(ForeignKey("catalog_departments.id"), index=True)
    datasets: Mapped[list[str]] = mapped_column(default=list)
    data_offered: Mapped[str] = mapped_column(Text, default="")
    conditions: Mapped[str] = mapped_column(Text, default="")
    deadline: Mapped[datetime]
    need_ids: Mapped[list[str]] = mapped_column(default=list)
    domains: Mapped[list[str]] = mapped_column(default=list)
    serves_residents: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), index=True, default="open")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Applicant(Base):
    """An organisation that registered itself to propose; it may propose once an operator vets it."""

    __tablename__ = "catalog_applicants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    submitted_from: Mapped[str | None] = mapped_column(String(64), index=True)
    """A keyed hash of the client address that registered it, for the registration's flood
    limit; never shown."""
    vetting_reason: Mapped[str | None] = mapped_column(Text)
    vetted_by: Mapped[str | None] = mapped_column(String(100))
    vetted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Proposal(Base):
    """An applicant's answer to an opening: who, how, which data, by when."""

    __tablename__ = "catalog_proposals"
    __table_args__ = (UniqueConstraint("opening_id", "applicant_id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    opening_id: Mapped[str] = mapped_column(ForeignKey("catalog_openings.id"), index=True)
    applicant_id: Mapped[str] = mapped_column(ForeignKey("catalog_applicants.id"), index=True)
    title: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(Text)
    approach: Mapped[str] = mapped_column(Text)
    objectives: Mapped[str] = mapped_column(Text, default="")
    datasets: Mapped[list[Any]] = mapped_column(default=list)
    """``[{"dataset_id": ..., "fields": [...]}]``: the data its access requests will ask for."""
    timeline: Mapped[str] = mapped_column(Text)
    purpose_category: Mapped[str] = mapped_column(String(32))
    duration_days: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True, default="submitted")
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    scenario_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
