"""catalog: the scenario programme: scenario stages and definition, opportunity lists, openings,
applicants, proposals.

Revision ID: catalog_0010b
Revises: catalog_0010a
Create Date: 2026-12-07

A scenario registered before stages existed is ``live`` if active, else in the stage named by its
status (``suspended``, ``retired``); its history starts with that stage.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0010b"
down_revision: str | None = "catalog_0010a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("catalog_scenarios") as table:
        table.add_column(sa.Column("stage", sa.String(16), nullable=False, server_default="live"))
        table.add_column(sa.Column("need_ids", sa.JSON(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("opening_id", sa.String(64)))
        table.add_column(sa.Column("domains", sa.JSON(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("datasets", sa.JSON(), nullable=False, server_default="[]"))
        table.add_column(sa.Column("objectives", sa.Text(), nullable=False, server_default=""))
        table.add_column(sa.Column("owning_body", sa.String(200), nullable=False, server_default=""))
        table.add_column(sa.Column("builder_id", sa.String(64)))
        table.add_column(
            sa.Column("serves_residents", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        table.create_index("ix_catalog_scenarios_stage", ["stage"])
        table.create_index("ix_catalog_scenarios_opening_id", ["opening_id"])
        table.create_index("ix_catalog_scenarios_builder_id", ["builder_id"])
    op.execute("UPDATE catalog_scenarios SET stage = status WHERE status IN ('suspended', 'retired')")
    op.create_table(
        "catalog_scenario_stages",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("scenario_id", sa.String(100), sa.ForeignKey("catalog_scenarios.id"), nullable=False),
        sa.Column("stage", sa.String(16), nullable=False),
        sa.Column("previous_stage", sa.String(16)),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("changed_by", sa.String(100), nullable=False),
        sa.Column("changed_at", WHEN, nullable=False),
    )
    op.create_index("ix_catalog_scenario_stages_scenario_id", "catalog_scenario_stages", ["scenario_id"])
    op.execute(
        "INSERT INTO catalog_scenario_stages (scenario_id, stage, reason, changed_by, changed_at) "
        "SELECT id, stage, 'stage given to a scenario registered before stages', 'platform', updated_at "
        "FROM catalog_scenarios"
    )
    op.create_table(
        "catalog_opportunity_lists",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("number", sa.Integer(), unique=True),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("published_at", WHEN),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_catalog_opportunity_lists_status", "catalog_opportunity_lists", ["status"])
    op.create_table(
        "catalog_openings",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("list_id", sa.String(64), sa.ForeignKey("catalog_opportunity_lists.id"), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column(
            "owner_department_id", sa.String(64), sa.ForeignKey("catalog_departments.id"), nullable=False
        ),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("data_offered", sa.Text(), nullable=False),
        sa.Column("conditions", sa.Text(), nullable=False),
        sa.Column("deadline", WHEN, nullable=False),
        sa.Column("need_ids", sa.JSON(), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("serves_residents", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_catalog_openings_list_id", "catalog_openings", ["list_id"])
    op.create_index("ix_catalog_openings_owner_department_id", "catalog_openings", ["owner_department_id"])
    op.create_index("ix_catalog_openings_status", "catalog_openings", ["status"])
    op.create_table(
        "catalog_applicants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("vetting_reason", sa.Text()),
        sa.Column("vetted_by", sa.String(100)),
        sa.Column("vetted_at", WHEN),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
    )
    op.create_index("ix_catalog_applicants_status", "catalog_applicants", ["status"])
    op.create_table(
        "catalog_proposals",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("opening_id", sa.String(40), sa.ForeignKey("catalog_openings.id"), nullable=False),
        sa.Column("applicant_id", sa.String(64), sa.ForeignKey("catalog_applicants.id"), nullable=False),
        sa.Column("title", sa.String(200), nullable=False),
        sa.Column("team", sa.Text(), nullable=False),
        sa.Column("approach", sa.Text(), nullable=False),
        sa.Column("objectives", sa.Text(), nullable=False),
        sa.Column("datasets", sa.JSON(), nullable=False),
        sa.Column("timeline", sa.Text(), nullable=False),
        sa.Column("purpose_category", sa.String(32), nullable=False),
        sa.Column("duration_days", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("decided_by", sa.String(100)),
        sa.Column("decided_at", WHEN),
        sa.Column("decision_reason", sa.Text()),
        sa.Column("scenario_id", sa.String(64)),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.UniqueConstraint("opening_id", "applicant_id"),
    )
    op.create_index("ix_catalog_proposals_opening_id", "catalog_proposals", ["opening_id"])
    op.create_index("ix_catalog_proposals_applicant_id", "catalog_proposals", ["applicant_id"])
    op.create_index("ix_catalog_proposals_status", "catalog_proposals", ["status"])


def downgrade() -> None:
    for name in ("catalog_proposals", "catalog_applicants", "catalog_openings", "catalog_opportunity_lists"):
        op.drop_table(name)
    op.drop_table("catalog_scenario_stages")
    with op.batch_alter_table("catalog_scenarios") as table:
        for index in ("stage", "opening_id", "builder_id"):
            table.drop_index(f"ix_catalog_scenarios_{index}")
        for column in (
            "stage",
            "need_ids",
            "opening_id",
            "domains",
            "datasets",
            "objectives",
            "owning_body",
            "builder_id",
            "serves_residents",
        ):
            table.drop_column(column)
