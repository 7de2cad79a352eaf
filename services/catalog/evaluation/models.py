"""Tables of scenario evaluation (prefix ``catalog_``): objectives, outcomes, verdicts.

An objective keeps a ``version`` that its withdrawal increments. An outcome is never edited: a
correction is a new row naming the one it corrects (``corrects``), and the corrected row only gains
``superseded_by``. An outcome reported with an ``Idempotency-Key`` keeps the key and a fingerprint
of its body, so that a retry gets the same outcome and another body under the same key a 409.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base
from services.common.clock import utcnow


class Objective(Base):
    """What a scenario commits to achieve in a period (dataset use, deliveries, quality, a KPI)."""

    __tablename__ = "catalog_objectives"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    kind: Mapped[str] = mapped_column(String(32))
    datasets: Mapped[list[str]]
    target: Mapped[float | None] = mapped_column(Float)
    kpi: Mapped[dict[str, Any] | None]
    """``{"name", "unit", "direction": "at-least"|"at-most"}`` for kind ``outcome``."""
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), index=True, default="active")
    version: Mapped[int] = mapped_column(Integer, default=1)
    set_by: Mapped[str] = mapped_column(String(100))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    withdrawn_at: Mapped[datetime | None]
    withdrawn_reason: Mapped[str | None] = mapped_column(Text)


class Outcome(Base):
    """One value a scenario reports for one of its ``outcome`` objectives over a reporting period."""

    __tablename__ = "catalog_outcomes"
    __table_args__ = (UniqueConstraint("scenario_id", "idempotency_key"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    objective_id: Mapped[str] = mapped_column(ForeignKey("catalog_objectives.id"), index=True)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    value: Mapped[float] = mapped_column(Float)
    grant_ids: Mapped[list[str]]
    dataset_ids: Mapped[list[str]]
    note: Mapped[str] = mapped_column(Text, default="")
    corrects: Mapped[str | None] = mapped_column(String(40))
    superseded_by: Mapped[str | None] = mapped_column(String(40))
    reported_by: Mapped[str] = mapped_column(String(100))
    reported_at: Mapped[datetime] = mapped_column(default=utcnow)
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    request_fingerprint: Mapped[str | None] = mapped_column(String(64))


class Verdict(Base):
    """An evaluator's verdict on a scenario over a period, with one reason per active objective."""

    __tablename__ = "catalog_verdicts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(ForeignKey("catalog_scenarios.id"), index=True)
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    result: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list[Any]]
    report: Mapped[dict[str, Any]]
    """``{"checkpoint": {"seq", "hash"}|null, "digest"}``: the evaluation report the verdict rests on."""
    evaluator_id: Mapped[str] = mapped_column(String(100))
    recorded_at: Mapped[datetime] = mapped_column(default=utcnow)
