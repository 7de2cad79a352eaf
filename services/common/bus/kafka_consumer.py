"""Consuming on Kafka: group members and standalone readers of every partition of their topics."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import kafka.errors as kafka_errors
from kafka import OffsetAndMetadata
from kafka import TopicPartition as KafkaTopicPartition
from kafka.coordinator.assignors.abstract import (
    AbstractPartitionAssignor,
    ConsumerProtocolAssignment,
    ConsumerProtocolSubscription,
)

from services.common.bus.assignment import assign_whole
from services.common.bus.base import (
    BusError,
    BusUnavailable,
    Consumer,
    GroupOf,
    GroupRebalancing,
    Message,
    TopicPartition,
    UnknownTopic,
)
from services.common.bus.kafka_client import KafkaTuning, from_kafka, to_kafka, translated
from services.common.bus.kafka_records import read_into_messages

log = logging.getLogger(__name__)

_REBALANCING = (
    kafka_errors.RebalanceInProgressError,
    kafka_errors.CommitFailedError,
    kafka_errors.IllegalGenerationError,
    kafka_errors.UnknownMemberIdError,
)
"""Commit refusals that say the member's generation is over: it must poll (rejoin) first."""

# How often a consumer without a group looks for partitions added to its topics, and for topics
# that did not exist yet (a coordinator does this for group members).
_PARTITION_RECHECK_S = 10.0
_MISSING_TOPIC_RECHECK_S = 1.0
_new_message = tuple.__new__


class WholeGroupAssignor(AbstractPartitionAssignor):
    """kafka-python's side of :func:`~services.common.bus.assignment.assign_whole`: the group's
    leader hands out every partition of a group of topics to one member."""

    name = "citybase-whole-groups"
    version = 0

    def __init__(self, group_of: GroupOf) -> None:
        self._group_of = group_of

    def assign(self, cluster: Any, members: Any) -> dict[str, Any]:
        subscriptions = {member.member_id: frozenset(member.metadata.topics) for member in members}
        counts = {}
        for topic in {topic for topics in subscriptions.values() for topic in topics}:
            partitions = cluster.partitions_for_topic(topic)
            if partitions:
                counts[topic] = len(partitions)
        assignment = assign_whole(subscriptions, counts, self._group_of)
        answer = {}
        for member_id, tps in assignment.items():
            by_topic: dict[str, list[int]] = {}
            for tp in sorted(tps, key=lambda tp: (tp.topic, tp.partition)):
                by_topic.setdefault(tp.topic, []).append(tp.partition)
            answer[member_id] = ConsumerProtocolAssignment(self.version, sorted(by_topic.items()), b"")
        return answer

    def metadata(self, topics: Any) -> Any:
        return ConsumerProtocolSubscription(self.version, list(topics), b"")

    def on_assignment(self, assignment: Any, generation: Any = None) -> None:
        pass


def keep_pending_joins_alive(consumer: Any) -> None:
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
        self._reads_messages = read_into_messages(consumer)
        """Whether kafka-python's fetcher hands out Messages itself (:mod:`.kafka_records`)."""
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
        with translated("poll failed"):
            batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        # kafka-python returns records grouped per partition, each group in offset order.
        if self._reads_messages:
            return [message for messages in batches.values() for message in messages]
        # Each Message is made from its fields in their order by tuple.__new__, in C (a
        # NamedTuple's own __new__ is a Python function, twice the time).
        return [
            _new_message(
                Message,
                (
                    record.topic,
                    record.partition,
                    record.offset,
                    record.key,
                    record.value,
                    tuple(record.headers or ()),
                    record.timestamp,
                ),
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
            else {to_kafka(tp): OffsetAndMetadata(offset, "", -1) for tp, offset in offsets.items()}
        )
        what = f"commit for group {self._group_id!r} failed"
        try:
            with translated(what):
                self._consumer.commit(offsets=kafka_offsets, timeout_ms=self._timeout_ms)
        except BusError as error:
            if isinstance(error.__cause__, _REBALANCING):
                raise GroupRebalancing(f"{what}: the group is rebalancing") from error.__cause__
            raise

    def assignment(self) -> set[TopicPartition]:
        return {from_kafka(tp) for tp in self._consumer.assignment()}

    def position(self, tp: TopicPartition) -> int:
        with translated(f"no position for {tp}"):
            position = self._consumer.position(to_kafka(tp), timeout_ms=self._timeout_ms)
        if position is None:
            raise BusUnavailable(f"position of {tp} not known within {self._timeout_ms} ms")
        return int(position)

    def committed(self, tp: TopicPartition) -> int | None:
        if self._group_id is None:
            return None
        with translated(f"committed offset of {tp} unavailable"):
            offset = self._consumer.committed(to_kafka(tp), timeout_ms=self._timeout_ms)
        return None if offset is None or offset < 0 else int(offset)

    def seek(self, tp: TopicPartition, offset: int) -> None:
        if offset < 0:
            raise ValueError(f"cannot seek to negative offset {offset}")
        (partition,) = self._partitions([tp])
        self._consumer.seek(partition, offset)

    def _partitions(self, tps: Iterable[TopicPartition] | None) -> list[Any]:
        if tps is None:
            return list(self._consumer.assignment())
        partitions = [to_kafka(tp) for tp in tps]
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
        with translated(f"cannot seek to timestamp {timestamp_ms}"):
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
        partitions = [to_kafka(tp) for tp in tps] if tps is not None else list(self._consumer.assignment())
        if not partitions:
            return {}
        with translated("end offsets unavailable"):
            ends = self._consumer.end_offsets(partitions, timeout_ms=self._timeout_ms)
        return {from_kafka(tp): int(offset) for tp, offset in ends.items()}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # autocommit=False: the interface promises that closing commits nothing; only what the
        # caller committed after doing its work counts.
        self._consumer.close(autocommit=False, timeout_ms=self._timeout_ms)
