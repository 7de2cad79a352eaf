"""Fixtures shared by every test: where the real services are, and how to require them.

A test that needs Kafka or PostgreSQL asks for the ``kafka_bootstrap`` or ``postgres_url`` fixture.
When the service is unreachable the test is skipped on a developer's machine, but fails when
``CI=true``: in CI a missing service is a broken build, never a silent skip.
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import sqlalchemy as sa
from jsonschema import Draft7Validator

from tests.support.kafka_topics import KAFKA_BOOTSTRAP, created_topics_removed
from tests.support.postgres import POSTGRES_URL


@pytest.fixture(scope="session", autouse=True)
def _test_topics_removed() -> Iterator[None]:
    """The topics this run creates on the shared Kafka are deleted when it ends."""
    with created_topics_removed(KAFKA_BOOTSTRAP):
        yield


def _reachable(host: str, port: int, timeout_s: float = 1.0) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if _reachable(host, port):
        return
    message = f"{name} is not reachable at {host}:{port} (start it with `make up-infra`)"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    host, _, port = KAFKA_BOOTSTRAP.split(",")[0].rpartition(":")
    require_service("Kafka", host, int(port))
    return KAFKA_BOOTSTRAP


@pytest.fixture(scope="session")
def postgres_url() -> str:
    parts = urlsplit(POSTGRES_URL)
    require_service("PostgreSQL", parts.hostname or "127.0.0.1", parts.port or 5432)
    return POSTGRES_URL


@pytest.fixture
def schema_url(postgres_url: str, unique_name: str) -> Iterator[str]:
    """A fresh PostgreSQL schema for one test, dropped after it: tests never see each other's rows."""
    schema = f"t_{unique_name}"
    engine = sa.create_engine(postgres_url)
    with engine.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}"})
    yield url.render_as_string(hide_password=False)
    with engine.begin() as connection:
        connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Run a test on the embedded default (SQLite) and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'citybase.db'}"
    return str(request.getfixturevalue("schema_url"))


@pytest.fixture
def unique_name() -> str:
    """A short unique suffix for topics, groups and datasets of one test."""
    return uuid.uuid4().hex[:10]


ASYNCAPI_3_SCHEMA = (
    Path(__file__).resolve().parent
    / "js"
    / "node_modules"
    / "@asyncapi"
    / "specs"
    / "schemas"
    / "3.0.0-without-$id.json"
)
"""The official AsyncAPI 3.0.0 JSON Schema, bundled without $id so every $ref is local."""


@pytest.fixture(scope="session")
def asyncapi_3() -> Draft7Validator:
    """A validator of AsyncAPI 3.0.0 documents, from ``@asyncapi/specs`` (pinned in tests/js)."""
    if not ASYNCAPI_3_SCHEMA.is_file():
        message = f"{ASYNCAPI_3_SCHEMA} is missing: run npm ci --prefix tests/js"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message, pytrace=False)
        pytest.skip("run npm ci --prefix tests/js")
    schema = json.loads(ASYNCAPI_3_SCHEMA.read_text(encoding="utf-8"))
    assert schema["properties"]["asyncapi"]["const"] == "3.0.0"
    Draft7Validator.check_schema(schema)
    return Draft7Validator(schema)
