"""catalog: each grant's own random key of its hash masks.

A grant's ``hash`` masks were keyed by a secret derived from the scenario id; they are now keyed
by 256 random bits per grant, made by the catalog for every new grant, carried to feeds in the
grant event and returned by no API. The grants that exist get theirs when the catalog next starts
(``issue_missing_hash_keys``), which announces each live one's next version with its key.

Revision ID: catalog_0007
Revises: catalog_0006
Create Date: 2026-12-07
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0007"
down_revision: str | None = "catalog_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("catalog_grants") as batch:
        batch.add_column(sa.Column("hash_key", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("catalog_grants") as batch:
        batch.drop_column("hash_key")
