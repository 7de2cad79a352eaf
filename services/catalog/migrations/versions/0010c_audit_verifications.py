"""catalog: each verification of the audit chain, and the published checkpoint it reached.

Revision ID: catalog_0010c
Revises: catalog_0010b
Create Date: 2026-12-07

An incremental verification starts after the last published checkpoint a successful
verification found matching (``anchor_seq``/``anchor_hash``), when the bus still holds it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0010c"
down_revision: str | None = "catalog_0010b"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_audit_verifications",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("from_seq", SEQ, nullable=False),
        sa.Column("entries_checked", SEQ, nullable=False),
        sa.Column("anchor_seq", SEQ),
        sa.Column("anchor_hash", sa.String(64)),
    )


def downgrade() -> None:
    op.drop_table("catalog_audit_verifications")
