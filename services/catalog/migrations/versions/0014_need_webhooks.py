"""catalog: a need's follower may give a webhook; the queue of the notices pushed to them; the
client address hash of an applicant's registration, for its flood limit.

Revision ID: catalog_0014
Revises: catalog_0013
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0014"
down_revision: str | None = "catalog_0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("catalog_need_followers") as batch:
        batch.add_column(sa.Column("webhook_url", sa.Text()))
        batch.add_column(sa.Column("webhook_secret", sa.String(128)))
    op.create_table(
        "catalog_need_pushes",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("notice_id", sa.String(40), nullable=False),
        sa.Column("need_id", sa.String(40), sa.ForeignKey("catalog_needs.id"), nullable=False),
        sa.Column("principal_id", sa.String(100), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", TZ, nullable=False),
        sa.Column("http_status", sa.Integer()),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    for column in ("need_id", "status", "next_attempt_at"):
        op.create_index(f"ix_catalog_need_pushes_{column}", "catalog_need_pushes", [column])
    with op.batch_alter_table("catalog_applicants") as batch:
        batch.add_column(sa.Column("submitted_from", sa.String(64)))
        batch.create_index("ix_catalog_applicants_submitted_from", ["submitted_from"])


def downgrade() -> None:
    with op.batch_alter_table("catalog_applicants") as batch:
        batch.drop_index("ix_catalog_applicants_submitted_from")
        batch.drop_column("submitted_from")
    op.drop_table("catalog_need_pushes")
    with op.batch_alter_table("catalog_need_followers") as batch:
        batch.drop_column("webhook_secret")
        batch.drop_column("webhook_url")
