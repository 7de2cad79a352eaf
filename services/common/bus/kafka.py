"""The bus on Apache Kafka, through kafka-python 3.x.

This is the backend deployments run, so it is tuned for what the platform promises rather than for
kafka-python's defaults:

- **Durability.** Ingest answers 202 only after ``send``'s future resolved, so the producer writes
  with ``acks=all`` and idempotence on (no duplicates or reordering on retry). Both are set
  explicitly and checked after construction: kafka-python silently drops idempotence when other
  settings conflict with it, and a silently weaker producer would make every 202 a lie.
- **Bounded waits.** Every call that talks to a broker has a deadline (see ``KafkaTuning``): a send
  waits at most ``max_block_ms`` for metadata or buffer space, a record that cannot be written fails
  its future after ``delivery_timeout_ms``, admin calls are bounded by the request timeout and
  ``ping`` by its own budget. A dead broker turns into ``BusUnavailable``, never a hung request.
- **No network in constructors on the caller's path.** kafka-python connects ("bootstraps") inside
  its constructors. The producer and admin client are therefore built on a background thread
  (``_Connection``): ``KafkaBus.producer()`` and ``admin()`` return at once, a service starts
  while Kafka is still down (``/readyz`` says so), and each caller waits only as long as it can.
- **Back-pressure.** kafka-python 3.x has no ``buffer_memory``: its record accumulator grows
  without limit while a broker is slow or gone. The producer here keeps its own byte budget
  (``KafkaTuning.buffer_memory``) over records sent but not yet acknowledged, and ``send`` raises
  ``BufferFull`` (HTTP 429 upstream) once the budget stays exhausted for ``max_block_ms``.
- **Topics are created on purpose.** Clients never auto-create topics (``allow_auto_create_topics``
  is off even though the broker allows it): a topic gets its partitions, retention and compaction
  from ``Admin.ensure_topic``, not from broker defaults because someone published first.

kafka-python 3.0.12 needs five workarounds, each explained where it is made and each with a test
that fails without it (tests/integration/test_kafka_backend.py, the last one
tests/faults/test_kafka_broker_crash.py):

- ``allow_auto_create_topics=False`` is ignored (``_NetClientTracker`` applies it);
- one record the broker refuses puts the idempotent producer into a fatal state for good
  (``KafkaBusProducer._delivery_failed`` replaces it);
- ``KafkaProducer.close(timeout)`` raises and closes nothing when its flush times out
  (``_close_producer`` forces it);
- a group join that completes as ``poll`` times out is lost, and the member silently drops out of
  the group (``_keep_pending_joins_alive``);
- after a broker outage longer than ``delivery_timeout_ms``, an idempotent producer whose sent
  batches expired drops its producer id and never asks for a new one: it sends nothing, and no
  record it holds ever succeeds or fails, until the process restarts (``_stuck_without_producer_id``
  makes the producer be replaced).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, OffsetAndMetadata, OffsetSpec
from kafka import TopicPartition as KafkaTopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor
from kafka.producer.transaction_manager import TransactionState

from services.common.background import detached
from services.common.bus.base import (
    Admin,
    BufferFull,
    Bus,
    BusError,
    BusUnavailable,
    Consumer,
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

_ClientT = TypeVar("_ClientT")
_T = TypeVar("_T")

# Brokers refuse sessions shorter than group.min.session.timeout.ms (6 s by default).
_MIN_SESSION_TIMEOUT_MS = 6_000
# Per-record bytes the wire format adds around key, value and headers (record header, varints,
# batch share). Only used to estimate buffer use; it need not be exact, only not zero.
_RECORD_OVERHEAD_BYTES = 24
# While publish() waits for buffer space it checks this often whether its own records, whose
# bytes it gives back itself, were acknowledged meanwhile.
_OWN_ACKS_POLL_S = 0.005
# How long a forced producer shutdown may take to fail its remaining records and stop its thread.
_FORCED_CLOSE_JOIN_S = 5.0
# How often a consumer without a group looks for partitions added to its topics, and for topics
# that did not exist yet (a coordinator does this for group members).
_PARTITION_RECHECK_S = 10.0
_MISSING_TOPIC_RECHECK_S = 1.0
# Errors that mean "the cluster did not answer", as opposed to "the cluster said no".
_UNAVAILABLE_ERRORS: tuple[type[BaseException], ...] = (
    kafka_errors.KafkaTimeoutError,
    kafka_errors.KafkaConnectionError,
    kafka_errors.NodeNotReadyError,
    kafka_errors.BrokerNotAvailableError,
    kafka_errors.RequestTimedOutError,
    kafka_errors.RetriableError,
    ConnectionError,
    TimeoutError,
)


@dataclass(frozen=True, slots=True)
class KafkaTuning:
    """Timeouts and sizes of the Kafka clients. The defaults are the production settings."""

    connect_timeout_ms: int = 10_000
    """How long one attempt to reach the cluster (kafka-python's bootstrap) may take."""
    request_timeout_ms: int = 15_000
    """How long the clients wait for any single broker response."""
    max_block_ms: int = 1_000
    """How long ``send`` may block for topic metadata or buffer space before it gives up. Small,
    because the caller is usually an HTTP request that should get a 429 or 503 quickly."""
    delivery_timeout_ms: int = 30_000
    """Upper bound from ``send`` to the record's future failing when it cannot be written, retries
    included. Must be at least ``linger_ms + request_timeout_ms`` (kafka-python checks)."""
    linger_ms: int = 5
    """Wait this long for more records before sending a batch: larger batches, better lz4 ratio."""
    batch_size: int = 256 * 1024
    buffer_memory: int = 32 * 1024 * 1024
    """Bytes of records sent but not yet acknowledged, after which ``send`` raises ``BufferFull``."""
    compression_type: str = "lz4"
    """lz4: cheap on the producer's CPU (pure-Python client) and well supported by every consumer."""
    replication_factor: int = -1
    """-1 lets the broker's ``default.replication.factor`` decide, so that production clusters
    replicate (3) while a one-node dev broker still works (1)."""
    max_poll_interval_ms: int = 120_000
    """A consumer that does not poll for this long is considered stuck and leaves the group."""
    topic_ready_timeout_ms: int = 10_000
    """How long ``ensure_topic`` / ``delete_topic`` wait for the change to show in metadata."""

    def __post_init__(self) -> None:
        # Checked here, not when the producer is built in the background, so that a wrong setting
        # fails where it is written instead of as "cannot connect" on the first send.
        if self.delivery_timeout_ms < self.linger_ms + self.request_timeout_ms:
            raise ValueError("delivery_timeout_ms must be at least linger_ms + request_timeout_ms")
        if min(self.connect_timeout_ms, self.request_timeout_ms, self.buffer_memory, self.batch_size) <= 0:
            raise ValueError("timeouts and sizes must be positive")
        if self.max_block_ms < 0 or self.linger_ms < 0:
            raise ValueError("max_block_ms and linger_ms must not be negative")


def _unavailable(exc: BaseException, what: str) -> BusUnavailable:
    error = BusUnavailable(f"{what}: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


def _metadata_patiently(call: Callable[[], _T]) -> _T:
    """``call`` (a send, a partition lookup), asked once more if it timed out waiting for metadata.

    The first metadata of a topic new to this producer can take longer than ``max_block_ms`` on
    a loaded broker while the cluster keeps answering for other topics; one more wait tells a
    slow answer from a missing topic before the error says the topic does not exist.
    """
    try:
        return call()
    except kafka_errors.KafkaTimeoutError:
        return call()


def _translate(exc: BaseException, what: str) -> BusError:
    """The bus error for a kafka-python (or socket) error, so callers see only ``BusError``s."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, kafka_errors.UnknownTopicOrPartitionError):
        error: BusError = UnknownTopic(f"{what}: {exc}")
    elif isinstance(exc, _UNAVAILABLE_ERRORS):
        return _unavailable(exc, what)
    else:
        error = BusError(f"{what}: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def _translated(what: str) -> Iterator[None]:
    try:
        yield
    except BusError:
        raise
    except (kafka_errors.KafkaError, OSError) as exc:
        raise _translate(exc, what) from exc


def _to_kafka(tp: TopicPartition) -> Any:
    return KafkaTopicPartition(tp.topic, tp.partition)


def _from_kafka(tp: Any) -> TopicPartition:
    return TopicPartition(tp.topic, tp.partition)


class _NetClientTracker:
    """Sees the network clients a kafka-python constructor creates, to fix and to clean them up.

    Used through kafka-python's documented ``kafka_client`` hook, for two reasons:

    - kafka-python bootstraps inside its constructors. When that times out (broker down) the
      half-built object is lost to us, but its IO thread and sockets stay open; the tracker keeps
      a handle on them so that they can be closed.
    - kafka-python 3.0.12 does not pass ``allow_auto_create_topics`` on to the cluster metadata
      that builds the MetadataRequests, so the option is silently ignored and a broker with
      ``auto.create.topics.enable=true`` creates any topic a client merely names. The tracker
      applies the option where kafka-python forgot to.
    """

    def __init__(self, factory: Callable[..., Any]) -> None:
        self._factory = factory
        self._clients: list[Any] = []

    def __call__(self, **configs: Any) -> Any:
        client = self._factory(**configs)
        self._clients.append(client)
        if "allow_auto_create_topics" in configs:
            client.cluster.config["allow_auto_create_topics"] = configs["allow_auto_create_topics"]
        return client

    def close_all(self) -> None:
        for client in self._clients:
            try:
                client.close()
            except Exception:  # best effort: we are already handling the original failure
                log.debug("closing a half-built Kafka network client failed", exc_info=True)
        self._clients.clear()


def _build_tracked(client_class: Any, **configs: Any) -> Any:
    """``client_class(**configs)``, closing its network client if the constructor fails."""
    tracker = _NetClientTracker(client_class.DEFAULT_CONFIG["kafka_client"])
    try:
        return client_class(**configs, kafka_client=tracker)
    except BaseException:
        tracker.close_all()
        raise


class _Connection(Generic[_ClientT]):
    """One kafka-python client, built on a background thread so that callers wait a bounded time.

    At most one build runs at a time; callers that arrive during a build wait on it (each with its
    own timeout) instead of starting another. A failed build is retried by the next caller. A build
    that finishes after ``close`` is discarded.
    """

    def __init__(self, name: str, build: Callable[[], _ClientT], discard: Callable[[_ClientT], None]) -> None:
        self._name = name
        self._build = build
        self._discard = discard
        self._lock = threading.Lock()
        self._client: _ClientT | None = None
        self._attempt: concurrent.futures.Future[_ClientT] | None = None
        self._closed = False

    def start(self) -> concurrent.futures.Future[_ClientT]:
        """The running (or a new) build; an already built client comes back as a done future."""
        with self._lock:
            if self._closed:
                raise BusError(f"Kafka {self._name} is closed")
            if self._client is not None:
                done: concurrent.futures.Future[_ClientT] = concurrent.futures.Future()
                done.set_result(self._client)
                return done
            if self._attempt is None or self._attempt.done():
                attempt: concurrent.futures.Future[_ClientT] = concurrent.futures.Future()
                self._attempt = attempt
                detached(f"citybase-kafka-{self._name}", self._run, attempt)
            return self._attempt

    def get(self, timeout_s: float) -> _ClientT:
        """The client, waiting at most ``timeout_s`` for it to connect; else ``BusUnavailable``."""
        client = self._client
        if client is not None:
            return client
        attempt = self.start()
        try:
            return attempt.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise BusUnavailable(f"Kafka {self._name} not connected within {timeout_s:.1f}s") from None
        except BusError:
            raise
        except Exception as exc:
            raise _translate(exc, f"Kafka {self._name} could not connect") from exc

    def peek(self) -> _ClientT | None:
        """The client if it is built, without waiting or connecting."""
        return self._client

    def replace(self, client: _ClientT) -> None:
        """Drop ``client`` (if it is still the current one); the next ``get`` builds a new one."""
        with self._lock:
            if self._client is not client:
                return
            self._client = None
        # Closed on its own thread: this may be called from the client's own callbacks.
        detached(f"citybase-kafka-{self._name}-discard", self._discard_quietly, client)

    def _discard_quietly(self, client: _ClientT) -> None:
        try:
            self._discard(client)
        except Exception:  # nobody waits for a discarded client; a failure to close it is only logged
            log.warning("closing a discarded Kafka %s failed", self._name, exc_info=True)

    def detach(self) -> _ClientT | None:
        """Close this connection and hand the client (if built) to the caller to close."""
        with self._lock:
            self._closed = True
            client, self._client = self._client, None
        return client

    def _run(self, attempt: concurrent.futures.Future[_ClientT]) -> None:
        try:
            client = self._build()
        except BaseException as exc:  # handed to the waiting callers, never lost in this thread
            attempt.set_exception(exc)
            return
        with self._lock:
            closed = self._closed
            if not closed:
                self._client = client
        if closed:
            self._discard_quietly(client)
            attempt.set_exception(BusError(f"Kafka {self._name} was closed while connecting"))
        else:
            attempt.set_result(client)


class KafkaBusProducer(Producer):
    """The bus's one shared, thread-safe producer (a ``KafkaProducer`` plus a byte budget)."""

    def __init__(self, servers: Sequence[str], client_id: str, tuning: KafkaTuning) -> None:
        self._servers = list(servers)
        self._client_id = client_id
        self._tuning = tuning
        self._max_block_s = tuning.max_block_ms / 1000
        self._buffer_limit = tuning.buffer_memory
        self._pending_bytes = 0
        self._space_waiters = 0
        self._budget_lock = threading.Lock()
        self._space = threading.Condition(self._budget_lock)
        self._closed = False
        self._connection: _Connection[Any] = _Connection(
            "producer", self._build, lambda producer: _close_producer(producer, 0)
        )
        # Start connecting now, so that the first request does not pay for the bootstrap.
        self._connection.start()

    def _build(self) -> Any:
        tuning = self._tuning
        producer = _build_tracked(
            KafkaProducer,
            bootstrap_servers=self._servers,
            client_id=self._client_id,
            # acks=all + idempotence: a 202 promises the record survives a broker failure, and a
            # retried batch must neither duplicate nor reorder records of a key.
            acks="all",
            enable_idempotence=True,
            compression_type=tuning.compression_type,
            linger_ms=tuning.linger_ms,
            batch_size=tuning.batch_size,
            max_block_ms=tuning.max_block_ms,
            delivery_timeout_ms=tuning.delivery_timeout_ms,
            request_timeout_ms=tuning.request_timeout_ms,
            bootstrap_timeout_ms=tuning.connect_timeout_ms,
            allow_auto_create_topics=False,
        )
        config = producer.config
        if config["acks"] != -1 or not config["enable_idempotence"] or config["retries"] == 0:
            _close_producer(producer, 0)
            raise BusError(
                "the Kafka producer is not durable (acks=all, idempotence, retries): "
                f"acks={config['acks']!r} enable_idempotence={config['enable_idempotence']!r} "
                f"retries={config['retries']!r}"
            )
        return producer

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def kafka_config(self) -> Mapping[str, Any]:
        """The effective configuration of the underlying ``KafkaProducer`` (connects if needed)."""
        return dict(self._connection.get(self._tuning.connect_timeout_ms / 1000).config)

    def send(self, record: OutgoingRecord) -> concurrent.futures.Future[RecordMetadata]:
        producer = self._ready_producer()
        size = _record_size(record)
        self._reserve(size)
        kafka_future = self._hand_over(producer, record, size)
        future: concurrent.futures.Future[RecordMetadata] = concurrent.futures.Future()
        # A record handed to Kafka cannot be taken back, so the future cannot be cancelled (and a
        # cancelled future would make set_result raise inside kafka-python's sender thread).
        future.set_running_or_notify_cancel()
        kafka_future.add_both(_Delivery(self, producer, size, future))
        return future

    def publish(self, records: Sequence[OutgoingRecord], timeout_s: float = 30.0) -> list[RecordMetadata]:
        """Send ``records`` and wait (at most ``timeout_s``) until every one is acknowledged.

        Same contract as the generic ``Producer.publish``, built for the ingest hot path, where
        per-record objects cost more than the sending (allocations feed the garbage collector):
        it waits on kafka-python's own futures, not on one ``concurrent.futures.Future`` each; it
        frees the buffer bytes of its records itself as it sees them acknowledged, instead of a
        callback per record (``_PublishedRecords``); and it does not ``flush``, which would cut
        short the batches of every other thread using the shared producer (``linger_ms`` already
        bounds how long a record waits for its batch).
        """
        deadline = time.monotonic() + timeout_s
        producer = self._ready_producer()
        published = _PublishedRecords(self, producer)
        try:
            for record in records:
                size = _record_size(record)
                self._reserve(size, published.release_settled)
                published.add(self._hand_over(producer, record, size), size)
            return published.collect(deadline, timeout_s)
        finally:
            published.hand_off()

    def send_batch(self, records: Sequence[OutgoingRecord]) -> concurrent.futures.Future[None]:
        """Queue ``records``; one future, done once every record is acknowledged, failed at the
        first that is not.

        The ingest hot path: ``send`` builds a ``concurrent.futures.Future`` per record (each with
        its own ``Condition``), which cost a tenth of ingest's CPU per record. Here each record gets
        one small slotted callback on kafka-python's own future, which gives its buffer bytes back
        and counts it down; the batch has one future. Unlike ``publish`` it does not block the
        calling thread until the acknowledgements arrive.
        """
        producer = self._ready_producer()
        acks = _BatchAcks(self, producer, len(records))
        partition_counts: dict[str, int] = {}
        try:
            for record in records:
                partition = record.partition
                if partition is None and record.key is not None:
                    # The partition kafka-python's default partitioner would pick, in a third of
                    # its time (see ``murmur2``); the topic's partition count asked once per batch.
                    count = partition_counts.get(record.topic)
                    if count is None:
                        count = partition_counts[record.topic] = self._partition_count(producer, record)
                    partition = (murmur2(record.key) & 0x7FFFFFFF) % count
                size = _record_size(record)
                self._reserve(size)
                kafka_future = self._hand_over(producer, record, size, partition)
                kafka_future.add_both(_BatchDelivery(acks, size))
        except BaseException as error:
            # Records already handed over stay in flight and give their bytes back as they settle;
            # the batch as a whole has failed.
            acks.abandon(error)
            raise
        return acks.done

    def _ready_producer(self) -> Any:
        if self._closed:
            raise BusError("the Kafka producer is closed")
        client = self._connection.get(self._max_block_s)
        if _stuck_without_producer_id(client):
            log.warning("Kafka producer lost its producer id and will not get another; replacing it")
            self._connection.replace(client)
            client = self._connection.get(self._max_block_s)
        return client

    def _hand_over(
        self, producer: Any, record: OutgoingRecord, size: int, partition: int | None = None
    ) -> Any:
        """Give ``record`` (its ``size`` bytes already reserved) to kafka-python, on ``partition``
        if given (else its own or the key's); its future."""

        def send() -> Any:
            return producer.send(
                record.topic,
                value=record.value,
                key=record.key,
                headers=list(record.headers),
                partition=record.partition if partition is None else partition,
                timestamp_ms=record.timestamp_ms,
            )

        try:
            return _metadata_patiently(send)
        except BaseException as exc:
            self._release(size)
            raise self._send_error(producer, record, exc) from exc

    def _partition_count(self, producer: Any, record: OutgoingRecord) -> int:
        """Partitions of ``record``'s topic, waiting at most twice ``max_block_ms`` for its metadata."""
        try:
            return len(_metadata_patiently(lambda: producer.partitions_for(record.topic)))
        except Exception as exc:
            raise self._send_error(producer, record, exc) from exc

    def _delivery_failed(self, client: Any) -> None:
        """Replace ``client`` if the failure left it unable to send anything ever again.

        kafka-python 3.0.12 puts an idempotent, non-transactional producer into its fatal state on
        *any* non-retriable record error (a timestamp out of the topic's range, a record above
        max.message.bytes, a policy violation), although its own comment and the Java client only
        fail the batch. Every later send of that producer then fails. One bad record must not
        take the shared producer of the whole process down, so a fatal producer is replaced by a
        new one (with a new producer id; idempotence is per producer id, and every record of the
        old one has failed, so nothing can be duplicated).
        """
        manager = getattr(client, "_transaction_manager", None)
        if manager is not None and manager.has_fatal_error():
            log.warning("Kafka producer hit a fatal error (%s); replacing it", manager.last_error)
            self._connection.replace(client)

    def _send_error(self, producer: Any, record: OutgoingRecord, exc: BaseException) -> BaseException:
        if isinstance(exc, kafka_errors.KafkaTimeoutError):
            # send() only times out waiting for the topic's metadata. If the cluster answered a
            # metadata request meanwhile, it answered that the topic does not exist.
            if self._cluster_answered_recently(producer):
                return UnknownTopic(f"topic {record.topic!r} does not exist")
            return _unavailable(exc, f"no metadata for {record.topic!r} within {self._max_block_s:.1f}s")
        if isinstance(exc, kafka_errors.IllegalStateError):
            return BusError(f"the Kafka producer is closed: {exc}")
        if isinstance(exc, kafka_errors.KafkaError | OSError):
            return _translate(exc, f"cannot send to {record.topic!r}")
        if isinstance(exc, ValueError) and record.partition is not None and record.partition >= 0:
            return BusError(f"topic {record.topic!r} has no partition {record.partition}")
        return exc  # misuse (a bad topic name, a str value): the caller's bug, raised as is

    def _cluster_answered_recently(self, producer: Any) -> bool:
        # kafka-python has no public "last successful metadata refresh"; the cluster object keeps it
        # (monotonic ms). Without it we cannot tell a missing topic from a silent cluster and say
        # BusUnavailable, the retryable answer.
        last_ms = getattr(getattr(producer, "_metadata", None), "_last_successful_refresh_ms", 0)
        return bool(last_ms) and time.monotonic() * 1000 - last_ms < self._tuning.max_block_ms + 1_000

    def _reserve(self, size: int, release_own: Callable[[], None] | None = None) -> None:
        """Take ``size`` bytes of the buffer budget, waiting up to ``max_block_ms`` for acks.

        ``release_own`` frees the bytes of the caller's own acknowledged records (``publish``
        settles those itself, nobody notifies for them), so waiting polls it in short slices.
        """
        with self._budget_lock:
            if self._fits(size):
                self._pending_bytes += size
                return
        deadline = time.monotonic() + self._max_block_s
        while True:
            if release_own is not None:
                release_own()
            with self._space:
                if self._fits(size):
                    self._pending_bytes += size
                    return
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise BufferFull(
                        f"producer buffer full: {self._pending_bytes} of {self._buffer_limit} bytes "
                        f"await acknowledgement (waited {self._max_block_s:.1f}s)"
                    )
                self._space_waiters += 1
                try:
                    self._space.wait(remaining if release_own is None else min(remaining, _OWN_ACKS_POLL_S))
                finally:
                    self._space_waiters -= 1

    def _fits(self, size: int) -> bool:
        # A record larger than the whole budget may go alone, like a batch larger than
        # batch_size does; refusing it forever would be worse than a brief overshoot.
        return self._pending_bytes + size <= self._buffer_limit or self._pending_bytes == 0

    def _release(self, size: int) -> None:
        with self._budget_lock:
            self._pending_bytes -= size
            if self._space_waiters:
                self._space.notify_all()

    def flush(self, timeout_s: float | None = None) -> None:
        producer = self._connection.peek()
        if producer is None:  # never connected, so nothing was queued
            return
        if timeout_s is None:
            timeout_s = self._tuning.delivery_timeout_ms / 1000
        try:
            producer.flush(timeout=timeout_s)
        except kafka_errors.KafkaTimeoutError as exc:
            raise _unavailable(exc, f"records not flushed within {timeout_s:.1f}s") from exc

    def buffer_fill(self) -> float:
        """Bytes sent but not yet acknowledged (or failed), over ``buffer_memory``.

        Counted by this wrapper, not read from kafka-python's accumulator: the accumulator has no
        memory limit to compare against, and its batches are private. Sizes are uncompressed
        (key + value + headers + a fixed per-record overhead), as Java's buffer.memory counts them.
        """
        return min(1.0, self._pending_bytes / self._buffer_limit)

    def close(self, timeout_s: float = 10.0) -> None:
        """Flush for up to ``timeout_s``, then stop; records still queued then fail their futures."""
        self._closed = True
        producer = self._connection.detach()
        if producer is not None:
            _close_producer(producer, timeout_s)


class _PublishedRecords:
    """The records of one ``publish`` call: their kafka-python futures and the bytes they hold.

    Bytes are given back in order, as far as the records are settled, by the publishing thread
    itself: while it waits for buffer space, while it collects the acknowledgements, and at the
    end. Records still in flight when ``publish`` gives up (an error, a timeout, ``BufferFull``)
    are handed a ``_Delivery`` each, so that they give their bytes back when they settle.
    """

    __slots__ = ("client", "futures", "producer", "released", "sizes")

    def __init__(self, producer: KafkaBusProducer, client: Any) -> None:
        self.producer = producer
        self.client = client
        self.futures: list[Any] = []
        self.sizes: list[int] = []
        self.released = 0  # futures[:released] have given their bytes back

    def add(self, future: Any, size: int) -> None:
        self.futures.append(future)
        self.sizes.append(size)

    def release_settled(self) -> None:
        futures, index, freed = self.futures, self.released, 0
        while index < len(futures) and futures[index].is_done:
            freed += self.sizes[index]
            index += 1
        if index != self.released:
            self.released = index
            self.producer._release(freed)

    def collect(self, deadline: float, timeout_s: float) -> list[RecordMetadata]:
        """Every record's metadata, in order; ``BusUnavailable`` if one failed or is late."""
        acknowledged: list[RecordMetadata] = []
        total = len(self.futures)
        for index, future in enumerate(self.futures):
            if not future.is_done:
                self.release_settled()  # before blocking, give back what is already settled
                # Outcome read below from the future itself, whatever get() raises.
                with contextlib.suppress(Exception):
                    future.get(timeout=max(0.0, deadline - time.monotonic()))
                if not future.is_done:
                    raise BusUnavailable(
                        f"{total - index} of {total} records not acknowledged in {timeout_s}s"
                    )
            error = future.exception
            if error is not None:
                self.producer._delivery_failed(self.client)
                raise _unavailable(error, "record not acknowledged") from error
            acknowledged.append(_record_metadata(future.value))
        return acknowledged

    def hand_off(self) -> None:
        """Give back what is settled; leave the rest to give its bytes back when it settles."""
        self.release_settled()
        for future, size in zip(self.futures[self.released :], self.sizes[self.released :], strict=True):
            future.add_both(_Delivery(self.producer, self.client, size, None))
        self.released = len(self.futures)


class _Delivery:
    """Frees one record's buffer bytes when kafka-python settles it, and settles its future if any.

    One small object registered once (``add_both``) rather than a callback and an errback with
    bound arguments: this runs per record, and allocations there show in throughput.
    """

    __slots__ = ("client", "future", "producer", "size")

    def __init__(
        self,
        producer: KafkaBusProducer,
        client: Any,
        size: int,
        future: concurrent.futures.Future[RecordMetadata] | None,
    ) -> None:
        self.producer = producer
        self.client = client
        self.size = size
        self.future = future

    def __call__(self, outcome: Any) -> None:
        self.producer._release(self.size)
        failed = isinstance(outcome, BaseException)
        if failed:
            self.producer._delivery_failed(self.client)
        if self.future is None:
            return
        if failed:
            # Every delivery failure is "not written": the caller may retry or answer 503.
            self.future.set_exception(_unavailable(outcome, "record not acknowledged"))
        else:
            self.future.set_result(_record_metadata(outcome))


class _BatchAcks:
    """The outcome of one ``send_batch``: counts the acknowledgements down to its one future."""

    __slots__ = ("client", "done", "lock", "producer", "remaining")

    def __init__(self, producer: KafkaBusProducer, client: Any, count: int) -> None:
        self.producer = producer
        self.client = client
        self.remaining = count
        self.lock = threading.Lock()
        self.done: concurrent.futures.Future[None] = concurrent.futures.Future()
        # Records handed to Kafka cannot be taken back: a waiter that gives up cannot cancel this.
        self.done.set_running_or_notify_cancel()
        if count == 0:
            self.done.set_result(None)

    def settle(self, size: int, outcome: Any) -> None:
        self.producer._release(size)
        if isinstance(outcome, BaseException):
            self.producer._delivery_failed(self.client)
            self.abandon(_unavailable(outcome, "record not acknowledged"))
            return
        with self.lock:
            self.remaining -= 1
            if self.remaining == 0 and not self.done.done():
                self.done.set_result(None)

    def abandon(self, error: BaseException) -> None:
        with self.lock:
            if not self.done.done():
                self.done.set_exception(error)


class _BatchDelivery:
    """One record of a ``send_batch``: settles it on the batch when kafka-python settles it."""

    __slots__ = ("acks", "size")

    def __init__(self, acks: _BatchAcks, size: int) -> None:
        self.acks = acks
        self.size = size

    def __call__(self, outcome: Any) -> None:
        self.acks.settle(self.size, outcome)


def _stuck_without_producer_id(client: Any) -> bool:
    """Whether ``client`` is an idempotent producer that dropped its producer id for good.

    When batches it had already sent expire (a broker gone for longer than the delivery timeout),
    kafka-python 3.0.12 resets the producer id, as the Java client does, but leaves the
    transaction manager READY where Java moves it back to UNINITIALIZED: the sender then waits
    for a producer id that it never requests, sends nothing, and expires nothing. The records
    it holds fail when it is replaced (their batches were answered 503 already); the new
    producer has a new producer id, so nothing it sends can be taken for a duplicate.
    """
    manager = getattr(client, "_transaction_manager", None)
    if manager is None or manager.is_transactional():
        return False
    return not manager.has_producer_id() and manager._current_state == TransactionState.READY


def _record_metadata(metadata: Any) -> RecordMetadata:
    return RecordMetadata(metadata.topic, metadata.partition, metadata.offset, metadata.timestamp)


def _close_producer(producer: Any, timeout_s: float) -> None:
    """Close ``producer`` within about ``timeout_s``; records it could not deliver by then fail.

    kafka-python's ``close(timeout)`` starts with ``flush(timeout)`` and, when that times out
    (a broker down, a producer in its fatal state), raises without closing anything: the sender
    thread and its sockets live on. So on a timeout the sender is forced down, which fails the
    futures of what is left, and the now empty producer is closed again.
    """
    try:
        producer.close(timeout=timeout_s)
        return
    except kafka_errors.KafkaTimeoutError:
        log.warning("Kafka producer not flushed within %.1fs; failing what it still holds", timeout_s)
    sender = getattr(producer, "_sender", None)
    if sender is not None:
        sender.force_close()
        sender.join(_FORCED_CLOSE_JOIN_S)
    try:
        producer.close(timeout=0)
    except kafka_errors.KafkaTimeoutError:
        log.error("Kafka producer did not stop; its thread is left to the process exit")


_MURMUR2_M = 0x5BD1E995
_MURMUR2_SEED = 0x9747B28C
_UINT32 = 0xFFFFFFFF
_WORDS: dict[int, struct.Struct] = {}


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 of a key (``Utils.murmur2`` of the Java client; kafka-python's
    ``DefaultPartitioner`` hashes with the same), as an unsigned 32-bit int.

    The same function as ``kafka.partitioner.default.murmur2``, written for CPython: the 4-byte
    words unpacked at once and no redundant masking, which makes it three times faster. At
    ingest's rate the partitioner was a tenth of the CPU of a record; placement is unchanged
    (tests compare the two on arbitrary keys).
    """
    length = len(data)
    h = _MURMUR2_SEED ^ length
    words = length >> 2
    unpack = _WORDS.get(words)
    if unpack is None:
        unpack = _WORDS.setdefault(words, struct.Struct(f"<{words}I"))
    m = _MURMUR2_M
    for k in unpack.unpack_from(data):
        k = (k * m) & _UINT32
        k ^= k >> 24
        h = ((h * m) & _UINT32) ^ ((k * m) & _UINT32)
    tail = length & 3
    if tail:
        rest = length & ~3
        if tail == 3:
            h ^= data[rest + 2] << 16
        if tail >= 2:
            h ^= data[rest + 1] << 8
        h = ((h ^ data[rest]) * m) & _UINT32
    h ^= h >> 13
    h = (h * m) & _UINT32
    return h ^ (h >> 15)


def _record_size(record: OutgoingRecord) -> int:
    size = _RECORD_OVERHEAD_BYTES
    if record.key is not None:
        size += len(record.key)
    if record.value is not None:
        size += len(record.value)
    for name, value in record.headers:
        size += len(name) + len(value)
    return size


def _keep_pending_joins_alive(consumer: Any) -> None:
    """Make a group member finish a join that completes just as a ``poll`` times out.

    kafka-python 3.0.12 drives JoinGroup/SyncGroup as a task that outlives a timed-out poll, and
    the next poll picks it up again only ``while need_rejoin()``. The group leader, however, makes
    ``need_rejoin()`` false while the task is still running (computing the assignment updates the
    snapshot it compares), so a poll that times out between the assignment and the SyncGroup
    answer leaves the finished task unread for good: the member never takes its partitions, never
    heartbeats again, is evicted after the session timeout and never rejoins. It happens whenever
    a rebalance outlasts the poll timeout (any join that waits for a second member), about one
    group start in three in the contract suite.

    The Java client loops on ``rejoinNeededOrPending()``; this gives the coordinator the same
    rule (only the join loop and ``poll`` ask). A join task finished while nobody waited is then
    replaced by a fresh JoinGroup (one more rebalance round) instead of being lost.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    if coordinator is None or not hasattr(coordinator, "_join_task"):
        return  # kafka-python changed: nothing to fix here, or not this way
    need_rejoin = coordinator.need_rejoin

    def need_rejoin_or_pending() -> bool:
        return bool(need_rejoin()) or coordinator._join_task is not None

    coordinator.need_rejoin = need_rejoin_or_pending


class KafkaBusConsumer(Consumer):
    """A ``KafkaConsumer`` that never auto-commits, in a group or on explicitly assigned partitions.

    Without a group there is no coordinator to notice new partitions, so the consumer looks them
    up itself (through the admin client) when created and then every few seconds while polling:
    a topic created, or grown, after the consumer was made is read too, as on the embedded bus.
    """

    def __init__(
        self,
        consumer: Any,
        group_id: str | None,
        tuning: KafkaTuning,
        *,
        standalone_topics: Sequence[str] = (),
        partitions_of: Callable[[str], list[int]] | None = None,
    ) -> None:
        self._consumer = consumer
        self._group_id = group_id
        self._timeout_ms = tuning.request_timeout_ms
        self._standalone_topics = list(standalone_topics)
        self._partitions_of = partitions_of
        self._next_assignment_check = 0.0
        self._closed = False
        if group_id is None:
            self._refresh_assignment()

    def _refresh_assignment(self) -> None:
        if self._partitions_of is None or not self._standalone_topics:
            return
        wanted: list[Any] = []
        missing = False
        for topic in self._standalone_topics:
            try:
                partitions = self._partitions_of(topic)
            except UnknownTopic:
                missing = True
                continue
            wanted.extend(KafkaTopicPartition(topic, p) for p in partitions)
        if set(wanted) != self._consumer.assignment():
            # Positions of partitions that stay assigned are kept by kafka-python.
            if wanted:
                self._consumer.assign(wanted)
            else:
                self._consumer.unsubscribe()
        # A missing topic is looked for again soon; known ones only for added partitions.
        self._next_assignment_check = time.monotonic() + (
            _MISSING_TOPIC_RECHECK_S if missing else _PARTITION_RECHECK_S
        )

    @property
    def kafka_consumer(self) -> Any:
        """The underlying ``KafkaConsumer``, for Kafka-specific inspection (tests, metrics)."""
        return self._consumer

    def poll(self, timeout_s: float = 1.0, max_records: int = 500) -> list[Message]:
        if max_records < 1:
            raise ValueError("max_records must be >= 1")
        if self._closed:
            raise BusError("the consumer is closed")
        if self._group_id is None and time.monotonic() >= self._next_assignment_check:
            try:
                self._refresh_assignment()
            except BusError:  # Kafka unreachable, or the bus closed: keep reading what is assigned
                log.warning("cannot look up the partitions of %s; retrying", self._standalone_topics)
                self._next_assignment_check = time.monotonic() + _MISSING_TOPIC_RECHECK_S
        if not self._consumer.subscription() and not self._consumer.assignment():
            # Nothing to read (a groupless consumer of no topics); kafka-python would raise.
            time.sleep(timeout_s)
            return []
        with _translated("poll failed"):
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        # kafka-python returns records grouped per partition, each group in offset order.
        # Positional: the hot path of every consumer (Message's fields in their order).
        return [
            Message(
                record.topic,
                record.partition,
                record.offset,
                record.key,
                record.value,
                tuple(record.headers or ()),
                record.timestamp,
            )
            for records in batches.values()
            for record in records
        ]

    def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        if self._group_id is None:
            raise BusError("a consumer without a group cannot commit offsets")
        for tp, offset in (offsets or {}).items():
            if offset < 0:
                raise ValueError(f"cannot commit negative offset {offset} for {tp}")
        # leader_epoch -1: "unknown", so the broker does not fence the commit on epoch checks.
        kafka_offsets = (
            None
            if offsets is None
            else {_to_kafka(tp): OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        )
        with _translated(f"commit for group {self._group_id!r} failed"):
            self._consumer.commit(offsets=kafka_offsets, timeout_ms=self._timeout_ms)

    def assignment(self) -> set[TopicPartition]:
        return {_from_kafka(tp) for tp in self._consumer.assignment()}

    def position(self, tp: TopicPartition) -> int:
        with _translated(f"no position for {tp}"):
            position = self._consumer.position(_to_kafka(tp), timeout_ms=self._timeout_ms)
        if position is None:
            raise BusUnavailable(f"position of {tp} not known within {self._timeout_ms} ms")
        return int(position)

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group_id is None:
            return None
        with _translated(f"committed offset of {tp} unavailable"):
            offset = self._consumer.committed(_to_kafka(tp), timeout_ms=self._timeout_ms)
        return None if offset is None or offset < 0 else int(offset)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        (partition,) = self._partitions([tp])
        self._consumer.seek(partition, offset)

    def _partitions(self, tps: Iterable[TopicPartition] | None) -> list[Any]:
        if tps is None:
            return list(self._consumer.assignment())
        partitions = [_to_kafka(tp) for tp in tps]
        assigned = self._consumer.assignment()
        missing = [tp for tp in partitions if tp not in assigned]
        if missing:
            raise BusError(f"partitions not assigned to this consumer: {sorted(missing)}")
        return partitions

    def seek_to_beginning(self, tps: Iterable[TopicPartition] | None = None) -> None:
        partitions = self._partitions(tps)
        if partitions:
            self._consumer.seek_to_beginning(*partitions)

    def seek_to_end(self, tps: Iterable[TopicPartition] | None = None) -> None:
        partitions = self._partitions(tps)
        if partitions:
            self._consumer.seek_to_end(*partitions)

    def seek_to_timestamp(self, timestamp_ms: int, tps: Iterable[TopicPartition] | None = None) -> None:
        partitions = self._partitions(tps)
        if not partitions:
            return
        with _translated(f"cannot seek to timestamp {timestamp_ms}"):
            found = self._consumer.offsets_for_times(
                {tp: timestamp_ms for tp in partitions}, timeout_ms=self._timeout_ms
            )
            # No record at or after the timestamp: the position is the end, where the next record
            # written (necessarily later) will land. Resolved now, so position() is exact at once.
            past_end = [tp for tp in partitions if found.get(tp) is None]
            ends = self._consumer.end_offsets(past_end, timeout_ms=self._timeout_ms) if past_end else {}
        for tp in partitions:
            hit = found.get(tp)
            self._consumer.seek(tp, hit.offset if hit is not None else ends[tp])

    def end_offsets(self, tps: Iterable[TopicPartition] | None = None) -> dict[TopicPartition, int]:
        partitions = [_to_kafka(tp) for tp in tps] if tps is not None else list(self._consumer.assignment())
        if not partitions:
            return {}
        with _translated("end offsets unavailable"):
            ends = self._consumer.end_offsets(partitions, timeout_ms=self._timeout_ms)
        return {_from_kafka(tp): int(offset) for tp, offset in ends.items()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # autocommit=False: the interface promises that closing commits nothing; only what the
        # caller committed after doing its work counts.
        self._consumer.close(autocommit=False, timeout_ms=self._timeout_ms)


class KafkaBusAdmin(Admin):
    """Topic, offset and group administration through one ``KafkaAdminClient``."""

    def __init__(self, servers: Sequence[str], client_id: str, tuning: KafkaTuning) -> None:
        self._servers = list(servers)
        self._client_id = client_id
        self._tuning = tuning
        self._connection: _Connection[Any] = _Connection("admin", self._build, lambda client: client.close())
        self._ping_lock = threading.Lock()
        self._ping_attempt: concurrent.futures.Future[None] | None = None
        self._closed = False
        self._connection.start()

    def _build(self) -> Any:
        return _build_tracked(
            KafkaAdminClient,
            bootstrap_servers=self._servers,
            client_id=f"{self._client_id}-admin",
            request_timeout_ms=self._tuning.request_timeout_ms,
            bootstrap_timeout_ms=self._tuning.connect_timeout_ms,
        )

    @property
    def kafka_admin(self) -> Any:
        """The underlying ``KafkaAdminClient``, for Kafka-specific inspection (connects if needed)."""
        return self._client()

    def _client(self) -> Any:
        return self._connection.get(self._tuning.connect_timeout_ms / 1000)

    def _describe(self, topic: str) -> dict[str, Any]:
        with _translated(f"cannot describe topic {topic!r}"):
            topics = self._client().describe_topics([topic])
        described: dict[str, Any] | None = next((t for t in topics if t.get("name") == topic), None)
        if described is None or described.get("error_code", 0) != 0:
            code = 3 if described is None else described["error_code"]
            error = kafka_errors.for_code(code)
            if error is kafka_errors.UnknownTopicOrPartitionError:
                raise UnknownTopic(f"topic {topic!r} does not exist")
            raise _translate(error(topic), f"cannot describe topic {topic!r}")
        return described

    def partition_ids(self, topic: str) -> list[int]:
        """The topic's partition numbers, in order; raises ``UnknownTopic``."""
        return sorted(p["partition_index"] for p in self._describe(topic)["partitions"])

    def _ensure_topic(self, spec: TopicSpec) -> bool:
        if spec.partitions < 1:
            raise ValueError(f"a topic needs at least one partition, got {spec.partitions}")
        configs: dict[str, str] = {}
        if spec.compact:
            configs["cleanup.policy"] = "compact"
        if spec.retention_ms is not None:
            configs["retention.ms"] = str(spec.retention_ms)
        # extra_config last: it is the escape hatch for what the spec cannot say, such as
        # cleanup.policy=compact,delete or min.insync.replicas.
        configs.update(spec.extra_config)
        new_topic = {
            "num_partitions": spec.partitions,
            "replication_factor": self._tuning.replication_factor,
            "configs": configs,
        }
        client = self._client()
        created = True
        with _translated(f"cannot create topic {spec.name!r}"):
            try:
                client.create_topics({spec.name: new_topic}, timeout_ms=self._tuning.request_timeout_ms)
            except kafka_errors.TopicAlreadyExistsError:
                created = False
            # Also when it already existed: a concurrent creator may not have waited, and the
            # caller is promised a topic it can use right away (every partition has a leader).
            client.wait_for_topics([spec.name], timeout_ms=self._tuning.topic_ready_timeout_ms)
        return created

    def list_topics(self) -> set[str]:
        with _translated("cannot list topics"):
            topics = self._client().describe_topics()
        # Internal topics (__consumer_offsets, ...) are Kafka's business, not the platform's.
        return {t["name"] for t in topics if t.get("error_code", 0) == 0 and not t.get("is_internal")}

    def partitions_for(self, topic: str) -> int:
        return len(self._describe(topic)["partitions"])

    def _offsets(self, topic: str, spec: Any) -> dict[int, int]:
        specs = {KafkaTopicPartition(topic, p): spec for p in self.partition_ids(topic)}
        with _translated(f"offsets of {topic!r} unavailable"):
            found = self._client().list_partition_offsets(specs, timeout_ms=self._tuning.request_timeout_ms)
        return {tp.partition: int(result.offset) for tp, result in found.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.LATEST)

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.EARLIEST)

    def committed_offsets(self, group_id: str, topic: str | None = None) -> dict[TopicPartition, int]:
        with _translated(f"committed offsets of group {group_id!r} unavailable"):
            try:
                by_group = self._client().list_group_offsets({group_id: None})
            except kafka_errors.GroupIdNotFoundError:
                return {}
        return {
            _from_kafka(tp): int(committed.offset)
            for tp, committed in by_group.get(group_id, {}).items()
            if (topic is None or tp.topic == topic) and committed.offset >= 0
        }

    def delete_topic(self, topic: str) -> None:
        client = self._client()
        with _translated(f"cannot delete topic {topic!r}"):
            client.delete_topics([topic], timeout_ms=self._tuning.request_timeout_ms)
        # Deletion completes asynchronously; wait (bounded) until metadata no longer shows the
        # topic, so that list_topics agrees and a topic of the same name can be created again.
        deadline = time.monotonic() + self._tuning.topic_ready_timeout_ms / 1000
        while time.monotonic() < deadline:
            try:
                self._describe(topic)
            except UnknownTopic:
                return
            time.sleep(0.1)
        raise BusUnavailable(
            f"topic {topic!r} still listed {self._tuning.topic_ready_timeout_ms} ms after deletion"
        )

    def delete_group(self, group_id: str) -> None:
        with _translated(f"cannot delete group {group_id!r}"):
            results = self._client().delete_groups([group_id])
        outcome = results.get(group_id, "OK")
        if outcome in ("OK", "GroupIdNotFoundError"):
            return
        if outcome == "NonEmptyGroupError":
            raise BusError(f"group {group_id!r} still has members; close its consumers first")
        raise BusError(f"cannot delete group {group_id!r}: {outcome}")

    def ping(self, timeout_s: float = 2.0) -> None:
        """One metadata round trip (DescribeCluster), answered within ``timeout_s`` or not at all.

        The probe runs on its own thread and the caller waits at most ``timeout_s`` for it,
        whatever the client's internal timeouts; while a probe is in flight, later pings wait on it
        rather than piling up new ones (``/readyz`` may be called often while Kafka is down).
        """
        with self._ping_lock:
            attempt = self._ping_attempt
            if attempt is None or attempt.done():
                attempt = concurrent.futures.Future()
                self._ping_attempt = attempt
                detached("citybase-kafka-ping", self._probe, attempt)
        try:
            attempt.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            raise BusUnavailable(
                f"Kafka at {','.join(self._servers)} did not answer within {timeout_s}s"
            ) from None
        except BusError:
            raise
        except Exception as exc:
            raise _unavailable(exc, f"Kafka at {','.join(self._servers)} did not answer") from exc

    def _probe(self, attempt: concurrent.futures.Future[None]) -> None:
        try:
            self._client().describe_cluster()
        except BaseException as exc:  # handed to the waiting pings, never lost in this thread
            attempt.set_exception(exc)
        else:
            attempt.set_result(None)

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True
        client = self._connection.detach()
        if client is not None:
            client.close()


class KafkaBus(Bus):
    """The bus on a Kafka cluster: one shared producer and one admin client, consumers on demand."""

    def __init__(
        self, servers: Sequence[str], client_id: str = "citybase", *, tuning: KafkaTuning | None = None
    ) -> None:
        if not servers:
            raise ValueError("KafkaBus needs at least one bootstrap server")
        self._servers = list(servers)
        self._client_id = client_id
        self._tuning = tuning or KafkaTuning()
        self._lock = threading.Lock()
        self._producer: KafkaBusProducer | None = None
        self._admin: KafkaBusAdmin | None = None
        self._closed = False

    @property
    def tuning(self) -> KafkaTuning:
        return self._tuning

    def _check_open(self) -> None:
        if self._closed:
            raise BusError("the Kafka bus is closed")

    def producer(self, client_id: str = "citybase") -> KafkaBusProducer:
        """The bus's producer, shared by every caller; named after the bus's ``client_id``.

        ``client_id`` is accepted for the interface's sake: one producer serves the whole process,
        so the first caller would otherwise name it for everybody.
        """
        with self._lock:
            self._check_open()
            if self._producer is None or self._producer.closed:
                self._producer = KafkaBusProducer(self._servers, self._client_id, self._tuning)
            return self._producer

    def admin(self) -> KafkaBusAdmin:
        with self._lock:
            self._check_open()
            if self._admin is None or self._admin.closed:
                self._admin = KafkaBusAdmin(self._servers, self._client_id, self._tuning)
            return self._admin

    def consumer(
        self,
        group_id: str | None,
        topics: Sequence[str] = (),
        *,
        start: StartFrom = "earliest",
        client_id: str = "citybase",
        session_timeout_s: float = 10.0,
    ) -> KafkaBusConsumer:
        self._check_open()
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if session_timeout_s <= 0:
            raise ValueError("session_timeout_s must be positive")
        tuning = self._tuning
        session_timeout_ms = max(_MIN_SESSION_TIMEOUT_MS, int(session_timeout_s * 1000))
        with _translated(f"cannot create a consumer for {list(topics)}"):
            consumer = _build_tracked(
                KafkaConsumer,
                bootstrap_servers=self._servers,
                client_id=client_id,
                group_id=group_id,
                enable_auto_commit=False,
                auto_offset_reset=start,
                session_timeout_ms=session_timeout_ms,
                # A third of the session, as Kafka recommends: two heartbeats may be lost before
                # the coordinator gives up on the member.
                heartbeat_interval_ms=session_timeout_ms // 3,
                max_poll_interval_ms=tuning.max_poll_interval_ms,
                # Range keeps partition i of every subscribed topic on the same member, so that
                # records of one key in ds.<x> and dlq.<x> are read by the same consumer.
                partition_assignment_strategy=(RangePartitionAssignor,),
                request_timeout_ms=tuning.request_timeout_ms,
                bootstrap_timeout_ms=tuning.connect_timeout_ms,
                allow_auto_create_topics=False,
            )
        try:
            if group_id is None:
                # No group, no coordinator to hand out partitions: take all of them, as the
                # interface says, looked up through the admin client (bounded metadata calls).
                return KafkaBusConsumer(
                    consumer,
                    None,
                    tuning,
                    standalone_topics=list(dict.fromkeys(topics)),
                    # The bus's current admin each time: a caller may close the one it was given.
                    partitions_of=lambda topic: self.admin().partition_ids(topic),
                )
            _keep_pending_joins_alive(consumer)
            if topics:
                consumer.subscribe(list(dict.fromkeys(topics)))
            return KafkaBusConsumer(consumer, group_id, tuning)
        except BaseException:
            consumer.close(autocommit=False, timeout_ms=0)
            raise

    def close(self) -> None:
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
            admin, self._admin = self._admin, None
        if producer is not None:
            producer.close()
        if admin is not None:
            admin.close()
