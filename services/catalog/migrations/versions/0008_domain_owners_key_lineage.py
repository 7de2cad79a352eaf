"""catalog: each domain's owning department; each self-minted API key's parent key.

Revision ID: catalog_0008
Revises: catalog_0006 (catalog_0007, each grant's hash key, comes from a parallel change: once
both are in one tree, this revision revises catalog_0007)
Create Date: 2026-12-07

An existing domain is given to the first department (by creation) that lists it in its
``domains``, or else to the department owning the first dataset registered in it; a domain
with neither stays unowned until a department is created with it or registers into it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0008"
down_revision: str | None = "catalog_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain ADD COLUMN, not a batch copy: on SQLite a copy of catalog_domains would drop a table
    # that datasets reference. SQLite gets no foreign key on the new column (it cannot add one).
    op.add_column("catalog_domains", sa.Column("owner_department_id", sa.String(64)))
    if op.get_bind().dialect.name != "sqlite":
        op.create_foreign_key(
            "fk_catalog_domains_owner",
            "catalog_domains",
            "catalog_departments",
            ["owner_department_id"],
            ["id"],
        )
    op.add_column("catalog_api_keys", sa.Column("issued_by", sa.String(16)))
    op.create_index("ix_catalog_api_keys_issued_by", "catalog_api_keys", ["issued_by"])
    _backfill_owners()


def _backfill_owners() -> None:
    connection = op.get_bind()
    domains = sa.table("catalog_domains", sa.column("id"), sa.column("owner_department_id"))
    departments = sa.table(
        "catalog_departments", sa.column("id"), sa.column("domains", sa.JSON()), sa.column("created_at")
    )
    datasets = sa.table(
        "catalog_datasets", sa.column("domain_id"), sa.column("owner_department_id"), sa.column("created_at")
    )
    owners: dict[str, str] = {}
    for department_id, listed in connection.execute(
        sa.select(departments.c.id, departments.c.domains).order_by(
            departments.c.created_at, departments.c.id
        )
    ):
        for domain_id in listed or []:
            owners.setdefault(domain_id, department_id)
    for domain_id, department_id in connection.execute(
        sa.select(datasets.c.domain_id, datasets.c.owner_department_id).order_by(datasets.c.created_at)
    ):
        owners.setdefault(domain_id, department_id)
    for domain_id in connection.scalars(sa.select(domains.c.id)):
        if domain_id in owners:
            connection.execute(
                domains.update()
                .where(domains.c.id == domain_id)
                .values(owner_department_id=owners[domain_id])
            )


def downgrade() -> None:
    op.drop_index("ix_catalog_api_keys_issued_by", "catalog_api_keys")
    op.drop_column("catalog_api_keys", "issued_by")
    if op.get_bind().dialect.name != "sqlite":
        op.drop_constraint("fk_catalog_domains_owner", "catalog_domains", type_="foreignkey")
    op.drop_column("catalog_domains", "owner_department_id")
