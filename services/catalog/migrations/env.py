"""Alembic environment of the catalog service (its own tables, its own version table)."""

from services.catalog.access import models as _access_models  # noqa: F401  (its tables join the metadata)
from services.catalog.audit import models as _audit_models  # noqa: F401  (its tables join the metadata)
from services.catalog.evaluation import models as _evaluation_models  # noqa: F401  (its tables join the metadata)
from services.catalog.models import Base
from services.catalog.needs import models as _needs_models  # noqa: F401  (its tables join the metadata)
from services.catalog.programme import models as _programme_models  # noqa: F401  (its tables join the metadata)
from services.catalog.scores import models as _score_models  # noqa: F401  (its tables join the metadata)
from services.common.db import run_migrations_env

run_migrations_env(Base.metadata)
