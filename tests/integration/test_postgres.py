"""The services run on PostgreSQL: migrations, the unit of work and the outbox."""

from __future__ import annotations

import secrets

import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from citybase.platform import SERVICE_FACTORIES
from services.common import db
from services.common.bus import OutgoingRecord, TopicSpec
from services.common.outbox import Outbox, OutboxRelay, outbox_table
from services.common.worker import wait_until
from tests.factories import embedded_settings

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("service", sorted(SERVICE_FACTORIES))
def test_a_service_migrates_and_is_ready_on_postgresql(
    service: str, schema_url: str, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # On PostgreSQL feeds refuse to start without a secret of their own.
    monkeypatch.setenv("CITYBASE_FEEDS_SECRET", secrets.token_hex(32))
    app = SERVICE_FACTORIES[service](embedded_settings(tmp_path, database_url=schema_url))
    with TestClient(app) as client:
        # Ready once its read models have replayed platform.catalog: later on a busy machine.
        assert wait_until(lambda: client.get("/readyz").status_code == 200, 30, 0.1), client.get(
            "/readyz"
        ).text
    engine = sa.create_engine(schema_url)
    try:
        tables = set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()
    assert f"alembic_version_{service}" in tables


def test_migrations_are_idempotent(schema_url: str) -> None:
    spec = SERVICE_FACTORIES["catalog"].__globals__["SPEC"]
    db.migrate(schema_url, spec.migrations, spec.version_table)
    db.migrate(schema_url, spec.migrations, spec.version_table)


def test_the_outbox_relays_on_postgresql(schema_url: str, tmp_path) -> None:
    from services.common.bus.embedded import EmbeddedBus

    engine = db.create_db_engine(schema_url)
    metadata = sa.MetaData()
    box = Outbox(outbox_table(metadata, "pgtest"))
    metadata.create_all(engine)
    bus = EmbeddedBus(tmp_path / "bus.db")
    bus.admin().ensure_topic(TopicSpec("events", partitions=1))
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            box.add(session, OutgoingRecord("events", b"hello", b"k", (("h", b"\x00\xff"),)))
        relay = OutboxRelay(box, engine, bus, name="pg")
        assert relay.relay_once() == 1
        consumer = bus.consumer(None, ["events"])
        try:
            (message,) = consumer.poll(2.0, 10)
        finally:
            consumer.close()
        assert message.value == b"hello"
        assert message.header("h") == b"\x00\xff"
    finally:
        bus.close()
        engine.dispose()
