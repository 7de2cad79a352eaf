"""Every topic of citybase: its name and how it is created (partitions, retention, compaction).

Three topics per dataset, named from the dataset id: ``ds.<id>`` (validated records, written by
ingest), ``dlq.<id>`` (records ingest rejected) and ``raw.<id>`` (records publishers write straight
into Kafka). Three platform topics: ``platform.catalog`` (the catalog's changes, compacted),
``platform.usage`` (feeds' delivery metering) and ``platform.quality`` (quality's scores and SLA
breaches). Whichever service starts first creates a platform topic, so every service ensures it
from the one :class:`TopicSpec` here and the topic looks the same whatever the order.
"""

from __future__ import annotations

from services.common.bus import TopicSpec

_RECORDS_PREFIX = "ds."
_DEAD_LETTER_PREFIX = "dlq."
_RAW_PREFIX = "raw."

CATALOG = "platform.catalog"
CATALOG_SPEC = TopicSpec(CATALOG, partitions=1, compact=True)
"""One partition keeps the catalog's changes in the order it made them; compacted by entity."""
USAGE = "platform.usage"
USAGE_SPEC = TopicSpec(USAGE, partitions=3, retention_ms=30 * 24 * 3600 * 1000)
"""Delivery metering, keyed by scenario; kept 30 days."""
QUALITY = "platform.quality"
QUALITY_SPEC = TopicSpec(QUALITY, partitions=3)
"""Score updates and SLA breaches, keyed by dataset."""
PLATFORM_SPECS = (CATALOG_SPEC, USAGE_SPEC, QUALITY_SPEC)


def records_topic(dataset_id: str) -> str:
    """The topic of a dataset's validated records, which ingest writes and feeds and quality read."""
    return _RECORDS_PREFIX + dataset_id


def dead_letter_topic(dataset_id: str) -> str:
    """The dead-letter topic of the records of a dataset that ingest rejected."""
    return _DEAD_LETTER_PREFIX + dataset_id


def raw_topic(dataset_id: str) -> str:
    """The topic publishers that speak Kafka write a dataset's unvalidated records to."""
    return _RAW_PREFIX + dataset_id


def records_spec(dataset_id: str, partitions: int, retention_ms: int | None = None) -> TopicSpec:
    return TopicSpec(records_topic(dataset_id), partitions, retention_ms=retention_ms)


def dead_letter_spec(dataset_id: str, partitions: int) -> TopicSpec:
    return TopicSpec(dead_letter_topic(dataset_id), partitions)


def raw_spec(dataset_id: str, partitions: int) -> TopicSpec:
    return TopicSpec(raw_topic(dataset_id), partitions)


def dataset_of(topic: str) -> tuple[str, bool] | None:
    """(dataset id, is dead-letter) of a ``ds.``/``dlq.`` topic; None for any other topic."""
    if topic.startswith(_RECORDS_PREFIX):
        return topic[len(_RECORDS_PREFIX) :], False
    if topic.startswith(_DEAD_LETTER_PREFIX):
        return topic[len(_DEAD_LETTER_PREFIX) :], True
    return None


def dataset_group(topic: str) -> str:
    """The dataset of a ``ds.``/``dlq.`` topic, as the group a consumer group hands out whole
    (``Bus.consumer(group_by=...)``); any other topic is a group of its own."""
    found = dataset_of(topic)
    return found[0] if found is not None else topic


def dataset_of_raw(topic: str) -> str:
    """The dataset id of a ``raw.`` topic (the topic itself if it is not one)."""
    return topic.removeprefix(_RAW_PREFIX)
