"""Migration catalog_0008 on a catalog that already holds departments and datasets (SQLite)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command

from services.catalog.app import SPEC
from services.common import db


def test_existing_domains_get_the_owner_their_departments_and_datasets_say(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = db.create_db_engine(url)
    config = db.alembic_config(url, SPEC.migrations, SPEC.version_table)  # type: ignore[arg-type]
    now = datetime.now(UTC)
    try:
        with engine.begin() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "catalog_0006")
            connection.execute(
                sa.text(
                    "INSERT INTO catalog_domains (id, name, description) "
                    "VALUES ('health', 'Health', ''), ('market', 'Market', ''), ('culture', 'Culture', '')"
                )
            )
            connection.execute(
                sa.text(
                    "INSERT INTO catalog_departments (id, name, kind, domains, created_at, updated_at) VALUES "
                    "('health-commission', 'Health', 'commission', '[\"health\"]', :now, :now), "
                    "('market-supervision', 'Market', 'bureau', '[]', :now, :now)"
                ),
                {"now": now},
            )
            # A dataset references its domain: the migration must not copy and drop catalog_domains.
            connection.execute(
                sa.text(
                    "INSERT INTO catalog_datasets (id, domain_id, owner_department_id, title, description, "
                    "tags, classification, status, compatibility_mode, search_text, created_at, updated_at) "
                    "VALUES ('market.inspections', 'market', 'market-supervision', 'Inspections', '', '[]', "
                    "'conditional', 'active', 'BACKWARD', '', :now, :now)"
                ),
                {"now": now},
            )
            command.upgrade(config, "head")
            owners = dict(
                connection.execute(sa.text("SELECT id, owner_department_id FROM catalog_domains")).all()
            )
    finally:
        engine.dispose()
    assert owners == {"health": "health-commission", "market": "market-supervision", "culture": None}
