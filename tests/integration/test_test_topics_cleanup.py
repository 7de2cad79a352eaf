"""The test run's own housekeeping: topics it created on the shared broker go when it ends."""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka import KafkaAdminClient
from kafka.admin import NewTopic

from tests.support.kafka_topics import created_topics_removed, is_test_topic, topics

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
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    before = f"ds.cleanup.before-{unique_name}"
    inside = f"ds.cleanup.inside-{unique_name}"
    plain = f"ds.cleanup.kept{''.join(chr(ord('g') + int(c, 16) % 20) for c in unique_name)}"
    assert not is_test_topic(plain)
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        admin.create_topics([NewTopic(before, 1, 1)])
        with created_topics_removed(kafka_bootstrap, registry=tmp_path):
            admin.create_topics([NewTopic(inside, 1, 1), NewTopic(plain, 1, 1)])
        left = topics(kafka_bootstrap) or set()
        assert inside not in left
        assert before in left
        assert plain in left
    finally:
        admin.delete_topics([before, plain], raise_errors=False)
        admin.close()


def test_a_run_that_ends_while_another_is_live_deletes_nothing(
    kafka_bootstrap: str, unique_name: str, tmp_path: Path
) -> None:
    """Two overlapping runs on one broker: the first to end leaves the other's topics (and its own)
    alone; the last deletes what both created since the first began."""
    first_topic = f"ds.cleanup.first-{unique_name}"
    second_topic = f"ds.cleanup.second-{unique_name}"
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    try:
        first = created_topics_removed(kafka_bootstrap, registry=tmp_path)
        first.__enter__()
        admin.create_topics([NewTopic(first_topic, 1, 1)])
        with created_topics_removed(kafka_bootstrap, registry=tmp_path):
            admin.create_topics([NewTopic(second_topic, 1, 1)])
            first.__exit__(None, None, None)
            left = topics(kafka_bootstrap) or set()
            assert {first_topic, second_topic} <= left
        left = topics(kafka_bootstrap) or set()
        assert first_topic not in left
        assert second_topic not in left
    finally:
        admin.delete_topics([first_topic, second_topic], raise_errors=False)
        admin.close()
