"""The whole platform in one process, with a principal of every kind, for hostile-input tests.

Module-scoped (starting the platform and its principals takes seconds), on SQLite and on a fresh
PostgreSQL schema, with the embedded bus. The principals and their keys are those of the
authorization table's test (tests/integration/test_authorization.py), built with its helpers.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from citybase.platform import create_platform_app, one_process_feeds_settings, prepare
from tests.factories import embedded_settings
from tests.integration.test_authorization import Platform, cast


def _postgres_schema(postgres_url: str) -> tuple[str, sa.Engine, str]:
    schema = f"t_hostile_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, engine, url.render_as_string(hide_password=False)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def platform(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """catalog, ingest, feeds and quality on one database and the embedded bus, with the example
    catalog, two departments (a publisher and an approver each), an operator and two scenarios,
    one of which holds a grant and a subscription to market.inspections."""
    directory: Path = tmp_path_factory.mktemp("hostile")
    dropped: tuple[str, sa.Engine] | None = None
    if request.param == "sqlite":
        settings = embedded_settings(directory)
    else:
        schema, engine, url = _postgres_schema(str(request.getfixturevalue("postgres_url")))
        dropped = (schema, engine)
        settings = embedded_settings(directory, database_url=url)
    try:
        prepared = prepare(settings)
        assert prepared.admin_key is not None
        # As `citybase up` runs it: feeds' secret of the data directory, on PostgreSQL too.
        app = create_platform_app(settings, feeds_settings=one_process_feeds_settings(settings))
        with TestClient(app) as client:
            platform = Platform(client, app, prepared.admin_key)
            platform.wait_for_key(prepared.admin_key)
            cast(platform)
            yield platform
    finally:
        if dropped is not None:
            schema, engine = dropped
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()
