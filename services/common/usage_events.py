"""The events feeds publishes on ``platform.usage``: the contract between feeds and its readers
(the catalog's audit trail, quality's utilization). Keyed by scenario id; JSON Schemas of the
payloads in ``contracts/events/feeds.*.json``."""

from __future__ import annotations

from services.common import topics

TOPIC = topics.USAGE
TOPIC_SPEC = topics.USAGE_SPEC
SOURCE = "/feeds"

USAGE = "city.citybase.feeds.usage.v1"
"""One delivered batch: scenario, subscription, grant and its version, dataset, records, bytes,
partitions with first and last offsets, mode, time."""
REPLAY = "city.citybase.feeds.replay.v1"
"""A subscription reset to offsets or a time."""
OPEN_SNAPSHOT = "city.citybase.feeds.open-snapshot.v1"
"""An open-data snapshot served without a grant: dataset, records, bytes, format, the salted hash
of the client's address (never the address), the fields withheld as sensitive, time."""
