"""The topics of a dataset that ingest writes (``ds.``, ``dlq.``) and reads (``raw.``), made sure
of once per process."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from services.common.bus import (
    Admin,
    Bus,
)
from services.common.topics import (
    dead_letter_spec,
    raw_spec,
    raw_topic,
    records_spec,
)
from services.ingest.settings import IngestSettings


class TopicRegistry:
    """Makes sure a dataset's topics exist, once per process (``ensure_topic`` is not free)."""

    def __init__(self, bus: Bus, settings: IngestSettings) -> None:
        self._bus = bus
        self._settings = settings
        self._ready: set[str] = set()
        self._lock = threading.Lock()

    def ready(self, dataset_id: str) -> bool:
        return dataset_id in self._ready

    def ensure_dataset(self, dataset_id: str, retention_ms: int | None = None) -> None:
        """``ds.<id>`` (with the contract's retention) and ``dlq.<id>``."""
        if dataset_id in self._ready:
            return
        with self._lock:
            if dataset_id in self._ready:
                return
            admin = self._bus.admin()
            partitions = self._settings.topic_partitions
            admin.ensure_topic(records_spec(dataset_id, partitions, retention_ms=retention_ms))
            admin.ensure_topic(dead_letter_spec(dataset_id, partitions))
            self._ready.add(dataset_id)

    def ensure_raw(self, dataset_ids: Sequence[str]) -> None:
        """``raw.<id>`` of each dataset: one listing, then a create for each that is missing."""
        admin: Admin = self._bus.admin()
        existing = admin.list_topics()
        for dataset_id in dataset_ids:
            if raw_topic(dataset_id) not in existing:
                admin.ensure_topic(raw_spec(dataset_id, self._settings.raw_topic_partitions))
