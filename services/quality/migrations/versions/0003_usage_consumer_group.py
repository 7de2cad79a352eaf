"""quality: the consumer group of each metered delivery (where its subscription's lag is read).

Revision ID: quality_0003
Revises: quality_0002
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "quality_0003"
down_revision: str | None = "quality_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("quality_usage", sa.Column("consumer_group", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("quality_usage", "consumer_group")
