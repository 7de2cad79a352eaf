"""The shared PostgreSQL of the tests, and fresh schemas for suites that build their own database."""

from __future__ import annotations

import os
import uuid

import sqlalchemy as sa

POSTGRES_URL = os.environ.get(
    "CITYBASE_TEST_POSTGRES", "postgresql+psycopg://citybase:citybase@127.0.0.1:5432/citybase_test"
)
"""The shared PostgreSQL the tests and the benchmark use."""


def postgres_schema(postgres_url: str, prefix: str = "t_hostile_") -> tuple[str, sa.Engine, str]:
    """A new schema, an engine to drop it with, and the URL whose search path is the schema."""
    schema = f"{prefix}{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, engine, url.render_as_string(hide_password=False)
