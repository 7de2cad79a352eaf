"""catalog: the needs board (needs, their requesters, followers, thread and history) and the
catalog searches that found nothing.

Revision ID: catalog_0010a
Revises: catalog_0009
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0010a"
down_revision: str | None = "catalog_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_needs",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("data_wanted", sa.Text(), nullable=False),
        sa.Column("dataset_ids", sa.JSON(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("purpose_category", sa.String(32), nullable=False),
        sa.Column("serves", sa.String(500), nullable=False),
        sa.Column("frequency", sa.String(16), nullable=False),
        sa.Column("urgency", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("department_id", sa.String(64)),
        sa.Column("filed_by", sa.String(100)),
        sa.Column("resident_contact", sa.String(200)),
        sa.Column("submitted_from", sa.String(64)),
        sa.Column("answer", sa.JSON()),
        sa.Column("commit_by", TZ),
        sa.Column("moderation_reason", sa.Text()),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    for column in ("status", "department_id", "submitted_from", "created_at"):
        op.create_index(f"ix_catalog_needs_{column}", "catalog_needs", [column])
    op.create_table(
        "catalog_need_requesters",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("need_id", sa.String(40), sa.ForeignKey("catalog_needs.id"), nullable=False),
        sa.Column("principal_id", sa.String(100), nullable=False),
        sa.Column("principal_kind", sa.String(16), nullable=False),
        sa.Column("purpose", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("need_id", "principal_id"),
    )
    op.create_index("ix_catalog_need_requesters_need_id", "catalog_need_requesters", ["need_id"])
    op.create_table(
        "catalog_need_followers",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("need_id", sa.String(40), sa.ForeignKey("catalog_needs.id"), nullable=False),
        sa.Column("principal_id", sa.String(100), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("need_id", "principal_id"),
    )
    op.create_index("ix_catalog_need_followers_need_id", "catalog_need_followers", ["need_id"])
    op.create_index("ix_catalog_need_followers_principal_id", "catalog_need_followers", ["principal_id"])
    op.create_table(
        "catalog_need_comments",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("need_id", sa.String(40), sa.ForeignKey("catalog_needs.id"), nullable=False),
        sa.Column("author_id", sa.String(100), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("hidden_reason", sa.Text()),
        sa.Column("hidden_by", sa.String(100)),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_catalog_need_comments_need_id", "catalog_need_comments", ["need_id"])
    op.create_table(
        "catalog_need_history",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("need_id", sa.String(40), sa.ForeignKey("catalog_needs.id"), nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor_id", sa.String(100)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("at", TZ, nullable=False),
    )
    op.create_index("ix_catalog_need_history_need_id", "catalog_need_history", ["need_id"])
    op.create_table(
        "catalog_missed_searches",
        sa.Column("query", sa.String(200), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("first_seen", TZ, nullable=False),
        sa.Column("last_seen", TZ, nullable=False),
    )
    op.create_index("ix_catalog_missed_searches_last_seen", "catalog_missed_searches", ["last_seen"])


def downgrade() -> None:
    op.drop_table("catalog_missed_searches")
    op.drop_table("catalog_need_history")
    op.drop_table("catalog_need_comments")
    op.drop_table("catalog_need_followers")
    op.drop_table("catalog_need_requesters")
    op.drop_table("catalog_needs")
