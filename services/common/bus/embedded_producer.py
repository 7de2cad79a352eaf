"""Producing on the embedded bus: the writer thread that drains the send queue in group commits
(and runs maintenance), and the producer handles that share it."""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import sqlite3
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from services.common.background import Loop
from services.common.bus.base import (
    BufferFull,
    BusError,
    BusUnavailable,
    OutgoingRecord,
    Producer,
    RecordMetadata,
    UnknownTopic,
)
from services.common.bus.embedded_log import (
    check_topic_name,
    connect,
    encode_headers,
    immediate,
    key_partition,
    run_maintenance,
    wall_ms,
)

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Pending:
    """A queued record with its send-time timestamp and the future to resolve."""

    record: OutgoingRecord
    timestamp_ms: int
    future: concurrent.futures.Future[RecordMetadata]


class Writer:
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
        timestamp_ms = record.timestamp_ms if record.timestamp_ms is not None else wall_ms()
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
                        connection = connect(
                            self._path, synchronous="FULL", busy_timeout_s=self._busy_timeout_s
                        )
                    if batch:
                        self._write(connection, batch)
                    if time.monotonic() >= next_maintenance:
                        next_maintenance = time.monotonic() + self._maintenance_interval_s
                        report = run_maintenance(connection, wall_ms())
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
            with immediate(connection):
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
                            encode_headers(record.headers),
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
            return key_partition(record.key, partition_count)
        turn = self._round_robin.get(record.topic, 0)
        self._round_robin[record.topic] = turn + 1
        return turn % partition_count


class EmbeddedProducer(Producer):
    """A handle on the bus's writer: cheap to make, thread-safe, shares the bus's one queue."""

    def __init__(self, writer: Writer, client_id: str) -> None:
        self._writer = writer
        self.client_id = client_id
        self._closed = False

    def send(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        if self._closed:
            raise BusError(f"producer {self.client_id!r} is closed")
        check_topic_name(record.topic)
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
