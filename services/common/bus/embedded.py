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
  poll a member computes the group's assignment from the live members (:mod:`.assignment`,
  Kafka's range assignor, or whole groups of topics: every member gets the same answer) and compares it with who holds what
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

The backend's modules: :mod:`~services.common.bus.embedded_log` (schema, transactions, topics,
maintenance), :mod:`~services.common.bus.embedded_producer` (the writer thread),
:mod:`~services.common.bus.embedded_consumer` (consumers, groups, heartbeats), and this one (the
admin client and the bus).
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

from services.common.bus.base import (
    Admin,
    Bus,
    BusError,
    BusUnavailable,
    Consumer,
    GroupActive,
    GroupOf,
    Producer,
    StartFrom,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from services.common.bus.embedded_consumer import EmbeddedConsumer
from services.common.bus.embedded_groups import Heartbeats
from services.common.bus.embedded_log import (
    SCHEMA,
    SCHEMA_VERSION,
    MaintenanceReport,
    bus_errors,
    check_topic_name,
    connect,
    create_topic,
    immediate,
    known_bounds,
    run_maintenance,
    wall_ms,
)
from services.common.bus.embedded_producer import EmbeddedProducer, Writer

log = logging.getLogger(__name__)


class EmbeddedAdmin(Admin):
    """Topic and group administration on the bus's shared control connection."""

    def __init__(self, bus: EmbeddedBus) -> None:
        self._bus = bus

    def _ensure_topic(self, spec: TopicSpec) -> bool:
        check_topic_name(spec.name)
        if spec.partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {spec.partitions}")
        with self._bus._control() as connection, immediate(connection):
            exists = connection.execute("SELECT 1 FROM topics WHERE name = ?", (spec.name,)).fetchone()
            if exists:
                return False
            create_topic(
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

    def grow_partitions(self, topic: str, partitions: int) -> bool:
        with self._bus._control() as connection, immediate(connection):
            row = connection.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
            if row is None:
                raise UnknownTopic(f"no topic {topic!r}")
            current = int(row[0])
            if partitions <= current:
                return False
            connection.execute("UPDATE topics SET partitions = ? WHERE name = ?", (partitions, topic))
            connection.executemany(
                "INSERT INTO partitions (topic, partition, start_offset, next_offset) VALUES (?, ?, 0, 0)",
                [(topic, partition) for partition in range(current, partitions)],
            )
            return True

    def partitions_for(self, topic: str) -> int:
        with self._bus._control() as connection:
            row = connection.execute("SELECT partitions FROM topics WHERE name = ?", (topic,)).fetchone()
        if row is None:
            raise UnknownTopic(f"topic {topic!r} does not exist")
        return int(row[0])

    def end_offsets(self, topic: str) -> dict[int, int]:
        with self._bus._control() as connection:
            return {partition: end for partition, (_start, end) in known_bounds(connection, topic).items()}

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        with self._bus._control() as connection:
            return {partition: start for partition, (start, _end) in known_bounds(connection, topic).items()}

    def committed_offsets(self, group_id: str, topic: str | None = None) -> dict[TopicPartition, int]:
        query = "SELECT topic, partition, offset FROM group_offsets WHERE group_id = ?"
        parameters: tuple[str, ...] = (group_id,)
        if topic is not None:
            query += " AND topic = ?"
            parameters += (topic,)
        with self._bus._control() as connection:
            return {TopicPartition(t, p): offset for t, p, offset in connection.execute(query, parameters)}

    def group_members(self, group_id: str) -> int:
        with self._bus._control() as connection:
            (live,) = connection.execute(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms >= ?",
                (group_id, wall_ms()),
            ).fetchone()
        return int(live)

    def commit_offsets(self, group_id: str, topic: str, offsets: Mapping[int, int]) -> None:
        if not self.offsets_to_commit(topic, offsets):
            return
        now_ms = wall_ms()
        with self._bus._control() as connection, immediate(connection):
            (live,) = connection.execute(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms >= ?",
                (group_id, now_ms),
            ).fetchone()
            if live:
                raise GroupActive(f"group {group_id!r} has {live} live members; they commit its offsets")
            connection.executemany(
                "INSERT OR REPLACE INTO group_offsets (group_id, topic, partition, offset, committed_ms)"
                " VALUES (?, ?, ?, ?, ?)",
                [(group_id, topic, partition, offset, now_ms) for partition, offset in offsets.items()],
            )

    def delete_topic(self, topic: str) -> None:
        """Delete the topic, its records and every group's offsets and assignments on it."""
        with self._bus._control() as connection, immediate(connection):
            if connection.execute("SELECT 1 FROM topics WHERE name = ?", (topic,)).fetchone() is None:
                raise UnknownTopic(f"topic {topic!r} does not exist")
            for table in ("records", "partitions", "group_offsets", "group_assignments"):
                connection.execute(f"DELETE FROM {table} WHERE topic = ?", (topic,))
            connection.execute("DELETE FROM topics WHERE name = ?", (topic,))

    def delete_group(self, group_id: str) -> None:
        """Forget the group's offsets; refused while it has live members, as Kafka refuses."""
        with self._bus._control() as connection, immediate(connection):
            (live,) = connection.execute(
                "SELECT COUNT(*) FROM group_members WHERE group_id = ? AND heartbeat_ms + session_timeout_ms >= ?",
                (group_id, wall_ms()),
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
        self._writer_thread: Writer | None = None
        self._heartbeat_thread: Heartbeats | None = None
        self._consumers: set[EmbeddedConsumer] = set()
        # Count of commits by this bus's writer; consumers of this process wait on it in poll.
        self._appended = threading.Condition()
        self._appends = 0
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with bus_errors():
            self._connection = connect(self.path, synchronous="NORMAL", busy_timeout_s=busy_timeout_s)
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
        with immediate(self._connection) as connection:
            (version,) = connection.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise BusError(
                    f"embedded bus {self.path} has schema version {version}; this code knows {SCHEMA_VERSION}"
                )
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    connection.execute(statement)
            connection.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    @contextlib.contextmanager
    def _control(self) -> Iterator[sqlite3.Connection]:
        """The shared connection for administration, one thread at a time."""
        with self._control_lock, bus_errors():
            if self._closed:
                raise BusError("the embedded bus is closed")
            yield self._connection

    def _writer(self) -> Writer:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
            if self._writer_thread is None:
                self._writer_thread = Writer(
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

    def _heartbeats(self) -> Heartbeats:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
            if self._heartbeat_thread is None:
                self._heartbeat_thread = Heartbeats(
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
        group_by: GroupOf | None = None,
        fetch_bytes: int | None = None,
    ) -> Consumer:
        with self._lock:
            if self._closed:
                raise BusError("the embedded bus is closed")
        consumer = EmbeddedConsumer(
            self,
            group_id,
            topics,
            start=start,
            client_id=client_id,
            session_timeout_s=session_timeout_s,
            group_by=group_by,
        )
        with self._lock:
            self._consumers.add(consumer)
        return consumer

    def admin(self) -> Admin:
        return EmbeddedAdmin(self)

    def maintain(self) -> MaintenanceReport:
        """Run retention and compaction now (the writer thread also does it periodically)."""
        with self._control() as connection:
            return run_maintenance(connection, wall_ms())

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
