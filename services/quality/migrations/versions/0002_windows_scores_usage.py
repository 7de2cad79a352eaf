"""quality: scored windows, rule evidence, dataset state, SLA breaches, delivery metering.

Revision ID: quality_0002
Revises: quality_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "quality_0002"
down_revision: str | None = "quality_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "quality_windows",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("contract_version", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("closed_at", WHEN, nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("duplicates", sa.Integer(), nullable=False),
        sa.Column("late", sa.Integer(), nullable=False),
        *(
            sa.Column(name, sa.Float(), nullable=True)
            for name in (
                "validity",
                "completeness",
                "uniqueness",
                "conformity",
                "timeliness",
                "overall",
                "freshness_s",
                "lateness_p95_s",
            )
        ),
        sa.Column("problems", sa.JSON(), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index("ix_quality_windows_dataset_closed", "quality_windows", ["dataset_id", "closed_at"])
    op.create_table(
        "quality_rule_results",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("window_id", ID, sa.ForeignKey("quality_windows.id", ondelete="CASCADE"), nullable=False),
        sa.Column("rule_index", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(200), nullable=False),
        sa.Column("expectation_type", sa.String(200), nullable=False),
        sa.Column("column", sa.String(200), nullable=True),
        sa.Column("dimension", sa.String(32), nullable=False),
        sa.Column("success", sa.Boolean(), nullable=True),
        sa.Column("element_count", sa.Integer(), nullable=True),
        sa.Column("unexpected_count", sa.Integer(), nullable=True),
        sa.Column("missing_count", sa.Integer(), nullable=True),
        sa.Column("observed_value", sa.JSON(), nullable=True),
        sa.Column("examples", sa.JSON(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
    )
    op.create_index("ix_quality_rule_results_window_id", "quality_rule_results", ["window_id"])
    op.create_table(
        "quality_dataset_state",
        sa.Column("dataset_id", sa.String(200), primary_key=True),
        sa.Column("first_seen_at", WHEN, nullable=False),
        sa.Column("last_event_at", WHEN, nullable=True),
        sa.Column("last_record_at", WHEN, nullable=True),
        sa.Column("last_window_id", ID, nullable=True),
        sa.Column("last_overall", sa.Float(), nullable=True),
        sa.Column("announced_overall", sa.Float(), nullable=True),
        sa.Column("freshness_breach_id", ID, nullable=True),
        sa.Column("latency_breach_id", ID, nullable=True),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_table(
        "quality_sla_breaches",
        sa.Column("id", ID, primary_key=True, autoincrement=True),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("opened_at", WHEN, nullable=False),
        sa.Column("resolved_at", WHEN, nullable=True),
        sa.Column("target_s", sa.Float(), nullable=False),
        sa.Column("observed_s", sa.Float(), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
    )
    op.create_index(
        "ix_quality_sla_breaches_dataset_opened", "quality_sla_breaches", ["dataset_id", "opened_at"]
    )
    op.create_table(
        "quality_usage",
        sa.Column("event_id", sa.String(200), primary_key=True),
        sa.Column("scenario_id", sa.String(200), nullable=False),
        sa.Column("subscription_id", sa.String(200), nullable=True),
        sa.Column("grant_id", sa.String(200), nullable=True),
        sa.Column("dataset_id", sa.String(200), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("mode", sa.String(32), nullable=True),
        sa.Column("delivered_at", WHEN, nullable=False),
        sa.Column("day", sa.String(10), nullable=False),
        sa.Column("last_offsets", sa.JSON(), nullable=True),
    )
    op.create_index("ix_quality_usage_dataset_day", "quality_usage", ["dataset_id", "day"])
    op.create_index("ix_quality_usage_scenario_day", "quality_usage", ["scenario_id", "day"])
    op.create_index("ix_quality_usage_grant_id", "quality_usage", ["grant_id"])


def downgrade() -> None:
    for table in (
        "quality_usage",
        "quality_sla_breaches",
        "quality_dataset_state",
        "quality_rule_results",
        "quality_windows",
    ):
        op.drop_table(table)
