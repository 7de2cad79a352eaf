"""catalog: the hash-chained audit trail.

Revision ID: catalog_0003
Revises: catalog_0002
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0003"
down_revision: str | None = "catalog_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "catalog_audit_entries",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("at", TZ, nullable=False),
        sa.Column("actor_id", sa.String(100)),
        sa.Column("actor_kind", sa.String(16)),
        sa.Column("action", sa.String(100), nullable=False),
        sa.Column("resource_type", sa.String(50), nullable=False),
        sa.Column("resource_id", sa.String(300), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text()),
        sa.Column("dataset_id", sa.String(200)),
        sa.Column("department_id", sa.String(64)),
        sa.Column("scenario_id", sa.String(100)),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("source_event_id", sa.String(64), unique=True),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    for column in ("at", "actor_id", "action", "dataset_id", "department_id", "scenario_id"):
        op.create_index(f"ix_catalog_audit_entries_{column}", "catalog_audit_entries", [column])
    head = op.create_table(
        "catalog_audit_head",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("seq", SEQ, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    # The one head row exists from the start, so that the first appends lock it like all others.
    op.bulk_insert(head, [{"id": 1, "seq": 0, "hash": "0" * 64}])
    op.create_table(
        "catalog_audit_checkpoints",
        sa.Column("seq", SEQ, primary_key=True, autoincrement=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("catalog_audit_checkpoints")
    op.drop_table("catalog_audit_head")
    op.drop_table("catalog_audit_entries")
