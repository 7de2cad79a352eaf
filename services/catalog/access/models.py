"""Tables of authorized operation (prefix ``catalog_``): scenarios and their stages, access
requests, grants.

A scenario shares its id with a principal of kind ``scenario``: the principal holds its keys, the
scenario row what the city knows about the application. A grant is born from one approved
request and keeps a ``version`` that every change increments, so read models (feeds) can tell
the newest terms from an older event.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base
from services.common.clock import utcnow


class Scenario(Base):
    """An application scenario that consumes the city's data, e.g. "one-stop hospital visit"."""

    __tablename__ = "catalog_scenarios"

    id: Mapped[str] = mapped_column(ForeignKey("catalog_principals.id"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    organisation: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), index=True, default="active")
    stage: Mapped[str] = mapped_column(String(16), index=True, default="live")
    """Where it is in the programme; ``status`` follows it (``active`` but when suspended or retired)."""
    need_ids: Mapped[list[str]] = mapped_column(default=list)
    opening_id: Mapped[str | None] = mapped_column(String(64), index=True)
    domains: Mapped[list[str]] = mapped_column(default=list)
    datasets: Mapped[list[str]] = mapped_column(default=list)
    objectives: Mapped[str] = mapped_column(Text, default="")
    owning_body: Mapped[str] = mapped_column(String(200), default="")
    builder_id: Mapped[str | None] = mapped_column(String(64), index=True)
    serves_residents: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScenarioStageChange(Base):
    """One move of a scenario from a stage to the next, by whom and why (append-only)."""

    __tablename__ = "catalog_scenario_stages"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    stage: Mapped[str] = mapped_column(String(16))
    previous_stage: Mapped[str | None] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(100))
    changed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AccessRequest(Base):
    """A scenario asking for fields of a dataset, for a purpose and a duration."""

    __tablename__ = "catalog_access_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("catalog_datasets.id"), index=True)
    contract_version: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(Text)
    purpose_category: Mapped[str] = mapped_column(String(32))
    fields: Mapped[list[str]]
    duration_days: Mapped[int] = mapped_column(Integer)
    quota_records_per_day: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True, default="pending")
    requested_by: Mapped[str] = mapped_column(String(100))
    decided_by: Mapped[str | None] = mapped_column(String(100))
    decided_at: Mapped[datetime | None]
    decision_reason: Mapped[str | None] = mapped_column(Text)
    grant_id: Mapped[str | None] = mapped_column(String(40))
    origin: Mapped[str | None] = mapped_column(String(120), index=True)
    """What prepared a draft: ``need:<id>`` or ``proposal:<id>``; null when the scenario filed it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Grant(Base):
    """What one scenario may receive of one dataset, until when, masked how."""

    __tablename__ = "catalog_grants"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("catalog_datasets.id"), index=True)
    request_id: Mapped[str] = mapped_column(ForeignKey("catalog_access_requests.id"), unique=True)
    contract_version: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), index=True, default="active")
    fields: Mapped[list[str]]
    masking: Mapped[dict[str, Any]]
    """Field path -> the policy module's mask value (``"hash"`` or ``{"kind": ..., ...}``)."""
    unmasked: Mapped[dict[str, Any]]
    """Sensitive field path -> who un-masked it, when and why."""
    row_filter: Mapped[str | None] = mapped_column(Text)
    valid_from: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)
    quota_records_per_day: Mapped[int | None] = mapped_column(Integer)
    purpose: Mapped[str] = mapped_column(Text)
    purpose_category: Mapped[str] = mapped_column(String(32))
    status_reason: Mapped[str | None] = mapped_column(Text)
    hash_key: Mapped[str | None] = mapped_column(String(64))
    """The key of this grant's ``hash`` masks (base64url of 256 random bits), made when the grant
    is created; it goes to feeds in the grant event and out of no API."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
