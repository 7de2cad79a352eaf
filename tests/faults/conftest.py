"""Fixtures of the fault tests: a private Kafka broker and a private PostgreSQL server per module,
which the tests kill or stop; the shared ones are never touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.fault_platform import Platform, running_platform
from tests.support.infra import (
    PrivateKafka,
    PrivatePostgres,
    kafka_available,
    postgres_available,
    require,
)


@pytest.fixture(scope="module")
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateKafka]:
    require(*kafka_available())
    broker = PrivateKafka(tmp_path_factory.mktemp("kafka"))
    try:
        broker.format()
        broker.start()
        yield broker
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def private_postgres() -> Iterator[PrivatePostgres]:
    require(*postgres_available())
    server = PrivatePostgres()
    try:
        server.init()
        server.start()
        yield server
    finally:
        server.destroy()


@pytest.fixture(scope="module")
def platform(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    """A catalog and an ingest in this process on the shared Kafka, for tests that kill services."""
    with running_platform(kafka_bootstrap, tmp_path_factory.mktemp("restarts")) as platform:
        yield platform
