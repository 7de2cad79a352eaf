"""Alembic environment of the feeds service (its own tables, its own version table)."""

from services.common.db import run_migrations_env
from services.feeds.models import Base

run_migrations_env(Base.metadata)
