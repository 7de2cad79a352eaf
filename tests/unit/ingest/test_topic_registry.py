"""Ingest makes a dataset's topics with the partitions its contract asks for, and grows them."""

from __future__ import annotations

from pathlib import Path

from services.common.bus.embedded import EmbeddedBus
from services.common.topics import dead_letter_topic, records_topic
from services.ingest.settings import IngestSettings
from services.ingest.topic_registry import TopicRegistry


def test_topics_take_the_contracts_partitions_grow_with_a_new_version_and_never_shrink(
    tmp_path: Path,
) -> None:
    bus = EmbeddedBus(tmp_path / "bus.db")
    try:
        registry = TopicRegistry(bus, IngestSettings(topic_partitions=3))
        admin = bus.admin()
        registry.ensure_dataset("transport.default")
        assert admin.partitions_for(records_topic("transport.default")) == 3
        registry.ensure_dataset("transport.arrivals", partitions=6)
        assert registry.ready("transport.arrivals", 6)
        assert not registry.ready("transport.arrivals", 8)
        for topic in (records_topic("transport.arrivals"), dead_letter_topic("transport.arrivals")):
            assert admin.partitions_for(topic) == 6
        # A later contract version expects more: the topics grow; one expecting fewer changes nothing.
        registry.ensure_dataset("transport.arrivals", partitions=8)
        registry.ensure_dataset("transport.arrivals", partitions=2)
        for topic in (records_topic("transport.arrivals"), dead_letter_topic("transport.arrivals")):
            assert admin.partitions_for(topic) == 8
        # Another process (a restart) learns what is there instead of shrinking it.
        again = TopicRegistry(bus, IngestSettings(topic_partitions=3))
        again.ensure_dataset("transport.arrivals", partitions=4)
        assert admin.partitions_for(records_topic("transport.arrivals")) == 8
        assert again.ready("transport.arrivals", 8)
    finally:
        bus.close()
