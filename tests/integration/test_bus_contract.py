"""The bus contract: one behavioural suite, run unchanged on the embedded bus and on Apache Kafka.

Code written against :mod:`services.common.bus` must not be able to tell the backends apart, so
every test here goes through the ``Bus`` interface only and runs once per backend (the ``bus``
fixture). The Kafka runs are marked ``kafka``: skipped on a laptop without a broker, a failure in
CI (see ``kafka_bootstrap`` in tests/conftest.py).

Each test owns uniquely named topics and groups, creates its topics with ``ensure_topic`` before
use, and waits with deadlines instead of fixed sleeps, so a slow broker makes a test slower, not
flaky.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from kafka.partitioner.default import murmur2

from services.common.bus import (
    Admin,
    Bus,
    BusError,
    Consumer,
    Message,
    OutgoingRecord,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from services.common.bus.base import StartFrom
from services.common.bus.embedded import EmbeddedBus

SESSION_TIMEOUT_S = {"embedded": 1.0, "kafka": 6.0}
"""The shortest session each backend allows: Kafka refuses less than the broker's
``group.min.session.timeout.ms`` (6 s by default)."""

DEADLINE_S = 30.0
"""How long a test waits for something that should happen (a group join on Kafka takes seconds)."""

QUIET_S = 0.5
"""How long a test listens to conclude that nothing more arrives."""


def _embedded(tmp_path: Path, request: pytest.FixtureRequest) -> Bus:
    return EmbeddedBus(tmp_path / "bus.db")


def _kafka(tmp_path: Path, request: pytest.FixtureRequest) -> Bus:
    bootstrap: str = request.getfixturevalue("kafka_bootstrap")
    from services.common.bus.kafka import KafkaBus

    return KafkaBus(bootstrap.split(","), client_id="citybase-contract")


BACKENDS: dict[str, Callable[[Path, pytest.FixtureRequest], Bus]] = {"embedded": _embedded, "kafka": _kafka}


@pytest.fixture(params=["embedded", pytest.param("kafka", marks=pytest.mark.kafka)])
def bus(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Bus]:
    built = BACKENDS[request.param](tmp_path, request)
    yield built
    built.close()


@pytest.fixture
def session_timeout_s(request: pytest.FixtureRequest, bus: Bus) -> float:
    return SESSION_TIMEOUT_S[request.node.callspec.params["bus"]]


@pytest.fixture
def admin(bus: Bus) -> Iterator[Admin]:
    handle = bus.admin()
    yield handle
    handle.close()


class Consumers:
    """Opens consumers for one test and closes whatever the test left open."""

    def __init__(self, bus: Bus, session_timeout_s: float) -> None:
        self._bus = bus
        self._session_timeout_s = session_timeout_s
        self._open: list[Consumer] = []

    def open(self, group_id: str | None, topics: list[str], *, start: StartFrom = "earliest") -> Consumer:
        consumer = self._bus.consumer(
            group_id, topics, start=start, client_id="contract", session_timeout_s=self._session_timeout_s
        )
        self._open.append(consumer)
        return consumer

    def close(self, consumer: Consumer) -> None:
        self._open.remove(consumer)
        consumer.close()

    def close_all(self) -> None:
        while self._open:
            self.close(self._open[-1])


@pytest.fixture
def consumers(bus: Bus, session_timeout_s: float) -> Iterator[Consumers]:
    opened = Consumers(bus, session_timeout_s)
    yield opened
    opened.close_all()


def create_topic(admin: Admin, name: str, partitions: int) -> str:
    admin.ensure_topic(TopicSpec(name, partitions=partitions))
    return name


def consume(consumer: Consumer, count: int, *, deadline_s: float = DEADLINE_S) -> list[Message]:
    """Poll until exactly ``count`` records arrived; never asks for more than are still missing."""
    received: list[Message] = []
    deadline = time.monotonic() + deadline_s
    while len(received) < count:
        if time.monotonic() > deadline:
            pytest.fail(f"received {len(received)} of {count} records in {deadline_s}s")
        received.extend(consumer.poll(0.2, count - len(received)))
    assert len(received) == count
    return received


def assert_quiet(consumer: Consumer) -> None:
    """Nothing more arrives for a while."""
    deadline = time.monotonic() + QUIET_S
    while time.monotonic() < deadline:
        extra = consumer.poll(0.1)
        assert extra == [], f"unexpected records: {[(m.partition, m.offset) for m in extra]}"


def wait_for_assignment(consumer: Consumer, expected: set[TopicPartition]) -> None:
    """Poll until the consumer holds ``expected`` (a group member is assigned in poll)."""
    deadline = time.monotonic() + DEADLINE_S
    while consumer.assignment() != expected:
        if time.monotonic() > deadline:
            pytest.fail(f"assignment {consumer.assignment()} is not {expected} after {DEADLINE_S}s")
        consumer.poll(0.1, 1)


def wait_until(condition: Callable[[], bool], deadline_s: float, what: Callable[[], str]) -> None:
    """Wait until ``condition`` holds; ``what`` describes the state when it does not in time."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {deadline_s}s: {what()}")
        time.sleep(0.02)


def tuple_of(tp: TopicPartition) -> tuple[str, int]:
    return tp.topic, tp.partition


def all_partitions(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, partition) for partition in range(count)}


def test_keys_values_headers_and_timestamps_round_trip(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.roundtrip.{unique_name}", 1)
    base_ms = int(time.time() * 1000) - 60_000
    sent = [
        OutgoingRecord(
            topic,
            bytes(range(256)),
            key=b"\x00binary\xffkey",
            headers=(("h", b"first"), ("h", b"second"), ("binary", b"\x00\xff\x7f"), ("empty", b"")),
            timestamp_ms=base_ms,
        ),
        OutgoingRecord(topic, b"no key", timestamp_ms=base_ms + 1),
        OutgoingRecord(topic, None, key=b"deleted", timestamp_ms=base_ms + 2),
        OutgoingRecord(topic, b"", key=b"empty value", timestamp_ms=base_ms + 3),
    ]
    bus.producer().publish(sent)

    received = consume(consumers.open(None, [topic]), len(sent))

    assert [message.offset for message in received] == [0, 1, 2, 3]
    assert [(m.key, m.value, m.headers, m.timestamp_ms) for m in received] == [
        (record.key, record.value, record.headers, record.timestamp_ms) for record in sent
    ]
    assert received[0].header("h") == b"second"
    assert received[0].header("missing") is None
    assert received[2].value is None
    assert received[3].value == b""


def test_records_of_a_key_stay_in_order_on_its_murmur2_partition(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.order.{unique_name}", 3)
    keys = [f"key-{number}".encode() for number in range(10)]
    bus.producer().publish(
        [OutgoingRecord(topic, str(sequence).encode(), key=keys[sequence % 10]) for sequence in range(300)]
    )

    received = consume(consumers.open(None, [topic]), 300)

    for key in keys:
        of_key = [message for message in received if message.key == key]
        assert [int(message.value or b"") for message in of_key] == list(range(keys.index(key), 300, 10))
        assert {message.partition for message in of_key} == {(murmur2(key) & 0x7FFFFFFF) % 3}
    assert len({message.partition for message in received}) == 3


def test_records_not_committed_by_a_closed_member_are_delivered_again(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.redeliver.{unique_name}", 2)
    group = f"contract-redeliver-{unique_name}"
    bus.producer().publish(
        [OutgoingRecord(topic, b"%d" % number, key=b"%d" % number) for number in range(20)]
    )

    first = consumers.open(group, [topic])
    seen_first = {(message.partition, message.offset) for message in consume(first, 20)}
    consumers.close(first)  # dies without committing

    second = consumers.open(group, [topic])
    seen_second = {(message.partition, message.offset) for message in consume(second, 20)}

    assert seen_second == seen_first
    assert admin.committed_offsets(group, topic) == {}


def test_a_group_resumes_from_its_committed_offsets(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.resume.{unique_name}", 2)
    group = f"contract-resume-{unique_name}"
    bus.producer().publish(
        [OutgoingRecord(topic, b"%d" % number, key=b"%d" % number) for number in range(20)]
    )

    first = consumers.open(group, [topic])
    processed = {(message.partition, message.offset) for message in consume(first, 10)}
    first.commit()
    consumers.close(first)

    second = consumers.open(group, [topic])
    rest = {(message.partition, message.offset) for message in consume(second, 10)}
    assert_quiet(second)

    everything = {
        (partition, offset) for partition, end in admin.end_offsets(topic).items() for offset in range(end)
    }
    assert rest == everything - processed
    assert not rest & processed


class Member(threading.Thread):
    """A group member polling in its own thread (a consumer belongs to one thread)."""

    def __init__(self, consumer: Consumer) -> None:
        super().__init__(daemon=True)
        self._consumer = consumer
        self._leaving = threading.Event()
        self.assignment: frozenset[TopicPartition] = frozenset()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self._leaving.is_set():
                self._consumer.poll(0.1)
                self.assignment = frozenset(self._consumer.assignment())
        except BaseException as error:
            self.error = error
        finally:
            self._consumer.close()
            self.assignment = frozenset()

    def leave(self) -> None:
        self._leaving.set()
        self.join(DEADLINE_S)
        assert not self.is_alive(), "a member did not stop polling"
        if self.error is not None:
            raise self.error


def test_two_members_split_the_partitions_and_one_takes_over_when_the_other_leaves(
    admin: Admin, bus: Bus, unique_name: str, session_timeout_s: float
) -> None:
    topic = create_topic(admin, f"contract.split.{unique_name}", 4)
    group = f"contract-split-{unique_name}"
    everything = all_partitions(topic, 4)
    members = [
        Member(
            bus.consumer(group, [topic], client_id=f"member-{number}", session_timeout_s=session_timeout_s)
        )
        for number in range(2)
    ]
    for member in members:
        member.start()
    try:
        first, second = members

        def split() -> bool:
            shares = first.assignment, second.assignment
            return all(shares) and not shares[0] & shares[1] and shares[0] | shares[1] == everything

        def shares() -> str:
            return f"assignments {sorted(map(tuple_of, first.assignment))} and {sorted(map(tuple_of, second.assignment))}"

        wait_until(split, DEADLINE_S, lambda: f"two members split four partitions, {shares()}")
        second.leave()
        wait_until(
            lambda: first.assignment == everything,
            session_timeout_s,
            lambda: f"the remaining member takes over every partition, {shares()}",
        )
    finally:
        for member in members:
            if member.is_alive():
                member.leave()
    assert first.error is None


def test_lag_counts_what_the_group_has_not_committed(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.lag.{unique_name}", 2)
    group = f"contract-lag-{unique_name}"
    bus.producer().publish([OutgoingRecord(topic, b"%d" % number) for number in range(10)])

    consumer = consumers.open(group, [topic])
    processed = consume(consumer, 4)
    offsets: dict[TopicPartition, int] = {}
    for message in processed:
        offsets[message.topic_partition] = message.offset + 1
    consumer.commit(offsets)

    assert sum(admin.lag(group, topic).values()) == 6
    assert admin.committed_offsets(group, topic) == offsets
    assert admin.committed_offsets(group) == offsets
    for tp, offset in offsets.items():
        assert consumer.committed(tp) == offset
    assert sum(admin.end_offsets(topic).values()) == 10


def test_seek_to_beginning_offset_timestamp_and_end(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.seek.{unique_name}", 1)
    tp = TopicPartition(topic, 0)
    base_ms = int(time.time() * 1000) - 60_000
    bus.producer().publish(
        [OutgoingRecord(topic, b"%d" % number, timestamp_ms=base_ms + number * 1000) for number in range(10)]
    )
    consumer = consumers.open(None, [topic], start="latest")
    wait_for_assignment(consumer, {tp})

    consumer.seek_to_beginning()
    assert consumer.position(tp) == 0
    assert [message.offset for message in consume(consumer, 10)] == list(range(10))

    consumer.seek(tp, 5)
    assert consumer.position(tp) == 5
    assert consume(consumer, 1)[0].offset == 5

    consumer.seek_to_timestamp(base_ms + 7000)
    assert consume(consumer, 1)[0].offset == 7
    consumer.seek_to_timestamp(base_ms + 6500, [tp])
    assert consume(consumer, 1)[0].offset == 7
    consumer.seek_to_timestamp(base_ms + 60_000)
    assert consumer.position(tp) == 10

    consumer.seek_to_beginning([tp])
    consumer.seek_to_end()
    assert consumer.position(tp) == 10
    assert_quiet(consumer)

    assert consumer.end_offsets() == {tp: 10}
    assert consumer.end_offsets([tp]) == {tp: 10}
    assert admin.end_offsets(topic) == {0: 10}
    assert admin.beginning_offsets(topic) == {0: 0}
    with pytest.raises(BusError):
        consumer.seek(TopicPartition(topic, 1), 0)


def test_topics_are_ensured_idempotently_and_listed(admin: Admin, unique_name: str) -> None:
    topic = f"contract.topics.{unique_name}"
    compacted = f"contract.compacted.{unique_name}"

    assert admin.ensure_topic(TopicSpec(topic, partitions=2)) is True
    assert admin.ensure_topic(TopicSpec(topic, partitions=2)) is False
    assert admin.ensure_topic(TopicSpec(compacted, partitions=1, compact=True)) is True

    assert {topic, compacted} <= admin.list_topics()
    assert admin.partitions_for(topic) == 2
    assert admin.partitions_for(compacted) == 1
    assert admin.end_offsets(topic) == {0: 0, 1: 0}
    assert admin.beginning_offsets(topic) == {0: 0, 1: 0}
    with pytest.raises(UnknownTopic):
        admin.partitions_for(f"contract.missing.{unique_name}")


def test_publish_and_send_acknowledge_with_offsets(admin: Admin, bus: Bus, unique_name: str) -> None:
    topic = create_topic(admin, f"contract.ack.{unique_name}", 2)
    producer = bus.producer()
    given_ms = int(time.time() * 1000) - 120_000

    acknowledged = producer.publish(
        [OutgoingRecord(topic, b"%d" % number, partition=0) for number in range(5)]
    )
    assert all(isinstance(metadata, RecordMetadata) for metadata in acknowledged)
    assert [(m.topic, m.partition, m.offset) for m in acknowledged] == [
        (topic, 0, offset) for offset in range(5)
    ]
    assert all(metadata.timestamp_ms > 0 for metadata in acknowledged)

    futures = [producer.send(OutgoingRecord(topic, b"later", partition=1, timestamp_ms=given_ms))]
    futures += producer.send_many([OutgoingRecord(topic, b"more", partition=0) for _ in range(3)])
    producer.flush(DEADLINE_S)
    results = [future.result(timeout=DEADLINE_S) for future in futures]
    assert [(m.partition, m.offset) for m in results] == [(1, 0), (0, 5), (0, 6), (0, 7)]
    assert results[0].timestamp_ms == given_ms
    assert admin.end_offsets(topic) == {0: 8, 1: 1}


def test_send_batch_settles_once_every_record_is_acknowledged(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.batch.{unique_name}", 3)
    producer = bus.producer()
    sent = [
        OutgoingRecord(topic, b"%d" % number, key=b"key-%d" % (number % 7), headers=(("n", b"%d" % number),))
        for number in range(500)
    ]

    acknowledged = producer.send_batch(sent)

    assert acknowledged.result(timeout=DEADLINE_S) is None
    assert sum(admin.end_offsets(topic).values()) == len(sent)
    received = consume(consumers.open(None, [topic]), len(sent))
    assert sorted((m.key, m.value, m.headers) for m in received) == sorted(
        (r.key, r.value, r.headers) for r in sent
    )
    for message in received:  # keyed like send: murmur2 of the key picks the partition
        assert message.partition == (murmur2(message.key or b"") & 0x7FFFFFFF) % 3
    assert producer.send_batch([]).result(timeout=DEADLINE_S) is None


def test_send_batch_fails_when_a_record_cannot_be_written(admin: Admin, bus: Bus, unique_name: str) -> None:
    topic = create_topic(admin, f"contract.batchfail.{unique_name}", 1)
    producer = bus.producer()
    with pytest.raises(BusError):
        # A partition the topic does not have: refused when queued, or its future fails.
        producer.send_batch(
            [OutgoingRecord(topic, b"fine", partition=0), OutgoingRecord(topic, b"nowhere", partition=5)]
        ).result(timeout=DEADLINE_S)
    # The producer is still usable afterwards.
    assert producer.send_batch([OutgoingRecord(topic, b"again")]).result(timeout=DEADLINE_S) is None


def test_sending_to_a_missing_topic_fails_and_creates_nothing(
    admin: Admin, bus: Bus, unique_name: str
) -> None:
    # Topics get their partitions and retention from ensure_topic, never from a first record:
    # Kafka's clients here do not auto-create, and neither does the embedded bus.
    producer = bus.producer()
    missing = [f"contract.unsent.{unique_name}.{n}" for n in range(3)]

    with pytest.raises(UnknownTopic):  # raised by send, or by its future
        producer.send(OutgoingRecord(missing[0], b"v")).result(timeout=DEADLINE_S)
    with pytest.raises(UnknownTopic):
        producer.publish([OutgoingRecord(missing[1], b"v", key=b"k")], timeout_s=DEADLINE_S)
    with pytest.raises(UnknownTopic):
        producer.send_batch([OutgoingRecord(missing[2], b"v", key=b"k")]).result(timeout=DEADLINE_S)

    assert not set(missing) & admin.list_topics()
    for topic in missing:
        with pytest.raises(UnknownTopic):
            admin.partitions_for(topic)


def test_ensure_topic_within_a_deadline(admin: Admin, unique_name: str) -> None:
    topic = f"contract.deadline.{unique_name}"
    assert admin.ensure_topic(TopicSpec(topic, partitions=2), timeout_s=DEADLINE_S) is True
    assert admin.ensure_topic(TopicSpec(topic, partitions=2), timeout_s=DEADLINE_S) is False
    assert admin.partitions_for(topic) == 2


def test_a_consumer_without_a_group_reads_every_partition(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.nogroup.{unique_name}", 3)
    bus.producer().publish(
        [OutgoingRecord(topic, b"%d" % number, partition=number % 3) for number in range(30)]
    )

    consumer = consumers.open(None, [topic])
    received = consume(consumer, 30)

    assert consumer.assignment() == all_partitions(topic, 3)
    assert {(message.partition, message.offset) for message in received} == {
        (partition, offset) for partition in range(3) for offset in range(10)
    }
    for partition in range(3):
        offsets = [message.offset for message in received if message.partition == partition]
        assert offsets == sorted(offsets)
    with pytest.raises(BusError):
        consumer.commit()


def test_a_topic_grows_partitions_never_shrinks_and_new_ones_are_written_and_read(
    admin: Admin, bus: Bus, consumers: Consumers, unique_name: str
) -> None:
    topic = create_topic(admin, f"contract.grow.{unique_name}", 2)
    assert admin.grow_partitions(topic, 1) is False
    assert admin.grow_partitions(topic, 2) is False
    assert admin.grow_partitions(topic, 5) is True
    assert admin.partitions_for(topic) == 5
    with pytest.raises(UnknownTopic):
        admin.grow_partitions(f"contract.grow.missing.{unique_name}", 3)
    # Records written to the new partitions are read like the others (explicit partitions: a
    # producer learns the new count when its metadata refreshes).
    bus.producer().publish(
        [OutgoingRecord(topic, str(partition).encode(), partition=partition) for partition in range(5)]
    )
    received = consume(consumers.open(None, [topic]), 5)
    assert sorted(message.partition for message in received) == [0, 1, 2, 3, 4]
