"""Events leave through the outbox only after their transaction committed, in order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from services.common import db
from services.common.bus import OutgoingRecord, TopicSpec
from services.common.bus.embedded import EmbeddedBus
from services.common.outbox import Outbox, OutboxRelay, outbox_table
from services.common.worker import wait_until


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.db")
    yield bus
    bus.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[tuple[Outbox, sa.Engine]]:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    metadata = sa.MetaData()
    table = outbox_table(metadata, "test")
    metadata.create_all(engine)
    yield Outbox(table), engine
    engine.dispose()


def _read_all(bus: EmbeddedBus, topic: str) -> list[bytes | None]:
    consumer = bus.consumer(None, [topic])
    try:
        return [message.value for message in consumer.poll(1.0, 1000)]
    finally:
        consumer.close()


def test_committed_events_are_published_in_order_and_removed(
    bus: EmbeddedBus, outbox: tuple[Outbox, sa.Engine]
) -> None:
    box, engine = outbox
    bus.admin().ensure_topic(TopicSpec("events", partitions=1))
    relay = OutboxRelay(box, engine, bus, name="test")
    sessions = db.session_factory(engine)
    for n in range(5):
        with db.unit_of_work(sessions) as session:
            box.add(session, OutgoingRecord("events", str(n).encode(), b"k", (("h", b"v"),)))
    assert relay.relay_once() == 5
    assert _read_all(bus, "events") == [b"0", b"1", b"2", b"3", b"4"]
    assert relay.pending() == 0


def test_a_rolled_back_transaction_announces_nothing(
    bus: EmbeddedBus, outbox: tuple[Outbox, sa.Engine]
) -> None:
    box, engine = outbox
    relay = OutboxRelay(box, engine, bus, name="test")
    sessions = db.session_factory(engine)
    with pytest.raises(RuntimeError), db.unit_of_work(sessions) as session:
        box.add(session, OutgoingRecord("events", b"never"))
        raise RuntimeError("the change failed")
    assert relay.pending() == 0
    assert relay.relay_once() == 0


def test_the_relay_thread_publishes_soon_after_commit(
    bus: EmbeddedBus, outbox: tuple[Outbox, sa.Engine]
) -> None:
    box, engine = outbox
    bus.admin().ensure_topic(TopicSpec("events", partitions=1))
    relay = OutboxRelay(box, engine, bus, name="test", idle_interval_s=30)
    relay.start()
    try:
        with db.unit_of_work(db.session_factory(engine)) as session:
            box.add(session, OutgoingRecord("events", b"soon"))
        assert wait_until(lambda: relay.published == 1, timeout_s=5)
    finally:
        relay.stop()
    assert _read_all(bus, "events") == [b"soon"]
