"""feeds: subscriptions, daily quota usage, webhook deliveries, replays.

Revision ID: feeds_0002
Revises: feeds_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feeds_0002"
down_revision: str | None = "feeds_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "feeds_subscriptions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scenario_id", sa.String(100), nullable=False),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(255), nullable=False),
        sa.Column("group_id", sa.String(255), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("start", sa.JSON(), nullable=False),
        sa.Column("reset_epoch", sa.Integer(), nullable=False),
        sa.Column("webhook_url", sa.Text(), nullable=True),
        sa.Column("webhook_secret", sa.String(128), nullable=True),
        sa.Column("webhook_failures", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feeds_subscriptions_scenario_id", "feeds_subscriptions", ["scenario_id"])
    op.create_table(
        "feeds_quota_usage",
        sa.Column("grant_id", sa.String(64), primary_key=True),
        sa.Column("day", sa.String(10), primary_key=True),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "feeds_webhook_deliveries",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.Text(), nullable=True),
        sa.Column("duration_ms", sa.Integer(), nullable=False),
    )
    op.create_index(
        "ix_feeds_webhook_deliveries_subscription_id", "feeds_webhook_deliveries", ["subscription_id"]
    )
    op.create_table(
        "feeds_replays",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(40), nullable=False),
        sa.Column("principal_id", sa.String(100), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("positions", sa.JSON(), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("replayed_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_feeds_replays_subscription_id", "feeds_replays", ["subscription_id"])


def downgrade() -> None:
    op.drop_index("ix_feeds_replays_subscription_id", "feeds_replays")
    op.drop_table("feeds_replays")
    op.drop_index("ix_feeds_webhook_deliveries_subscription_id", "feeds_webhook_deliveries")
    op.drop_table("feeds_webhook_deliveries")
    op.drop_table("feeds_quota_usage")
    op.drop_index("ix_feeds_subscriptions_scenario_id", "feeds_subscriptions")
    op.drop_table("feeds_subscriptions")
