"""catalog: each domain's owning department; each self-minted API key's parent key.

Revision ID: catalog_0007
Revises: catalog_0006
Create Date: 2026-12-07

An existing domain is given to the first department (by creation) that lists it in its
``domains``, or else to the department owning the first dataset registered in it; a domain
with neither stays unowned until a department is created with it or registers into it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0007"
down_revision: str | None = "catalog_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_domains") as batch:
        batch.add_column(
            sa.Column(
                "owner_department_id",
                sa.String(64),
                sa.ForeignKey("catalog_departments.id", name="fk_catalog_domains_owner"),
            )
        )
    with op.batch_alter_table("catalog_api_keys") as batch:
        batch.add_column(sa.Column("issued_by", sa.String(16)))
        batch.create_index("ix_catalog_api_keys_issued_by", ["issued_by"])
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
    with op.batch_alter_table("catalog_api_keys") as batch:
        batch.drop_index("ix_catalog_api_keys_issued_by")
        batch.drop_column("issued_by")
    with op.batch_alter_table("catalog_domains") as batch:
        batch.drop_constraint("fk_catalog_domains_owner", type_="foreignkey")
        batch.drop_column("owner_department_id")
