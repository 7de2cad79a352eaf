"""The catalog's tables as its migrations build them are the tables its models describe.

A column added to a model without a migration (or a migration without the model) would pass every
test that creates tables from the migrations and fail on a database migrated in the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import services.catalog.app  # noqa: F401  (imports every area's models)
from services.catalog.models import Base
from services.common import db

MIGRATIONS = Path(__file__).resolve().parents[4] / "services" / "catalog" / "migrations"

# What differs on SQLite by design: the full-text index tables (SQLite FTS5, made by the search
# migration), the term postings (PostgreSQL only), the version table, and foreign keys SQLite
# cannot add to an existing table (0008: a domain's owning department).
SQLITE_ONLY_TABLES = ("catalog_datasets_fts", "alembic_version_")
POSTGRES_ONLY_TABLES = ("catalog_dataset_terms",)
SQLITE_MISSING_FOREIGN_KEYS = {("catalog_domains", "owner_department_id")}


def _expected(diff: Any) -> bool:
    kind = diff[0] if isinstance(diff, tuple) else None
    if kind in ("remove_table", "add_table"):
        return diff[1].name.startswith(SQLITE_ONLY_TABLES + POSTGRES_ONLY_TABLES)
    if kind == "add_fk":
        constraint = diff[1]
        return {
            (constraint.table.name, column.name) for column in constraint.columns
        } <= SQLITE_MISSING_FOREIGN_KEYS
    return False


def test_the_migrated_catalog_has_exactly_the_models_tables_columns_and_indexes(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    engine = db.create_db_engine(url)
    try:
        db.migrate(url, MIGRATIONS, "alembic_version_catalog", engine)
        with engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    finally:
        engine.dispose()
    unexpected = [diff for diff in differences if not _expected(diff)]
    assert unexpected == [], "models and migrations disagree (write a migration for the model change)"
