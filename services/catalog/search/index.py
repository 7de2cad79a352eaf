"""What the catalog's full-text search knows of a dataset, kept in step with every change.

The words of a dataset (id, title, description, tags, field names of its current contract) are
stored in ``search_text``; on SQLite they are also written to the FTS5 table, on PostgreSQL a
generated column and the posting lists follow the row (migration catalog_0005). Called by the
dataset and contract writes in the caller's session.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.orm import Session

from services.catalog.models import ContractVersion, Dataset


def search_text(dataset: Dataset, version: ContractVersion | None) -> str:
    fields = list((version.record_schema.get("properties") or {}).keys()) if version else []
    words = [dataset.id, dataset.title, dataset.description, " ".join(dataset.tags), " ".join(fields)]
    # field names like wait_minutes are indexed whole and split, so "wait" finds them
    words.append(" ".join(part for name in fields for part in name.replace("-", "_").split("_")))
    return "\n".join(word for word in words if word)


def index_dataset(session: Session, dataset: Dataset) -> None:
    """Write the dataset's search text to the SQLite full-text table (PostgreSQL indexes by itself)."""
    if session.get_bind().dialect.name != "sqlite":
        return
    session.execute(sa.text("DELETE FROM catalog_datasets_fts WHERE dataset_id = :id"), {"id": dataset.id})
    session.execute(
        sa.text("INSERT INTO catalog_datasets_fts (dataset_id, body) VALUES (:id, :body)"),
        {"id": dataset.id, "body": dataset.search_text},
    )
