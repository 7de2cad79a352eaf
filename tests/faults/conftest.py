"""Fixtures of the fault tests: a private Kafka broker and a private PostgreSQL server per module,
which the tests kill or stop; the shared ones are never touched."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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
