"""Tables of the catalog service (prefix ``catalog_``): the system of record of the city's data."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import JSON, DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.clock import utcnow
from services.common.outbox import outbox_table


class Base(DeclarativeBase):
    type_annotation_map = {
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[Any]: JSON,
        datetime: DateTime(timezone=True),
    }


outbox = outbox_table(Base.metadata, "catalog")


class Domain(Base):
    """A field of the city's data (transport, health, ...): the first part of a dataset id.

    Its owning department decides who registers datasets in it (docs/authorization.md).
    """

    __tablename__ = "catalog_domains"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    owner_department_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_departments.id"))


class Department(Base):
    """A publisher: a commission, bureau, district or enterprise that owns datasets."""

    __tablename__ = "catalog_departments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    domains: Mapped[list[str]] = mapped_column(default=list)
    contact_email: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Dataset(Base):
    __tablename__ = "catalog_datasets"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    domain_id: Mapped[str] = mapped_column(ForeignKey("catalog_domains.id"), index=True)
    owner_department_id: Mapped[str] = mapped_column(ForeignKey("catalog_departments.id"), index=True)
    title: Mapped[str] = mapped_column(String(300))
    description: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list[str]] = mapped_column(default=list)
    classification: Mapped[str] = mapped_column(String(16), index=True)
    status: Mapped[str] = mapped_column(String(16), index=True)
    update_frequency: Mapped[str | None] = mapped_column(String(32))
    compatibility_mode: Mapped[str] = mapped_column(String(32), default="BACKWARD")
    current_version: Mapped[str | None] = mapped_column(String(64))
    publicly_listed: Mapped[bool] = mapped_column(default=True, server_default=sa.true())
    """Whether the record is readable without a key once published; the department may hide it."""
    search_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    # Loaded only when asked for: a dataset is read far more often than its history, and each
    # version carries its whole document. Reads of the current version go by ``current_version``.
    versions: Mapped[list[ContractVersion]] = relationship(
        back_populates="dataset", order_by="ContractVersion.sequence", lazy="select"
    )


dataset_terms = sa.Table(
    "catalog_dataset_terms",
    Base.metadata,
    sa.Column("field", Text, primary_key=True),
    sa.Column("term", Text, primary_key=True),
    sa.Column("dataset_id", String(200), primary_key=True),
    comment=(
        "PostgreSQL only: one row per dataset and word of its search text (field 'text') or value "
        "it is filtered on; kept by a trigger on catalog_datasets (migration catalog_0005)."
    ),
)


class ContractVersion(Base):
    """One ODCS document as submitted, with everything the platform derived from it."""

    __tablename__ = "catalog_contract_versions"
    __table_args__ = (UniqueConstraint("dataset_id", "sequence"),)

    dataset_id: Mapped[str] = mapped_column(ForeignKey("catalog_datasets.id"), primary_key=True)
    version: Mapped[str] = mapped_column(String(64), primary_key=True)
    sequence: Mapped[int] = mapped_column(Integer)
    api_version: Mapped[str] = mapped_column(String(16))
    document: Mapped[str] = mapped_column(Text)
    document_format: Mapped[str] = mapped_column(String(8))
    fingerprint: Mapped[str] = mapped_column(String(64))
    record_schema: Mapped[dict[str, Any]]
    primary_key: Mapped[list[str]]
    sensitive_fields: Mapped[dict[str, Any]]
    sla: Mapped[dict[str, Any]]
    expectation_suite: Mapped[list[Any]]
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    dataset: Mapped[Dataset] = relationship(back_populates="versions")


class Principal(Base):
    """Who calls the platform: a department, a scenario, an approver, an operator or an admin."""

    __tablename__ = "catalog_principals"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), index=True)
    name: Mapped[str] = mapped_column(String(200))
    department_id: Mapped[str | None] = mapped_column(ForeignKey("catalog_departments.id"))
    status: Mapped[str] = mapped_column(String(16), default="active")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """An API key, stored as its prefix and a hash; the key itself is shown once."""

    __tablename__ = "catalog_api_keys"

    prefix: Mapped[str] = mapped_column(String(16), primary_key=True)
    principal_id: Mapped[str] = mapped_column(ForeignKey("catalog_principals.id"), index=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200), default="")
    issued_by: Mapped[str | None] = mapped_column(String(16), index=True)
    """The prefix of the key of the same principal that minted this one; revoked with it."""
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None]
