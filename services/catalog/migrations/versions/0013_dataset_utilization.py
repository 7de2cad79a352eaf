"""catalog: each dataset's utilization as quality announces it on platform.quality.

Revision ID: catalog_0013
Revises: catalog_0012
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0013"
down_revision: str | None = "catalog_0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_dataset_utilization",
        sa.Column(
            "dataset_id",
            sa.String(200),
            sa.ForeignKey("catalog_datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("active_grants", sa.Integer(), nullable=False),
        sa.Column("grants_used", sa.Integer(), nullable=False),
        sa.Column("active_subscribers", sa.Integer(), nullable=False),
        sa.Column("records_last_day", sa.Integer(), nullable=False),
        sa.Column("last_use", TZ),
        sa.Column("computed_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_dataset_utilization")
