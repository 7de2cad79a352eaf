"""Tables of the feeds service (prefix ``feeds_``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.clock import utcnow
from services.common.outbox import outbox_table


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, datetime: DateTime(timezone=True)}


outbox = outbox_table(Base.metadata, "feeds")

_ID = BigInteger().with_variant(Integer(), "sqlite")


class Subscription(Base):
    """A scenario's subscription to one dataset: a consumer group of its own on ``ds.<dataset>``.

    ``reset_epoch`` grows on every replay: a reader built before it re-joins at the new positions,
    and a cursor issued before it is stale.
    """

    __tablename__ = "feeds_subscriptions"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    scenario_id: Mapped[str] = mapped_column(String(100), index=True)
    dataset_id: Mapped[str] = mapped_column(String(200))
    topic: Mapped[str] = mapped_column(String(255))
    group_id: Mapped[str] = mapped_column(String(255))
    grant_id: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    start: Mapped[dict[str, Any]] = mapped_column(default=dict)
    reset_epoch: Mapped[int] = mapped_column(Integer, default=0)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    webhook_failures: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class QuotaUsage(Base):
    """Records delivered under one grant on one UTC day: shared by every replica."""

    __tablename__ = "feeds_quota_usage"

    grant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), primary_key=True)
    records: Mapped[int] = mapped_column(BigInteger, default=0)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)


class WebhookDelivery(Base):
    """One attempt to push a batch to a subscription's webhook."""

    __tablename__ = "feeds_webhook_deliveries"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(40), index=True)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempt: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(16))
    http_status: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    records: Mapped[int] = mapped_column(Integer)
    cursor: Mapped[str | None] = mapped_column(Text)
    duration_ms: Mapped[int] = mapped_column(Integer)


class Replay(Base):
    """A subscription moved to other positions: who, when, to what (the audit of replays)."""

    __tablename__ = "feeds_replays"

    id: Mapped[int] = mapped_column(_ID, primary_key=True, autoincrement=True)
    subscription_id: Mapped[str] = mapped_column(String(40), index=True)
    principal_id: Mapped[str] = mapped_column(String(100))
    target: Mapped[dict[str, Any]] = mapped_column(default=dict)
    positions: Mapped[dict[str, Any]] = mapped_column(default=dict)
    epoch: Mapped[int] = mapped_column(Integer)
    replayed_at: Mapped[datetime] = mapped_column(default=utcnow)
