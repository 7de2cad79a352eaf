"""catalog: each grant's own random key of its hash masks.

A grant's ``hash`` masks were keyed by a secret derived from the scenario id; they are now keyed
by 256 random bits per grant, made here for the grants that exist and by the catalog for every
new one, carried to feeds in the grant event and returned by no API.

Revision ID: catalog_0007
Revises: catalog_0006
Create Date: 2026-12-07
"""

import base64
import secrets
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
    grants = sa.table("catalog_grants", sa.column("id", sa.String()), sa.column("hash_key", sa.String()))
    connection = op.get_bind()
    for (grant_id,) in connection.execute(sa.select(grants.c.id)).all():
        key = base64.urlsafe_b64encode(secrets.token_bytes(32)).rstrip(b"=").decode("ascii")
        connection.execute(grants.update().where(grants.c.id == grant_id).values(hash_key=key))


def downgrade() -> None:
    with op.batch_alter_table("catalog_grants") as batch:
        batch.drop_column("hash_key")
