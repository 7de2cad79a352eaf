"""catalog: authorized operation (scenarios, access requests, grants).

Revision ID: catalog_0004
Revises: catalog_0003
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0004"
down_revision: str | None = "catalog_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_scenarios",
        sa.Column("id", sa.String(100), sa.ForeignKey("catalog_principals.id"), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("organisation", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_index("ix_catalog_scenarios_status", "catalog_scenarios", ["status"])
    op.create_table(
        "catalog_access_requests",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("dataset_id", sa.String(200), sa.ForeignKey("catalog_datasets.id"), nullable=False),
        sa.Column("contract_version", sa.String(64), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("purpose_category", sa.String(32), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("quota_records_per_day", sa.Integer()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("requested_by", sa.String(100), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", TZ),
        sa.Column("decision_reason", sa.Text()),
        sa.Column("grant_id", sa.String(40)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    for column in ("scenario_id", "dataset_id", "status"):
        op.create_index(f"ix_catalog_access_requests_{column}", "catalog_access_requests", [column])
    op.create_table(
        "catalog_grants",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("dataset_id", sa.String(200), sa.ForeignKey("catalog_datasets.id"), nullable=False),
        sa.Column(
            "request_id",
            sa.String(40),
            sa.ForeignKey("catalog_access_requests.id"),
            nullable=False,
            unique=True,
        ),
        sa.Column("contract_version", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("masking", sa.JSON(), nullable=False),
        sa.Column("unmasked", sa.JSON(), nullable=False),
        sa.Column("row_filter", sa.Text()),
        sa.Column("valid_from", TZ, nullable=False),
        sa.Column("expires_at", TZ, nullable=False),
        sa.Column("quota_records_per_day", sa.Integer()),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("purpose_category", sa.String(32), nullable=False),
        sa.Column("status_reason", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    for column in ("scenario_id", "dataset_id", "status", "expires_at"):
        op.create_index(f"ix_catalog_grants_{column}", "catalog_grants", [column])


def downgrade() -> None:
    for table in ("catalog_grants", "catalog_access_requests", "catalog_scenarios"):
        op.drop_table(table)
