"""Consumer workers commit only after the work, dead-letter poison, retry the rest;
read models replay a topic and report ready once caught up."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from services.common.bus import Admin, BusUnavailable, Message, OutgoingRecord, TopicSpec
from services.common.bus.embedded import EmbeddedBus
from services.common.readmodel import ReadModel
from services.common.worker import ConsumerWorker, PoisonMessage, RetryableError, wait_until


@pytest.fixture
def bus(tmp_path: Path) -> Iterator[EmbeddedBus]:
    bus = EmbeddedBus(tmp_path / "bus.db")
    yield bus
    bus.close()


class Recorder:
    def __init__(self, fail_first_flushes: int = 0) -> None:
        self.seen: list[bytes | None] = []
        self.batch: list[bytes | None] = []
        self.fail_first_flushes = fail_first_flushes

    def handle(self, message: Message) -> None:
        if message.value == b"poison":
            raise PoisonMessage("cannot parse", code="parse")
        self.batch.append(message.value)

    def flush(self) -> None:
        if self.fail_first_flushes > 0:
            self.fail_first_flushes -= 1
            self.batch.clear()
            raise RetryableError("store unavailable")
        self.seen.extend(self.batch)
        self.batch.clear()


def test_a_worker_commits_after_flush_and_dead_letters_poison(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("in", partitions=1))
    bus.admin().ensure_topic(TopicSpec("dlq.in", partitions=1))
    bus.producer().publish([OutgoingRecord("in", v) for v in (b"a", b"poison", b"b")])
    recorder = Recorder(fail_first_flushes=1)
    worker = ConsumerWorker(
        bus, name="t", group_id="g", topics=["in"], handler=recorder, dead_letter_topic=lambda m: "dlq.in"
    )
    worker.start()
    try:
        assert wait_until(lambda: bus.admin().lag("g", "in") == {0: 0}, timeout_s=10)
    finally:
        worker.stop()
    assert recorder.seen == [b"a", b"b"]
    assert worker.failures == 1
    dlq = bus.consumer(None, ["dlq.in"])
    try:
        (dead,) = dlq.poll(2.0, 10)
    finally:
        dlq.close()
    assert dead.value == b"poison"
    assert dead.header("dlq_reason") == b"parse"
    assert dead.header("dlq_source") == b"in/0/1"


class KeyValues:
    def __init__(self) -> None:
        self.state: dict[bytes, bytes] = {}

    def apply(self, message: Message) -> None:
        assert message.key is not None
        if message.value is None:
            self.state.pop(message.key, None)
        else:
            self.state[message.key] = message.value


def test_a_read_model_replays_then_follows(bus: EmbeddedBus) -> None:
    topic = "platform.catalog"
    bus.admin().ensure_topic(TopicSpec(topic, partitions=1, compact=True))
    bus.producer().publish(
        [
            OutgoingRecord(topic, b"v1", b"a"),
            OutgoingRecord(topic, b"v1", b"b"),
            OutgoingRecord(topic, None, b"b"),
        ]
    )
    projection = KeyValues()
    model = ReadModel(bus, topic, projection, name="test")
    changed = threading.Event()
    model.on_change(lambda message: changed.set() if message.key == b"c" else None)
    assert model.readiness() is not None
    model.start()
    try:
        assert model.wait_caught_up(10)
        assert model.readiness() is None
        assert projection.state == {b"a": b"v1"}
        bus.producer().publish([OutgoingRecord(topic, b"v2", b"c")])
        assert changed.wait(5)
        assert projection.state == {b"a": b"v1", b"c": b"v2"}
    finally:
        model.stop()


def test_an_empty_topic_is_caught_up_at_once(bus: EmbeddedBus) -> None:
    model = ReadModel(bus, "platform.empty", KeyValues(), name="empty")
    model.start()
    try:
        assert model.wait_caught_up(5)
    finally:
        model.stop()
    assert bus.admin().partitions_for("platform.empty") == 1


class _DownAtFirst(EmbeddedBus):
    """An embedded bus whose admin fails ``ensure_topic`` the first ``failures`` times, as a bus
    that is not up yet does."""

    def __init__(self, path: Path, failures: int) -> None:
        super().__init__(path)
        self.failures = failures
        self.tries = 0

    def admin(self) -> Admin:
        admin = super().admin()
        ensure = admin.ensure_topic

        def flaky(spec: TopicSpec, timeout_s: float | None = None) -> bool:
            self.tries += 1
            if self.tries <= self.failures:
                raise BusUnavailable("no broker answers")
            return ensure(spec, timeout_s)

        admin.ensure_topic = flaky  # type: ignore[method-assign]
        return admin


def test_a_read_model_starts_while_the_bus_is_down_and_catches_up_once_it_answers(tmp_path: Path) -> None:
    bus = _DownAtFirst(tmp_path / "bus.db", failures=3)
    model = ReadModel(bus, "platform.catalog", KeyValues(), name="late", retry_interval_s=0.05)
    try:
        model.start()  # returns at once: the app starts, /readyz says why it is not ready
        assert wait_until(lambda: bus.tries >= 1, 5)
        assert not model.caught_up
        assert "no broker answers" in (model.readiness() or "")
        assert model.wait_caught_up(10)
        assert bus.tries == 4
        assert model.readiness() is None
        assert bus.admin().partitions_for("platform.catalog") == 1
    finally:
        model.stop()
        bus.close()


def test_a_read_model_stopped_while_the_bus_is_down_stops(tmp_path: Path) -> None:
    bus = _DownAtFirst(tmp_path / "bus.db", failures=1_000_000)
    model = ReadModel(bus, "platform.catalog", KeyValues(), name="never", retry_interval_s=0.05)
    model.start()
    assert wait_until(lambda: bus.tries >= 2, 5)
    model.stop(timeout_s=5)
    assert not model.caught_up
    assert "readmodel-never" not in {thread.name for thread in threading.enumerate()}
    bus.close()
