"""Tables of the needs board (prefix ``catalog_need``): needs, their requesters, thread, followers
and history, and the catalog searches that found nothing.

A need is filed by one principal (or a resident through the public form, held until an operator
accepts it); others join it with their own purpose, so one row counts everyone who wants the same
data. Its ``history`` is its own table, written with every state change beside the audit entry, so
a need's page reads its story without scanning the audit trail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from services.catalog.models import Base
from services.common.clock import utcnow


class Need(Base):
    """What someone wants of the city's data, and where its answer stands."""

    __tablename__ = "catalog_needs"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    domains: Mapped[list[str]]
    data_wanted: Mapped[str] = mapped_column(Text)
    dataset_ids: Mapped[list[str]]
    fields: Mapped[list[str]]
    purpose_category: Mapped[str] = mapped_column(String(32))
    serves: Mapped[str] = mapped_column(String(500))
    frequency: Mapped[str] = mapped_column(String(16))
    urgency: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), index=True)
    department_id: Mapped[str | None] = mapped_column(String(64), index=True)
    """Who answers: the owning department of the need's first domain, or where an operator routed it."""
    filed_by: Mapped[str | None] = mapped_column(String(100))
    """The filing principal; null for a resident's need."""
    resident_contact: Mapped[str | None] = mapped_column(String(200))
    submitted_from: Mapped[str | None] = mapped_column(String(64), index=True)
    """A keyed hash of the client address of a resident's form, for its rate limit; never shown."""
    answer: Mapped[dict[str, Any] | None]
    """The latest answer: ``{"kind": "offer"|"commit"|"decline", ...}``."""
    commit_by: Mapped[datetime | None]
    moderation_reason: Mapped[str | None] = mapped_column(Text)
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedRequester(Base):
    """One principal's demand for a need: the filer's and each joiner's, with their own purpose."""

    __tablename__ = "catalog_need_requesters"
    __table_args__ = (UniqueConstraint("need_id", "principal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("catalog_needs.id"), index=True)
    principal_id: Mapped[str] = mapped_column(String(100))
    principal_kind: Mapped[str] = mapped_column(String(16))
    purpose: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedFollower(Base):
    """Who is told of a need's answers and comments: on ``platform.catalog`` always, and by a
    signed POST to the follower's webhook when it gave one."""

    __tablename__ = "catalog_need_followers"
    __table_args__ = (UniqueConstraint("need_id", "principal_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("catalog_needs.id"), index=True)
    principal_id: Mapped[str] = mapped_column(String(100), index=True)
    webhook_url: Mapped[str | None] = mapped_column(Text)
    webhook_secret: Mapped[str | None] = mapped_column(String(128))
    """The key of the webhook's signatures, shown once to the follower when it set the webhook."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedPush(Base):
    """One need notice to push to one follower's webhook: queued in the transaction of the notice,
    then tried by the pusher until the receiver acknowledges it or the attempts run out."""

    __tablename__ = "catalog_need_pushes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    notice_id: Mapped[str] = mapped_column(String(40))
    need_id: Mapped[str] = mapped_column(ForeignKey("catalog_needs.id"), index=True)
    principal_id: Mapped[str] = mapped_column(String(100))
    url: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    """The JSON sent, fixed when queued so that every attempt signs the same bytes."""
    status: Mapped[str] = mapped_column(String(16), index=True)
    """``pending``, ``delivered``, ``failed`` (no attempt left) or ``dropped`` (the webhook was removed)."""
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    http_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedComment(Base):
    """One message of a need's discussion thread; an operator may hide it, with a reason."""

    __tablename__ = "catalog_need_comments"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("catalog_needs.id"), index=True)
    author_id: Mapped[str] = mapped_column(String(100))
    body: Mapped[str] = mapped_column(Text)
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    hidden_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class NeedHistory(Base):
    """One step of a need's story: filed, joined, accepted, routed, answered, fulfilled..."""

    __tablename__ = "catalog_need_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    need_id: Mapped[str] = mapped_column(ForeignKey("catalog_needs.id"), index=True)
    action: Mapped[str] = mapped_column(String(40))
    actor_id: Mapped[str | None] = mapped_column(String(100))
    status: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]]
    at: Mapped[datetime] = mapped_column(default=utcnow)


class MissedSearch(Base):
    """A normalised catalog query that found no dataset, and how often it was asked."""

    __tablename__ = "catalog_missed_searches"

    query: Mapped[str] = mapped_column(String(200), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=1)
    first_seen: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(default=utcnow, index=True)
