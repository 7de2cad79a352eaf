"""The Kafka bus places keyed records where kafka-python's default partitioner would."""

from __future__ import annotations

import kafka.errors as kafka_errors
import pytest
from hypothesis import given
from hypothesis import strategies as st
from kafka.partitioner.default import murmur2 as kafka_murmur2

from services.common.bus import BusError, GroupRebalancing, TopicPartition
from services.common.bus.kafka_client import KafkaTuning
from services.common.bus.kafka_consumer import KafkaBusConsumer
from services.common.bus.kafka_producer import murmur2


@given(st.binary(max_size=200))
def test_murmur2_is_kafkas(key: bytes) -> None:
    assert murmur2(key) == kafka_murmur2(key)


@pytest.mark.parametrize(
    ("key", "partition"),
    [(b"", 681), (b"a", 524), (b"ab", 434), (b"abc", 107), (b"123456789", 566), (b"\x00 ", 742)],
)
def test_murmur2_places_keys_as_the_java_client_does(key: bytes, partition: int) -> None:
    # Partitions the Java client's default partitioner gives these keys on 1,000 partitions.
    assert (murmur2(key) & 0x7FFFFFFF) % 1000 == partition


def test_murmur2_is_the_java_clients_signed_value() -> None:
    assert murmur2(b"21") - (1 << 32) == -973932308  # Utils.murmur2("21".getBytes()) in Kafka's tests


class _Refusing:
    """A KafkaConsumer whose commits the group refuses with ``error``."""

    def __init__(self, error: Exception) -> None:
        self.error = error

    def commit(self, offsets: object, timeout_ms: int) -> None:
        raise self.error


@pytest.mark.parametrize(
    "error",
    [
        kafka_errors.RebalanceInProgressError(),
        kafka_errors.CommitFailedError(),
        kafka_errors.IllegalGenerationError(),
        kafka_errors.UnknownMemberIdError(),
    ],
)
def test_a_commit_refused_by_a_rebalance_says_so(error: Exception) -> None:
    consumer = KafkaBusConsumer(_Refusing(error), "feeds.sub.x", KafkaTuning())
    with pytest.raises(GroupRebalancing, match="rebalancing"):
        consumer.commit({TopicPartition("ds.a.b", 0): 5})


def test_other_commit_failures_stay_bus_errors() -> None:
    consumer = KafkaBusConsumer(_Refusing(kafka_errors.KafkaError("broken")), "feeds.sub.x", KafkaTuning())
    with pytest.raises(BusError) as raised:
        consumer.commit({TopicPartition("ds.a.b", 0): 5})
    assert not isinstance(raised.value, GroupRebalancing)
