"""What only the embedded bus has to get right: its buffer, its file, its maintenance, its processes.

The behaviour it shares with Kafka is pinned by tests/integration/test_bus_contract.py; these tests
cover what that suite cannot reach through the interface: durability across a reopen of the file,
retention and compaction on demand, several processes on one file, and a group member that stops
heartbeating.
"""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

import pytest

from services.common.bus import (
    BufferFull,
    BusError,
    BusUnavailable,
    Consumer,
    GroupRebalancing,
    Message,
    OutgoingRecord,
    RecordMetadata,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
    bus_from_url,
)
from services.common.bus.assignment import assign_range as assign_partitions
from services.common.bus.embedded import EmbeddedBus

DEADLINE_S = 10.0
HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "bus.db"


@pytest.fixture
def bus(path: Path) -> Iterator[EmbeddedBus]:
    opened = EmbeddedBus(path)
    yield opened
    opened.close()


def now_ms() -> int:
    return int(time.time() * 1000)


def consume(consumer: Consumer, count: int) -> list[Message]:
    received: list[Message] = []
    deadline = time.monotonic() + DEADLINE_S
    while len(received) < count:
        assert time.monotonic() < deadline, f"received {len(received)} of {count} records"
        received.extend(consumer.poll(0.1, count - len(received)))
    return received


def poll_until(
    consumers: list[Consumer], condition: Callable[[], bool], deadline_s: float = DEADLINE_S
) -> None:
    """Let every consumer poll (join, heartbeat, rebalance) until ``condition`` holds."""
    deadline = time.monotonic() + deadline_s
    while not condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        for consumer in consumers:
            consumer.poll(0.02)


def partitions(topic: str, count: int) -> set[TopicPartition]:
    return {TopicPartition(topic, partition) for partition in range(count)}


def test_the_factory_builds_an_embedded_bus_from_its_url(path: Path) -> None:
    bus = bus_from_url(f"embedded://{path}")
    try:
        assert isinstance(bus, EmbeddedBus)
        assert bus.path == path
        bus.admin().ping()
    finally:
        bus.close()


def test_send_refuses_records_beyond_the_buffer_until_the_writer_catches_up(path: Path) -> None:
    bus = EmbeddedBus(path, max_queued_records=3)
    try:
        bus.admin().ensure_topic(TopicSpec("buffer", partitions=1))
        producer = bus.producer()
        # Another connection holds SQLite's write lock: the writer thread waits, the queue fills.
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        accepted: list[Future[RecordMetadata]] = []
        try:
            with pytest.raises(BufferFull):
                for number in range(10):
                    accepted.append(producer.send(OutgoingRecord("buffer", b"%d" % number, partition=0)))
            assert 3 <= len(accepted) <= 4  # the writer may have taken one record off the queue
            assert producer.buffer_fill() == 1.0
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        producer.flush(DEADLINE_S)
        assert [future.result(0).offset for future in accepted] == list(range(len(accepted)))
        assert producer.buffer_fill() == 0.0
        producer.send(OutgoingRecord("buffer", b"accepted again", partition=0)).result(DEADLINE_S)
    finally:
        bus.close()


def test_a_record_that_cannot_be_written_fails_its_future_and_the_writer_recovers(path: Path) -> None:
    bus = EmbeddedBus(path, busy_timeout_s=0.2)
    try:
        bus.admin().ensure_topic(TopicSpec("locked", partitions=1))
        producer = bus.producer()
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # held longer than the bus waits for SQLite's lock
        try:
            failed = producer.send(OutgoingRecord("locked", b"lost"))
            with pytest.raises(BusUnavailable, match="locked"):
                failed.result(DEADLINE_S)
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()

        assert producer.publish([OutgoingRecord("locked", b"kept", partition=0)])[0].offset == 0
    finally:
        bus.close()


def test_records_and_committed_offsets_survive_reopening_the_file(path: Path) -> None:
    first = EmbeddedBus(path)
    first.admin().ensure_topic(TopicSpec("durable", partitions=1, retention_ms=7 * DAY_MS))
    first.producer().publish([OutgoingRecord("durable", b"%d" % number, key=b"k") for number in range(10)])
    consumer = first.consumer("readers", ["durable"])
    consume(consumer, 4)
    consumer.commit()
    first.close()

    second = EmbeddedBus(path)
    try:
        admin = second.admin()
        assert admin.end_offsets("durable") == {0: 10}
        assert admin.committed_offsets("readers") == {TopicPartition("durable", 0): 4}
        resumed = consume(second.consumer("readers", ["durable"]), 6)
        assert [message.value for message in resumed] == [b"%d" % number for number in range(4, 10)]
        metadata = second.producer().publish([OutgoingRecord("durable", b"next", key=b"k")])
        assert metadata[0].offset == 10
    finally:
        second.close()


def test_the_producer_drains_its_queue_on_close(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("drain", partitions=3))
    producer = bus.producer()
    futures = producer.send_many(OutgoingRecord("drain", b"%d" % number) for number in range(2000))
    producer.close()
    assert all(future.done() and future.exception() is None for future in futures)
    with pytest.raises(BusError):
        producer.send(OutgoingRecord("drain", b"after close"))


def test_offsets_stay_dense_when_many_threads_publish(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("threads", partitions=3))
    producer = bus.producer()
    acknowledged: list[RecordMetadata] = []
    lock = threading.Lock()

    def publish(thread: int) -> None:
        records = [
            OutgoingRecord("threads", b"%d" % number, key=b"%d-%d" % (thread, number))
            for number in range(500)
        ]
        metadata = producer.publish(records)
        with lock:
            acknowledged.extend(metadata)

    threads = [threading.Thread(target=publish, args=(number,)) for number in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(DEADLINE_S)

    ends = bus.admin().end_offsets("threads")
    assert sum(ends.values()) == 2000
    for partition, end in ends.items():
        assert sorted(m.offset for m in acknowledged if m.partition == partition) == list(range(end))


def test_a_poll_wakes_up_as_soon_as_a_record_is_written(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("wake", partitions=1))
    consumer = bus.consumer(None, ["wake"], start="latest")
    producer = bus.producer()
    threading.Timer(0.2, lambda: producer.send(OutgoingRecord("wake", b"now"))).start()

    started = time.monotonic()
    received = consumer.poll(5.0)
    waited = time.monotonic() - started

    assert [message.value for message in received] == [b"now"]
    assert waited < 1.0
    consumer.close()


def test_time_retention_moves_the_log_start_and_never_reuses_offsets(bus: EmbeddedBus) -> None:
    admin = bus.admin()
    admin.ensure_topic(TopicSpec("retained", partitions=1, retention_ms=HOUR_MS))
    admin.ensure_topic(TopicSpec("expired", partitions=1, retention_ms=HOUR_MS))
    old, recent = now_ms() - 2 * HOUR_MS, now_ms()
    producer = bus.producer()
    producer.publish([OutgoingRecord("retained", b"old %d" % n, timestamp_ms=old) for n in range(5)])
    producer.publish([OutgoingRecord("retained", b"new %d" % n, timestamp_ms=recent) for n in range(5)])
    producer.publish([OutgoingRecord("expired", b"old", timestamp_ms=old) for _ in range(3)])
    # A group that committed inside the part retention deletes starts again at the log start.
    stale = bus.consumer("stale", ["retained"])
    consume(stale, 2)
    stale.commit()
    stale.close()

    report = bus.maintain()

    assert report.expired == 8
    assert admin.beginning_offsets("retained") == {0: 5}
    assert admin.end_offsets("retained") == {0: 10}
    assert admin.beginning_offsets("expired") == admin.end_offsets("expired") == {0: 3}
    assert [message.offset for message in consume(bus.consumer(None, ["retained"]), 5)] == [5, 6, 7, 8, 9]
    assert [message.offset for message in consume(bus.consumer("stale", ["retained"]), 5)] == [5, 6, 7, 8, 9]
    assert producer.publish([OutgoingRecord("expired", b"new")])[0].offset == 3
    assert bus.maintain().expired == 0


def test_compaction_keeps_the_latest_record_of_each_key_and_drops_old_tombstones(bus: EmbeddedBus) -> None:
    admin = bus.admin()
    admin.ensure_topic(TopicSpec("compacted", partitions=1, compact=True))
    two_days_ago = now_ms() - 2 * DAY_MS
    bus.producer().publish(
        [
            OutgoingRecord("compacted", b"a1", key=b"a"),
            OutgoingRecord("compacted", b"b1", key=b"b"),
            OutgoingRecord("compacted", b"a2", key=b"a"),
            OutgoingRecord("compacted", b"c1", key=b"c", timestamp_ms=two_days_ago),
            OutgoingRecord("compacted", None, key=b"b"),  # a fresh tombstone: kept for a while
            OutgoingRecord("compacted", None, key=b"c", timestamp_ms=two_days_ago),  # an old one: removed
        ]
    )

    assert bus.maintain().compacted == 4

    replay = bus.consumer(None, ["compacted"])
    remaining = consume(replay, 2)
    assert [(m.offset, m.key, m.value) for m in remaining] == [(2, b"a", b"a2"), (4, b"b", None)]
    assert replay.poll(0.1) == []
    # The last record is gone, yet a reader that has read everything is at the end.
    assert replay.position(TopicPartition("compacted", 0)) == 6
    assert admin.beginning_offsets("compacted") == {0: 0}
    assert admin.end_offsets("compacted") == {0: 6}
    keyless = bus.producer().send(OutgoingRecord("compacted", b"no key"))
    with pytest.raises(BusError, match="needs a key"):
        keyless.result(DEADLINE_S)


def produce_in_child(path: str, topic: str, count: int) -> None:
    """Runs in a spawned process: publish ``count`` records to the bus at ``path``."""
    bus = EmbeddedBus(Path(path))
    try:
        bus.producer().publish(
            [OutgoingRecord(topic, b"%d" % number, key=b"%d" % number) for number in range(count)]
        )
    finally:
        bus.close()


def join_and_die_in_child(path: str, topic: str, group: str, joined: EventType) -> None:
    """Runs in a spawned process: become the group's only member, then die without leaving."""
    bus = EmbeddedBus(Path(path))
    consumer = bus.consumer(group, [topic], session_timeout_s=2.0)
    deadline = time.monotonic() + DEADLINE_S
    while len(consumer.assignment()) < 3 and time.monotonic() < deadline:
        consumer.poll(0.05)
    joined.set()
    os._exit(0)


def spawned(target: Callable[..., None], *args: object) -> multiprocessing.process.BaseProcess:
    process = multiprocessing.get_context("spawn").Process(target=target, args=args, daemon=True)
    process.start()
    return process


def test_a_consumer_reads_what_another_process_writes_to_the_file(bus: EmbeddedBus, path: Path) -> None:
    bus.admin().ensure_topic(TopicSpec("shared", partitions=3))
    consumer = bus.consumer("parent", ["shared"])
    assert consumer.poll(0.05) == []

    child = spawned(produce_in_child, str(path), "shared", 300)
    received = consume(consumer, 300)
    child.join(DEADLINE_S)

    assert child.exitcode == 0
    assert sorted(int(message.value or b"") for message in received) == list(range(300))
    consumer.close()


def test_the_partitions_of_a_dead_process_move_after_its_session_timeout(
    bus: EmbeddedBus, path: Path
) -> None:
    bus.admin().ensure_topic(TopicSpec("orphaned", partitions=3))
    joined = multiprocessing.get_context("spawn").Event()
    child = spawned(join_and_die_in_child, str(path), "orphaned", "survivors", joined)
    assert joined.wait(DEADLINE_S), "the child never joined the group"
    child.join(DEADLINE_S)
    died = time.monotonic()

    survivor = bus.consumer("survivors", ["orphaned"], session_timeout_s=2.0)
    survivor.poll(0.3)
    assert survivor.assignment() == set(), "took partitions a member still held"
    poll_until([survivor], lambda: survivor.assignment() == partitions("orphaned", 3))

    assert 1.0 < time.monotonic() - died < 4.0
    survivor.close()


def test_a_member_busy_for_longer_than_its_session_keeps_its_partitions(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("busy", partitions=2))
    busy = bus.consumer("group", ["busy"], session_timeout_s=0.5)
    poll_until([busy], lambda: busy.assignment() == partitions("busy", 2))

    # busy works on a batch for three sessions without polling; the heartbeat thread vouches for it.
    newcomer = bus.consumer("group", ["busy"], session_timeout_s=0.5)
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:
        newcomer.poll(0.05)
        assert newcomer.assignment() == set()

    busy.commit({TopicPartition("busy", 0): 0})  # still a member: the commit is accepted
    poll_until([busy, newcomer], lambda: len(busy.assignment()) == len(newcomer.assignment()) == 1)
    busy.close()
    newcomer.close()


def test_a_member_that_stops_polling_is_fenced_and_rejoins(path: Path) -> None:
    bus = EmbeddedBus(path, max_poll_interval_s=0.2)
    try:
        bus.admin().ensure_topic(TopicSpec("fenced", partitions=4))
        stuck = bus.consumer("group", ["fenced"], session_timeout_s=0.3)
        poll_until([stuck], lambda: stuck.assignment() == partitions("fenced", 4))

        time.sleep(0.7)  # no poll for max_poll_interval_s, then no heartbeat for a session
        taker = bus.consumer("group", ["fenced"], session_timeout_s=5.0)
        poll_until([taker], lambda: taker.assignment() == partitions("fenced", 4))
        with pytest.raises(GroupRebalancing, match="removed"):  # as Kafka's stale member is told
            stuck.commit({TopicPartition("fenced", 0): 2})
        assert bus.admin().committed_offsets("group") == {}

        poll_until(
            [stuck, taker],
            lambda: (
                len(stuck.assignment()) == len(taker.assignment()) == 2
                and not stuck.assignment() & taker.assignment()
            ),
        )
    finally:
        bus.close()


def test_a_closing_member_hands_its_partitions_over_at_once(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("handover", partitions=4))
    first = bus.consumer("group", ["handover"], session_timeout_s=30.0)
    second = bus.consumer("group", ["handover"], session_timeout_s=30.0)
    poll_until([first, second], lambda: len(first.assignment()) == len(second.assignment()) == 2)
    assert not first.assignment() & second.assignment()

    second.close()
    started = time.monotonic()
    poll_until([first], lambda: first.assignment() == partitions("handover", 4), deadline_s=1.0)

    assert time.monotonic() - started < 0.5  # not after the 30 s session timeout
    first.close()


def test_the_group_assignment_is_kafkas_range_assignment() -> None:
    members = {
        "m-b": frozenset({"ds.x", "dlq.x"}),
        "m-a": frozenset({"ds.x", "dlq.x"}),
        "m-c": frozenset({"ds.x"}),
    }
    counts = {"ds.x": 4, "dlq.x": 4}

    assignment = assign_partitions(members, counts)

    assert assignment == assign_partitions(dict(reversed(members.items())), counts)
    assert assignment == {
        "m-a": {
            TopicPartition("ds.x", 0),
            TopicPartition("ds.x", 1),
            TopicPartition("dlq.x", 0),
            TopicPartition("dlq.x", 1),
        },
        "m-b": {TopicPartition("ds.x", 2), TopicPartition("dlq.x", 2), TopicPartition("dlq.x", 3)},
        "m-c": {TopicPartition("ds.x", 3)},
    }
    # Co-partitioned: with the same subscribers, partition i of both topics goes to one member.
    pair = {"m-a": members["m-a"], "m-b": members["m-b"]}
    for share in assign_partitions(pair, counts).values():
        assert {tp.partition for tp in share if tp.topic == "ds.x"} == {
            tp.partition for tp in share if tp.topic == "dlq.x"
        }


def test_misuse_is_refused_with_a_clear_error(bus: EmbeddedBus) -> None:
    bus.admin().ensure_topic(TopicSpec("misuse", partitions=2))
    member = bus.consumer("group", ["misuse"])
    with pytest.raises(BusError, match="not assigned"):
        member.seek(TopicPartition("misuse", 0), 0)  # a member gets partitions in poll
    with pytest.raises(BusError, match="not assigned"):
        member.position(TopicPartition("misuse", 0))
    member.close()
    with pytest.raises(BusError, match="closed"):
        member.poll(0)

    loner = bus.consumer(None, ["misuse"])
    with pytest.raises(BusError, match="not assigned"):
        loner.seek(TopicPartition("misuse", 2), 0)
    with pytest.raises(BusError, match="cannot commit"):
        loner.commit()
    with pytest.raises(UnknownTopic):
        loner.end_offsets([TopicPartition("nowhere", 0)])
    loner.close()

    producer = bus.producer()
    with pytest.raises(ValueError, match="invalid topic name"):
        producer.send(OutgoingRecord("not a topic!", b""))
    with pytest.raises(TypeError):
        producer.send(OutgoingRecord("misuse", "text, not bytes"))  # type: ignore[arg-type]
    with pytest.raises(BusError, match="no partition 7"):
        producer.send(OutgoingRecord("misuse", b"", partition=7)).result(DEADLINE_S)


def test_deleting_topics_and_groups(bus: EmbeddedBus) -> None:
    admin = bus.admin()
    admin.ensure_topic(TopicSpec("doomed", partitions=1))
    bus.producer().publish([OutgoingRecord("doomed", b"x")])
    member = bus.consumer("doomed-readers", ["doomed"])
    consume(member, 1)
    member.commit()

    with pytest.raises(BusError, match="live members"):
        admin.delete_group("doomed-readers")
    member.close()
    admin.delete_group("doomed-readers")
    assert admin.committed_offsets("doomed-readers") == {}

    admin.delete_topic("doomed")
    assert "doomed" not in admin.list_topics()
    with pytest.raises(UnknownTopic):
        admin.end_offsets("doomed")
    with pytest.raises(UnknownTopic):
        admin.delete_topic("doomed")


def test_ping_fails_when_the_file_is_gone(bus: EmbeddedBus, path: Path) -> None:
    admin = bus.admin()
    admin.ping()
    for leftover in path.parent.glob(f"{path.name}*"):
        leftover.unlink()
    with pytest.raises(BusUnavailable):
        admin.ping(0.5)
