"""catalog: domains, departments, datasets, contract versions, principals, API keys, search index.

Revision ID: catalog_0002
Revises: catalog_0001
Create Date: 2026-11-24
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0002"
down_revision: str | None = "catalog_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "catalog_domains",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
    )
    op.create_table(
        "catalog_departments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("domains", sa.JSON(), nullable=False),
        sa.Column("contact_email", sa.String(200)),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    op.create_table(
        "catalog_datasets",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("domain_id", sa.String(64), sa.ForeignKey("catalog_domains.id"), nullable=False),
        sa.Column(
            "owner_department_id", sa.String(64), sa.ForeignKey("catalog_departments.id"), nullable=False
        ),
        sa.Column("title", sa.String(300), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("tags", sa.JSON(), nullable=False),
        sa.Column("classification", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("update_frequency", sa.String(32)),
        sa.Column("compatibility_mode", sa.String(32), nullable=False),
        sa.Column("current_version", sa.String(64)),
        sa.Column("search_text", sa.Text(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
    )
    for column in ("domain_id", "owner_department_id", "classification", "status"):
        op.create_index(f"ix_catalog_datasets_{column}", "catalog_datasets", [column])
    op.create_table(
        "catalog_contract_versions",
        sa.Column("dataset_id", sa.String(200), sa.ForeignKey("catalog_datasets.id"), primary_key=True),
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("api_version", sa.String(16), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("document_format", sa.String(8), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("record_schema", sa.JSON(), nullable=False),
        sa.Column("primary_key", sa.JSON(), nullable=False),
        sa.Column("sensitive_fields", sa.JSON(), nullable=False),
        sa.Column("sla", sa.JSON(), nullable=False),
        sa.Column("expectation_suite", sa.JSON(), nullable=False),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.UniqueConstraint("dataset_id", "sequence"),
    )
    op.create_table(
        "catalog_principals",
        sa.Column("id", sa.String(100), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("department_id", sa.String(64), sa.ForeignKey("catalog_departments.id")),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
    )
    op.create_index("ix_catalog_principals_kind", "catalog_principals", ["kind"])
    op.create_table(
        "catalog_api_keys",
        sa.Column("prefix", sa.String(16), primary_key=True),
        sa.Column("principal_id", sa.String(100), sa.ForeignKey("catalog_principals.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("revoked_at", TZ),
    )
    op.create_index("ix_catalog_api_keys_principal_id", "catalog_api_keys", ["principal_id"])
    # Full-text search: FTS5 on the embedded default, a GIN expression index on PostgreSQL.
    if op.get_bind().dialect.name == "sqlite":
        op.execute(
            "CREATE VIRTUAL TABLE catalog_datasets_fts USING fts5("
            "dataset_id UNINDEXED, body, tokenize='unicode61 remove_diacritics 2')"
        )
    elif op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE INDEX ix_catalog_datasets_search ON catalog_datasets "
            "USING gin (to_tsvector('simple', search_text))"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE catalog_datasets_fts")
    for table in (
        "catalog_api_keys",
        "catalog_principals",
        "catalog_contract_versions",
        "catalog_datasets",
        "catalog_departments",
        "catalog_domains",
    ):
        op.drop_table(table)
