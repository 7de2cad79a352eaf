"""catalog: draft access requests, prepared for a scenario by an answer to a need or a selection.

Revision ID: catalog_0009
Revises: catalog_0008
Create Date: 2026-12-07

``origin`` names what prepared a draft (``need:<id>``, ``proposal:<id>``); requests a scenario
filed itself keep it null. The ``draft`` status needs no schema change (status is a string).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "catalog_0009"
down_revision: str | None = "catalog_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("catalog_access_requests", sa.Column("origin", sa.String(120)))
    op.create_index("ix_catalog_access_requests_origin", "catalog_access_requests", ["origin"])


def downgrade() -> None:
    op.drop_index("ix_catalog_access_requests_origin", table_name="catalog_access_requests")
    op.drop_column("catalog_access_requests", "origin")
