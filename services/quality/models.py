"""Tables of the quality service (prefix ``quality_``): scored windows and their evidence, the
per-dataset state that survives restarts (last event time, open SLA breaches), the breaches, and
the delivery metering read from ``platform.usage``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.clock import utcnow
from services.common.outbox import outbox_table

ID = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


outbox = outbox_table(Base.metadata, "quality")


class QualityWindow(Base):
    """One scored window of a dataset (``kind`` window), or a freshness check without records
    (``kind`` freshness: the timer found the feed stalled)."""

    __tablename__ = "quality_windows"
    __table_args__ = (Index("ix_quality_windows_dataset_closed", "dataset_id", "closed_at"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(200))
    contract_version: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16), default="window")
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime]
    records: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    duplicates: Mapped[int] = mapped_column(Integer, default=0)
    late: Mapped[int] = mapped_column(Integer, default=0)
    validity: Mapped[float | None] = mapped_column(Float)
    completeness: Mapped[float | None] = mapped_column(Float)
    uniqueness: Mapped[float | None] = mapped_column(Float)
    conformity: Mapped[float | None] = mapped_column(Float)
    timeliness: Mapped[float | None] = mapped_column(Float)
    overall: Mapped[float | None] = mapped_column(Float)
    freshness_s: Mapped[float | None] = mapped_column(Float)
    lateness_p95_s: Mapped[float | None] = mapped_column(Float)
    problems: Mapped[list[Any]] = mapped_column(default=list)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class QualityRuleResult(Base):
    """The evidence of a window: one row per expectation run, with a few (masked) failing values."""

    __tablename__ = "quality_rule_results"

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("quality_windows.id", ondelete="CASCADE"), index=True)
    rule_index: Mapped[int] = mapped_column(Integer)
    rule: Mapped[str] = mapped_column(String(200))
    expectation_type: Mapped[str] = mapped_column(String(200))
    column: Mapped[str | None] = mapped_column(String(200))
    dimension: Mapped[str] = mapped_column(String(32))
    success: Mapped[bool | None] = mapped_column(Boolean)
    element_count: Mapped[int | None] = mapped_column(Integer)
    unexpected_count: Mapped[int | None] = mapped_column(Integer)
    missing_count: Mapped[int | None] = mapped_column(Integer)
    observed_value: Mapped[Any] = mapped_column(JSON, nullable=True)
    examples: Mapped[list[Any]] = mapped_column(default=list)
    error: Mapped[str | None] = mapped_column(Text)


class QualityDatasetState(Base):
    """What quality must remember of a dataset across windows and restarts."""

    __tablename__ = "quality_dataset_state"

    dataset_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    first_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_event_at: Mapped[datetime | None]
    last_record_at: Mapped[datetime | None]
    last_window_id: Mapped[int | None] = mapped_column(ID)
    last_overall: Mapped[float | None] = mapped_column(Float)
    announced_overall: Mapped[float | None] = mapped_column(Float)
    freshness_breach_id: Mapped[int | None] = mapped_column(ID)
    latency_breach_id: Mapped[int | None] = mapped_column(ID)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QualitySlaBreach(Base):
    """An SLA breach: a stalled feed (freshness) or late records (latency), open until it ends."""

    __tablename__ = "quality_sla_breaches"
    __table_args__ = (Index("ix_quality_sla_breaches_dataset_opened", "dataset_id", "opened_at"),)

    id: Mapped[int] = mapped_column(ID, primary_key=True, autoincrement=True)
    dataset_id: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    opened_at: Mapped[datetime]
    resolved_at: Mapped[datetime | None]
    target_s: Mapped[float] = mapped_column(Float)
    observed_s: Mapped[float | None] = mapped_column(Float)
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)


class QualityUsage(Base):
    """One delivery as feeds metered it on ``platform.usage`` (the event id makes replays harmless)."""

    __tablename__ = "quality_usage"
    __table_args__ = (
        Index("ix_quality_usage_dataset_day", "dataset_id", "day"),
        Index("ix_quality_usage_scenario_day", "scenario_id", "day"),
    )

    event_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(200))
    subscription_id: Mapped[str | None] = mapped_column(String(200))
    consumer_group: Mapped[str | None] = mapped_column(String(255))
    """The subscription's consumer group (its acknowledged positions), as feeds metered it."""
    grant_id: Mapped[str | None] = mapped_column(String(200), index=True)
    dataset_id: Mapped[str] = mapped_column(String(200))
    records: Mapped[int] = mapped_column(Integer, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    mode: Mapped[str | None] = mapped_column(String(32))
    delivered_at: Mapped[datetime]
    day: Mapped[str] = mapped_column(String(10))
    last_offsets: Mapped[Any] = mapped_column(JSON, nullable=True)
