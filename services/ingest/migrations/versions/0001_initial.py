"""ingest: idempotency keys of batches.

Revision ID: ingest_0001
Revises:
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "ingest_0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "ingest_idempotency_keys",
        sa.Column("principal_id", sa.String(100), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("request_fingerprint", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_ingest_idempotency_keys_created_at", "ingest_idempotency_keys", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_ingest_idempotency_keys_created_at", "ingest_idempotency_keys")
    op.drop_table("ingest_idempotency_keys")
