"""Alembic environment of the quality service (its own tables, its own version table)."""

from services.common.db import run_migrations_env
from services.quality.models import Base

run_migrations_env(Base.metadata)
