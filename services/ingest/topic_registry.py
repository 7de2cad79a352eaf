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
        self._ready: dict[str, int] = {}
        """Dataset -> the partitions its topics are known to have."""
        self._lock = threading.Lock()

    def ready(self, dataset_id: str, partitions: int | None = None) -> bool:
        """Whether the dataset's topics are made, with at least ``partitions`` partitions."""
        return self._ready.get(dataset_id, 0) >= (partitions or self._settings.topic_partitions)

    def ensure_dataset(
        self, dataset_id: str, retention_ms: int | None = None, partitions: int | None = None
    ) -> None:
        """``ds.<id>`` (with the contract's retention) and ``dlq.<id>``, with the partitions the
        contract asks for (ingest's ``topic_partitions`` when it names none). A contract version
        asking for more partitions than the topics have grows them; none ever shrinks."""
        wanted = partitions or self._settings.topic_partitions
        if self._ready.get(dataset_id, 0) >= wanted:
            return
        with self._lock:
            if self._ready.get(dataset_id, 0) >= wanted:
                return
            admin = self._bus.admin()
            specs = (
                records_spec(dataset_id, wanted, retention_ms=retention_ms),
                dead_letter_spec(dataset_id, wanted),
            )
            for spec in specs:
                if not admin.ensure_topic(spec) and partitions is not None:
                    admin.grow_partitions(spec.name, wanted)
            self._ready[dataset_id] = max(wanted, admin.partitions_for(specs[0].name))

    def ensure_raw(self, dataset_ids: Sequence[str]) -> None:
        """``raw.<id>`` of each dataset: one listing, then a create for each that is missing."""
        admin: Admin = self._bus.admin()
        existing = admin.list_topics()
        for dataset_id in dataset_ids:
            if raw_topic(dataset_id) not in existing:
                admin.ensure_topic(raw_spec(dataset_id, self._settings.raw_topic_partitions))
