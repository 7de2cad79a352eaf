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
  (``Connection``): ``KafkaBus.producer()`` and ``admin()`` return at once, a service starts
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
  the group (``keep_pending_joins_alive``);
- after a broker outage longer than ``delivery_timeout_ms``, an idempotent producer whose sent
  batches expired drops its producer id and never asks for a new one: it sends nothing, and no
  record it holds ever succeeds or fails, until the process restarts (``_stuck_without_producer_id``
  makes the producer be replaced).

The backend's modules: :mod:`~services.common.bus.kafka_client` (tuning, error translation,
clients built in the background), :mod:`~services.common.bus.kafka_producer`,
:mod:`~services.common.bus.kafka_consumer`, :mod:`~services.common.bus.kafka_records` (fetched
batches read straight into Messages), and this one (the admin client and the bus).
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from kafka import KafkaAdminClient, KafkaConsumer, OffsetAndMetadata, OffsetSpec
from kafka import TopicPartition as KafkaTopicPartition
from kafka.coordinator.assignors.range import RangePartitionAssignor

from services.common.background import detached
from services.common.bus.base import (
    Admin,
    Bus,
    BusError,
    BusUnavailable,
    GroupActive,
    GroupOf,
    StartFrom,
    TopicPartition,
    TopicSpec,
    UnknownTopic,
)
from services.common.bus.kafka_client import (
    Connection,
    KafkaTuning,
    build_tracked,
    from_kafka,
    translate,
    translated,
    unavailable,
)
from services.common.bus.kafka_consumer import KafkaBusConsumer, WholeGroupAssignor, keep_pending_joins_alive
from services.common.bus.kafka_producer import KafkaBusProducer

log = logging.getLogger(__name__)

_MEMBERS_ONLY = {
    kafka_errors.UnknownMemberIdError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.RebalanceInProgressError,
}
"""A commit from outside the group refused because the group has members (or is gaining some)."""

_ADMIN_IN_FLIGHT = 4
"""Calls the admin client makes at once. kafka-python's admin client does not queue: beyond its
connection's max_in_flight (5) a call fails at once with NodeNotReadyError, which 100 threads
committing for streams' groups hit on most calls; four at a time, none fail (2,000 calls in 2 s
on the local broker)."""

# Brokers refuse sessions shorter than group.min.session.timeout.ms (6 s by default).
_MIN_SESSION_TIMEOUT_MS = 6_000


class KafkaBusAdmin(Admin):
    """Topic, offset and group administration through one ``KafkaAdminClient``."""

    def __init__(self, servers: Sequence[str], client_id: str, tuning: KafkaTuning) -> None:
        self._servers = list(servers)
        self._client_id = client_id
        self._tuning = tuning
        self._connection: Connection[Any] = Connection("admin", self._build, lambda client: client.close())
        self._ping_lock = threading.Lock()
        self._ping_attempt: concurrent.futures.Future[None] | None = None
        self._in_flight = threading.BoundedSemaphore(_ADMIN_IN_FLIGHT)
        self._closed = False
        self._connection.start()

    def _build(self) -> Any:
        return build_tracked(
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
        with self._in_flight, translated(f"cannot describe topic {topic!r}"):
            topics = self._client().describe_topics([topic])
        described: dict[str, Any] | None = next((t for t in topics if t.get("name") == topic), None)
        if described is None or described.get("error_code", 0) != 0:
            code = 3 if described is None else described["error_code"]
            error = kafka_errors.for_code(code)
            if error is kafka_errors.UnknownTopicOrPartitionError:
                raise UnknownTopic(f"topic {topic!r} does not exist")
            raise translate(error(topic), f"cannot describe topic {topic!r}")
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
        with translated(f"cannot create topic {spec.name!r}"):
            try:
                client.create_topics({spec.name: new_topic}, timeout_ms=self._tuning.request_timeout_ms)
            except kafka_errors.TopicAlreadyExistsError:
                created = False
            # Also when it already existed: a concurrent creator may not have waited, and the
            # caller is promised a topic it can use right away (every partition has a leader).
            client.wait_for_topics([spec.name], timeout_ms=self._tuning.topic_ready_timeout_ms)
        return created

    def grow_partitions(self, topic: str, partitions: int) -> bool:
        current = self.partitions_for(topic)
        if partitions <= current:
            return False
        with translated(f"cannot add partitions to {topic!r}"):
            self._client().create_partitions({topic: partitions}, timeout_ms=self._tuning.request_timeout_ms)
            self._client().wait_for_topics([topic], timeout_ms=self._tuning.topic_ready_timeout_ms)
        return True

    def list_topics(self) -> set[str]:
        with translated("cannot list topics"):
            topics = self._client().describe_topics()
        # Internal topics (__consumer_offsets, ...) are Kafka's business, not the platform's.
        return {t["name"] for t in topics if t.get("error_code", 0) == 0 and not t.get("is_internal")}

    def partitions_for(self, topic: str) -> int:
        return len(self._describe(topic)["partitions"])

    def _offsets(self, topic: str, spec: Any) -> dict[int, int]:
        specs = {KafkaTopicPartition(topic, p): spec for p in self.partition_ids(topic)}
        with self._in_flight, translated(f"offsets of {topic!r} unavailable"):
            found = self._client().list_partition_offsets(specs, timeout_ms=self._tuning.request_timeout_ms)
        return {tp.partition: int(result.offset) for tp, result in found.items()}

    def end_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.LATEST)

    def beginning_offsets(self, topic: str) -> dict[int, int]:
        return self._offsets(topic, OffsetSpec.EARLIEST)

    def committed_offsets(self, group_id: str, topic: str | None = None) -> dict[TopicPartition, int]:
        with self._in_flight, translated(f"committed offsets of group {group_id!r} unavailable"):
            try:
                by_group = self._client().list_group_offsets({group_id: None})
            except kafka_errors.GroupIdNotFoundError:
                return {}
        return {
            from_kafka(tp): int(committed.offset)
            for tp, committed in by_group.get(group_id, {}).items()
            if (topic is None or tp.topic == topic) and committed.offset >= 0
        }

    def group_members(self, group_id: str) -> int:
        with self._in_flight, translated(f"cannot describe group {group_id!r}"):
            described = self._client().describe_groups([group_id]).get(group_id, {})
        # An unknown group is described as Dead with an error and no members: none.
        return len(described.get("members") or ())

    def commit_offsets(self, group_id: str, topic: str, offsets: Mapping[int, int]) -> None:
        if not self.offsets_to_commit(topic, offsets):
            return
        # OffsetCommit with no member id and no generation: the coordinator takes it only while
        # the group is empty, and answers UNKNOWN_MEMBER_ID (or a rebalance in progress) otherwise.
        request = {KafkaTopicPartition(topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()}
        with self._in_flight, translated(f"commit for group {group_id!r} failed"):
            results = self._client().alter_group_offsets(group_id, request)
        failed = {tp.partition: error for tp, error in results.items() if error is not kafka_errors.NoError}
        if not failed:
            return
        errors = set(failed.values())
        what = f"commit for group {group_id!r} refused for partitions {sorted(failed)}"
        if errors & _MEMBERS_ONLY:
            raise GroupActive(f"{what}: the group has live members")
        raise translate(next(iter(errors))(), what)

    def delete_topic(self, topic: str) -> None:
        client = self._client()
        with translated(f"cannot delete topic {topic!r}"):
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
        with translated(f"cannot delete group {group_id!r}"):
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
            raise unavailable(exc, f"Kafka at {','.join(self._servers)} did not answer") from exc

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
        group_by: GroupOf | None = None,
        fetch_bytes: int | None = None,
    ) -> KafkaBusConsumer:
        self._check_open()
        if start not in ("earliest", "latest"):
            raise ValueError(f"start must be 'earliest' or 'latest', got {start!r}")
        if session_timeout_s <= 0:
            raise ValueError("session_timeout_s must be positive")
        tuning = self._tuning
        session_timeout_ms = max(_MIN_SESSION_TIMEOUT_MS, int(session_timeout_s * 1000))
        # kafka-python fetches up to max_partition_fetch_bytes per partition (1 MiB) and
        # fetch_max_bytes per response (50 MiB), and holds what it fetched until it is polled.
        fetch = (
            {}
            if fetch_bytes is None
            else {"max_partition_fetch_bytes": fetch_bytes, "fetch_max_bytes": 4 * fetch_bytes}
        )
        with translated(f"cannot create a consumer for {list(topics)}"):
            consumer = build_tracked(
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
                # records of one key in ds.<x> and dlq.<x> are read by the same consumer; whole
                # groups keep every partition of a group of topics on one member.
                partition_assignment_strategy=(
                    (WholeGroupAssignor(group_by),) if group_by is not None else (RangePartitionAssignor,)
                ),
                request_timeout_ms=tuning.request_timeout_ms,
                bootstrap_timeout_ms=tuning.connect_timeout_ms,
                allow_auto_create_topics=False,
                # Nothing reads kafka-python's own metrics (the services export Prometheus'): its
                # registry of sensors costs each consumer about 70 KiB and a sensor update per
                # fetch, and feeds holds a consumer per open stream.
                metrics_enabled=False,
                **fetch,
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
            keep_pending_joins_alive(consumer)
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
