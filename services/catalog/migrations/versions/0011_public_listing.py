"""catalog: whether a published dataset's catalog record is readable without a key.

Every published dataset's record (title, description, publisher, contract summary, scores) is
public unless its department hides it; the existing datasets stay visible, as the default is.

Revision ID: catalog_0011
Revises: catalog_0010c
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0011"
down_revision: str | None = "catalog_0010c"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_datasets") as batch:
        batch.add_column(sa.Column("publicly_listed", sa.Boolean(), nullable=False, server_default=sa.true()))


def downgrade() -> None:
    with op.batch_alter_table("catalog_datasets") as batch:
        batch.drop_column("publicly_listed")
