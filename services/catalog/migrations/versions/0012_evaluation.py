"""catalog: scenario evaluation: objectives, outcomes (with their idempotency keys), verdicts.

Revision ID: catalog_0012
Revises: catalog_0011
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0012"
down_revision: str | None = "catalog_0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_objectives",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("target", sa.Float()),
        sa.Column("kpi", sa.JSON()),
        sa.Column("period_start", WHEN, nullable=False),
        sa.Column("period_end", WHEN, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("set_by", sa.String(100), nullable=False),
        sa.Column("set_at", WHEN, nullable=False),
        sa.Column("withdrawn_at", WHEN),
        sa.Column("withdrawn_reason", sa.Text()),
    )
    op.create_index("ix_catalog_objectives_scenario_id", "catalog_objectives", ["scenario_id"])
    op.create_index("ix_catalog_objectives_status", "catalog_objectives", ["status"])
    op.create_table(
        "catalog_outcomes",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("objective_id", sa.String(40), sa.ForeignKey("catalog_objectives.id"), nullable=False),
        sa.Column("period_start", WHEN, nullable=False),
        sa.Column("period_end", WHEN, nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("grant_ids", sa.JSON(), nullable=False),
        sa.Column("dataset_ids", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("corrects", sa.String(40)),
        sa.Column("superseded_by", sa.String(40)),
        sa.Column("reported_by", sa.String(100), nullable=False),
        sa.Column("reported_at", WHEN, nullable=False),
        sa.Column("idempotency_key", sa.String(255)),
        sa.Column("request_fingerprint", sa.String(64)),
        sa.UniqueConstraint("scenario_id", "idempotency_key"),
    )
    op.create_index("ix_catalog_outcomes_scenario_id", "catalog_outcomes", ["scenario_id"])
    op.create_index("ix_catalog_outcomes_objective_id", "catalog_outcomes", ["objective_id"])
    op.create_table(
        "catalog_verdicts",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("period_start", WHEN, nullable=False),
        sa.Column("period_end", WHEN, nullable=False),
        sa.Column("result", sa.String(16), nullable=False),
        sa.Column("reasons", sa.JSON(), nullable=False),
        sa.Column("report", sa.JSON(), nullable=False),
        sa.Column("evaluator_id", sa.String(100), nullable=False),
        sa.Column("recorded_at", WHEN, nullable=False),
    )
    op.create_index("ix_catalog_verdicts_scenario_id", "catalog_verdicts", ["scenario_id"])


def downgrade() -> None:
    op.drop_table("catalog_verdicts")
    op.drop_table("catalog_outcomes")
    op.drop_table("catalog_objectives")
