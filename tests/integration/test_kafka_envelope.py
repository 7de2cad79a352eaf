"""A record published through citybase's Kafka bus is read by an independent Kafka client with
its CloudEvents headers, and by the CloudEvents SDK."""

from __future__ import annotations

import pytest
from cloudevents.core.bindings import kafka as ce_kafka
from cloudevents.core.formats.json import JSONFormat
from kafka import KafkaConsumer, TopicPartition

from services.common.bus import TopicSpec
from services.common.bus.kafka import KafkaBus
from tests.factories import bus_arrival_event

pytestmark = pytest.mark.kafka


def test_an_independent_client_reads_the_cloudevent(kafka_bootstrap: str, unique_name: str) -> None:
    topic = f"ds.test-envelope-{unique_name}"
    event = bus_arrival_event()
    bus = KafkaBus([kafka_bootstrap], client_id="citybase-test")
    try:
        bus.admin().ensure_topic(TopicSpec(topic, partitions=1))
        (written,) = bus.producer().publish([event.to_record(topic, b"S0042")])
    finally:
        bus.close()

    consumer = KafkaConsumer(
        bootstrap_servers=kafka_bootstrap, enable_auto_commit=False, consumer_timeout_ms=10_000
    )
    try:
        partition = TopicPartition(topic, written.partition)
        consumer.assign([partition])
        consumer.seek(partition, written.offset)
        record = next(iter(consumer))
    finally:
        consumer.close()

    headers = dict(record.headers)
    assert record.key == b"S0042"
    assert headers["ce_id"] == event.id.encode()
    assert headers["ce_specversion"] == b"1.0"
    assert headers["ce_dataset"] == b"transport.bus-arrivals"
    assert headers["content-type"] == b"application/json"
    sdk_event = ce_kafka.from_binary(
        ce_kafka.KafkaMessage(headers=headers, key=record.key, value=record.value), JSONFormat()
    )
    assert sdk_event.get_id() == event.id
    assert sdk_event.get_type() == event.type
    assert sdk_event.get_source() == event.source
    assert sdk_event.get_data() == event.data
    assert abs((sdk_event.get_time() - event.time).total_seconds()) < 0.001
