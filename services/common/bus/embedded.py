"""The embedded bus: a durable, partitioned log in one SQLite file, for one machine.

``citybase up`` runs the whole platform in one process without Kafka; this module gives it a bus
with Kafka's semantics (see :mod:`services.common.bus.base`) so that the services cannot tell the
difference. Several threads of one process and several processes on the same file may use it at
once; scale-out beyond one machine is Kafka's job.

How it is built:

- **Storage.** One SQLite database in WAL mode: readers never block the writer and the writer
  never blocks readers. Tables: ``topics``, ``partitions`` (log start offset and high watermark of
  each partition), ``records`` (keyed by ``(topic, partition, offset)``, the order consumers read
  in), ``group_offsets``, ``group_members`` and ``group_assignments``. Every write is a short
  ``BEGIN IMMEDIATE`` transaction, so writers from several processes queue on SQLite's lock
  (``busy_timeout``) instead of failing, and offsets are assigned inside the transaction: they are
  dense per partition, start at 0 and, because the high watermark is stored, are never reused after
  retention or compaction delete records.
- **Producing.** ``send`` only queues the record (bounded: ``BufferFull`` when full) and returns a
  future. One writer thread per bus drains the queue in batches, writes a whole batch in one
  transaction (group commit: one fsync for thousands of records) and resolves the futures after the
  ``COMMIT``, so an acknowledged record is on disk.
- **Consuming.** A consumer group is a set of rows in ``group_members``, kept alive by a heartbeat
  thread per bus as long as each member keeps polling (within ``max_poll_interval_s``). On every
  poll a member computes the group's assignment from the live members (:func:`assign_partitions`,
  Kafka's range assignor: every member gets the same answer) and compares it with who holds what
  in ``group_assignments``: it gives up a partition it should no longer hold and takes one only
  once the previous holder has given it up or died, so two live members never read one partition
  at the same time (a cooperative hand-over, as in Kafka's incremental rebalancing). A member
  whose heartbeats stop for its session timeout (its process died, or it stopped polling) loses
  its partitions to the others and its later commits are refused. ``close`` leaves at once and
  the others take over on their next poll; nothing is committed on the way out.
- **Waiting.** A consumer blocked in ``poll`` is woken by a condition variable that the writer
  thread of the same bus notifies after each commit; writes from other processes (or other buses)
  are noticed through ``PRAGMA data_version``, checked every few milliseconds.
- **Maintenance.** Time retention and log compaction run in the writer thread every
  ``maintenance_interval_s`` and on demand through :meth:`EmbeddedBus.maintain`.
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import json
import logging
import re
import sqlite3
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kafka.partitioner.default import murmur2

from services.common.background import Loop
from services.common.bus.base import (
    Admin,
    BufferFull,
    Bus,
    BusError,
    BusUnavailable,
    Consumer,
    Headers,
    Message,
    OutgoingRecord,
    Producer,
    RecordMetadata,
    StartFrom,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

DEFAULT_DELETE_RETENTION_MS = 24 * 60 * 60 * 1000
"""How long a tombstone survives compaction, as Kafka's ``delete.retention.ms`` default: long
enough for a consumer that replays the topic to see that the key was deleted."""

_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")
"""Kafka's rule for topic names, so a name that works here also works on Kafka."""

# A consumer waiting in poll looks for writes of other processes this often: from 5 ms right after
# a change (latency when records flow) backing off to 20 ms when idle (cost when nothing happens).
_MIN_WAIT_S = 0.005
_MAX_WAIT_S = 0.02
# ... and re-checks its group this often, to take over partitions another member gave up.
_GROUP_CHECK_INTERVAL_S = 0.05

_SCHEMA = """
CREATE TABLE IF NOT EXISTS topics (
    name TEXT PRIMARY KEY,
    partitions INTEGER NOT NULL,
    retention_ms INTEGER,
    compact INTEGER NOT NULL,
    config TEXT NOT NULL,
    created_ms INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS partitions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    start_offset INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS records (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    key BLOB,
    value BLOB,
    headers TEXT,
    timestamp_ms INTEGER NOT NULL,
    PRIMARY KEY (topic, partition, offset)
);

CREATE INDEX IF NOT EXISTS records_by_time ON records (topic, partition, timestamp_ms, offset);

CREATE TABLE IF NOT EXISTS group_offsets (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    offset INTEGER NOT NULL,
    committed_ms INTEGER NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS group_members (
    group_id TEXT NOT NULL,
    member_id TEXT NOT NULL,
    client_id TEXT NOT NULL,
    topics TEXT NOT NULL,
    session_timeout_ms INTEGER NOT NULL,
    heartbeat_ms INTEGER NOT NULL,
    generation INTEGER NOT NULL,
    PRIMARY KEY (group_id, member_id)
) WITHOUT ROWID;

CREATE TABLE IF NOT EXISTS group_assignments (
    group_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    member_id TEXT NOT NULL,
    PRIMARY KEY (group_id, topic, partition)
) WITHOUT ROWID;
"""
# Notes on the schema:
# - records is a rowid table on purpose: rows are appended in commit order at the end of its
#   b-tree, whichever partition they belong to, and only the small primary-key index takes the
#   interleaved inserts. Clustering the rows on (topic, partition, offset) instead (WITHOUT ROWID)
#   measured 40% slower appends for 1 KB records, which overflow its pages.
# - records_by_time covers seek_to_timestamp (it holds the offset too), so a seek reads neither
#   record values nor the records before the timestamp.
# - partitions.next_offset is the high watermark and only grows: offsets are never reused, even
#   when retention or compaction has deleted every record of a partition.
# - headers are JSON, a list of [name, base64(value)], so that the sqlite3 shell can show them.


def _wall_ms() -> int:
    """Wall-clock milliseconds: heartbeats are compared across processes, so not monotonic."""
    return time.time_ns() // 1_000_000


def _check_topic_name(name: str) -> None:
    if not isinstance(name, str) or not _TOPIC_NAME.fullmatch(name):
        raise ValueError(f"invalid topic name {name!r}: use 1 to 249 of [A-Za-z0-9._-], as Kafka does")


def _connect(path: Path, *, synchronous: str, busy_timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode: transactions are opened explicitly where they are needed.

    ``check_same_thread=False`` because an object may be created in one thread and used or closed
    in another (a consumer made by a lifespan and polled by a worker thread); each owner serialises
    its own use of its connection.
    """
    connection = sqlite3.connect(path, timeout=busy_timeout_s, isolation_level=None, check_same_thread=False)
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


@contextlib.contextmanager
def _immediate(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """A write transaction that takes SQLite's write lock up front.

    A deferred transaction that reads first and writes later can fail with SQLITE_BUSY without
    waiting when another process wrote in between; ``BEGIN IMMEDIATE`` waits for the lock (up to the
    busy timeout) before reading, so the reads and writes of one transaction see one state.
    """
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


@contextlib.contextmanager
def _bus_errors() -> Iterator[None]:
    """SQLite failures (locked beyond the busy timeout, disk full, file gone) are retryable."""
    try:
        yield
    except sqlite3.Error as error:
        raise BusUnavailable(f"embedded bus: {error}") from error


_HEADERS_JSON = json.JSONEncoder(separators=(",", ":"))
"""One encoder for all records: ``json.dumps`` with options builds a new one per call."""


def _encode_headers(headers: Headers) -> str | None:
    if not headers:
        return None
    return _HEADERS_JSON.encode([[name, base64.b64encode(value).decode("ascii")] for name, value in headers])


def _decode_headers(text: str | None) -> Headers:
    if not text:
        return ()
    return tuple((name, base64.b64decode(value)) for name, value in json.loads(text))


def _key_partition(key: bytes, partitions: int) -> int:
    """Kafka's default partitioner, so a key lands on the same partition number as on Kafka."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def _partition_bounds(connection: sqlite3.Connection, topic: str) -> dict[int, tuple[int, int]]:
    """partition -> (log start offset, high watermark) of ``topic``; empty if it does not exist."""
    rows = connection.execute(
        "SELECT partition, start_offset, next_offset FROM partitions WHERE topic = ?", (topic,)
    ).fetchall()
    return {partition: (start, end) for partition, start, end in rows}


def _known_bounds(connection: sqlite3.Connection, topic: str) -> dict[int, tuple[int, int]]:
    bounds = _partition_bounds(connection, topic)
    if not bounds:
        raise UnknownTopic(f"topic {topic!r} does not exist")
    return bounds


def _create_topic(
    connection: sqlite3.Connection,
    name: str,
    partitions: int,
    *,
    retention_ms: int | None = None,
    compact: bool = False,
    config: Mapping[str, str] | None = None,
) -> None:
    """Insert a topic and its partitions; the caller holds a write transaction."""
    connection.execute(
        "INSERT INTO topics (name, partitions, retention_ms, compact, config, created_ms) VALUES (?, ?, ?, ?, ?, ?)",
        (name, partitions, retention_ms, int(compact), json.dumps(dict(config or {})), _wall_ms()),
    )
    connection.executemany(
        "INSERT INTO partitions (topic, partition, start_offset, next_offset) VALUES (?, ?, 0, 0)",
        [(name, partition) for partition in range(partitions)],
    )


def assign_partitions(
    members: Mapping[str, frozenset[str]], partitions: Mapping[str, int]
) -> dict[str, set[TopicPartition]]:
    """Split the partitions of the subscribed topics among the members of a group.

    Every member runs this on the same inputs and gets the same answer, which is what lets a group
    agree on an assignment without a coordinator. It is Kafka's range assignor, the one the Kafka
    backend uses: per topic, the subscribed members in member-id order get consecutive ranges of
    partitions, the first ones one more when the count does not divide. Partition i of topics with
    the same partition count therefore lands on the same member on both backends, so the records
    of one key in ``ds.<dataset>`` and ``dlq.<dataset>`` are read by one consumer.
    """
    ordered = sorted(members)
    assignment: dict[str, set[TopicPartition]] = {member: set() for member in ordered}
    for topic, count in partitions.items():
        subscribers = [member for member in ordered if topic in members[member]]
        if not subscribers:
            continue
        share, extra = divmod(count, len(subscribers))
        first = 0
        for index, member in enumerate(subscribers):
            size = share + (1 if index < extra else 0)
            assignment[member].update(
                TopicPartition(topic, partition) for partition in range(first, first + size)
            )
            first += size
    return assignment


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one maintenance pass deleted."""

    expired: int
    """Records deleted by time retention (the log start offset moved past them)."""
    compacted: int
    """Records deleted by compaction: values superseded by a later one of their key, old tombstones."""


def _maintain(connection: sqlite3.Connection, now_ms: int) -> MaintenanceReport:
    """Apply time retention and compaction to every topic, one short transaction per partition.

    Retention deletes a prefix of a partition, as Kafka deletes whole old segments: the records
    before the first one whose timestamp is within ``retention_ms``. The log start offset moves to
    that record; the high watermark stays, so offsets are never reused.

    Compaction keeps the latest record of each key. A tombstone (value None) is kept for
    ``delete.retention.ms`` (from the topic's extra config, 24 h by default) after its timestamp,
    so that consumers replaying the topic learn the key was deleted, and then removed too.
    Compaction does not move the log start offset, as on Kafka: a reader from the beginning simply
    finds gaps.
    """
    expired = compacted = 0
    topics = connection.execute(
        "SELECT name, partitions, retention_ms, compact, config FROM topics"
    ).fetchall()
    for name, partition_count, retention_ms, compact, config_text in topics:
        config = json.loads(config_text)
        delete_retention_ms = int(config.get("delete.retention.ms", DEFAULT_DELETE_RETENTION_MS))
        for partition in range(partition_count):
            if retention_ms is not None and retention_ms >= 0:
                with _immediate(connection):
                    expired += _apply_retention(connection, name, partition, now_ms - retention_ms)
            if compact:
                with _immediate(connection):
                    compacted += _compact(connection, name, partition, now_ms - delete_retention_ms)
    return MaintenanceReport(expired=expired, compacted=compacted)


def _apply_retention(connection: sqlite3.Connection, topic: str, partition: int, cutoff_ms: int) -> int:
    bounds = connection.execute(
        "SELECT start_offset, next_offset FROM partitions WHERE topic = ? AND partition = ?",
        (topic, partition),
    ).fetchone()
    if bounds is None:
        return 0
    start, end = bounds
    # Walk the partition in offset order up to its first recent record: the cost is what gets
    # deleted, usually little. ("+timestamp_ms" keeps SQLite off the time index, which would make
    # it visit every record within the retention period instead.)
    first_recent = connection.execute(
        "SELECT offset FROM records WHERE topic = ? AND partition = ? AND +timestamp_ms >= ? ORDER BY offset LIMIT 1",
        (topic, partition, cutoff_ms),
    ).fetchone()
    new_start = end if first_recent is None else int(first_recent[0])
    if new_start <= start:
        return 0
    deleted = connection.execute(
        "DELETE FROM records WHERE topic = ? AND partition = ? AND offset < ?", (topic, partition, new_start)
    ).rowcount
    connection.execute(
        "UPDATE partitions SET start_offset = ? WHERE topic = ? AND partition = ?",
        (new_start, topic, partition),
    )
    return deleted


def _compact(connection: sqlite3.Connection, topic: str, partition: int, tombstone_cutoff_ms: int) -> int:
    superseded = connection.execute(
        """
        DELETE FROM records
        WHERE topic = :topic AND partition = :partition AND key IS NOT NULL
          AND offset NOT IN (
              SELECT MAX(offset) FROM records
              WHERE topic = :topic AND partition = :partition AND key IS NOT NULL
              GROUP BY key
          )
        """,
        {"topic": topic, "partition": partition},
    ).rowcount
    # What is left is the latest record of each key, so a tombstone here deletes its key for good.
    tombstones = connection.execute(
        "DELETE FROM records WHERE topic = ? AND partition = ? AND value IS NULL AND timestamp_ms < ?",
        (topic, partition, tombstone_cutoff_ms),
    ).rowcount
    return superseded + tombstones


@dataclass(slots=True)
class _Pending:
    """A queued record with its send-time timestamp and the future to resolve."""

    record: OutgoingRecord
    timestamp_ms: int
    future: concurrent.futures.Future[RecordMetadata]


@dataclass(frozen=True, slots=True)
class _Member:
    """A row of ``group_members`` as one consumer sees it."""

    topics: frozenset[str]
    heartbeat_ms: int
    generation: int
    live: bool


_DEAD = _Member(frozenset(), 0, 0, live=False)


class _Writer:
    """The bus's writer thread: drains the send queue in group commits and runs maintenance.

    Batches form by themselves: while one transaction commits, new records queue up and all of them
    go into the next one. An idle bus therefore writes a single record at once (low latency) and a
    busy one writes thousands per fsync (high throughput), with no linger timer to tune.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_queued_records: int,
        max_batch_records: int,
        maintenance_interval_s: float,
        busy_timeout_s: float,
        on_commit: Callable[[], None],
    ) -> None:
        self._path = path
        self._max_queued = max_queued_records
        self._max_batch = max_batch_records
        self._maintenance_interval_s = maintenance_interval_s
        self._busy_timeout_s = busy_timeout_s
        self._on_commit = on_commit
        self._queue: deque[_Pending] = deque()
        self._state = threading.Condition()
        self._submitted = 0
        self._completed = 0
        self._stopping = False
        self._round_robin: dict[str, int] = {}
        self._loop = Loop(f"embedded-bus-writer[{path.name}]", lambda _: self._run(), wake=self._wake_to_stop)
        self._loop.start()

    def _wake_to_stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()

    def submit(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        future: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()
        timestamp_ms = record.timestamp_ms if record.timestamp_ms is not None else _wall_ms()
        with self._state:
            if self._stopping:
                raise BusError("the embedded bus is closed")
            if len(self._queue) >= self._max_queued:
                raise BufferFull(f"{len(self._queue)} records already queued for the embedded bus")
            self._queue.append(_Pending(record, timestamp_ms, future))
            self._submitted += 1
            self._state.notify_all()
        return future

    def fill(self) -> float:
        with self._state:
            return len(self._queue) / self._max_queued

    def flush(self, timeout_s: float | None) -> None:
        """Wait until every record submitted before this call is committed (or failed)."""
        with self._state:
            target = self._submitted
            if not self._state.wait_for(lambda: self._completed >= target, timeout_s):
                raise BusUnavailable(
                    f"{target - self._completed} records not written to the embedded bus in {timeout_s}s"
                )

    def close(self, timeout_s: float) -> None:
        """Write what is queued, then stop; records still queued after ``timeout_s`` fail."""
        self._loop.stop(timeout_s)
        with self._state:
            abandoned = list(self._queue)
            self._queue.clear()
            self._completed += len(abandoned)
            self._state.notify_all()
        for pending in abandoned:
            if pending.future.set_running_or_notify_cancel():
                pending.future.set_exception(
                    BusUnavailable("the embedded bus closed before writing the record")
                )

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        next_maintenance = time.monotonic() + self._maintenance_interval_s
        try:
            while True:
                with self._state:
                    while not self._queue and not self._stopping:
                        wait_s = next_maintenance - time.monotonic()
                        if wait_s <= 0:
                            break
                        self._state.wait(wait_s)
                    if not self._queue and self._stopping:
                        return
                    batch = [self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))]
                try:
                    if connection is None:
                        # FULL: the writer's COMMIT is what a producer's ack promises, so it must
                        # survive a power cut, not only a crash of this process (NORMAL in WAL
                        # mode would only do the latter). Group commit pays one fsync per batch.
                        connection = _connect(
                            self._path, synchronous="FULL", busy_timeout_s=self._busy_timeout_s
                        )
                    if batch:
                        self._write(connection, batch)
                    if time.monotonic() >= next_maintenance:
                        next_maintenance = time.monotonic() + self._maintenance_interval_s
                        report = _maintain(connection, _wall_ms())
                        if report.expired or report.compacted:
                            log.info("embedded bus maintenance: %s", report)
                except Exception as error:
                    log.exception("embedded bus writer: a batch or maintenance pass failed")
                    failure = BusUnavailable(f"embedded bus: could not write the record: {error}")
                    for pending in batch:
                        # A record never written may still be pending, and its caller may cancel
                        # it at any moment.
                        with contextlib.suppress(concurrent.futures.InvalidStateError):
                            if not pending.future.done():
                                pending.future.set_exception(failure)
                    # Reopen on the next batch: the connection may be the thing that broke.
                    if connection is not None:
                        connection.close()
                        connection = None
                finally:
                    with self._state:
                        self._completed += len(batch)
                        self._state.notify_all()
        finally:
            if connection is not None:
                connection.close()

    def _write(self, connection: sqlite3.Connection, batch: list[_Pending]) -> None:
        """Append ``batch`` in one transaction; resolve the futures only after the COMMIT."""
        batch = [pending for pending in batch if pending.future.set_running_or_notify_cancel()]
        rejected: list[tuple[_Pending, BusError]] = []
        written: list[tuple[_Pending, RecordMetadata]] = []
        try:
            with _immediate(connection):
                topics: dict[str, tuple[int, bool]] = {}
                next_offsets: dict[tuple[str, int], int] = {}
                rows = []
                for pending in batch:
                    record = pending.record
                    if record.topic not in topics:
                        found = self._topic(connection, record.topic)
                        if found is None:
                            # As on Kafka, where clients never auto-create: a topic gets its
                            # partitions and retention from ensure_topic, not from a first record.
                            rejected.append((pending, UnknownTopic(f"topic {record.topic!r} does not exist")))
                            continue
                        topics[record.topic] = found
                    partition_count, compact = topics[record.topic]
                    if compact and record.key is None:
                        rejected.append((pending, BusError(f"compacted topic {record.topic!r} needs a key")))
                        continue
                    partition = self._partition(record, partition_count)
                    if not 0 <= partition < partition_count:
                        error = BusError(f"topic {record.topic!r} has no partition {partition}")
                        rejected.append((pending, error))
                        continue
                    slot = (record.topic, partition)
                    if slot not in next_offsets:
                        (next_offsets[slot],) = connection.execute(
                            "SELECT next_offset FROM partitions WHERE topic = ? AND partition = ?", slot
                        ).fetchone()
                    offset = next_offsets[slot]
                    next_offsets[slot] = offset + 1
                    rows.append(
                        (
                            record.topic,
                            partition,
                            offset,
                            record.key,
                            record.value,
                            _encode_headers(record.headers),
                            pending.timestamp_ms,
                        )
                    )
                    written.append(
                        (pending, RecordMetadata(record.topic, partition, offset, pending.timestamp_ms))
                    )
                connection.executemany(
                    "INSERT INTO records (topic, partition, offset, key, value, headers, timestamp_ms)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                connection.executemany(
                    "UPDATE partitions SET next_offset = ? WHERE topic = ? AND partition = ?",
                    [(end, topic, partition) for (topic, partition), end in next_offsets.items()],
                )
        except Exception:
            for pending, reason in rejected:
                pending.future.set_exception(reason)
            raise  # _run fails the rest of the batch
        self._on_commit()
        for pending, metadata in written:
            pending.future.set_result(metadata)
        for pending, reason in rejected:
            pending.future.set_exception(reason)

    def _topic(self, connection: sqlite3.Connection, name: str) -> tuple[int, bool] | None:
        """(partitions, compact) of ``name``; None if there is no such topic."""
        row = connection.execute("SELECT partitions, compact FROM topics WHERE name = ?", (name,)).fetchone()
        if row is None:
            return None
        return int(row[0]), bool(row[1])

    def _partition(self, record: OutgoingRecord, partition_count: int) -> int:
        if record.partition is not None:
            return record.partition
        if record.key is not None:
            return _key_partition(record.key, partition_count)
        turn = self._round_robin.get(record.topic, 0)
        self._round_robin[record.topic] = turn + 1
        return turn % partition_count


class _Heartbeats:
    """The bus's heartbeat thread: keeps its group members alive while they work between polls.

    A Kafka consumer heartbeats from a background thread, so a member that spends long on a batch
    is not taken for dead; only one that does not poll for ``max.poll.interval.ms`` is, or one
    whose process died. Heartbeating only in ``poll`` would instead hand the partitions of any
    batch slower than the session timeout to another member and refuse its commit, and a worker
    retrying that batch would never get through. One thread serves every member of the bus, with
    one short UPDATE transaction per beat.
    """

    def __init__(self, path: Path, *, busy_timeout_s: float, max_poll_interval_s: float) -> None:
        self._path = path
        self._busy_timeout_s = busy_timeout_s
        self._max_poll_interval_s = max_poll_interval_s
        self._members: set[EmbeddedConsumer] = set()
        self._state = threading.Condition()
        self._stopping = False
        self._loop = Loop(
            f"embedded-bus-heartbeats[{path.name}]", lambda _: self._run(), wake=self._wake_to_stop
        )
        self._loop.start()

    def add(self, member: EmbeddedConsumer) -> None:
        with self._state:
            self._members.add(member)
            self._state.notify_all()

    def discard(self, member: EmbeddedConsumer) -> None:
        with self._state:
            self._members.discard(member)

    def close(self) -> None:
        self._loop.stop(None)

    def _wake_to_stop(self) -> None:
        with self._state:
            self._stopping = True
            self._state.notify_all()

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        interval_s = 1.0
        try:
            while True:
                with self._state:
                    # add() wakes the thread early: a new member's first beat must not wait for
                    # an interval set before it, which may be longer than its whole session.
                    if not self._stopping:
                        self._state.wait(interval_s)
                    if self._stopping:
                        return
                    interval_s = min((member.heartbeat_interval_s for member in self._members), default=1.0)
                    now = time.monotonic()
                    # A member that stopped polling is stuck or gone: let its session run out.
                    beats = [
                        (_wall_ms(), member.group_id, member.member_id, member.generation)
                        for member in self._members
                        if now - member.last_poll < self._max_poll_interval_s
                    ]
                if not beats:
                    continue
                try:
                    if connection is None:
                        connection = _connect(
                            self._path, synchronous="NORMAL", busy_timeout_s=self._busy_timeout_s
                        )
                    with _immediate(connection):
                        # Only ever refresh a row: a member that was removed must rejoin itself.
                        connection.executemany(
                            "UPDATE group_members SET heartbeat_ms = ?"
                            " WHERE group_id = ? AND member_id = ? AND generation = ?",
                            beats,
                        )
                except sqlite3.Error:
                    log.warning("embedded bus: heartbeats failed; retrying", exc_info=True)
                    if connection is not None:
                        connection.close()
                        connection = None
        finally:
            if connection is not None:
                connection.close()


class EmbeddedProducer(Producer):
    """A handle on the bus's writer: cheap to make, thread-safe, shares the bus's one queue."""

    def __init__(self, writer: _Writer, client_id: str) -> None:
        self._writer = writer
        self.client_id = client_id
        self._closed = False

    def send(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        if self._closed:
            raise BusError(f"producer {self.client_id!r} is closed")
        _check_topic_name(record.topic)
        # Type errors surface here, in the caller's stack, rather than failing a whole batch later.
        for name, data in (("key", record.key), ("value", record.value)):
            if data is not None and not isinstance(data, bytes):
                raise TypeError(f"record {name} must be bytes or None, not {type(data).__name__}")
        for header in record.headers:
            if not (isinstance(header[0], str) and isinstance(header[1], bytes)):
                raise TypeError(f"a header must be a (str, bytes) pair, not {header!r}")
        if record.partition is not None and record.partition < 0:
            raise ValueError(f"partition must be >= 0, got {record.partition}")
        return self._writer.submit(record)

    def flush(self, timeout_s: float | None = None) -> None:
        self._writer.flush(timeout_s)

    def buffer_fill(self) -> float:
        return self._writer.fill()

    def close(self, timeout_s: float = 10.0) -> None:
        """Wait for what was queued, then refuse new records; the bus's writer keeps running."""
        if not self._closed:
            self._closed = True
            self.flush(timeout_s)


class EmbeddedConsumer(Consumer):
    """A consumer on its own SQLite connection; a group member if ``group_id`` is given."""

    def __init__(
        self,
        bus: EmbeddedBus,
        group_id: str | None,
        topics: Sequence[str],
        *,
        start: StartFrom,
        client_id: str,
        session_timeout_s: float,
    ) -> None:
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if session_timeout_s <= 0:
            raise ValueError("session_timeout_s must be positive")
        for topic in topics:
            _check_topic_name(topic)
        self._bus = bus
        self.group_id = group_id
        self.topics = tuple(dict.fromkeys(topics))
        self._start = start
        self.client_id = client_id
        self.member_id = f"{client_id}-{uuid.uuid4().hex}"
        self._session_timeout_ms = max(1, int(session_timeout_s * 1000))
        # Four heartbeats per session: one or two may be late (a busy disk) before the others
        # declare this member dead.
        self._heartbeat_interval_ms = max(1, min(1000, self._session_timeout_ms // 4))
        self.heartbeat_interval_s = self._heartbeat_interval_ms / 1000
        self.last_poll = time.monotonic()
        self._heartbeating = False
        self._generation = 0
        self._positions: dict[TopicPartition, int] = {}
        self._turn = 0
        self._last_group_check = 0.0
        self._closed = False
        # Consumers are single-threaded by contract; the lock only makes close() from another
        # thread (a lifespan shutting down) wait for a poll in progress instead of breaking it.
        self._lock = threading.RLock()
        # NORMAL: heartbeats and offset commits need not survive a power cut (a lost commit means
        # records are read again, which at-least-once allows) and must not pay an fsync each.
        with _bus_errors():
            self._connection = _connect(bus.path, synchronous="NORMAL", busy_timeout_s=bus.busy_timeout_s)
        if group_id is None:
            try:
                with _bus_errors():
                    self._sync_assignment()
            except BaseException:
                self._connection.close()
                raise

    @property
    def generation(self) -> int:
        """How many times this member has joined its group (0: not yet)."""
        return self._generation

    # -- reading ---------------------------------------------------------------------------------

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Message]:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        with self._lock, _bus_errors():
            self._check_open()
            self.last_poll = time.monotonic()
            deadline = self.last_poll + max(0.0, timeout_s)
            try:
                self._sync_assignment()
                while True:
                    seen_appends = self._bus._appends
                    seen_version = self._data_version()
                    messages = self._fetch(max_records)
                    if messages:
                        return messages
                    if not self._wait_for_change(deadline, seen_appends, seen_version):
                        return []
            finally:
                self.last_poll = time.monotonic()

    def _wait_for_change(self, deadline: float, seen_appends: int, seen_version: int) -> bool:
        """Wait until records may have arrived or the assignment changed; False at the deadline."""
        wait_s = _MIN_WAIT_S
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._bus._wait_for_append(seen_appends, min(wait_s, remaining)):
                return True
            if self._data_version() != seen_version:
                return True
            if time.monotonic() - self._last_group_check >= _GROUP_CHECK_INTERVAL_S:
                before = set(self._positions)
                self._sync_assignment()
                if set(self._positions) != before:
                    return True
            wait_s = min(wait_s * 2, _MAX_WAIT_S)

    def _data_version(self) -> int:
        """Changes whenever another connection, in any process, commits to the database."""
        (version,) = self._connection.execute("PRAGMA data_version").fetchone()
        return int(version)

    def _fetch(self, max_records: int) -> list[Message]:
        """Up to ``max_records`` after the positions, shared fairly between the partitions.

        Each partition with records gets an equal quota first, the rest of the budget then goes
        to partitions that had more; the partition served first rotates from poll to poll, so one
        busy partition cannot starve the others.
        """
        bounds = {
            topic: _partition_bounds(self._connection, topic)
            for topic in {tp.topic for tp in self._positions}
        }
        ends: dict[TopicPartition, int] = {}
        for tp, position in self._positions.items():
            start, end = bounds[tp.topic].get(tp.partition, (0, 0))
            if not start <= position <= end:
                # Out of range (deleted by retention, or sought past the end): reset as Kafka's
                # auto.offset.reset would.
                position = self._positions[tp] = start if self._start == "earliest" else end
            if position < end:
                ends[tp] = end
        if not ends:
            return []
        readable = sorted(ends, key=lambda tp: (tp.topic, tp.partition))
        self._turn = (self._turn + 1) % len(readable)
        readable = readable[self._turn :] + readable[: self._turn]
        budget = max_records
        quota = max(1, max_records // len(readable))
        fetched: dict[TopicPartition, list[Message]] = {}
        exhausted: set[TopicPartition] = set()
        for second_pass in (False, True):
            for tp in readable:
                if budget <= 0:
                    break
                if second_pass and (tp in exhausted or tp not in fetched):
                    continue
                batch = fetched.setdefault(tp, [])
                limit = budget if second_pass else min(quota, budget)
                more = self._read(tp, batch[-1].offset + 1 if batch else self._positions[tp], limit)
                batch.extend(more)
                budget -= len(more)
                if len(more) < limit:
                    exhausted.add(tp)
        messages: list[Message] = []
        for tp, batch in fetched.items():
            if batch:
                self._positions[tp] = batch[-1].offset + 1
                messages.extend(batch)
            if tp in exhausted:
                # Nothing more below the end: what is missing was compacted away. Step over the
                # gap, so that a reader at the end is at the end (read models wait for that).
                self._positions[tp] = max(self._positions[tp], ends[tp])
        return messages

    def _read(self, tp: TopicPartition, offset: int, limit: int) -> list[Message]:
        rows = self._connection.execute(
            "SELECT offset, key, value, headers, timestamp_ms FROM records"
            " WHERE topic = ? AND partition = ? AND offset >= ? ORDER BY offset LIMIT ?",
            (tp.topic, tp.partition, offset, limit),
        ).fetchall()
        return [
            Message(tp.topic, tp.partition, row[0], row[1], row[2], _decode_headers(row[3]), row[4])
            for row in rows
        ]

    # -- assignment ------------------------------------------------------------------------------

    def _sync_assignment(self) -> None:
        self._last_group_check = time.monotonic()
        if self.group_id is None:
            self._sync_standalone()
        elif self._group_needs_write(_wall_ms()):
            self._sync_group()

    def _sync_standalone(self) -> None:
        """Without a group: every partition of the subscribed topics that exists now."""
        current: set[TopicPartition] = set()
        for topic in self.topics:
            for partition, (start, end) in _partition_bounds(self._connection, topic).items():
                tp = TopicPartition(topic, partition)
                current.add(tp)
                if tp not in self._positions:
                    self._positions[tp] = start if self._start == "earliest" else end
        for tp in set(self._positions) - current:
            del self._positions[tp]

    def _group_view(self, now_ms: int) -> tuple[dict[str, _Member], dict[TopicPartition, str]]:
        """The group's members and who owns which partition, as the database has them now."""
        members = {
            member_id: _Member(
                topics=frozenset(json.loads(topics)),
                heartbeat_ms=heartbeat_ms,
                generation=generation,
                live=heartbeat_ms + session_timeout_ms >= now_ms,
            )
            for member_id, topics, heartbeat_ms, session_timeout_ms, generation in self._connection.execute(
                "SELECT member_id, topics, heartbeat_ms, session_timeout_ms, generation"
                " FROM group_members WHERE group_id = ?",
                (self.group_id,),
            )
        }
        owners = {
            TopicPartition(topic, partition): member_id
            for topic, partition, member_id in self._connection.execute(
                "SELECT topic, partition, member_id FROM group_assignments WHERE group_id = ?",
                (self.group_id,),
            )
        }
        return members, owners

    def _target(self, members: Mapping[str, _Member]) -> set[TopicPartition]:
        """This member's share of the partitions, computed from the live members' subscriptions."""
        subscriptions = {member_id: member.topics for member_id, member in members.items() if member.live}
        subscriptions[self.member_id] = frozenset(self.topics)
        wanted = sorted({topic for topics in subscriptions.values() for topic in topics})
        partitions = {
            topic: count
            for topic, count in self._connection.execute(
                f"SELECT name, partitions FROM topics WHERE name IN ({','.join('?' * len(wanted))})", wanted
            )
        }
        return assign_partitions(subscriptions, partitions)[self.member_id]

    def _group_needs_write(self, now_ms: int) -> bool:
        """Whether this member must heartbeat, clean up, give up or take partitions: reads only.

        Most polls change nothing, so they cost a few reads and no write transaction.
        """
        members, owners = self._group_view(now_ms)
        me = members.get(self.member_id)
        if (
            me is None
            or me.generation != self._generation
            or now_ms - me.heartbeat_ms >= self._heartbeat_interval_ms
        ):
            return True
        if not all(member.live for member in members.values()):
            return True
        target = self._target(members)
        mine = {tp for tp, owner in owners.items() if owner == self.member_id}
        if mine - target or mine != set(self._positions):  # the latter: a topic was deleted
            return True
        return any(tp not in owners for tp in target - mine)

    def _sync_group(self) -> None:
        """Heartbeat, drop dead members, give up and take partitions: one write transaction."""
        now_ms = _wall_ms()
        fenced = False
        with _immediate(self._connection) as connection:
            members, _ = self._group_view(now_ms)
            me = members.get(self.member_id)
            if me is None or me.generation != self._generation:
                # Not a member (yet, or any more: we stopped heartbeating and another member
                # removed us and took our partitions). Join with a new generation.
                fenced = self._generation > 0
                self._generation += 1
                connection.execute(
                    "INSERT OR REPLACE INTO group_members"
                    " (group_id, member_id, client_id, topics, session_timeout_ms, heartbeat_ms, generation)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (
                        self.group_id,
                        self.member_id,
                        self.client_id,
                        json.dumps(list(self.topics)),
                        self._session_timeout_ms,
                        now_ms,
                        self._generation,
                    ),
                )
            else:
                # Late but not yet removed: nobody took our partitions, so we may keep them.
                connection.execute(
                    "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                    (now_ms, self.group_id, self.member_id),
                )
            connection.execute(
                "DELETE FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms < ?",
                (self.group_id, now_ms),
            )
            connection.execute(
                "DELETE FROM group_assignments WHERE group_id = ? AND member_id NOT IN"
                " (SELECT member_id FROM group_members WHERE group_id = ?)",
                (self.group_id, self.group_id),
            )
            members, owners = self._group_view(now_ms)
            target = self._target(members)
            mine = {tp for tp, owner in owners.items() if owner == self.member_id}
            connection.executemany(
                "DELETE FROM group_assignments WHERE group_id = ? AND topic = ? AND partition = ?",
                [(self.group_id, tp.topic, tp.partition) for tp in mine - target],
            )
            taken = {tp for tp in target - mine if tp not in owners}
            connection.executemany(
                "INSERT INTO group_assignments (group_id, topic, partition, member_id) VALUES (?, ?, ?, ?)",
                [(self.group_id, tp.topic, tp.partition, self.member_id) for tp in taken],
            )
            owned = (mine & target) | taken
            starts = {tp: self._committed(tp) for tp in owned if fenced or tp not in self._positions}
            bounds = {topic: _partition_bounds(connection, topic) for topic in {tp.topic for tp in starts}}
        if not self._heartbeating:
            self._bus._heartbeats().add(self)
            self._heartbeating = True
        if fenced:
            self._positions.clear()
        for tp in set(self._positions) - owned:
            del self._positions[tp]
        for tp, committed in starts.items():
            if committed is not None:
                self._positions[tp] = committed
            else:
                start, end = bounds[tp.topic].get(tp.partition, (0, 0))
                self._positions[tp] = start if self._start == "earliest" else end

    # -- positions and offsets -------------------------------------------------------------------

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        with self._lock, _bus_errors():
            self._check_open()
            if self.group_id is None:
                raise BusError("a consumer without a group cannot commit offsets")
            to_commit = dict(self._positions if offsets is None else offsets)
            for tp, offset in to_commit.items():
                if offset < 0:
                    raise ValueError(f"cannot commit negative offset {offset} for {tp}")
            if not to_commit:
                return
            now_ms = _wall_ms()
            with _immediate(self._connection) as connection:
                members, owners = self._group_view(now_ms)
                me = members.get(self.member_id)
                if self._generation > 0 and (me is None or me.generation != self._generation):
                    raise BusError(
                        f"member {self.member_id} of group {self.group_id!r} was removed after missing its"
                        " heartbeats and its partitions went to other members; poll to rejoin"
                    )
                foreign = sorted(
                    f"{tp.topic}/{tp.partition}"
                    for tp in to_commit
                    if owners.get(tp, self.member_id) != self.member_id
                    and members.get(owners[tp], _DEAD).live
                )
                if foreign:
                    raise BusError(
                        f"cannot commit {', '.join(foreign)}: assigned to another member of the group"
                    )
                connection.executemany(
                    "INSERT OR REPLACE INTO group_offsets (group_id, topic, partition, offset, committed_ms)"
                    " VALUES (?, ?, ?, ?, ?)",
                    [
                        (self.group_id, tp.topic, tp.partition, offset, now_ms)
                        for tp, offset in to_commit.items()
                    ],
                )
                if me is not None:
                    connection.execute(
                        "UPDATE group_members SET heartbeat_ms = ? WHERE group_id = ? AND member_id = ?",
                        (now_ms, self.group_id, self.member_id),
                    )

    def assignment(self) -> set[TopicPartition]:
        return set(self._positions)

    def position(self, tp: TopicPartition) -> int:
        self._check_assigned([tp])
        return self._positions[tp]

    def committed(self, tp: TopicPartition) -> int | None:
        with self._lock, _bus_errors():
            self._check_open()
            return self._committed(tp)

    def _committed(self, tp: TopicPartition) -> int | None:
        if self.group_id is None:
            return None
        row = self._connection.execute(
            "SELECT offset FROM group_offsets WHERE group_id = ? AND topic = ? AND partition = ?",
            (self.group_id, tp.topic, tp.partition),
        ).fetchone()
        return None if row is None else int(row[0])

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        self._check_assigned([tp])
        self._positions[tp] = offset

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, _bus_errors():
            for tp, (start, _end) in self._bounds_of(tps).items():
                self._positions[tp] = start

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, _bus_errors():
            for tp, (_start, end) in self._bounds_of(tps).items():
                self._positions[tp] = end

    def seek_to_timestamp(self, timestamp_ms: int, tps: Iterable[TopicPartition] | None = None) -> None:
        with self._lock, _bus_errors():
            for tp, (_start, end) in self._bounds_of(tps).items():
                # The time index holds (timestamp, offset): this visits only the records at or
                # after the timestamp, and timestamps need not grow with offsets.
                (first,) = self._connection.execute(
                    "SELECT MIN(offset) FROM records INDEXED BY records_by_time"
                    " WHERE topic = ? AND partition = ? AND timestamp_ms >= ?",
                    (tp.topic, tp.partition, timestamp_ms),
                ).fetchone()
                self._positions[tp] = end if first is None else int(first)

    def end_offsets(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        with self._lock, _bus_errors():
            self._check_open()
            wanted = list(self._positions if tps is None else tps)
            bounds = {topic: _known_bounds(self._connection, topic) for topic in {tp.topic for tp in wanted}}
            result = {}
            for tp in wanted:
                if tp.partition not in bounds[tp.topic]:
                    raise UnknownTopic(f"topic {tp.topic!r} has no partition {tp.partition}")
                result[tp] = bounds[tp.topic][tp.partition][1]
            return result

    def _bounds_of(self, tps: Iterable[TopicPartition] | None) -> dict[TopicPartition, tuple[int, int]]:
        """(log start, high watermark) of the given assigned partitions, or of all assigned ones."""
        wanted = list(self._positions if tps is None else tps)
        self._check_assigned(wanted)
        bounds = {topic: _partition_bounds(self._connection, topic) for topic in {tp.topic for tp in wanted}}
        return {tp: bounds[tp.topic].get(tp.partition, (0, 0)) for tp in wanted}

    def _check_assigned(self, tps: Iterable[TopicPartition]) -> None:
        self._check_open()
        missing = [tp for tp in tps if tp not in self._positions]
        if missing:
            assigned = ", ".join(sorted(f"{tp.topic}/{tp.partition}" for tp in self._positions)) or "nothing"
            raise BusError(
                f"{', '.join(f'{tp.topic}/{tp.partition}' for tp in missing)} not assigned to this consumer"
                f" (assigned: {assigned}); a group member gets its partitions in poll()"
            )

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the consumer is closed")

    # -- lifecycle -------------------------------------------------------------------------------

    def close(self) -> None:
        """Leave the group at once, without committing: the others take over on their next poll."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            try:
                if self.group_id is not None and self._generation > 0:
                    with _immediate(self._connection) as connection:
                        connection.execute(
                            "DELETE FROM group_assignments WHERE group_id = ? AND member_id = ?",
                            (self.group_id, self.member_id),
                        )
                        connection.execute(
                            "DELETE FROM group_members WHERE group_id = ? AND member_id = ?",
                            (self.group_id, self.member_id),
                        )
            except sqlite3.Error:
                # The others will notice the missing heartbeats after the session timeout instead.
                log.warning(
                    "consumer %s could not leave group %r", self.member_id, self.group_id, exc_info=True
                )
            finally:
                self._connection.close()
                self._positions.clear()
                self._bus._forget(self)


class EmbeddedAdmin(Admin):
    """Topic and group administration on the bus's shared control connection."""

    def __init__(self, bus: EmbeddedBus) -> None:
        self._bus = bus

    def _ensure_topic(self, spec: TopicSpec) -> bool:
        _check_topic_name(spec.name)
        if spec.partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {spec.partitions}")
        with self._bus._control() as connection, _immediate(connection):
            exists = connection.execute("SELECT 1 FROM topics WHERE name = ?", (spec.name,)).fetchone()
            if exists:
                return False
            _create_topic(
                connection,
                spec.name,
                spec.partitions,
                retention_ms=spec.retention_ms,
                compact=spec.compact,
                config=spec.extra_config,
            )
            return True

    def list_topics(self) -> set[str]:
        with self._bus._control() as connection:
            return {name for (name,) in connection.execute("SELECT name FROM topics")}

    def partitions_for(self, topic: str) -> int:
        with self._bus._control() as connection:
            row = connection.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        return int(row[0])

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._bus._control() as connection:
            return {partition: end for partition, (_start, end) in _known_bounds(connection, topic).items()}

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        with self._bus._control() as connection:
            return {partition: start for partition, (start, _end) in _known_bounds(connection, topic).items()}

    def committed_offsets(self, group_id: str, topic: str | None = None) -> dict[TopicPartition, int]:
        query = "SELECT topic, partition, offset FROM group_offsets WHERE group_id = ?"
        parameters: tuple[str, ...] = (group_id,)
        if topic is not None:
            query += " AND topic = ?"
            parameters += (topic,)
        with self._bus._control() as connection:
            return {TopicPartition(t, p): offset for t, p, offset in connection.execute(query, parameters)}

    def delete_topic(self, topic: str) -> None:
        """Delete the topic, its records and every group's offsets and assignments on it."""
        with self._bus._control() as connection, _immediate(connection):
            if connection.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is None:
                raise UnknownTopic(f"topic {topic!r} does not exist")
            for table in ("records", "partitions", "group_offsets", "group_assignments"):
                connection.execute(f"DELETE FROM {table} WHERE topic = ?", (topic,))
            connection.execute("DELETE FROM topics WHERE name = ?", (topic,))

    def delete_group(self, group_id: str) -> None:
        """Forget the group's offsets; refused while it has live members, as Kafka refuses."""
        with self._bus._control() as connection, _immediate(connection):
            (live,) = connection.execute(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms >= ?",
                (group_id, _wall_ms()),
            ).fetchone()
            if live:
                raise BusError(f"group {group_id!r} still has {live} live members")
            for table in ("group_offsets", "group_members", "group_assignments"):
                connection.execute(f"DELETE FROM {table} WHERE group_id = ?", (group_id,))

    def ping(self, timeout_s: float = 2.0) -> None:
        """Open the file afresh (without creating it) and read from it."""
        try:
            connection = sqlite3.connect(
                f"{self._bus.path.resolve().as_uri()}?mode=rw", uri=True, timeout=timeout_s
            )
            try:
                connection.execute("SELECT COUNT(*) FROM topics").fetchone()
            finally:
                connection.close()
        except sqlite3.Error as error:
            raise BusUnavailable(f"embedded bus {self._bus.path}: {error}") from error

    def close(self) -> None:
        """Nothing to release: the admin uses the bus's connection."""


class EmbeddedBus(Bus):
    """The bus on one SQLite file. Built once per process; ``close`` stops its writer thread.

    ``max_queued_records`` bounds the records sent but not yet written (``BufferFull`` beyond);
    ``max_batch_records`` bounds one group commit, so a write transaction never holds SQLite's lock
    long enough to stall heartbeats; ``busy_timeout_s`` is how long any operation waits for the
    lock before giving up with ``BusUnavailable``; a group member that does not poll for
    ``max_poll_interval_s`` (Kafka's ``max.poll.interval.ms``, 5 minutes by default) stops
    heartbeating and loses its partitions when its session times out.
    """

    def __init__(
        self,
        path: Path,
        *,
        max_queued_records: int = 100_000,
        max_batch_records: int = 5_000,
        maintenance_interval_s: float = 60.0,
        busy_timeout_s: float = 10.0,
        max_poll_interval_s: float = 300.0,
    ) -> None:
        if max_queued_records < 1 or max_batch_records < 1:
            raise ValueError("max_queued_records and max_batch_records must be >= 1")
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._max_queued_records = max_queued_records
        self._max_batch_records = max_batch_records
        self._maintenance_interval_s = maintenance_interval_s
        self._max_poll_interval_s = max_poll_interval_s
        self._lock = threading.Lock()
        self._control_lock = threading.Lock()
        self._closed = False
        self._writer_thread: _Writer | None = None
        self._heartbeat_thread: _Heartbeats | None = None
        self._consumers: set[EmbeddedConsumer] = set()
        # Count of commits by this bus's writer; consumers of this process wait on it in poll.
        self._appended = threading.Condition()
        self._appends = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with _bus_errors():
            self._connection = _connect(self.path, synchronous="NORMAL", busy_timeout_s=busy_timeout_s)
            try:
                self._create_schema()
            except BaseException:
                self._connection.close()
                raise

    def _create_schema(self) -> None:
        # WAL is a property of the file: set once, every later connection of any process uses it.
        (mode,) = self._connection.execute("PRAGMA journal_mode=WAL").fetchone()
        if str(mode).lower() != "wal":
            raise BusUnavailable(f"embedded bus {self.path}: cannot use WAL mode (got {mode!r})")
        # Bound the WAL file after checkpoints; it would otherwise keep its largest size forever.
        self._connection.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        with _immediate(self._connection) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise BusError(
                    f"embedded bus {self.path} has schema version {version}; this code knows {SCHEMA_VERSION}"
                )
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _control(self) -> Iterator[sqlite3.Connection]:
        """The shared connection for administration, one thread at a time."""
        with self._control_lock, _bus_errors():
            if self._closed:
                raise BusError("the embedded bus is closed")
            yield self._connection

    def _writer(self) -> _Writer:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
            if self._writer_thread is None:
                self._writer_thread = _Writer(
                    self.path,
                    max_queued_records=self._max_queued_records,
                    max_batch_records=self._max_batch_records,
                    maintenance_interval_s=self._maintenance_interval_s,
                    busy_timeout_s=self.busy_timeout_s,
                    on_commit=self._notify_appended,
                )
            return self._writer_thread

    def _notify_appended(self) -> None:
        with self._appended:
            self._appends += 1
            self._appended.notify_all()

    def _wait_for_append(self, seen: int, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for a commit of this bus's writer after ``seen``."""
        with self._appended:
            return self._appended.wait_for(lambda: self._appends != seen, timeout_s)

    def _heartbeats(self) -> _Heartbeats:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
            if self._heartbeat_thread is None:
                self._heartbeat_thread = _Heartbeats(
                    self.path,
                    busy_timeout_s=self.busy_timeout_s,
                    max_poll_interval_s=self._max_poll_interval_s,
                )
            return self._heartbeat_thread

    def _forget(self, consumer: EmbeddedConsumer) -> None:
        with self._lock:
            self._consumers.discard(consumer)
            heartbeats = self._heartbeat_thread
        if heartbeats is not None:
            heartbeats.discard(consumer)

    def producer(self, client_id: str = "citybase") -> Producer:
        return EmbeddedProducer(self._writer(), client_id)

    def consumer(
        self,
        group_id: str | None,
        topics: Sequence[str] = (),
        *,
        start: StartFrom = "earliest",
        client_id: str = "citybase",
        session_timeout_s: float = 10.0,
    ) -> Consumer:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
        consumer = EmbeddedConsumer(
            self, group_id, topics, start=start, client_id=client_id, session_timeout_s=session_timeout_s
        )
        with self._lock:
            self._consumers.add(consumer)
        return consumer

    def admin(self) -> Admin:
        return EmbeddedAdmin(self)

    def maintain(self) -> MaintenanceReport:
        """Run retention and compaction now (the writer thread also does it periodically)."""
        with self._control() as connection:
            return _maintain(connection, _wall_ms())

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what producers queued, make the open consumers leave their groups, release the file."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            writer, self._writer_thread = self._writer_thread, None
            consumers = list(self._consumers)
        if writer is not None:
            writer.close(timeout_s)
        for consumer in consumers:
            consumer.close()
        with self._lock:
            heartbeats, self._heartbeat_thread = self._heartbeat_thread, None
        if heartbeats is not None:
            heartbeats.close()
        with self._control_lock:
            self._connection.close()

    def __repr__(self) -> str:
        return f"EmbeddedBus({str(self.path)!r})"
