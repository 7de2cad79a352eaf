"""Tables of the audit trail (prefix ``catalog_audit_``).

``catalog_audit_entries`` is append-only: each entry carries the hash of the one before it, so an
edited, removed or inserted row breaks the chain. ``catalog_audit_head`` is a single row holding
the last sequence number and hash; locking it serializes appends, so the chain has no forks.
``catalog_audit_checkpoints`` records the head periodically (and each checkpoint is also published
on ``platform.catalog``, a copy outside the database that a rewrite of the table cannot reach).
``catalog_audit_verifications`` records each verification and the published checkpoint it reached.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base
from services.common.clock import utcnow


class AuditEntry(Base):
    __tablename__ = "catalog_audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime] = mapped_column(index=True)
    actor_id: Mapped[str | None] = mapped_column(String(100), index=True)
    actor_kind: Mapped[str | None] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(100), index=True)
    resource_type: Mapped[str] = mapped_column(String(50))
    resource_id: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str | None] = mapped_column(Text)
    dataset_id: Mapped[str | None] = mapped_column(String(200), index=True)
    department_id: Mapped[str | None] = mapped_column(String(64), index=True)
    scenario_id: Mapped[str | None] = mapped_column(String(100), index=True)
    details: Mapped[dict[str, Any]]
    source_event_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    """The event an entry was made from (a feeds delivery), so a redelivered event is not entered twice."""
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    __tablename__ = "catalog_audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))


class AuditCheckpoint(Base):
    __tablename__ = "catalog_audit_checkpoints"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    hash: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditVerificationRun(Base):
    """One verification of the chain, and the published checkpoint it last found matching: the
    anchor an incremental verification starts from (only when the bus still holds that checkpoint
    with the same hash)."""

    __tablename__ = "catalog_audit_verifications"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    mode: Mapped[str] = mapped_column(String(16))
    ok: Mapped[bool] = mapped_column(Boolean)
    from_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    entries_checked: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    anchor_seq: Mapped[int | None] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    anchor_hash: Mapped[str | None] = mapped_column(String(64))
