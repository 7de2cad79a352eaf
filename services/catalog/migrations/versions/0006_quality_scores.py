"""catalog: each dataset's latest quality score, from platform.quality.

Revision ID: catalog_0006
Revises: catalog_0005
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0006"
down_revision: str | None = "catalog_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_dataset_quality",
        sa.Column(
            "dataset_id",
            sa.String(200),
            sa.ForeignKey("catalog_datasets.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("overall", sa.Float()),
        sa.Column("scores", sa.JSON(), nullable=False),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("window_closed_at", TZ, nullable=False),
        sa.Column("contract_version", sa.String(64)),
        sa.Column("open_breaches", sa.JSON(), nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_dataset_quality")
