"""The bus interface every backend implements.

citybase talks through topics. The same interface is served by Apache Kafka (``kafka://``) for
deployments and by an embedded SQLite log (``embedded://``) for one machine; one behavioural test
suite runs unchanged against both, so code written against this module cannot tell them apart.

Semantics follow Kafka's, because Kafka is what runs in production:

- a topic has a fixed number of partitions; a record with a key always lands on the partition
  chosen by murmur2(key) (Kafka's default partitioner), so a key's records stay ordered;
- a committed offset is the offset of the *next* record to read (as in Kafka);
- consumers never auto-commit: work is done first, then ``commit`` is called;
- a consumer in a group gets a share of the partitions; when a member leaves or dies its
  partitions move to the others, which resume from the group's committed offsets.
"""

from __future__ import annotations

import abc
import concurrent.futures
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, TypeVar

from services.common.background import detached

_T = TypeVar("_T")

Headers = tuple[tuple[str, bytes], ...]
"""Record headers as Kafka has them: ordered (name, value) pairs, names may repeat."""


GroupOf = Callable[[str], str]
"""Maps a topic to the name of the group of topics a consumer group hands out whole."""


@dataclass(frozen=True, slots=True)
class TopicPartition:
    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class OutgoingRecord:
    """A record to publish. ``partition`` is normally left to the key hash."""

    topic: str
    value: bytes | None
    key: bytes | None = None
    headers: Headers = ()
    partition: int | None = None
    timestamp_ms: int | None = None


@dataclass(frozen=True, slots=True)
class RecordMetadata:
    """Where an acknowledged record was written."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int


class Message(NamedTuple):
    """A record read from a topic.

    A named tuple rather than a frozen dataclass: consumers build one per record read, and a
    tuple is built in a third of the time, as immutable and as cheap to hold.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Headers
    timestamp_ms: int

    @property
    def topic_partition(self) -> TopicPartition:
        return TopicPartition(self.topic, self.partition)

    def header(self, name: str) -> bytes | None:
        """The last value of header ``name``, or None."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(frozen=True, slots=True)
class TopicSpec:
    """What a topic should look like. ``ensure_topic`` creates it if missing."""

    name: str
    partitions: int = 3
    retention_ms: int | None = None
    compact: bool = False
    extra_config: Mapping[str, str] = field(default_factory=dict)


StartFrom = Literal["earliest", "latest"]


class BusError(Exception):
    """Base of the bus's own errors."""


class BusUnavailable(BusError):
    """The bus cannot be reached or did not acknowledge in time. Retryable."""


class BufferFull(BusError):
    """The producer's buffer is full: the caller should slow down (HTTP 429). Retryable."""


class GroupRebalancing(BusError):
    """A member's commit refused because its group is rebalancing (or has moved on without it):
    nothing was committed. Once the member has polled again it holds its partitions anew, and
    commits of those go through. Retryable."""


class GroupActive(BusError):
    """A commit from outside a consumer group refused: the group has live members, whose
    positions are theirs to commit."""


class UnknownTopic(BusError):
    """The topic does not exist."""


class Producer(abc.ABC):
    """Publishes records. ``send`` never blocks on the broker's acknowledgement."""

    @abc.abstractmethod
    def send(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        """Queue one record; the future resolves once the bus acknowledged it durably.

        The future fails with ``BusUnavailable`` when the record could not be written, and
        ``send`` itself raises ``BufferFull`` when no more can be queued right now.
        """

    def send_many(self, records: Iterable[OutgoingRecord]) -> list[concurrent.futures.Future[RecordMetadata]]:
        return [self.send(record) for record in records]

    def send_batch(self, records: Sequence[OutgoingRecord]) -> concurrent.futures.Future[None]:
        """Queue ``records``; one future for all of them, done once every one is acknowledged,
        failed (``BusUnavailable``) at the first that is not.

        For callers that need "all or tell me" rather than each record's metadata (ingest's 202):
        a backend may settle it without a future per record. Like ``send``, raises ``BufferFull``
        (or another ``BusError``) when a record cannot be queued; records queued before that may
        still be written, and the returned future is then never handed out.
        """
        return all_acknowledged(self.send_many(records))

    def publish(self, records: Sequence[OutgoingRecord], timeout_s: float = 30.0) -> list[RecordMetadata]:
        """Send records and wait until every one is acknowledged (or raise ``BusUnavailable``)."""
        futures = self.send_many(records)
        self.flush(timeout_s)
        return wait_all(futures, timeout_s)

    @abc.abstractmethod
    def flush(self, timeout_s: float | None = None) -> None:
        """Push out everything queued so far."""

    @abc.abstractmethod
    def buffer_fill(self) -> float:
        """Share of the send buffer in use, 0.0 to 1.0."""

    @abc.abstractmethod
    def close(self, timeout_s: float = 10.0) -> None: ...


class Consumer(abc.ABC):
    """Reads records, as a member of a consumer group or on explicitly assigned partitions.

    Not thread-safe: one thread owns a consumer.
    """

    @abc.abstractmethod
    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Message]:
        """Records after the current positions, in offset order per partition."""

    @abc.abstractmethod
    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        """Commit ``offsets`` (next offset to read) or, if None, the current positions."""

    @abc.abstractmethod
    def assignment(self) -> set[TopicPartition]:
        """Partitions currently assigned to this consumer (may be empty before the first poll)."""

    @abc.abstractmethod
    def position(self, tp: TopicPartition) -> int:
        """Offset of the next record this consumer will read from ``tp``."""

    @abc.abstractmethod
    def committed(self, tp: TopicPartition) -> int | None:
        """The group's committed offset for ``tp``, or None."""

    @abc.abstractmethod
    def seek(self, tp: TopicPartition, offset: int) -> None: ...

    @abc.abstractmethod
    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        """Seek the given (default: all assigned) partitions to their first retained record."""

    @abc.abstractmethod
    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None: ...

    @abc.abstractmethod
    def seek_to_timestamp(self, timestamp_ms: int, tps: Iterable[TopicPartition] | None = None) -> None:
        """Seek each partition to its first record at or after ``timestamp_ms`` (or its end)."""

    @abc.abstractmethod
    def end_offsets(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        """High watermarks (offset after the last record) of the given or assigned partitions."""

    @abc.abstractmethod
    def close(self) -> None:
        """Leave the group without committing anything."""


class Admin(abc.ABC):
    def ensure_topic(self, spec: TopicSpec, timeout_s: float | None = None) -> bool:
        """Create the topic if it does not exist; True if it was created. Idempotent.

        With ``timeout_s``, ``BusUnavailable`` once that has passed without an answer (a bus that is
        down, a cluster that cannot elect leaders): a caller that must not hang, such as a service
        starting while Kafka is still down, retries instead. The creation may still complete
        afterwards; a retry then finds the topic.
        """
        if timeout_s is None:
            return self._ensure_topic(spec)
        return call_within(timeout_s, f"topic {spec.name!r} not ensured", lambda: self._ensure_topic(spec))

    @abc.abstractmethod
    def _ensure_topic(self, spec: TopicSpec) -> bool:
        """``ensure_topic`` without a deadline of its own (the backend's timeouts still apply)."""

    @abc.abstractmethod
    def list_topics(self) -> set[str]: ...

    @abc.abstractmethod
    def partitions_for(self, topic: str) -> int:
        """Number of partitions of ``topic``; raises ``UnknownTopic``."""

    @abc.abstractmethod
    def grow_partitions(self, topic: str, partitions: int) -> bool:
        """Give ``topic`` ``partitions`` partitions if it has fewer (never fewer than it has);
        True if it grew. Keys hash over the new count from then on: records of one key written
        before and after may sit in different partitions. Raises ``UnknownTopic``."""

    @abc.abstractmethod
    def end_offsets(self, topic: str) -> dict[int, int]:
        """partition -> high watermark."""

    @abc.abstractmethod
    def beginning_offsets(self, topic: str) -> dict[int, int]:
        """partition -> first retained offset."""

    @abc.abstractmethod
    def committed_offsets(self, group_id: str, topic: str | None = None) -> dict[TopicPartition, int]:
        """The group's committed offsets, optionally for one topic."""

    @abc.abstractmethod
    def commit_offsets(self, group_id: str, topic: str, offsets: Mapping[int, int]) -> None:
        """Commit ``offsets`` (partition -> next offset) of ``topic`` for ``group_id`` without being
        one of its members: allowed only while the group has no live member (Kafka's rule for a
        commit from outside the group), :class:`GroupActive` otherwise."""

    @staticmethod
    def offsets_to_commit(topic: str, offsets: Mapping[int, int]) -> bool:
        """Whether :meth:`commit_offsets` has anything to commit; a negative offset is refused."""
        for partition, offset in offsets.items():
            if offset < 0:
                raise ValueError(f"cannot commit negative offset {offset} for {topic}/{partition}")
        return bool(offsets)

    @abc.abstractmethod
    def group_members(self, group_id: str) -> int:
        """How many live members ``group_id`` has (0 for an unknown or empty group)."""

    def lag(self, group_id: str, topic: str) -> dict[int, int]:
        """partition -> records not yet committed by the group (end - committed; end if never)."""
        committed = self.committed_offsets(group_id, topic)
        beginning = self.beginning_offsets(topic)
        return {
            partition: max(
                0, end - committed.get(TopicPartition(topic, partition), beginning.get(partition, 0))
            )
            for partition, end in self.end_offsets(topic).items()
        }

    @abc.abstractmethod
    def delete_topic(self, topic: str) -> None: ...

    @abc.abstractmethod
    def delete_group(self, group_id: str) -> None: ...

    @abc.abstractmethod
    def ping(self, timeout_s: float = 2.0) -> None:
        """Raise ``BusUnavailable`` unless the bus answers a metadata request in time."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Bus(abc.ABC):
    """Factory of producers, consumers and the admin for one bus. Built once per process."""

    @abc.abstractmethod
    def producer(self, client_id: str = "citybase") -> Producer:
        """A producer; callers share one per process (it is thread-safe)."""

    @abc.abstractmethod
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
        """A consumer subscribed to ``topics`` as a member of ``group_id``.

        Without a committed offset a partition starts at ``start``. With ``group_id=None`` the
        consumer belongs to no group, is assigned every partition of ``topics`` and cannot commit.
        With ``group_by`` the group hands out topics whole, in groups (every partition of every
        topic ``group_by`` maps to one name goes to one member); without it, Kafka's range
        assignment (partition i of each topic to the same member). Every member of a group must
        pass the same ``group_by``. ``fetch_bytes`` bounds what the consumer fetches ahead and
        holds per partition (None: the backend's default; the embedded bus reads only what is polled).
        """

    @abc.abstractmethod
    def admin(self) -> Admin: ...

    @abc.abstractmethod
    def close(self) -> None: ...


def wait_all(
    futures: Sequence[concurrent.futures.Future[RecordMetadata]], timeout_s: float
) -> list[RecordMetadata]:
    """Wait for every acknowledgement; raise ``BusUnavailable`` if any failed or timed out."""
    _done, pending = concurrent.futures.wait(futures, timeout=timeout_s)
    if pending:
        raise BusUnavailable(f"{len(pending)} of {len(futures)} records not acknowledged in {timeout_s}s")
    results = []
    for future in futures:
        error = future.exception()
        if error is not None:
            if isinstance(error, BusError):
                raise error
            raise BusUnavailable(str(error)) from error
        results.append(future.result())
    return results


def all_acknowledged(
    futures: Sequence[concurrent.futures.Future[RecordMetadata]],
) -> concurrent.futures.Future[None]:
    """One future for many: done when every one succeeded, failed at the first failure (as a
    ``BusError``: a cancelled or otherwise failed send becomes ``BusUnavailable``)."""
    done: concurrent.futures.Future[None] = concurrent.futures.Future()
    done.set_running_or_notify_cancel()  # settled by the sends alone; a waiter cannot cancel it
    remaining = [len(futures)]
    lock = threading.Lock()

    def settle(future: concurrent.futures.Future[RecordMetadata]) -> None:
        error: BaseException | None
        if future.cancelled():
            error = BusUnavailable("send cancelled")
        else:
            error = future.exception()
            if error is not None and not isinstance(error, BusError):
                error = BusUnavailable(str(error) or type(error).__name__)
        with lock:
            if done.done():
                return
            if error is not None:
                done.set_exception(error)
                return
            remaining[0] -= 1
            if remaining[0] == 0:
                done.set_result(None)

    if not futures:
        done.set_result(None)
    for future in futures:
        future.add_done_callback(settle)
    return done


def call_within(timeout_s: float, what: str, call: Callable[[], _T]) -> _T:
    """``call()`` on a thread of its own, waited for at most ``timeout_s``; after that
    ``BusUnavailable`` (``what`` says what did not happen), and the call finishes unobserved.

    For client calls whose own timeouts are per request and add up (connect, create, wait for
    leaders), when the caller needs one deadline for all of them.
    """
    outcome: concurrent.futures.Future[_T] = concurrent.futures.Future()

    def run() -> None:
        try:
            outcome.set_result(call())
        except BaseException as error:  # handed to the waiter, never lost in this thread
            outcome.set_exception(error)

    detached("citybase-bus-call", run)
    try:
        return outcome.result(timeout=timeout_s)
    except concurrent.futures.TimeoutError:
        raise BusUnavailable(f"{what} within {timeout_s:.1f}s") from None


def read_from_beginning(
    bus: Bus, topic: str, *, timeout_s: float = 30.0, client_id: str = "citybase-reader"
) -> Iterator[Message]:
    """Every record ``topic`` retains, from its beginning up to the end offsets seen on the way in.

    A reader outside any group (nothing is committed), the same on Kafka and the embedded bus:
    what a compacted topic still holds after compaction. ``BusUnavailable`` if the end is not
    reached within ``timeout_s``; ``UnknownTopic`` if the bus has no such topic.
    """
    # Both backends read a missing topic as an empty one; a reader that must tell "nothing
    # published" from "wrong bus" asks first.
    call_within(timeout_s, f"{topic} not found", lambda: bus.admin().partitions_for(topic))
    consumer = bus.consumer(None, [topic], start="earliest", client_id=client_id)
    try:
        consumer.seek_to_beginning()
        targets = consumer.end_offsets()
        deadline = time.monotonic() + timeout_s
        while not all(consumer.position(tp) >= end for tp, end in targets.items()):
            if time.monotonic() > deadline:
                raise BusUnavailable(f"{topic} not read to its end within {timeout_s:.1f}s")
            yield from consumer.poll(0.2, 1000)
    finally:
        consumer.close()
