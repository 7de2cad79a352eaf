"""Alembic environment of the ingest service (its own tables, its own version table)."""

from services.common.db import run_migrations_env
from services.ingest.models import Base

run_migrations_env(Base.metadata)
