"""The test run's own housekeeping: topics it created on the shared broker go when it ends."""

from __future__ import annotations

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.kafka_topics import created_topics_removed, is_test_topic, topics

pytestmark = pytest.mark.kafka


@pytest.mark.parametrize(
    "name",
    [
        "ds.transport.arrivals-7c4168768e",
        "dlq.health.q2b8ebe-unused-229c6a1d",
        "contract.split.db177ba500",
        "raw.health.values-1b803eac",
        "bench.bus.0a1b2c3d",
    ],
)
def test_a_random_hex_suffix_marks_a_test_topic(name: str) -> None:
    assert is_test_topic(name)


@pytest.mark.parametrize(
    "name",
    [
        "platform.catalog",
        "ds.transport.arrivals",
        "ds.culture.facade-decade",  # hex letters without a digit are words
        "ds.health.visits-2024",  # too short to be random
        "__consumer_offsets",
    ],
)
def test_the_platforms_own_topics_are_not_test_topics(name: str) -> None:
    assert not is_test_topic(name)


def test_only_the_test_topics_created_inside_the_block_are_deleted(
    kafka_bootstrap: str, unique_name: str
) -> None:
    before = f"ds.cleanup.before-{unique_name}"
    inside = f"ds.cleanup.inside-{unique_name}"
    plain = f"ds.cleanup.kept{''.join(chr(ord('g') + int(c, 16) % 20) for c in unique_name)}"
    assert not is_test_topic(plain)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(before, 1, 1)])
        with created_topics_removed(kafka_bootstrap):
            admin.create_topics([NewTopic(inside, 1, 1), NewTopic(plain, 1, 1)])
        left = topics(kafka_bootstrap) or set()
        assert inside not in left
        assert before in left
        assert plain in left
    finally:
        admin.delete_topics([before, plain], raise_errors=False)
        admin.close()
