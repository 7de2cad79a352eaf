"""Reaching Kafka: the clients' tuning, how kafka-python's errors become the bus's, the network
clients that never auto-create topics, and clients built on a background thread
(:class:`Connection`) so that no caller waits on a bootstrap.

See :mod:`services.common.bus.kafka` for what the Kafka backend promises.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import kafka.errors as kafka_errors
from kafka import TopicPartition as KafkaTopicPartition

from services.common.background import detached
from services.common.bus.base import BusError, BusUnavailable, TopicPartition, UnknownTopic

log = logging.getLogger(__name__)

_ClientT = TypeVar("_ClientT")
_T = TypeVar("_T")


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


def unavailable(exc: BaseException, what: str) -> BusUnavailable:
    error = BusUnavailable(f"{what}: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


def metadata_patiently(call: Callable[[], _T]) -> _T:
    """``call`` (a send, a partition lookup), asked once more if it timed out waiting for metadata.

    The first metadata of a topic new to this producer can take longer than ``max_block_ms`` on
    a loaded broker while the cluster keeps answering for other topics; one more wait tells a
    slow answer from a missing topic before the error says the topic does not exist.
    """
    try:
        return call()
    except kafka_errors.KafkaTimeoutError:
        return call()


def translate(exc: BaseException, what: str) -> BusError:
    """The bus error for a kafka-python (or socket) error, so callers see only ``BusError``s."""
    if isinstance(exc, BusError):
        return exc
    if isinstance(exc, kafka_errors.UnknownTopicOrPartitionError):
        error: BusError = UnknownTopic(f"{what}: {exc}")
    elif isinstance(exc, _UNAVAILABLE_ERRORS):
        return unavailable(exc, what)
    else:
        error = BusError(f"{what}: {exc or type(exc).__name__}")
    error.__cause__ = exc
    return error


@contextlib.contextmanager
def translated(what: str) -> Iterator[None]:
    try:
        yield
    except BusError:
        raise
    except (kafka_errors.KafkaError, OSError) as exc:
        raise translate(exc, what) from exc


def to_kafka(tp: TopicPartition) -> Any:
    return KafkaTopicPartition(tp.topic, tp.partition)


def from_kafka(tp: Any) -> TopicPartition:
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


def build_tracked(client_class: Any, **configs: Any) -> Any:
    """``client_class(**configs)``, closing its network client if the constructor fails."""
    tracker = _NetClientTracker(client_class.DEFAULT_CONFIG["kafka_client"])
    try:
        return client_class(**configs, kafka_client=tracker)
    except BaseException:
        tracker.close_all()
        raise


class Connection(Generic[_ClientT]):
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
            raise translate(exc, f"Kafka {self._name} could not connect") from exc

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
