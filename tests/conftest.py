"""Fixtures shared by every test: where the real services are, and how to require them.

A test that needs Kafka or PostgreSQL asks for the ``kafka_bootstrap`` or ``postgres_url`` fixture.
When the service is unreachable the test is skipped on a developer's machine, but fails when
``CI=true``: in CI a missing service is a broken build, never a silent skip.
"""

from __future__ import annotations

import os
import socket
import uuid
from urllib.parse import urlsplit

import pytest

KAFKA_BOOTSTRAP = os.environ.get("CITYBASE_TEST_KAFKA", "127.0.0.1:9092")
POSTGRES_URL = os.environ.get(
    "CITYBASE_TEST_POSTGRES", "postgresql+psycopg://citybase:citybase@127.0.0.1:5432/citybase_test"
)


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
def unique_name() -> str:
    """A short unique suffix for topics, groups and datasets of one test."""
    return uuid.uuid4().hex[:10]
