"""The whole platform in one process, with a principal of every kind, for hostile-input tests.

Module-scoped (starting the platform and its principals takes seconds), on SQLite and on a fresh
PostgreSQL schema, with the embedded bus. The principals and their keys are those of the
authorization table's test (tests/integration/test_authorization.py): :func:`tests.support.principals.cast`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.factories import embedded_settings
from tests.support.platform import Platform, in_process
from tests.support.postgres import postgres_schema
from tests.support.principals import cast


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
        schema, engine, url = postgres_schema(str(request.getfixturevalue("postgres_url")))
        dropped = (schema, engine)
        settings = embedded_settings(directory, database_url=url)
    try:
        # As `citybase up` runs it: feeds' secret of the data directory, on PostgreSQL too.
        with in_process(
            settings, key_name="matrix", one_process_feeds=True, prepare_platform=cast
        ) as platform:
            yield platform
    finally:
        if dropped is not None:
            schema, engine = dropped
            with engine.begin() as connection:
                connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
            engine.dispose()
