"""The events feeds publishes on ``platform.usage``: the contract between feeds and its readers
(the catalog's audit trail, quality's utilization). Keyed by scenario id; JSON Schemas of the
payloads in ``contracts/events/feeds.*.json``."""

from __future__ import annotations

from services.common.bus import TopicSpec

TOPIC = "platform.usage"
TOPIC_SPEC = TopicSpec(TOPIC, partitions=3, retention_ms=30 * 24 * 3600 * 1000)
SOURCE = "/feeds"

USAGE = "city.citybase.feeds.usage.v1"
"""One delivered batch: scenario, subscription, grant and its version, dataset, records, bytes,
partitions with first and last offsets, mode, time."""
REPLAY = "city.citybase.feeds.replay.v1"
"""A subscription reset to offsets or a time."""
